//! The leader's on-disk log as a source of DIFFs (Apache's txnlog sync):
//! building the `zab::sync_plan::DiskLogIndex` the leader core plans with,
//! and reading the txns of a `LeaderAction::SendLoggedTxns` back out of
//! zoocore's own log files as PROPOSAL + COMMIT packets.
//!
//! Owns no state. `index_disk_log` scans every log file (plain file IO,
//! when a server starts leading, right after recovery read the same files);
//! `disk_files` is the cheap re-check (a directory listing and a stat) of
//! which files still exist and how large the newest snapshot is.
//! `LoggedTxnFiles::open` opens the files a range needs on the caller's
//! thread, so a purge that unlinks them afterwards cannot take them away;
//! `write_pairs` then reads and encodes on whatever thread the caller
//! chooses (`quorum_net` runs it on a helper thread feeding the learner's
//! link, as it does for SNAP). `pairs_in_file` is the sans-IO core both
//! that and the simulator use.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::storage::log_format::{decode_file_header, scan_log, zxid_follows};
use crate::zab::packets::ToLearner;
use crate::zab::sync_plan::DiskLogIndex;

use super::log_writer::log_dir;
use super::recovery::{list_by_zxid, snapshot_dir};

/// Encoded packets gathered before one write to the output (one chunk of
/// the link's pipe).
pub const LOGGED_TXN_CHUNK_BYTES: usize = 256 * 1024;

/// The oldest log file's first zxid (`None`: no log files) and the newest
/// snapshot's size in bytes (0: none).
pub fn disk_files(data_dir: &Path, data_log_dir: &Path) -> (Option<i64>, u64) {
    let oldest_log = list_by_zxid(&log_dir(data_log_dir), "log").first().map(|(z, _)| *z);
    (oldest_log, newest_snapshot_bytes(&list_by_zxid(&snapshot_dir(data_dir), "snapshot")))
}

/// The size of the newest of `snapshots` (by zxid, as `list_by_zxid` sorts), 0 for none.
fn newest_snapshot_bytes(snapshots: &[(i64, PathBuf)]) -> u64 {
    snapshots.last().and_then(|(_, path)| std::fs::metadata(path).ok()).map_or(0, |m| m.len())
}

/// Reads every log file, oldest first, into an index of what can be
/// replayed without a gap up to the newest txn (`DiskLogIndex::from_log_files`,
/// which the simulator runs over its simulated files).
pub fn index_disk_log(data_dir: &Path, data_log_dir: &Path) -> DiskLogIndex {
    let snapshots = list_by_zxid(&snapshot_dir(data_dir), "snapshot");
    let snapshot_zxids: Vec<i64> = snapshots.iter().map(|(z, _)| *z).collect();
    let files = list_by_zxid(&log_dir(data_log_dir), "log")
        .into_iter()
        .map(|(_, path)| (path.display().to_string(), std::fs::read(&path).map_err(|e| e.to_string())));
    let (index, unusable) = DiskLogIndex::from_log_files(newest_snapshot_bytes(&snapshots), &snapshot_zxids, files);
    for (file, error) in unusable {
        tracing::warn!(%file, %error, "log file not usable for DIFFs; older txns will be sent by SNAP");
    }
    index
}

/// Where a stream of logged txns has got to: every txn it sent follows the
/// previous one (`zxid_follows`), starting after `after`, up to `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedTxnCursor {
    pub after: i64,
    pub through: i64,
    /// The last txn emitted (`after` before the first).
    pub last: i64,
}

impl LoggedTxnCursor {
    pub fn new(after: i64, through: i64) -> LoggedTxnCursor {
        LoggedTxnCursor { after, through, last: after }
    }

    pub fn is_done(&self) -> bool {
        self.last >= self.through
    }

    /// Checks the stream ended exactly at `through`.
    pub fn finish(&self) -> Result<(), String> {
        if self.last == self.through {
            Ok(())
        } else {
            Err(format!(
                "the log ends at 0x{:x}, before 0x{:x} (txns after 0x{:x} were asked for)",
                self.last, self.through, self.after
            ))
        }
    }
}

/// Emits, in order, the txns of one log file (its whole bytes) with
/// `cursor.last < zxid <= cursor.through`. Errors when the file does not
/// scan or a txn does not follow the one before it (a missing txn must
/// never be skipped silently: the learner would lose it).
pub fn pairs_in_file(
    file: &Bytes,
    cursor: &mut LoggedTxnCursor,
    mut emit: impl FnMut(i64, Bytes),
) -> Result<(), String> {
    let header = decode_file_header(file).map_err(|e| e.to_string())?;
    let scan = scan_log(file, header.block_size).map_err(|e| e.to_string())?;
    for record in &scan.records {
        if record.zxid <= cursor.last {
            continue;
        }
        if record.zxid > cursor.through {
            break;
        }
        if !zxid_follows(cursor.last, record.zxid) {
            return Err(format!("txn 0x{:x} does not follow 0x{:x} in the log", record.zxid, cursor.last));
        }
        emit(record.zxid, file.slice(record.payload.clone()));
        cursor.last = record.zxid;
    }
    Ok(())
}

