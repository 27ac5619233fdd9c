//! One server's simulated disk: its transaction log as the bytes of a
//! zoocore log file (the production `storage::log_format`, so torn tails
//! are found and cut by the production scanner), the two epoch files, and
//! the snapshot a SNAP sync installed (Apache's SNAP stream bytes), and
//! the periodic snapshots (`snapshot.<zxid>` in production's format,
//! `storage::snapshot_format`), written as production's `Snapshotter` does:
//! a temp file, its fsync, the rename, the directory's fsync, then
//! autopurge.
//!
//! Durability is explicit: an append only reaches the page cache; an fsync
//! started at some length makes that prefix durable when it completes (the
//! world schedules the completion after a seeded latency). An epoch write
//! is durable only once it completes. A crash keeps the durable prefix and,
//! as a real page cache may have written some of the rest back, possibly a
//! seeded prefix of the unsynced bytes, cut at any byte (a torn batch).
//!
//! Faults: a log write or its fsync may fail ([`LogFault`]: the server
//! exits, as production does, and nothing of the failed write is durable);
//! what a restart reads may be damaged ([`SimDisk::damage`]: a flipped bit
//! or a misdirected sector in a log file, or a snapshot whose seal does
//! not verify).

use bytes::Bytes;

use super::oracle::History;
use super::rng::SimRng;
use crate::storage::file_names::{snapshot_file_name, unfinished_snapshot_file_name};
use crate::storage::log_format::{self, encode_batch_to_vec, encode_file_header, scan_log, truncated_file};
use crate::storage::retention::{first_log_needed, plan_purge};
use crate::storage::truncate_plan::{plan_truncation, ListedSnapshot};

/// The log's block size (batches are padded to it, as on a real device).
pub const SIM_LOG_BLOCK_BYTES: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochFile {
    Accepted,
    Current,
}

#[derive(Debug, Clone)]
struct PendingEpochWrite {
    token: u64,
    file: EpochFile,
    value: i64,
}

/// A failed log write (production's `FromLog::Failed`: the server exits
/// with code 2 and never retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFault {
    /// The write itself failed with EIO: some of its bytes may be on the device.
    WriteEio,
    /// The write failed with ENOSPC (preallocation could not extend the
    /// file): none of its bytes were written.
    WriteEnospc,
    /// The write went through, its fdatasync failed with EIO: the bytes may
    /// or may not be on the device, and must not be taken as durable.
    FsyncEio,
    /// fdatasync failed with ENOSPC (thin provisioning, NFS).
    FsyncEnospc,
}

impl LogFault {
    pub const ALL: [LogFault; 4] =
        [LogFault::WriteEio, LogFault::WriteEnospc, LogFault::FsyncEio, LogFault::FsyncEnospc];

    pub fn describe(self) -> &'static str {
        match self {
            LogFault::WriteEio => "EIO on the log write",
            LogFault::WriteEnospc => "ENOSPC on the log write",
            LogFault::FsyncEio => "EIO on the log's fdatasync",
            LogFault::FsyncEnospc => "ENOSPC on the log's fdatasync",
        }
    }

    /// Fails on the write (quickly), not on the sync (after its latency).
    pub fn on_write(self) -> bool {
        matches!(self, LogFault::WriteEio | LogFault::WriteEnospc)
    }

    /// Some of the failed write's bytes may have reached the device.
    pub fn may_leave_bytes(self) -> bool {
        self != LogFault::WriteEnospc
    }
}

/// What a server's disk durably holds, as another server's recovery would
/// find it: the readable snapshot's zxid and the (zxid, txn hash) of every
/// log record before any damage.
#[derive(Debug, Clone, Default)]
pub struct DurableHoldings {
    pub snapshot_zxid: i64,
    pub txns: std::collections::BTreeMap<i64, u64>,
    pub accepted_epoch: i64,
}

impl DurableHoldings {
    pub fn holds(&self, zxid: i64, txn_hash: u64) -> bool {
        zxid <= self.snapshot_zxid || self.txns.get(&zxid) == Some(&txn_hash)
    }
}

/// One log file: zoocore's format, named (in production) by its first zxid.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub first_zxid: i64,
    pub bytes: Vec<u8>,
}

/// A periodic snapshot under its final name (`snapshot.<zxid>`).
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub zxid: i64,
    /// The file's bytes on the device (production's snapshot format).
    pub bytes: Vec<u8>,
    /// The server's history when it was taken: for the checkers only
    /// (recovery reads `bytes` with the production reader).
    pub history: History,
    /// The rename reached the device (the directory was fsynced); before
    /// that a crash may find the file under its temp name again.
    pub name_durable: bool,
    /// The bytes reached the device (the temp file was fsynced before the
    /// rename; only the planted bug renames earlier).
    pub bytes_durable: bool,
}

