//! Start-up recovery from the data directory: `storage::recovery` (the
//! sans-IO core the simulator runs too) over the files here.
//!
//! Runs before any executor starts, with plain file IO. Snapshot and log
//! files are mapped (`MappedFile`), not read into a buffer: at 1M znodes
//! the copy and the fresh buffer's page faults were a tenth of the restart.
//! An interrupted truncation (`server::truncate`) is finished before
//! anything is read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::storage::recovery::{
    recover_from, LoadedSnapshot, RecoveryNote, RecoveryOptions, RecoveryStore, SnapshotSkip,
};
use crate::storage::snapshot_format::read_snapshot;

pub use crate::storage::recovery::{apply, Recovered, RecoveryError};

use super::log_writer::log_dir;

/// A file mapped read-only for the whole of recovery. Sound only while no
/// one truncates the file under the mapping (a SIGBUS, not a panic, would
/// follow): recovery runs before the server starts, and cuts a log only
/// after dropping its mapping.
pub struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for MappedFile {}
// SAFETY: as above; shared references only read.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    pub fn open(path: &Path) -> std::io::Result<MappedFile> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "file larger than the address space"))?;
        if len == 0 {
            return Ok(MappedFile { ptr: std::ptr::null_mut(), len: 0 });
        }
        // SAFETY: a fresh private read-only mapping of a file we opened;
        // MAP_POPULATE maps the (cached) pages at once instead of one fault
        // per 4 KiB page.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile { ptr, len })
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: ptr..ptr+len is mapped readable until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmapping exactly what `open` mapped.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("zoocore")
}

pub use crate::storage::file_names::snapshot_file_name;

/// Files named `<prefix>.<hex zxid>` in `dir`, sorted by zxid.
pub fn list_by_zxid(dir: &Path, prefix: &str) -> Vec<(i64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else { continue };
        if let Ok(z) = i64::from_str_radix(hex, 16) {
            out.push((z, e.path()));
        }
    }
    out.sort();
    out
}

