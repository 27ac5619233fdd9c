//! Background snapshots and retention.
//!
//! The tree is a persistent structure, so a snapshot is an O(1) clone taken
//! by the commit shard between batches; a plain thread streams it to disk
//! while the commit shard goes on committing. The file is written under a
//! temporary name, synced, renamed to `snapshot.<last zxid hex>` and the
//! directory synced, so a crash never leaves a half-written file under a
//! snapshot's name (and the seal catches anything else).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::storage::file_names::{is_unfinished_snapshot_name, unfinished_snapshot_file_name};
use crate::storage::retention::plan_purge;
use crate::storage::snapshot_format::write_snapshot;
use crate::tree::DataTree;

use super::log_writer::log_dir;
use super::recovery::{list_by_zxid, snapshot_dir, snapshot_file_name};

/// ZooKeeper's randomised trigger: snapshot when the txns since the last
/// one exceed snapCount/2 + a roll in [0, snapCount/2), re-drawn each time,
/// so an ensemble's members do not snapshot in lockstep.
pub struct SnapshotPolicy {
    snap_count: u64,
    roll: u64,
    since_last: u64,
    rng: u64,
}

impl SnapshotPolicy {
    pub fn new(snap_count: u64, seed: u64) -> Self {
        let mut p = SnapshotPolicy { snap_count: snap_count.max(2), roll: 0, since_last: 0, rng: seed | 1 };
        p.roll = p.draw();
        p
    }

    fn draw(&mut self) -> u64 {
        // xorshift64: plenty for spreading snapshot points.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % (self.snap_count / 2).max(1)
    }

    /// Counts `n` logged txns; true when a snapshot is due.
    pub fn logged(&mut self, n: u64) -> bool {
        self.since_last += n;
        self.since_last > self.snap_count / 2 + self.roll
    }

    pub fn taken(&mut self) {
        self.since_last = 0;
        self.roll = self.draw();
    }
}

pub struct Snapshotter {
    data_dir: PathBuf,
    data_log_dir: PathBuf,
    in_progress: Arc<AtomicBool>,
    retain: usize,
    purge: bool,
    /// The CPUs the process may use, read on the thread that builds the
    /// Snapshotter (before any executor pins itself): the snapshot thread is
    /// spawned by the pinned commit shard and would otherwise inherit its one core.
    process_cpus: Option<libc::cpu_set_t>,
}

impl Snapshotter {
    pub fn new(data_dir: &Path, data_log_dir: &Path, retain: usize, purge: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(snapshot_dir(data_dir))?;
        remove_unfinished_snapshots(&snapshot_dir(data_dir));
        Ok(Snapshotter {
            data_dir: data_dir.to_path_buf(),
            data_log_dir: data_log_dir.to_path_buf(),
            in_progress: Arc::new(AtomicBool::new(false)),
            retain,
            purge,
            process_cpus: own_cpu_affinity(),
        })
    }

    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Acquire)
    }

    /// Starts writing a snapshot of `tree` at `last_zxid` on a thread.
    /// Returns false (and does nothing) if one is still being written.
    pub fn start(&self, tree: DataTree, sessions: Vec<(i64, i32)>, last_zxid: i64) -> bool {
        if self.in_progress.swap(true, Ordering::AcqRel) {
            return false;
        }
        let dir = snapshot_dir(&self.data_dir);
        let data_dir = self.data_dir.clone();
        let data_log_dir = self.data_log_dir.clone();
        let flag = self.in_progress.clone();
        let (retain, purge, process_cpus) = (self.retain, self.purge, self.process_cpus);
        let spawned = std::thread::Builder::new().name("zk-snapshot".into()).spawn(move || {
            if let Some(cpus) = process_cpus {
                set_own_cpu_affinity(&cpus);
            }
            lower_own_priority();
            let started = Instant::now();
            match write_snapshot_file(&dir, &tree, &sessions, last_zxid) {
                Ok((path, bytes)) => {
                    tracing::info!(
                        file = %path.display(),
                        nodes = tree.node_count(),
                        bytes,
                        took_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                    if purge {
                        purge_old_files(&data_dir, &data_log_dir, retain);
                    }
                }
                Err(e) => tracing::error!(error = %e, zxid = format_args!("0x{last_zxid:x}"), "snapshot failed"),
            }
            flag.store(false, Ordering::Release);
        });
        if spawned.is_err() {
            self.in_progress.store(false, Ordering::Release);
            return false;
        }
        true
    }
}

/// A crash while a snapshot was being written leaves `snapshot.<zxid>.tmp`
/// (never renamed, so never read); each can be as large as the tree.
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_unfinished_snapshot_name(name) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %e.path().display(), "removed an unfinished snapshot"),
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "cannot remove an unfinished snapshot")
                }
            }
        }
    }
}

/// The calling thread's CPU mask, or None if it cannot be read.
fn own_cpu_affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity fills the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (rc == 0).then_some(set)
    }
}

/// Unpins the snapshot thread (see [`Snapshotter::process_cpus`]), so the
/// scheduler may run it on a core the commit shard is not on. Pinned with
/// it, the commit shard's mean run-queue wait per wake-up went from ~19 µs
/// to ~260 µs while snapshots were written (docs/storage.md has what this
/// did and did not change). A failure only costs latency, so it is logged.
fn set_own_cpu_affinity(cpus: &libc::cpu_set_t) {
    // SAFETY: a plain syscall on the calling thread with a set we own.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), cpus) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not unpin the snapshot thread");
    }
}