/// Where the snapshot thread is (`snapshots::write_snapshot_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStage {
    /// Streaming into `snapshot.<zxid>.tmp` (page cache).
    Writing,
    /// `sync_all` of the temp file in flight.
    SyncingFile,
    /// Renamed; the directory's fsync in flight.
    SyncingDir,
}

/// The snapshot the background thread is writing.
#[derive(Debug, Clone)]
pub struct SnapshotInProgress {
    pub token: u64,
    pub zxid: i64,
    pub bytes: Vec<u8>,
    pub history: History,
    pub stage: SnapshotStage,
    /// The step this snapshot fails at, and the error (drawn at its start).
    pub fails_at: Option<(SnapshotStage, &'static str)>,
}

#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    /// The log files, oldest first. Only the newest can hold unsynced bytes:
    /// a new file is only started after the loop's fsyncs completed.
    pub logs: Vec<LogFile>,
    /// Durable length of the newest file.
    durable_len: usize,
    /// The next append starts a new file (production's `open_log` after a
    /// reload, a TRUNC or a SNAP install).
    roll_pending: bool,
    /// In-flight fsyncs: (token, file index, length they make durable).
    fsyncs: Vec<(u64, usize, usize)>,
    pub accepted_epoch: Option<i64>,
    pub current_epoch: Option<i64>,
    /// `currentEpoch.tmp` left by a write a crash interrupted after its
    /// fsync, before its rename.
    pub current_epoch_tmp: Option<i64>,
    epoch_writes: Vec<PendingEpochWrite>,
    /// Durable snapshot: (zxid, SNAP stream bytes).
    pub snapshot: Option<(i64, Bytes)>,
    /// The snapshot's seal no longer verifies (damaged on the device):
    /// recovery skips it, as production's does.
    pub snapshot_unreadable: bool,
    /// Periodic snapshots under their final names, oldest first.
    pub snapshots: Vec<SnapshotFile>,
    /// The one the snapshot thread is writing (production runs one at a time).
    pub snapshot_writing: Option<SnapshotInProgress>,
}

impl SimDisk {
    /// Production's `disk_log::disk_files`: the oldest log file's first
    /// zxid (None: no log files) and the newest snapshot's size in bytes
    /// (0: none), periodic or SNAP-installed.
    pub fn sync_index_files(&self) -> (Option<i64>, u64) {
        let oldest_log = self.logs.first().map(|f| f.first_zxid);
        let periodic = self.snapshots.iter().map(|f| (f.zxid, f.bytes.len()));
        let installed = self.snapshot.iter().map(|(z, b)| (*z, b.len()));
        let newest = periodic.chain(installed).max_by_key(|(z, _)| *z);
        (oldest_log, newest.map_or(0, |(_, len)| len as u64))
    }

    /// Total log bytes (for the trace).
    pub fn log_len(&self) -> usize {
        self.logs.iter().map(|f| f.bytes.len()).sum()
    }

    /// Production reopens its log writer: the next batch goes to a new file.
    pub fn roll(&mut self) {
        self.roll_pending = true;
    }

    /// Appends one group-commit batch (to the page cache).
    pub fn append(&mut self, records: &[(i64, Bytes)]) -> Result<(), String> {
        let Some(first) = records.first().map(|r| r.0) else { return Ok(()) };
        if self.logs.is_empty() || self.roll_pending {
            if let Some(last) = self.logs.last() {
                // Only ever rolled between awaited fsyncs.
                self.durable_len = last.bytes.len();
            }
            self.logs.push(LogFile { first_zxid: first, bytes: encode_file_header(SIM_LOG_BLOCK_BYTES, first) });
            // The writer syncs a new file's header before any batch.
            self.durable_len = self.logs.last().map_or(0, |f| f.bytes.len());
            self.roll_pending = false;
        }
        let refs: Vec<(i64, &[u8])> = records.iter().map(|(z, b)| (*z, b.as_ref())).collect();
        let batch = encode_batch_to_vec(&refs, SIM_LOG_BLOCK_BYTES).map_err(|e| format!("encoding a batch: {e}"))?;
        if let Some(f) = self.logs.last_mut() {
            f.bytes.extend_from_slice(&batch);
        }
        Ok(())
    }

    /// Starts an fsync of everything appended so far.
    pub fn start_fsync(&mut self, token: u64) {
        let index = self.logs.len().saturating_sub(1);
        let len = self.logs.last().map_or(0, |f| f.bytes.len());
        self.fsyncs.push((token, index, len));
    }

