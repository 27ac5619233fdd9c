//! Start-up recovery: the newest snapshot whose seal verifies (falling back
//! to older ones), then every logged transaction after it, in zxid order.
//!
//! Runs before any executor starts, with plain file IO. A torn or zero tail
//! at the end of the last log is cut (the file is truncated there) and
//! logged; corruption anywhere else stops start-up with a message naming
//! the file and offset, unless `repair` is set, in which case the log is cut
//! at the first bad batch and everything after it is set aside.
//!
//! Snapshot and log files are mapped (`MappedFile`), not read into a
//! buffer: at 1M znodes the copy and the fresh buffer's page faults were a
//! tenth of the restart.
//!
//! Zxids must follow each other by `log_format::zxid_follows` (the next
//! counter, or counter 1 of a higher epoch); a gap stops start-up with a
//! message naming the file and offset. An interrupted truncation
//! (`server::truncate`) is finished before anything is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::storage::log_format::{decode_file_header, scan_log, zxid_follows, Tail};
use crate::storage::snapshot_format::read_snapshot;
use crate::storage::txn::{LoggedTxn, Txn};
use crate::tree::DataTree;

use super::log_writer::log_dir;

/// What the commit shard starts from.
pub struct Recovered {
    pub tree: DataTree,
    pub last_zxid: i64,
    /// Live sessions (id -> timeout); re-armed with a fresh deadline at start.
    pub sessions: BTreeMap<i64, i32>,
    pub snapshot_zxid: i64,
    pub replayed: u64,
    /// The newest replayed txns, oldest first (at most
    /// `zab::leader::COMMITTED_WINDOW_TXNS`): a new leader DIFFs from them.
    pub recent_txns: std::collections::VecDeque<(i64, bytes::Bytes)>,
}

#[derive(Debug)]
pub struct RecoveryError(pub String);

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

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

pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{:x}", zxid)
}

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
    let snaps = list_by_zxid(&snapshot_dir(data_dir), "snapshot");
    let mut tree = DataTree::new();
    let mut sessions = BTreeMap::new();
    let mut snapshot_zxid = 0;
    // Newer snapshots that could not be used: the log may continue their
    // state across an epoch jump, which the replay must then not bridge.
    let mut unusable_snapshots = Vec::new();
    for (zxid, path) in snaps.iter().rev() {
        unusable_snapshots.push(*zxid);
        let bytes = match MappedFile::open(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read snapshot; trying an older one");
                continue;
            }
        };
        match read_snapshot(bytes.as_ref()) {
            Ok(snap) => {
                if snap.last_zxid != *zxid {
                    tracing::warn!(file = %path.display(), inside = snap.last_zxid, "snapshot name and content disagree; trying an older one");
                    continue;
                }
                unusable_snapshots.pop();
                tree = snap.tree;
                sessions = snap.sessions.into_iter().collect();
                snapshot_zxid = *zxid;
                tracing::info!(file = %path.display(), zxid = format_args!("0x{zxid:x}"), nodes = tree.node_count(), "loaded snapshot");
                break;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "snapshot does not verify; trying an older one");
            }
        }
    }

    let logs = list_by_zxid(&log_dir(data_log_dir), "log");
    // Start from the newest log that begins at or before the first zxid we need.
    let start = logs.iter().rposition(|(first, _)| *first <= snapshot_zxid + 1).unwrap_or(0);
    let mut last_zxid = snapshot_zxid;
    let mut replayed = 0u64;
    let mut recent_txns = std::collections::VecDeque::new();
    let relevant = &logs[start.min(logs.len())..];
    let mut newest_without_records: Option<PathBuf> = None;
    for (i, (first, path)) in relevant.iter().enumerate() {
        let is_last = i + 1 == relevant.len();
        let mapped =
            MappedFile::open(path).map_err(|e| RecoveryError(format!("cannot read {}: {e}", path.display())))?;
        let bytes = bytes::Bytes::from_owner(mapped);
        let header = match decode_file_header(&bytes) {
            Ok(h) => h,
            // The writer creates and preallocates a file, then writes and
            // syncs its header before any batch. A newest file with a broken
            // header and nothing but zeros after its first sector is one the
            // server stopped while creating: it holds no transaction.
            Err(e) if is_last && never_appended(&bytes) => {
                tracing::warn!(file = %path.display(), error = %e, "removing a transaction log whose header never reached the disk (the server stopped while creating it)");
                remove_empty_log(path)?;
                break;
            }
            Err(e) => return Err(RecoveryError(format!("{}: {e}", path.display()))),
        };
        let scan =
            scan_log(&bytes, header.block_size).map_err(|e| RecoveryError(format!("{}: {e}", path.display())))?;
        if let Some(record) = scan.records.first() {
            if *first > last_zxid + 1 && record.zxid > last_zxid && !zxid_follows(last_zxid, record.zxid) {
                return Err(RecoveryError(format!(
                    "{}: offset {}: transactions after 0x{last_zxid:x} are missing (the log starts at 0x{:x}); \
                     refusing to start with a gap",
                    path.display(),
                    record.offset(),
                    record.zxid
                )));
            }
        }
        for record in &scan.records {
            let zxid = &record.zxid;
            if *zxid <= last_zxid {
                continue;
            }
            // A jump (counter 1 of a higher epoch) over a snapshot that
            // does not verify: the txns before the jump may be only in that
            // snapshot (a SNAP-synced learner logs the leader's next epoch
            // right after it), and txns without a carried digest (error
            // txns) would let the wrong state through unseen. Found by the
            // simulator (seed 181, 5 servers, --snap-count 20).
            if *zxid != last_zxid + 1 {
                if let Some(skipped) = unusable_snapshots.iter().find(|s| **s > last_zxid && **s < *zxid) {
                    return Err(RecoveryError(format!(
                        "{}: offset {}: the log goes from 0x{last_zxid:x} to 0x{zxid:x} past snapshot 0x{skipped:x}, \
                         which could not be read: the transactions in between are only in it. Refusing to start; \
                         restore this server's data, or (in an ensemble) remove it and let the server sync from the leader",
                        path.display(),
                        record.offset()
                    )));
                }
            }
            // The next counter, or counter 1 of a higher epoch (a new ZAB
            // leader's first proposal); anything else is a gap.
            if !zxid_follows(last_zxid, *zxid) {
                return Err(RecoveryError(format!(
                    "{}: offset {}: expected transaction 0x{:x} (or counter 1 of a higher epoch) after 0x{last_zxid:x} \
                     but found 0x{zxid:x}",
                    path.display(),
                    record.offset(),
                    last_zxid + 1
                )));
            }
            let rec = LoggedTxn::decode(bytes.slice(record.payload.clone())).map_err(|e| {
                RecoveryError(format!("{}: transaction 0x{zxid:x} does not decode: {e}", path.display()))
            })?;
            apply(&mut tree, &mut sessions, &rec);
            // Each txn carries the tree digest its leader (or this server)
            // had after it. A replay that disagrees does not continue the
            // history the txn was written on: txns before it are missing
            // (a snapshot or older log that could not be read, an epoch's
            // txns lost), and serving this state would diverge silently.
            // Found by the simulator (seeds 247 and 1004, docs/simulation.md).
            let check = tree.check_txn_digest(rec.digest);
            if check.is_mismatch() {
                return Err(RecoveryError(format!(
                    "{}: offset {}: replaying transaction 0x{zxid:x} gives another tree than the one it was                      written on ({check}): the history before it is incomplete. Refusing to start; restore this                      server's data, or (in an ensemble) remove it and let the server sync from the leader",
                    path.display(),
                    record.offset()
                )));
            }
            // A copy: a slice would keep the whole log file's buffer alive.
            recent_txns.push_back((*zxid, bytes::Bytes::copy_from_slice(&bytes[record.payload.clone()])));
            if recent_txns.len() > crate::zab::leader::COMMITTED_WINDOW_TXNS {
                recent_txns.pop_front();
            }
            last_zxid = *zxid;
            replayed += 1;
        }
        // The writer opens `log.<next zxid>` with create_new; a newest file
        // left without a transaction (crash before its first batch was
        // durable, or all of it cut) carries that very name.
        newest_without_records = if scan.records.is_empty() { Some(path.clone()) } else { None };
        // Unmapped before `cut` may shorten the file (see `MappedFile`).
        drop(bytes);
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { offset, reason } if is_last => {
                tracing::warn!(file = %path.display(), offset, %reason, "cutting a torn tail off the transaction log");
                cut(path, *offset)?;
            }
            // A newer file is only started once every write to this one is
            // durable (one write in flight, `storage::group_commit`), so a
            // damaged tail here is not a torn write: acknowledged data was
            // lost. Treated as corruption.
            Tail::Torn { offset, reason } | Tail::Corrupt { offset, reason } => {
                let reason =
                    if is_last { reason.clone() } else { format!("{reason} (in a log that is not the newest)") };
                let reason = &reason;
                if repair {
                    tracing::error!(file = %path.display(), offset, %reason, "repair: cutting the log at a corrupt batch; later transactions in it are discarded");
                    cut(path, *offset)?;
                    // Later files would leave a gap: set them aside, each under
                    // its own name (`log.<zxid>.corrupt-aside`), which the
                    // `log.<hex>` listing no longer picks up.
                    for (_, later) in &relevant[i + 1..] {
                        let mut aside = later.clone().into_os_string();
                        aside.push(".corrupt-aside");
                        let aside = PathBuf::from(aside);
                        let _ = std::fs::rename(later, &aside);
                        tracing::error!(file = %later.display(), to = %aside.display(), "repair: set aside a log after the cut");
                    }
                    break;
                }
                return Err(RecoveryError(format!(
                    "{}: corrupt transaction log at offset {offset}: {reason}. Start with --repair to cut the log there (transactions after it are lost)",
                    path.display()
                )));
            }
        }
    }
    if let Some(path) = newest_without_records {
        tracing::warn!(file = %path.display(), "removing the newest transaction log: it holds no transaction");
        remove_empty_log(&path)?;
    }
    tree.set_last_zxid(last_zxid);
    tracing::info!(
        zxid = format_args!("0x{last_zxid:x}"),
        nodes = tree.node_count(),
        sessions = sessions.len(),
        replayed,
        took_ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    Ok(Recovered { tree, last_zxid, sessions, snapshot_zxid, replayed, recent_txns })
}