pub fn recover(data_dir: &Path, data_log_dir: &Path, repair: bool) -> Result<Recovered, RecoveryError> {
    let started = Instant::now();
    // A TRUNC the server crashed in the middle of is finished first: from
    // the moment its intent was durable, no txn above its zxid may be read.
    if let Some(report) = super::truncate::resume_interrupted_truncation(data_dir, data_log_dir)? {
        tracing::warn!(
            zxid = format_args!("0x{:x}", report.zxid),
            removed_snapshots = report.removed_snapshots.len(),
            removed_logs = report.removed_logs.len(),
            rewritten_logs = report.rewritten_logs.len(),
            "finished a truncation that was interrupted"
        );
    }
    let mut store = DataDirectory {
        snapshots: list_by_zxid(&snapshot_dir(data_dir), "snapshot"),
        logs: list_by_zxid(&log_dir(data_log_dir), "log"),
    };
    let options = RecoveryOptions {
        repair,
        recent_window_txns: crate::zab::leader::COMMITTED_WINDOW_TXNS,
        check_txn_digests: true,
    };
    let recovered = recover_from(&mut store, options)?;
    tracing::info!(
        zxid = format_args!("0x{:x}", recovered.last_zxid),
        nodes = recovered.tree.node_count(),
        sessions = recovered.sessions.len(),
        replayed = recovered.replayed,
        took_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok(recovered)
}

/// The data directory's snapshot and log files, by zxid, as recovery sees them.
struct DataDirectory {
    snapshots: Vec<(i64, PathBuf)>,
    logs: Vec<(i64, PathBuf)>,
}

impl DataDirectory {
    fn log_path(&self, index: usize) -> Result<&Path, String> {
        self.logs.get(index).map(|(_, p)| p.as_path()).ok_or_else(|| format!("no log file {index}"))
    }
}

impl RecoveryStore for DataDirectory {
    fn snapshots(&mut self) -> Vec<(i64, usize)> {
        self.snapshots.iter().enumerate().rev().map(|(id, (zxid, _))| (*zxid, id)).collect()
    }

    fn snapshot_name(&self, id: usize) -> String {
        self.snapshots.get(id).map(|(_, p)| p.display().to_string()).unwrap_or_default()
    }

    fn load_snapshot(&mut self, id: usize) -> Result<LoadedSnapshot, (SnapshotSkip, String)> {
        let unreadable = |why: String| (SnapshotSkip::Unreadable, why);
        let (_, path) = self.snapshots.get(id).ok_or_else(|| unreadable(format!("no snapshot {id}")))?;
        let bytes = MappedFile::open(path).map_err(|e| unreadable(e.to_string()))?;
        let snap = read_snapshot(bytes.as_ref()).map_err(|e| (SnapshotSkip::DoesNotVerify, e.to_string()))?;
        Ok(LoadedSnapshot { last_zxid: snap.last_zxid, tree: snap.tree, sessions: snap.sessions.into_iter().collect() })
    }

    fn logs(&mut self) -> Vec<i64> {
        self.logs.iter().map(|(first, _)| *first).collect()
    }

    fn log_name(&self, index: usize) -> String {
        self.logs.get(index).map(|(_, p)| p.display().to_string()).unwrap_or_default()
    }

    fn read_log(&mut self, index: usize) -> Result<bytes::Bytes, String> {
        let mapped = MappedFile::open(self.log_path(index)?).map_err(|e| e.to_string())?;
        Ok(bytes::Bytes::from_owner(mapped))
    }

    fn cut_log(&mut self, index: usize, offset: u64) -> Result<(), String> {
        let path = self.log_path(index)?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {} to cut it: {e}", path.display()))?;
        f.set_len(offset)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot cut {} at {offset}: {e}", path.display()))
    }

    fn remove_log(&mut self, index: usize) -> Result<(), String> {
        let path = self.log_path(index)?;
        std::fs::remove_file(path).map_err(|e| format!("cannot remove the empty log {}: {e}", path.display()))?;
        if let Some(dir) = path.parent() {
            // The removal must be durable before a file of the same name is created.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn set_log_aside(&mut self, index: usize) -> Result<String, String> {
        // `log.<zxid>.corrupt-aside`, which the `log.<hex>` listing no longer picks up.
        let path = self.log_path(index)?;
        let mut aside = path.to_path_buf().into_os_string();
        aside.push(".corrupt-aside");
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside).map_err(|e| format!("cannot set {} aside: {e}", path.display()))?;
        Ok(aside.display().to_string())
    }

    fn note(&mut self, note: RecoveryNote<'_>) {
        match note {
            RecoveryNote::SnapshotSkipped { name, skip, why, .. } => match skip {
                SnapshotSkip::Unreadable => {
                    tracing::warn!(file = name, error = why, "cannot read snapshot; trying an older one")
                }
                SnapshotSkip::DoesNotVerify => {
                    tracing::warn!(file = name, error = why, "snapshot does not verify; trying an older one")
                }
                SnapshotSkip::NameMismatch => {
                    tracing::warn!(file = name, inside = why, "snapshot name and content disagree; trying an older one")
                }
            },
            RecoveryNote::SnapshotLoaded { name, zxid, nodes } => {
                tracing::info!(file = name, zxid = format_args!("0x{zxid:x}"), nodes, "loaded snapshot")
            }
            RecoveryNote::LogNeverWritten { name, why } => tracing::warn!(
                file = name,
                error = why,
                "removing a transaction log whose header never reached the disk (the server stopped while creating it)"
            ),
            RecoveryNote::TornTailCut { name, offset, reason } => {
                tracing::warn!(file = name, offset, reason, "cutting a torn tail off the transaction log")
            }
            RecoveryNote::RepairCut { name, offset, reason } => tracing::error!(
                file = name,
                offset,
                reason,
                "repair: cutting the log at a corrupt batch; later transactions in it are discarded"
            ),
            RecoveryNote::RepairSetAside { name, to } => {
                tracing::error!(file = name, to, "repair: set aside a log after the cut")
            }
            RecoveryNote::EmptyNewestRemoved { name } => {
                tracing::warn!(file = name, "removing the newest transaction log: it holds no transaction")
            }
        }
    }
}