    /// The fsync `token` completed. Returns false when it is unknown (lost
    /// to a crash).
    pub fn complete_fsync(&mut self, token: u64) -> bool {
        let Some(i) = self.fsyncs.iter().position(|(t, _, _)| *t == token) else { return false };
        let (_, index, len) = self.fsyncs.swap_remove(i);
        if index + 1 == self.logs.len() {
            let file_len = self.logs.last().map_or(0, |f| f.bytes.len());
            self.durable_len = self.durable_len.max(len.min(file_len));
        }
        true
    }

    pub fn start_epoch_write(&mut self, token: u64, file: EpochFile, value: i64) {
        self.epoch_writes.push(PendingEpochWrite { token, file, value });
    }

    pub fn complete_epoch_write(&mut self, token: u64) -> Option<(EpochFile, i64)> {
        let i = self.epoch_writes.iter().position(|w| w.token == token)?;
        let w = self.epoch_writes.swap_remove(i);
        self.write_epoch_now(w.file, w.value);
        Some((w.file, w.value))
    }

    /// An epoch write that is durable at once (start-up repairs).
    pub fn write_epoch_now(&mut self, file: EpochFile, value: i64) {
        match file {
            EpochFile::Accepted => self.accepted_epoch = Some(value),
            EpochFile::Current => {
                self.current_epoch = Some(value);
                self.current_epoch_tmp = None;
            }
        }
    }

    /// Power loss / kill -9 of the machine: the durable state survives, and
    /// with `writeback_percent` chance a seeded prefix of the unsynced log
    /// bytes too (possibly tearing a batch). Returns what happened, for the
    /// trace.
    pub fn crash(&mut self, rng: &mut SimRng, writeback_percent: u64) -> String {
        let durable = self.durable_len;
        let mut unsynced = 0;
        let mut kept = 0;
        if let Some(f) = self.logs.last_mut() {
            unsynced = f.bytes.len().saturating_sub(durable);
            if unsynced > 0 && rng.chance(writeback_percent) {
                kept = rng.range(0, unsynced as u64) as usize;
            }
            f.bytes.truncate(durable + kept);
            self.durable_len = f.bytes.len();
        }
        self.fsyncs.clear();
        self.roll_pending = true;
        let mut tmp = String::new();
        for w in std::mem::take(&mut self.epoch_writes) {
            // The tmp file may have been fsynced before the rename was lost.
            if w.file == EpochFile::Current && rng.chance(50) {
                self.current_epoch_tmp = Some(w.value);
                tmp = format!(", currentEpoch.tmp={} left", w.value);
            }
        }
        format!("disk: {unsynced} unsynced log bytes, {kept} written back{tmp}")
    }

    /// The unsynced bytes of the newest file never reach the device (a
    /// failed fsync whose pages the kernel then marked clean): the device
    /// holds zeros there, durably, whatever is written after them.
    pub fn lose_unsynced(&mut self) {
        let durable = self.durable_len;
        if let Some(tail) = self.logs.last_mut().and_then(|f| f.bytes.get_mut(durable..)) {
            tail.fill(0);
        }
    }

    /// Recovery cut a torn tail of file `index` at `offset` (durably).
    pub fn cut_log(&mut self, index: usize, offset: usize) {
        if let Some(f) = self.logs.get_mut(index) {
            f.bytes.truncate(offset.min(f.bytes.len()));
        }
        if index + 1 == self.logs.len() {
            self.durable_len = self.durable_len.min(self.logs.last().map_or(0, |f| f.bytes.len()));
        }
    }

    /// Recovery removes a file that holds no record.
    pub fn remove_log(&mut self, index: usize) {
        if index < self.logs.len() {
            self.logs.remove(index);
            self.durable_len = self.logs.last().map_or(0, |f| f.bytes.len());
        }
    }