/// Replays one logged txn: the same apply step the leader and a follower
/// run, plus the session table. As Apache, a create over an existing node
/// or a delete of a missing one changes nothing and is not an error here.
pub fn apply(tree: &mut DataTree, sessions: &mut BTreeMap<i64, i32>, logged: &LoggedTxn) {
    match &logged.txn {
        Txn::CreateSession { timeout_ms } => {
            sessions.insert(logged.header.session_id, *timeout_ms);
        }
        Txn::CloseSession { .. } => {
            sessions.remove(&logged.header.session_id);
        }
        _ => {}
    }
    let _ = tree.apply_txn(&logged.header, &logged.txn);
}

fn cut(path: &Path, offset: u64) -> Result<(), RecoveryError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| RecoveryError(format!("cannot open {} to cut it: {e}", path.display())))?;
    f.set_len(offset)
        .and_then(|_| f.sync_all())
        .map_err(|e| RecoveryError(format!("cannot cut {} at {offset}: {e}", path.display())))
}

/// True when nothing but zeros follows the first sector: no batch was ever
/// written to the file (a torn header write can only touch that sector).
fn never_appended(bytes: &[u8]) -> bool {
    bytes.get(512..).is_none_or(|rest| rest.iter().all(|&b| b == 0))
}

fn remove_empty_log(path: &Path) -> Result<(), RecoveryError> {
    std::fs::remove_file(path)
        .map_err(|e| RecoveryError(format!("cannot remove the empty log {}: {e}", path.display())))?;
    if let Some(dir) = path.parent() {
        // The removal must be durable before a file of the same name is created.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
