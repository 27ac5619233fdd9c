//! One server's simulated disk: its transaction log as the bytes of a
//! zoocore log file (the production `storage::log_format`, so torn tails
//! are found and cut by the production scanner), the two epoch files, and
//! the snapshot a SNAP sync installed (Apache's SNAP stream bytes).
//!
//! Durability is explicit: an append only reaches the page cache; an fsync
//! started at some length makes that prefix durable when it completes (the
//! world schedules the completion after a seeded latency). An epoch write
//! is durable only once it completes. A crash keeps the durable prefix and,
//! as a real page cache may have written some of the rest back, possibly a
//! seeded prefix of the unsynced bytes, cut at any byte (a torn batch).

use bytes::Bytes;

use super::rng::SimRng;
use crate::storage::log_format::{self, encode_batch_to_vec, encode_file_header, scan_log, truncated_file};

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

/// One log file: zoocore's format, named (in production) by its first zxid.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub first_zxid: i64,
    pub bytes: Vec<u8>,
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
}

impl SimDisk {
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
    /// record, which is not simulated).
    pub fn truncate_after(&mut self, zxid: i64) -> Result<(), String> {
        let mut kept = Vec::new();
        for f in std::mem::take(&mut self.logs) {
            if f.first_zxid > zxid {
                continue;
            }
            let scan = scan_log(&f.bytes, SIM_LOG_BLOCK_BYTES).map_err(|e| format!("scan before TRUNC: {e}"))?;
            let bytes = truncated_file(&f.bytes, &scan, zxid).map_err(|e| format!("TRUNC: {e}"))?;
            kept.push(LogFile { first_zxid: f.first_zxid, bytes });
        }
        self.logs = kept;
        self.durable_len = self.logs.last().map_or(0, |f| f.bytes.len());
        self.fsyncs.clear();
        self.roll_pending = true;
        if self.snapshot.as_ref().is_some_and(|(z, _)| *z > zxid) {
            self.snapshot = None;
        }
        Ok(())
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
    fn epoch_write_is_durable_only_when_complete() {
        let mut d = SimDisk::default();
        d.write_epoch_now(EpochFile::Current, 1);
        d.start_epoch_write(9, EpochFile::Current, 2);
        d.crash(&mut SimRng::new(1), 0);
        assert_eq!(d.current_epoch, Some(1));
        assert!(d.complete_epoch_write(9).is_none());
    }
}