    /// TRUNC: the log keeps records up to `zxid`, durably and atomically
    /// (production's `server::truncate` is crash-safe by its own intent
    /// record, which is not simulated). What goes and what is cut is the
    /// shared `storage::truncate_plan`, over these files: the periodic
    /// snapshots, the SNAP-installed one (also a `snapshot.<zxid>` in
    /// production) and the one being written (its temp file; the thread's
    /// rename then fails).
    pub fn truncate_after(&mut self, zxid: i64) -> Result<(), String> {
        let mut listed: Vec<ListedSnapshot> =
            self.snapshots.iter().map(|f| ListedSnapshot { zxid: f.zxid, finished: true }).collect();
        let installed_index = self.snapshot.as_ref().map(|(z, _)| {
            listed.push(ListedSnapshot { zxid: *z, finished: true });
            listed.len() - 1
        });
        let writing_index = self.snapshot_writing.as_ref().map(|w| {
            listed.push(ListedSnapshot { zxid: w.zxid, finished: false });
            listed.len() - 1
        });
        let log_first_zxids: Vec<i64> = self.logs.iter().map(|f| f.first_zxid).collect();
        let scan_file = |index: usize| -> Result<(&LogFile, log_format::ScanResult), String> {
            let f = self.logs.get(index).ok_or_else(|| format!("TRUNC plan names log {index}, which is not there"))?;
            let scan = scan_log(&f.bytes, SIM_LOG_BLOCK_BYTES).map_err(|e| format!("scan before TRUNC: {e}"))?;
            Ok((f, scan))
        };
        let plan = plan_truncation(zxid, &listed, &log_first_zxids, |index| {
            scan_file(index).map(|(_, scan)| scan.records.iter().map(|r| r.zxid).collect())
        })?;
        // The copies are built aside: a failed TRUNC leaves the files as they were.
        let mut copies = Vec::new();
        for index in &plan.cut_logs {
            let (f, scan) = scan_file(*index)?;
            copies.push((*index, truncated_file(&f.bytes, &scan, zxid).map_err(|e| format!("TRUNC: {e}"))?));
        }
        for (index, bytes) in copies {
            if let Some(f) = self.logs.get_mut(index) {
                f.bytes = bytes;
            }
        }
        let mut index = 0;
        self.logs.retain(|_| {
            index += 1;
            !plan.remove_logs.contains(&(index - 1))
        });
        self.durable_len = self.logs.last().map_or(0, |f| f.bytes.len());
        self.fsyncs.clear();
        self.roll_pending = true;
        let removes = |listed_index: Option<usize>| listed_index.is_some_and(|i| plan.remove_snapshots.contains(&i));
        if removes(installed_index) {
            self.snapshot = None;
            self.snapshot_unreadable = false;
        }
        if removes(writing_index) {
            self.snapshot_writing = None;
        }
        let mut index = 0;
        self.snapshots.retain(|_| {
            index += 1;
            !plan.remove_snapshots.contains(&(index - 1))
        });
        Ok(())
    }

    /// The snapshot thread's next step is done: returns the step now
    /// started (None: the snapshot is finished, or `token` is not the one
    /// being written).
    pub fn snapshot_step(&mut self, token: u64) -> Option<SnapshotStage> {
        let w = self.snapshot_writing.as_mut().filter(|w| w.token == token)?;
        match w.stage {
            SnapshotStage::Writing => {
                w.stage = SnapshotStage::SyncingFile;
                Some(SnapshotStage::SyncingFile)
            }
            SnapshotStage::SyncingFile => {
                // The bytes are durable; `rename` makes the file visible.
                w.stage = SnapshotStage::SyncingDir;
                let (zxid, bytes, history) = (w.zxid, w.bytes.clone(), w.history.clone());
                match self.snapshots.iter_mut().find(|f| f.zxid == zxid) {
                    // Made visible early (planted): now its bytes are durable.
                    Some(f) => f.bytes_durable = true,
                    None => self.insert_snapshot(SnapshotFile {
                        zxid,
                        bytes,
                        history,
                        name_durable: false,
                        bytes_durable: true,
                    }),
                }
                Some(SnapshotStage::SyncingDir)
            }
            SnapshotStage::SyncingDir => {
                self.snapshot_writing = None;
                // The directory's fsync makes every rename in it durable,
                // one whose own directory fsync failed included.
                for f in &mut self.snapshots {
                    f.name_durable = true;
                }
                None
            }
        }
    }

    /// The snapshot thread's current step failed with `error`, as
    /// `write_snapshot_file` returns it (the snapshot is given up; no
    /// purge follows): before the rename nothing is visible (the temp file
    /// is left, removed at start); after it, the file is there with durable
    /// bytes but a rename a crash may still lose. Returns what happened,
    /// for the trace.
    pub fn fail_snapshot_step(&mut self, token: u64, error: &str) -> Option<String> {
        let w = self.snapshot_writing.as_mut().filter(|w| w.token == token)?;
        let tmp = unfinished_snapshot_file_name(w.zxid);
        match w.stage {
            SnapshotStage::Writing => {
                self.snapshot_writing = None;
                Some(format!("{error} writing {tmp}: given up, the temp file left (removed at start)"))
            }
            SnapshotStage::SyncingFile => {
                self.snapshot_writing = None;
                Some(format!(
                    "{error} on the fsync of {tmp}: given up, not renamed, the temp file left (removed at start)"
                ))
            }
            SnapshotStage::SyncingDir => {
                self.snapshot_writing = None;
                Some(format!(
                    "{error} on the directory's fsync after renaming {tmp}: given up, the file visible, its rename not yet durable"
                ))
            }
        }
    }