/// The open log files a range of txns is read from.
pub struct LoggedTxnFiles {
    files: Vec<(PathBuf, File)>,
    cursor: LoggedTxnCursor,
}

impl LoggedTxnFiles {
    /// Opens the files that may hold txns in `(after, through]`: the newest
    /// one starting at or before `after + 1`, and every later one starting
    /// at or before `through`.
    pub fn open(data_log_dir: &Path, after: i64, through: i64) -> io::Result<LoggedTxnFiles> {
        let logs = list_by_zxid(&log_dir(data_log_dir), "log");
        let start = logs.iter().rposition(|(first, _)| *first <= after.saturating_add(1)).unwrap_or(0);
        let mut files = Vec::new();
        for (first, path) in logs.get(start..).unwrap_or_default() {
            if *first > through {
                break;
            }
            let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            files.push((path.clone(), file));
        }
        Ok(LoggedTxnFiles { files, cursor: LoggedTxnCursor::new(after, through) })
    }

    /// Reads the files and writes PROPOSAL + COMMIT for each txn in the
    /// range to `out`, in chunks of about [`LOGGED_TXN_CHUNK_BYTES`].
    /// Returns the bytes written; fails unless every txn of the range was.
    pub fn write_pairs(self, out: &mut dyn Write) -> Result<u64, String> {
        let mut cursor = self.cursor;
        let mut buf = BytesMut::with_capacity(LOGGED_TXN_CHUNK_BYTES * 2);
        let mut written = 0u64;
        for (path, mut file) in self.files {
            if cursor.is_done() {
                break;
            }
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            let bytes = Bytes::from(bytes);
            let mut failed: Option<io::Error> = None;
            pairs_in_file(&bytes, &mut cursor, |zxid, txn| {
                if failed.is_some() {
                    return;
                }
                ToLearner::Proposal { zxid, txn }.encode(&mut buf);
                ToLearner::Commit { zxid }.encode(&mut buf);
                if buf.len() >= LOGGED_TXN_CHUNK_BYTES {
                    written += buf.len() as u64;
                    if let Err(e) = out.write_all(&buf.split()) {
                        failed = Some(e);
                    }
                }
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(e) = failed {
                return Err(e.to_string());
            }
        }
        cursor.finish()?;
        if !buf.is_empty() {
            written += buf.len() as u64;
            out.write_all(&buf).map_err(|e| e.to_string())?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::recovery::snapshot_file_name;
    use crate::storage::log_format::{encode_batch_to_vec, encode_file_header, record_bytes};
    use crate::zab::packets::{make_zxid as z, PacketDecoder};

    const BLOCK: usize = 512;

    fn payload(zxid: i64) -> Vec<u8> {
        format!("txn {zxid:x}").into_bytes()
    }

    /// A log file holding `zxids`, one batch per txn.
    fn log_file(zxids: &[i64]) -> Vec<u8> {
        let mut file = encode_file_header(BLOCK, zxids[0]);
        for zx in zxids {
            let p = payload(*zx);
            file.extend(encode_batch_to_vec(&[(*zx, &p[..])], BLOCK).unwrap());
        }
        // Preallocated zeros after the last batch.
        file.extend(vec![0u8; 4 * BLOCK]);
        file
    }

    /// A scratch directory, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_dir(files: &[&[i64]]) -> TestDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = TestDir(std::env::temp_dir().join(format!("zoocore-disk-log-{}-{n}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        std::fs::create_dir_all(log_dir(dir.path())).unwrap();
        for zxids in files {
            std::fs::write(log_dir(dir.path()).join(format!("log.{:x}", zxids[0])), log_file(zxids)).unwrap();
        }
        dir
    }

    fn decode(bytes: &[u8]) -> Vec<ToLearner> {
        let mut d = PacketDecoder::new();
        d.feed(bytes);
        let mut out = Vec::new();
        while let Some(p) = d.next_packet().unwrap() {
            out.push(ToLearner::from_packet(&p).unwrap());
        }
        out
    }

    fn pairs(zxids: &[i64]) -> Vec<ToLearner> {
        zxids
            .iter()
            .flat_map(|zx| {
                [ToLearner::Proposal { zxid: *zx, txn: Bytes::from(payload(*zx)) }, ToLearner::Commit { zxid: *zx }]
            })
            .collect()
    }

    #[test]
    fn reads_the_range_across_files_and_an_epoch_change() {
        let first: Vec<i64> = (1..=5).map(|c| z(1, c)).collect();
        let second: Vec<i64> = (6..=8).map(|c| z(1, c)).chain((1..=3).map(|c| z(2, c))).collect();
        let dir = write_dir(&[&first, &second]);
        let files = LoggedTxnFiles::open(dir.path(), z(1, 3), z(2, 2)).unwrap();
        let mut out = Vec::new();
        let written = files.write_pairs(&mut out).unwrap();
        assert_eq!(written, out.len() as u64);
        let expected = [z(1, 4), z(1, 5), z(1, 6), z(1, 7), z(1, 8), z(2, 1), z(2, 2)];
        assert_eq!(decode(&out), pairs(&expected));
        // Only the files the range needs are opened.
        assert_eq!(LoggedTxnFiles::open(dir.path(), z(1, 6), z(2, 1)).unwrap().files.len(), 1);
    }

    #[test]
    fn a_missing_txn_fails_the_stream_instead_of_skipping_it() {
        let first: Vec<i64> = (1..=5).map(|c| z(1, c)).collect();
        let third: Vec<i64> = (9..=12).map(|c| z(1, c)).collect();
        let dir = write_dir(&[&first, &third]);
        let err = LoggedTxnFiles::open(dir.path(), z(1, 2), z(1, 11)).unwrap().write_pairs(&mut Vec::new());
        assert!(err.as_ref().is_err_and(|e| e.contains("does not follow")), "{err:?}");
        // A range past the end of the log.
        let err = LoggedTxnFiles::open(dir.path(), z(1, 9), z(1, 20)).unwrap().write_pairs(&mut Vec::new());
        assert!(err.as_ref().is_err_and(|e| e.contains("before 0x")), "{err:?}");
    }

    #[test]
    fn the_index_covers_what_replays_without_a_gap() {
        let first: Vec<i64> = (1..=5).map(|c| z(1, c)).collect();
        let second: Vec<i64> = (6..=8).map(|c| z(1, c)).collect();
        let dir = write_dir(&[&first, &second]);
        let index = index_disk_log(dir.path(), dir.path());
        assert_eq!((index.oldest(), index.newest()), (Some(z(1, 1)), Some(z(1, 8))));
        let per_txn = record_bytes(payload(z(1, 1)).len());
        assert_eq!(index.bytes_from(z(1, 1)), 8 * per_txn);
        // A gap (z(1,6..=8) missing): only the newer side counts.
        let third: Vec<i64> = (9..=10).map(|c| z(1, c)).collect();
        let gappy = write_dir(&[&first, &third]);
        let index = index_disk_log(gappy.path(), gappy.path());
        assert_eq!((index.oldest(), index.newest()), (Some(z(1, 9)), Some(z(1, 10))));
        assert_eq!(disk_files(gappy.path(), gappy.path()), (Some(z(1, 1)), 0));
    }

    /// A snapshot between two logged txns that the log does not hold (a
    /// SNAP installed from a leader: epoch 4 is only in it) is a gap too,
    /// though counter 1 of epoch 5 looks like it follows z(3,2). A snapshot
    /// at a logged zxid (a periodic one) is not.
    #[test]
    fn a_snapshot_the_log_does_not_hold_is_a_gap_in_the_index() {
        let before: Vec<i64> = vec![z(3, 1), z(3, 2)];
        let after: Vec<i64> = vec![z(5, 1), z(5, 2)];
        let dir = write_dir(&[&before, &after]);
        let snap_dir = snapshot_dir(dir.path());
        std::fs::create_dir_all(&snap_dir).unwrap();
        std::fs::write(snap_dir.join(snapshot_file_name(z(4, 13))), b"installed by SNAP").unwrap();
        let index = index_disk_log(dir.path(), dir.path());
        assert_eq!((index.oldest(), index.newest()), (Some(z(5, 1)), Some(z(5, 2))));
        // Without that snapshot the two files are one run.
        std::fs::remove_file(snap_dir.join(snapshot_file_name(z(4, 13)))).unwrap();
        std::fs::write(snap_dir.join(snapshot_file_name(z(3, 2))), b"periodic").unwrap();
        let index = index_disk_log(dir.path(), dir.path());
        assert_eq!((index.oldest(), index.newest()), (Some(z(3, 1)), Some(z(5, 2))));
    }
}