/// The snapshot thread runs at nice 10 (about a tenth of a shard's CPU
/// weight when they compete): writing a large tree then barely moves commit
/// latency on a busy machine (with normal priority, p99 went to 5 ms on a
/// 2-core VM), yet it still finishes under sustained load, unlike SCHED_IDLE.
fn lower_own_priority() {
    // SAFETY: plain syscalls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the snapshot thread's priority");
    }
}

pub fn write_snapshot_file(
    dir: &Path,
    tree: &DataTree,
    sessions: &[(i64, i32)],
    last_zxid: i64,
) -> std::io::Result<(PathBuf, u64)> {
    let final_path = dir.join(snapshot_file_name(last_zxid));
    let tmp_path = dir.join(unfinished_snapshot_file_name(last_zxid));
    let file = std::fs::File::create(&tmp_path)?;
    let mut out = BufWriter::with_capacity(1 << 20, SteppedWriteback::new(file));
    let bytes = write_snapshot(&mut out, last_zxid, sessions, tree)?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?.file;
    file.sync_all()?;
    std::fs::rename(&tmp_path, &final_path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok((final_path, bytes))
}

/// Snapshot bytes between write-back steps. Without them a snapshot's
/// pages (~200 MB at 1M znodes) sit dirty in the page cache until its final
/// fsync, which flushes them in one burst that the log's fdatasyncs queue
/// behind; in steps, the disk takes them while the snapshot is written
/// (RocksDB's `bytes_per_sync` does the same).
const SNAPSHOT_WRITEBACK_STEP_BYTES: u64 = 8 << 20;

/// The snapshot file, with write-back started every
/// [`SNAPSHOT_WRITEBACK_STEP_BYTES`] and the step before waited for, so at
/// most two steps are dirty at once. Any error from `sync_file_range` fails
/// the snapshot: it may have consumed the error the final fsync would have
/// reported.
struct SteppedWriteback {
    file: std::fs::File,
    written: u64,
    started_through: u64,
    waited_through: u64,
}

impl SteppedWriteback {
    fn new(file: std::fs::File) -> SteppedWriteback {
        SteppedWriteback { file, written: 0, started_through: 0, waited_through: 0 }
    }

    fn step(&mut self) -> std::io::Result<()> {
        use libc::{SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE};
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let range = |from: u64, to: u64| (from as libc::off64_t, (to - from) as libc::off64_t);
        if self.started_through > self.waited_through {
            let (offset, len) = range(self.waited_through, self.started_through);
            let wait = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
            // SAFETY: a plain syscall on a descriptor this struct owns.
            if unsafe { libc::sync_file_range(fd, offset, len, wait) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            self.waited_through = self.started_through;
        }
        let (offset, len) = range(self.started_through, self.written);
        // SAFETY: as above.
        if unsafe { libc::sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.started_through = self.written;
        Ok(())
    }
}

impl Write for SteppedWriteback {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started_through >= SNAPSHOT_WRITEBACK_STEP_BYTES {
            self.step()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Keeps the newest `retain` (at least 3) snapshots and the logs needed to
/// replay from the oldest of them ([`plan_purge`]); deletes the rest.
/// Returns what it removed.
pub fn purge_old_files(data_dir: &Path, data_log_dir: &Path, retain: usize) -> Vec<PathBuf> {
    let snaps = list_by_zxid(&snapshot_dir(data_dir), "snapshot");
    let logs = list_by_zxid(&log_dir(data_log_dir), "log");
    let snapshot_zxids: Vec<i64> = snaps.iter().map(|(z, _)| *z).collect();
    let log_first_zxids: Vec<i64> = logs.iter().map(|(z, _)| *z).collect();
    let plan = plan_purge(&snapshot_zxids, &log_first_zxids, retain);
    let snapshot_paths = plan.remove_snapshots.iter().filter_map(|i| snaps.get(*i));
    let log_paths = plan.remove_logs.iter().filter_map(|i| logs.get(*i));
    let mut removed = Vec::new();
    for (_, path) in snapshot_paths.chain(log_paths) {
        if std::fs::remove_file(path).is_ok() {
            removed.push(path.clone());
        }
    }
    for p in &removed {
        tracing::info!(file = %p.display(), "purged");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_writeback_writes_every_byte_and_steps_through_the_file() {
        let dir = std::env::temp_dir().join(format!("zoocore-stepped-writeback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("snapshot.tmp");
        let step = SNAPSHOT_WRITEBACK_STEP_BYTES as usize;
        // Two and a half steps, in writes that do not line up with a step.
        let bytes: Vec<u8> = (0..step * 5 / 2).map(|i| (i % 251) as u8).collect();
        let mut w = SteppedWriteback::new(std::fs::File::create(&path).unwrap());
        for chunk in bytes.chunks(999_983) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.written, bytes.len() as u64);
        // Started at each step's crossing; the step before each one waited for.
        assert!(w.started_through >= 2 * step as u64, "started through {}", w.started_through);
        assert!(w.waited_through >= step as u64, "waited through {}", w.waited_through);
        assert!(w.waited_through < w.started_through);
        w.file.sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trigger_fires_between_half_and_full_snap_count() {
        for seed in 1..50u64 {
            let mut p = SnapshotPolicy::new(100, seed);
            let mut n = 0;
            while !p.logged(1) {
                n += 1;
                assert!(n < 100, "fired too late");
            }
            assert!(n >= 50, "fired too early: {n}");
            p.taken();
        }
    }
}