    /// Planted `snapshot-before-durable`: the file under its final name at
    /// once, its bytes still only in the page cache.
    pub fn make_snapshot_visible_early(&mut self) {
        let Some(w) = &self.snapshot_writing else { return };
        let file = SnapshotFile {
            zxid: w.zxid,
            bytes: w.bytes.clone(),
            history: w.history.clone(),
            name_durable: true,
            bytes_durable: false,
        };
        self.insert_snapshot(file);
    }

    fn insert_snapshot(&mut self, file: SnapshotFile) {
        self.snapshots.retain(|f| f.zxid != file.zxid);
        let at = self.snapshots.partition_point(|f| f.zxid < file.zxid);
        self.snapshots.insert(at, file);
    }

    /// What a crash does to the snapshot being written (production's
    /// `Snapshotter::new` removes a leftover `.tmp` at start): before the
    /// rename it is gone; after it, the file's bytes are durable but the
    /// rename may not be (the directory's fsync had not completed). A file
    /// whose bytes were never fsynced (planted) keeps a seeded prefix.
    pub fn crash_snapshots(&mut self, rng: &mut SimRng) -> Option<String> {
        let mut what = Vec::new();
        if let Some(w) = self.snapshot_writing.take() {
            let tmp = unfinished_snapshot_file_name(w.zxid);
            what.push(match w.stage {
                SnapshotStage::Writing => format!("{tmp} left half-written (removed at start)"),
                SnapshotStage::SyncingFile => format!("{tmp} left unsynced (removed at start)"),
                SnapshotStage::SyncingDir => {
                    if rng.chance(50) {
                        format!("the rename of {tmp} survived")
                    } else {
                        self.snapshots.retain(|f| f.zxid != w.zxid);
                        format!("the rename of {tmp} was lost (the temp file is removed at start)")
                    }
                }
            });
        }
        // A rename whose directory fsync failed (and none since succeeded)
        // may be lost.
        self.snapshots.retain(|f| {
            let lost = !f.name_durable && rng.chance(50);
            if lost {
                what.push(format!(
                    "the rename of {} (its directory fsync had failed) was lost",
                    snapshot_file_name(f.zxid)
                ));
            }
            !lost
        });
        for f in self.snapshots.iter_mut().filter(|f| !f.bytes_durable) {
            let kept = rng.range(0, f.bytes.len().saturating_sub(1) as u64) as usize;
            f.bytes.truncate(kept);
            f.bytes_durable = true;
            what.push(format!(
                "{} was visible before its bytes were durable: {kept} bytes kept",
                snapshot_file_name(f.zxid)
            ));
        }
        for f in &mut self.snapshots {
            f.name_durable = true;
        }
        (!what.is_empty()).then(|| what.join(", "))
    }

    /// Production's `purge_old_files` (autopurge): the shared
    /// `storage::retention::plan_purge` over these files, keeping the
    /// newest `retain` snapshot files (periodic and SNAP-installed alike:
    /// both are `snapshot.<zxid>`) and the log files needed to replay from
    /// the oldest kept one. With `only_newest`, the planted bug: every log
    /// before the newest snapshot goes. Returns (snapshots, logs) removed.
    pub fn purge(&mut self, retain: usize, only_newest: bool) -> (usize, usize) {
        // One entry per name, as a directory listing has.
        let mut names: Vec<i64> = self.snapshots.iter().map(|f| f.zxid).collect();
        if let Some((z, _)) = &self.snapshot {
            names.push(*z);
        }
        names.sort_unstable();
        names.dedup();
        let log_first_zxids: Vec<i64> = self.logs.iter().map(|f| f.first_zxid).collect();
        let plan = plan_purge(&names, &log_first_zxids, retain);
        let removed_names: Vec<i64> = plan.remove_snapshots.iter().filter_map(|i| names.get(*i).copied()).collect();
        let before = self.snapshots.len();
        self.snapshots.retain(|f| !removed_names.contains(&f.zxid));
        let mut removed_snapshots = before - self.snapshots.len();
        if self.snapshot.as_ref().is_some_and(|(z, _)| removed_names.contains(z)) {
            self.snapshot = None;
            self.snapshot_unreadable = false;
            removed_snapshots += 1;
        }
        let remove_logs = match names.last() {
            Some(newest) if only_newest => (0..first_log_needed(&log_first_zxids, *newest)).collect(),
            _ => plan.remove_logs,
        };
        let mut index = 0;
        self.logs.retain(|_| {
            index += 1;
            !remove_logs.contains(&(index - 1))
        });
        // In-flight fsyncs name files by index (only the newest, kept, has any).
        for (_, index, _) in &mut self.fsyncs {
            *index -= remove_logs.iter().filter(|removed| **removed < *index).count();
        }
        (removed_snapshots, remove_logs.len())
    }
}

impl SimDisk {
    /// Damage that a restart's read finds (on the device: it stays): with a
    /// snapshot (and `snapshot_too`), a quarter of the time its seal stops
    /// verifying; otherwise a
    /// flipped bit, or a misdirected sector (the read of one block returns
    /// another block of the file), in a random log file. None when there is
    /// nothing to damage.
    pub fn damage(&mut self, rng: &mut SimRng, snapshot_too: bool) -> Option<String> {
        if snapshot_too && self.snapshot.is_some() && !self.snapshot_unreadable && rng.chance(25) {
            self.snapshot_unreadable = true;
            let zxid = self.snapshot.as_ref().map_or(0, |(z, _)| *z);
            return Some(format!("the snapshot 0x{zxid:x} no longer verifies"));
        }
        if snapshot_too && !self.snapshots.is_empty() && rng.chance(25) {
            // A real flipped bit: the production reader's seal catches it.
            let index = rng.range(0, self.snapshots.len() as u64 - 1) as usize;
            let file = self.snapshots.get_mut(index)?;
            let offset = rng.range(0, file.bytes.len().saturating_sub(1) as u64) as usize;
            let bit = rng.range(0, 7);
            let byte = file.bytes.get_mut(offset)?;
            *byte ^= 1 << bit;
            return Some(format!("bit {bit} of byte {offset} of {} flipped", snapshot_file_name(file.zxid)));
        }
        let index = rng.range(0, self.logs.len().checked_sub(1)? as u64) as usize;
        let file = self.logs.get_mut(index)?;
        let blocks = file.bytes.len() / SIM_LOG_BLOCK_BYTES;
        if blocks < 2 {
            return None;
        }
        if rng.chance(60) {
            let offset = rng.range(0, file.bytes.len() as u64 - 1) as usize;
            let bit = rng.range(0, 7);
            let byte = file.bytes.get_mut(offset)?;
            *byte ^= 1 << bit;
            Some(format!("bit {bit} of byte {offset} of log {index} flipped"))
        } else {
            let to = rng.range(0, blocks as u64 - 1) as usize;
            let mut from = rng.range(0, blocks as u64 - 2) as usize;
            if from >= to {
                from += 1;
            }
            let source = file.bytes.get(from * SIM_LOG_BLOCK_BYTES..(from + 1) * SIM_LOG_BLOCK_BYTES)?.to_vec();
            file.bytes.get_mut(to * SIM_LOG_BLOCK_BYTES..(to + 1) * SIM_LOG_BLOCK_BYTES)?.copy_from_slice(&source);
            Some(format!("misdirected sector: block {to} of log {index} reads as block {from}"))
        }
    }

    /// What this disk durably holds (for the world's "may this disk be
    /// lost" judgement; see `World::disk_loss_tolerable`).
    pub fn durable_holdings(&self) -> DurableHoldings {
        let mut held = DurableHoldings {
            snapshot_zxid: match &self.snapshot {
                Some((zxid, _)) if !self.snapshot_unreadable => *zxid,
                _ => 0,
            },
            txns: Default::default(),
            accepted_epoch: self.accepted_epoch.unwrap_or(0),
        };
        // The newest periodic snapshot a restart would read: what it holds
        // is its history (a leader's may hold txns never committed).
        let readable = self.snapshots.iter().rev().find(|f| {
            f.name_durable && f.bytes_durable && crate::storage::snapshot_format::read_snapshot(&f.bytes).is_ok()
        });
        if let Some(f) = readable.filter(|f| f.zxid > held.snapshot_zxid) {
            held.snapshot_zxid = held.snapshot_zxid.max(f.history.base_zxid);
            for (&zxid, e) in f.history.entries.range(..=f.zxid) {
                held.txns.insert(zxid, e.txn_hash);
            }
        }
        let newest = self.logs.len().saturating_sub(1);
        for (index, file) in self.logs.iter().enumerate() {
            let len = if index == newest { self.durable_len.min(file.bytes.len()) } else { file.bytes.len() };
            let Some(bytes) = file.bytes.get(..len) else { continue };
            let Ok(scan) = scan_log(bytes, SIM_LOG_BLOCK_BYTES) else { continue };
            for r in &scan.records {
                if let Some(payload) = bytes.get(r.payload.clone()) {
                    held.txns.insert(r.zxid, super::rng::fnv1a(payload));
                }
            }
        }
        held
    }
}

/// Scans the log bytes with the production scanner.
pub fn scan(bytes: &[u8]) -> Result<log_format::ScanResult, String> {
    scan_log(bytes, SIM_LOG_BLOCK_BYTES).map_err(|e| format!("log scan: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log_format::Tail;

    fn rec(z: i64) -> (i64, Bytes) {
        (z, Bytes::from(vec![z as u8; 40]))
    }

    #[test]
    fn crash_keeps_only_what_an_fsync_completed() {
        let mut d = SimDisk::default();
        d.append(&[rec(1), rec(2)]).unwrap();
        d.start_fsync(1);
        d.append(&[rec(3)]).unwrap();
        assert!(d.complete_fsync(1));
        d.start_fsync(2);
        let mut rng = SimRng::new(3);
        d.crash(&mut rng, 0);
        assert!(!d.complete_fsync(2), "an fsync in flight at the crash never completes");
        let s = scan(&d.logs[0].bytes).unwrap();
        assert_eq!(s.records.iter().map(|r| r.zxid).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_written_back_prefix_can_tear_a_batch_which_scans_as_torn() {
        for seed in 0..40 {
            let mut d = SimDisk::default();
            d.append(&[rec(1)]).unwrap();
            d.start_fsync(1);
            d.complete_fsync(1);
            d.append(&[rec(2), rec(3)]).unwrap();
            d.crash(&mut SimRng::new(seed), 100);
            let s = scan(&d.logs[0].bytes).unwrap();
            assert!(matches!(s.tail, Tail::Clean | Tail::Torn { .. }), "seed {seed}: {:?}", s.tail);
            assert_eq!(s.records.first().map(|r| r.zxid), Some(1));
        }
    }

    #[test]
    fn damage_is_found_by_the_scanner_or_harmless_and_holdings_see_only_durable_records() {
        let mut found = 0;
        for seed in 0..60 {
            let mut d = SimDisk::default();
            for z in 1..=6 {
                d.append(&[rec(z)]).unwrap();
                d.start_fsync(z as u64);
                d.complete_fsync(z as u64);
            }
            d.append(&[rec(7)]).unwrap(); // not synced
            assert_eq!(d.durable_holdings().txns.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
            let before = d.logs[0].bytes.clone();
            let what = d.damage(&mut SimRng::new(seed), false).expect("a file to damage");
            let after = &d.logs[0].bytes;
            match scan(after) {
                Ok(s) if s.tail == Tail::Clean && s.records.len() == 7 => {
                    // Unseen by the scanner (padding): then harmless, every
                    // record reads as written.
                    for r in &s.records {
                        assert_eq!(after.get(r.payload.clone()), before.get(r.payload.clone()), "seed {seed}: {what}");
                    }
                }
                _ => found += 1,
            }
        }
        assert!(found > 20, "{found} of 60 damages visible to the scanner");
    }

    #[test]
    fn lose_unsynced_leaves_zeros_that_a_later_sync_does_not_fill() {
        let mut d = SimDisk::default();
        d.append(&[rec(1)]).unwrap();
        d.start_fsync(1);
        d.complete_fsync(1);
        d.append(&[rec(2)]).unwrap();
        d.lose_unsynced();
        d.append(&[rec(3)]).unwrap();
        d.start_fsync(2);
        d.complete_fsync(2);
        let s = scan(&d.logs[0].bytes).unwrap();
        assert!(matches!(s.tail, Tail::Corrupt { .. }), "{:?}", s.tail);
    }

    #[test]
    fn epoch_write_is_durable_only_when_complete() {
        let mut d = SimDisk::default();
        d.write_epoch_now(EpochFile::Current, 1);
        d.start_epoch_write(9, EpochFile::Current, 2);
        d.crash(&mut SimRng::new(1), 0);
        assert_eq!(d.current_epoch, Some(1));
        assert!(d.complete_epoch_write(9).is_none());
    }

    fn snapshot_bytes(zxid: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::storage::snapshot_format::write_snapshot(&mut bytes, zxid, &[(7, 3000)], &crate::tree::DataTree::new())
            .unwrap();
        bytes
    }

    fn start_snapshot(d: &mut SimDisk, token: u64, zxid: i64) {
        d.snapshot_writing = Some(SnapshotInProgress {
            token,
            zxid,
            bytes: snapshot_bytes(zxid),
            history: History::default(),
            stage: SnapshotStage::Writing,
            fails_at: None,
        });
    }

    #[test]
    fn a_snapshot_is_visible_only_after_its_fsync_and_a_crash_before_that_leaves_none() {
        for seed in 0..20 {
            let mut d = SimDisk::default();
            start_snapshot(&mut d, 1, 5);
            assert_eq!(d.snapshot_step(1), Some(SnapshotStage::SyncingFile));
            assert!(d.snapshots.is_empty(), "not renamed before its fsync");
            d.crash_snapshots(&mut SimRng::new(seed));
            assert!(d.snapshots.is_empty() && d.snapshot_writing.is_none());
            assert_eq!(d.snapshot_step(1), None, "the thread died with the process");

            // After the rename, before the directory's fsync: the file is
            // there or not, and if there it is whole.
            start_snapshot(&mut d, 2, 6);
            d.snapshot_step(2);
            assert_eq!(d.snapshot_step(2), Some(SnapshotStage::SyncingDir));
            d.crash_snapshots(&mut SimRng::new(seed));
            for f in &d.snapshots {
                assert_eq!(crate::storage::snapshot_format::read_snapshot(&f.bytes).map(|s| s.last_zxid).ok(), Some(6));
            }
        }
    }

    #[test]
    fn a_failed_snapshot_step_gives_the_snapshot_up_as_production_does() {
        // The write or the temp file's fsync failed: nothing visible.
        for steps_before in [0, 1] {
            let mut d = SimDisk::default();
            start_snapshot(&mut d, 1, 5);
            for _ in 0..steps_before {
                d.snapshot_step(1);
            }
            assert!(d.fail_snapshot_step(1, "EIO").is_some());
            assert!(d.snapshots.is_empty() && d.snapshot_writing.is_none());
            assert_eq!(d.snapshot_step(1), None, "given up: no further step");
        }
        // The directory's fsync failed: the file is there, whole, but a
        // crash may lose its rename until a later directory fsync succeeds.
        let mut lost = 0;
        for seed in 0..40 {
            let mut d = SimDisk::default();
            start_snapshot(&mut d, 1, 5);
            d.snapshot_step(1);
            d.snapshot_step(1);
            assert!(d.fail_snapshot_step(1, "ENOSPC").is_some());
            assert_eq!(d.snapshots.iter().map(|f| (f.zxid, f.name_durable)).collect::<Vec<_>>(), vec![(5, false)]);
            d.crash_snapshots(&mut SimRng::new(seed));
            lost += d.snapshots.is_empty() as u32;
            for f in &d.snapshots {
                assert_eq!(crate::storage::snapshot_format::read_snapshot(&f.bytes).map(|s| s.last_zxid).ok(), Some(5));
            }
        }
        assert!(lost > 0 && lost < 40, "the rename is lost in some crashes, not all: {lost} of 40");
        let mut d = SimDisk::default();
        start_snapshot(&mut d, 1, 5);
        d.snapshot_step(1);
        d.snapshot_step(1);
        d.fail_snapshot_step(1, "EIO");
        start_snapshot(&mut d, 2, 9);
        while d.snapshot_step(2).is_some() {}
        assert!(d.snapshots.iter().all(|f| f.name_durable), "the next directory fsync covers the earlier rename");
    }

    #[test]
    fn purge_keeps_three_snapshots_and_the_logs_the_oldest_needs() {
        let mut d = SimDisk::default();
        for (token, z) in [(1u64, 2i64), (2, 4), (3, 6), (4, 8)] {
            d.roll();
            d.append(&[rec(z - 1), rec(z)]).unwrap();
            d.start_fsync(100 + token);
            d.complete_fsync(100 + token);
            start_snapshot(&mut d, token, z);
            while d.snapshot_step(token).is_some() {}
            d.purge(3, false);
        }
        assert_eq!(d.snapshots.iter().map(|f| f.zxid).collect::<Vec<_>>(), vec![4, 6, 8]);
        // Replaying from snapshot 4 needs the log starting at 5.
        assert_eq!(d.logs.iter().map(|f| f.first_zxid).collect::<Vec<_>>(), vec![5, 7]);
        // The planted purge keeps only what the newest needs.
        d.purge(3, true);
        assert_eq!(d.logs.iter().map(|f| f.first_zxid).collect::<Vec<_>>(), vec![7]);
    }

    #[test]
    fn damage_to_a_periodic_snapshot_fails_the_production_seal() {
        let mut failed = 0;
        for seed in 0..40 {
            let mut d = SimDisk::default();
            start_snapshot(&mut d, 1, 9);
            while d.snapshot_step(1).is_some() {}
            if d.damage(&mut SimRng::new(seed), true).is_some() {
                assert!(crate::storage::snapshot_format::read_snapshot(&d.snapshots[0].bytes).is_err(), "seed {seed}");
                failed += 1;
            }
        }
        assert!(failed > 3, "{failed}");
    }
}
