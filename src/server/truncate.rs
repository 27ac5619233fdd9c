//! TRUNC: cutting this server's durable history back to a zxid, as a ZAB
//! learner must when the leader tells it that its log runs past the
//! leader's (the txns after that zxid were never committed).
//!
//! This module owns the truncation steps and the truncation intent file
//! (`<dataLogDir>/zoocore/truncate-intent`). It runs with plain file IO
//! while nothing writes the log or a snapshot: the caller closes the log
//! writer and waits until no snapshot is being written, calls
//! [`truncate_after`], re-runs recovery and reopens the writer.
//!
//! Crash safety (docs/storage.md, "Truncation"). Two promises: once any
//! file has been changed, no txn above the zxid may ever be read again,
//! after a crash at any point; and no txn at or below it is ever lost.
//! Removing files one by one cannot keep the first promise on its own:
//! recovery reads whatever is left, and every order of removal leaves a
//! moment where it would replay txns above the zxid (or refuse a gap). So
//! the truncation first makes its *intent* durable (the zxid, written to a
//! temporary name, synced, renamed, directory synced), and recovery
//! finishes an interrupted truncation before it reads anything
//! ([`resume_interrupted_truncation`]). Every step after the intent is
//! idempotent and only ever removes what is above the zxid (the numbers
//! are docs/storage.md's):
//!
//! 2. snapshots above the zxid are removed (recovery would load them);
//! 3. log files that start above the zxid, or hold no txn at or below it,
//!    are removed (this frees the name `log.<next zxid>` that the writer
//!    creates with create_new);
//! 4. the log file that straddles the zxid is replaced by a copy holding
//!    exactly its txns up to the zxid: written under a temporary name,
//!    synced, renamed over the original, directory synced, so the
//!    original (and its txns at or below the zxid) stays whole until the
//!    complete copy takes its name;
//! 5. the intent is removed and the directory synced, before returning:
//!    an intent that outlived the call would, after a later crash,
//!    truncate txns the reopened writer logged since.
//!
//! Before the intent is written (step 1), a read-only check (step 0) refuses a truncation
//! that would lose history at or below the zxid: the newest snapshot kept
//! must be followed, without a gap, by logged txns up to the first txn
//! dropped. Otherwise (the log was purged behind a snapshot above the
//! zxid, or this server got that snapshot from a leader) the state at the
//! zxid cannot be rebuilt here and the caller needs a snapshot sync.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::storage::file_names::unfinished_snapshot_zxid;
use crate::storage::log_format::{decode_file_header, scan_log, truncated_file, zxid_follows, ScanResult, Tail};
use crate::storage::retention::first_log_needed;
use crate::storage::truncate_plan::{plan_truncation, ListedSnapshot};

use super::log_writer::log_dir;
use super::recovery::{list_by_zxid, snapshot_dir, RecoveryError};

/// Name of the intent file in the log directory.
pub const TRUNCATE_INTENT_FILE_NAME: &str = "truncate-intent";
const INTENT_TEMP_FILE_NAME: &str = "truncate-intent.tmp";
const INTENT_MAGIC: u32 = u32::from_be_bytes(*b"ZCTR");
const INTENT_VERSION: u32 = 1;
/// magic u32 | version u32 | zxid i64 | crc32c(the 16 bytes before it) u32.
const INTENT_LEN_BYTES: usize = 4 + 4 + 8 + 4;
/// A log file's copy is written as `log.<hex>.truncating`, which the
/// `log.<hex>` listing never picks up.
const LOG_COPY_SUFFIX: &str = ".truncating";

/// What a truncation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateReport {
    /// The zxid asked for: nothing above it is left.
    pub zxid: i64,
    /// Where recovery now ends: the newest txn kept, or the newest snapshot
    /// kept if that is later; 0 for an empty history. None when an
    /// interrupted truncation was finished (the check that computes it ran
    /// before the crash).
    pub last_kept_zxid: Option<i64>,
    /// The lowest zxid dropped (a txn, or a log file's first zxid).
    pub first_dropped_zxid: Option<i64>,
    pub removed_snapshots: Vec<PathBuf>,
    pub removed_logs: Vec<PathBuf>,
    /// Log files replaced by a copy holding only their txns up to `zxid`.
    pub rewritten_logs: Vec<PathBuf>,
}

impl TruncateReport {
    /// True when nothing was above the zxid: no file was touched.
    pub fn changed_nothing(&self) -> bool {
        self.removed_snapshots.is_empty() && self.removed_logs.is_empty() && self.rewritten_logs.is_empty()
    }

    /// The first rewritten log, if any (usually the only one).
    pub fn rewritten_log(&self) -> Option<&Path> {
        self.rewritten_logs.first().map(PathBuf::as_path)
    }
}

/// The steps of a truncation in order; [`truncate_after_until`] stops
/// after one of them, as a crash there would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TruncateStep {
    /// The read-only plan and history check are done; nothing changed.
    Checked,
    /// The intent is durable: from here on recovery finishes the truncation.
    IntentWritten,
    SnapshotsRemoved,
    LogsRemoved,
    LogRewritten,
    /// The intent is removed: the truncation is complete.
    Done,
}

/// Removes every snapshot and logged txn with a zxid above `zxid`, keeping
/// everything at or below it, crash-safely (see the module doc). Run it
/// only while nothing writes the log or a snapshot. An earlier truncation
/// that was interrupted is finished first. Refuses (changing nothing) when
/// the history up to `zxid` could not be rebuilt from what would be left.
pub fn truncate_after(data_dir: &Path, data_log_dir: &Path, zxid: i64) -> Result<TruncateReport, RecoveryError> {
    truncate_after_until(data_dir, data_log_dir, zxid, TruncateStep::Done)
}

/// [`truncate_after`] stopping after `stop_after`, leaving the files as a
/// crash right after that step would: for crash-safety tests.
#[doc(hidden)]
pub fn truncate_after_until(
    data_dir: &Path,
    data_log_dir: &Path,
    zxid: i64,
    stop_after: TruncateStep,
) -> Result<TruncateReport, RecoveryError> {
    if zxid < 0 {
        return Err(RecoveryError(format!("cannot truncate the log after a negative zxid ({zxid})")));
    }
    resume_interrupted_truncation(data_dir, data_log_dir)?;
    let dirs = Dirs::new(data_dir, data_log_dir);
    let plan = Plan::make(&dirs, zxid)?;
    let kept = check_history_is_kept(&dirs, &plan)?;
    let mut report = plan.report();
    report.last_kept_zxid = Some(kept.last_kept_zxid);
    if let Some(first) = kept.first_dropped_zxid {
        report.first_dropped_zxid = Some(report.first_dropped_zxid.map_or(first, |z| z.min(first)));
    }
    if plan.is_empty() {
        tracing::info!(zxid = format_args!("0x{zxid:x}"), "truncation: nothing above the zxid");
        return Ok(report);
    }
    if stop_after == TruncateStep::Checked {
        return Ok(report);
    }
    write_intent(&dirs, zxid)?;
    if stop_after == TruncateStep::IntentWritten {
        return Ok(report);
    }
    if !execute(&dirs, &plan, stop_after)? {
        return Ok(report);
    }
    remove_intent(&dirs)?;
    tracing::warn!(
        zxid = format_args!("0x{zxid:x}"),
        last_kept = format_args!("0x{:x}", kept.last_kept_zxid),
        removed_snapshots = report.removed_snapshots.len(),
        removed_logs = report.removed_logs.len(),
        rewritten_logs = report.rewritten_logs.len(),
        "truncated the transaction log"
    );
    Ok(report)
}

/// Finishes a truncation that a crash interrupted after its intent was
/// durable; returns None when there was none. Recovery calls this before
/// reading any snapshot or log.
pub fn resume_interrupted_truncation(
    data_dir: &Path,
    data_log_dir: &Path,
) -> Result<Option<TruncateReport>, RecoveryError> {
    let dirs = Dirs::new(data_dir, data_log_dir);
    // An intent that was never renamed into place was never durable under
    // its name: that truncation had not started changing anything.
    remove_if_present(&dirs.logs.join(INTENT_TEMP_FILE_NAME))?;
    let Some(zxid) = read_intent(&dirs)? else { return Ok(None) };
    tracing::warn!(zxid = format_args!("0x{zxid:x}"), "finishing a truncation of the log that was interrupted");
    let plan = Plan::make(&dirs, zxid)?;
    let report = plan.report();
    execute(&dirs, &plan, TruncateStep::Done)?;
    remove_intent(&dirs)?;
    Ok(Some(report))
}

struct Dirs {
    snapshots: PathBuf,
    logs: PathBuf,
}

impl Dirs {
    fn new(data_dir: &Path, data_log_dir: &Path) -> Dirs {
        Dirs { snapshots: snapshot_dir(data_dir), logs: log_dir(data_log_dir) }
    }
}

/// A log file replaced by its truncated copy.
struct Rewrite {
    path: PathBuf,
    copy: Vec<u8>,
}

/// What a truncation to `zxid` removes and rewrites: the shared
/// [`plan_truncation`] over this disk's listing, as paths and copies.
struct Plan {
    zxid: i64,
    /// Every snapshot named above the zxid, unfinished ones included (a
    /// snapshot thread still writing one could not rename it then).
    drop_snapshots: Vec<PathBuf>,
    /// Zxids of the finished snapshots among them.
    dropped_snapshot_zxids: Vec<i64>,
    drop_logs: Vec<PathBuf>,
    rewrites: Vec<Rewrite>,
    first_dropped_zxid: Option<i64>,
}

impl Plan {
    fn make(dirs: &Dirs, zxid: i64) -> Result<Plan, RecoveryError> {
        // Finished snapshots by zxid, then unfinished ones by name.
        let mut snapshot_paths = Vec::new();
        let mut listed = Vec::new();
        for (snap_zxid, path) in list_by_zxid(&dirs.snapshots, "snapshot") {
            listed.push(ListedSnapshot { zxid: snap_zxid, finished: true });
            snapshot_paths.push(path);
        }
        for (snap_zxid, path) in unfinished_snapshots(&dirs.snapshots) {
            listed.push(ListedSnapshot { zxid: snap_zxid, finished: false });
            snapshot_paths.push(path);
        }
        let logs = list_by_zxid(&dirs.logs, "log");
        let log_first_zxids: Vec<i64> = logs.iter().map(|(first, _)| *first).collect();
        let mut scanned: BTreeMap<usize, (Vec<u8>, ScanResult)> = BTreeMap::new();
        let decided = plan_truncation(zxid, &listed, &log_first_zxids, |index| {
            let (bytes, scan) = read_and_scan(listed_path(&logs, index)?)?;
            let zxids = scan.records.iter().map(|r| r.zxid).collect();
            scanned.insert(index, (bytes, scan));
            Ok(zxids)
        })?;
        let mut rewrites = Vec::new();
        for index in &decided.cut_logs {
            let path = listed_path(&logs, *index)?;
            let Some((bytes, scan)) = scanned.get(index) else {
                return Err(RecoveryError(format!("{}: planned a cut of a log file never read", path.display())));
            };
            let copy = truncated_file(bytes, scan, zxid)
                .map_err(|e| RecoveryError(format!("{}: cannot build its truncated copy: {e}", path.display())))?;
            rewrites.push(Rewrite { path: path.to_path_buf(), copy });
        }
        let mut drop_snapshots = Vec::new();
        for index in &decided.remove_snapshots {
            drop_snapshots.push(snapshot_paths.get(*index).cloned().ok_or_else(|| index_error("snapshot", *index))?);
        }
        let mut drop_logs = Vec::new();
        for index in &decided.remove_logs {
            drop_logs.push(listed_path(&logs, *index)?.to_path_buf());
        }
        Ok(Plan {
            zxid,
            drop_snapshots,
            dropped_snapshot_zxids: decided.removed_snapshot_zxids,
            drop_logs,
            rewrites,
            first_dropped_zxid: decided.first_dropped_zxid,
        })
    }

    fn is_empty(&self) -> bool {
        self.drop_snapshots.is_empty() && self.drop_logs.is_empty() && self.rewrites.is_empty()
    }

    fn report(&self) -> TruncateReport {
        TruncateReport {
            zxid: self.zxid,
            last_kept_zxid: None,
            first_dropped_zxid: self.first_dropped_zxid,
            removed_snapshots: self.drop_snapshots.clone(),
            removed_logs: self.drop_logs.clone(),
            rewritten_logs: self.rewrites.iter().map(|r| r.path.clone()).collect(),
        }
    }
}

fn listed_path(logs: &[(i64, PathBuf)], index: usize) -> Result<&Path, RecoveryError> {
    logs.get(index).map(|(_, path)| path.as_path()).ok_or_else(|| index_error("log", index))
}

fn index_error(kind: &str, index: usize) -> RecoveryError {
    RecoveryError(format!("truncation plan names {kind} file {index}, which the listing does not have"))
}

/// `snapshot.<hex>.tmp` files, sorted by name, with their zxids.
fn unfinished_snapshots(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(zxid) = name.to_str().and_then(unfinished_snapshot_zxid) else { continue };
        out.push((zxid, entry.path()));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn read_and_scan(path: &Path) -> Result<(Vec<u8>, ScanResult), RecoveryError> {
    let bytes = std::fs::read(path).map_err(|e| RecoveryError(format!("cannot read {}: {e}", path.display())))?;
    let header = decode_file_header(&bytes).map_err(|e| RecoveryError(format!("{}: {e}", path.display())))?;
    let scan = scan_log(&bytes, header.block_size).map_err(|e| RecoveryError(format!("{}: {e}", path.display())))?;
    if let Tail::Corrupt { offset, reason } = &scan.tail {
        return Err(RecoveryError(format!(
            "{}: corrupt transaction log at offset {offset}: {reason}; cannot truncate it",
            path.display()
        )));
    }
    Ok((bytes, scan))
}

/// Where recovery ends once the plan is carried out.
struct KeptHistory {
    last_kept_zxid: i64,
    /// The first txn above the zxid, which the kept history leads up to.
    first_dropped_zxid: Option<i64>,
}

/// Walks the logs as recovery will after the truncation, from the newest
/// snapshot kept, and refuses a truncation that would lose a txn at or
/// below the zxid: the walk must reach the first txn above the zxid
/// without a gap (then every txn before it is kept), or, if no logged txn
/// is above the zxid, no snapshot above it may be dropped (it would hold
/// history the log does not).
fn check_history_is_kept(dirs: &Dirs, plan: &Plan) -> Result<KeptHistory, RecoveryError> {
    let zxid = plan.zxid;
    let base = list_by_zxid(&dirs.snapshots, "snapshot").into_iter().map(|(z, _)| z).filter(|z| *z <= zxid).max();
    let base = base.unwrap_or(0);
    let logs = list_by_zxid(&dirs.logs, "log");
    let log_first_zxids: Vec<i64> = logs.iter().map(|(first, _)| *first).collect();
    let start = first_log_needed(&log_first_zxids, base);
    let mut previous = base;
    for (_, path) in logs.get(start..).unwrap_or_default() {
        let (_, scan) = read_and_scan(path)?;
        for record in &scan.records {
            if record.zxid <= previous {
                continue;
            }
            if !zxid_follows(previous, record.zxid) {
                let why = if record.zxid <= zxid {
                    "the log has a gap there, so recovery from the newest snapshot at or below the zxid would refuse to start"
                } else {
                    "the txns in between are only in a snapshot above the zxid (the log was purged behind it, or it came from a leader)"
                };
                return Err(RecoveryError(format!(
                    "cannot truncate after 0x{zxid:x}: {}: offset {}: 0x{:x} does not follow 0x{previous:x}; {why}; \
                     a snapshot sync is needed instead",
                    path.display(),
                    record.offset(),
                    record.zxid
                )));
            }
            if record.zxid > zxid {
                return Ok(KeptHistory { last_kept_zxid: previous, first_dropped_zxid: Some(record.zxid) });
            }
            previous = record.zxid;
        }
    }
    if let Some(snapshot) = plan.dropped_snapshot_zxids.iter().max() {
        return Err(RecoveryError(format!(
            "cannot truncate after 0x{zxid:x}: the snapshot at 0x{snapshot:x} holds txns the log does not \
             (it ends at 0x{previous:x}); a snapshot sync is needed instead"
        )));
    }
    Ok(KeptHistory { last_kept_zxid: previous, first_dropped_zxid: None })
}

/// Carries out steps 2–4; returns false if it stopped early (tests).
fn execute(dirs: &Dirs, plan: &Plan, stop_after: TruncateStep) -> Result<bool, RecoveryError> {
    for path in &plan.drop_snapshots {
        remove_if_present(path)?;
        tracing::warn!(file = %path.display(), "truncation: removed a snapshot above the zxid");
    }
    if !plan.drop_snapshots.is_empty() {
        sync_dir(&dirs.snapshots)?;
    }
    if stop_after == TruncateStep::SnapshotsRemoved {
        return Ok(false);
    }
    for path in &plan.drop_logs {
        remove_if_present(path)?;
        tracing::warn!(file = %path.display(), "truncation: removed a log file above the zxid");
    }
    if !plan.drop_logs.is_empty() {
        sync_dir(&dirs.logs)?;
    }
    if stop_after == TruncateStep::LogsRemoved {
        return Ok(false);
    }
    for rewrite in &plan.rewrites {
        replace_with_copy(&rewrite.path, &rewrite.copy)?;
        tracing::warn!(file = %rewrite.path.display(), "truncation: rewrote a log file without its txns above the zxid");
    }
    Ok(stop_after > TruncateStep::LogRewritten)
}

/// Writes `copy` under a temporary name, syncs it, renames it over `path`
/// and syncs the directory: at every moment `path` holds either the whole
/// original or the whole copy.
fn replace_with_copy(path: &Path, copy: &[u8]) -> Result<(), RecoveryError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(LOG_COPY_SUFFIX);
    let temp = PathBuf::from(temp);
    let fail =
        |what: &str, e: std::io::Error| RecoveryError(format!("truncation: cannot {what} {}: {e}", temp.display()));
    // A copy left by an interrupted attempt is rewritten from scratch.
    let mut file = std::fs::File::create(&temp).map_err(|e| fail("create", e))?;
    file.write_all(copy).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| fail("rename into place", e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn intent_bytes(zxid: i64) -> [u8; INTENT_LEN_BYTES] {
    let mut out = [0u8; INTENT_LEN_BYTES];
    out[0..4].copy_from_slice(&INTENT_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&INTENT_VERSION.to_be_bytes());
    out[8..16].copy_from_slice(&zxid.to_be_bytes());
    let crc = crc32c::crc32c(&out[..16]);
    out[16..20].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode_intent(bytes: &[u8]) -> Result<i64, String> {
    let Ok(bytes) = <[u8; INTENT_LEN_BYTES]>::try_from(bytes) else {
        return Err(format!("{} bytes, expected {INTENT_LEN_BYTES}", bytes.len()));
    };
    let zxid =
        i64::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bytes != intent_bytes(zxid) {
        return Err("bad magic, version or crc".into());
    }
    Ok(zxid)
}

/// Step 1: makes the intent durable under its name.
fn write_intent(dirs: &Dirs, zxid: i64) -> Result<(), RecoveryError> {
    let temp = dirs.logs.join(INTENT_TEMP_FILE_NAME);
    let fail =
        |what: &str, e: std::io::Error| RecoveryError(format!("truncation: cannot {what} {}: {e}", temp.display()));
    std::fs::create_dir_all(&dirs.logs).map_err(|e| fail("create the directory of", e))?;
    let mut file = std::fs::File::create(&temp).map_err(|e| fail("create", e))?;
    file.write_all(&intent_bytes(zxid)).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    drop(file);
    std::fs::rename(&temp, dirs.logs.join(TRUNCATE_INTENT_FILE_NAME)).map_err(|e| fail("rename into place", e))?;
    sync_dir(&dirs.logs)
}

fn read_intent(dirs: &Dirs) -> Result<Option<i64>, RecoveryError> {
    let path = dirs.logs.join(TRUNCATE_INTENT_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecoveryError(format!("cannot read {}: {e}", path.display()))),
    };
    // The intent only ever gets its name complete and synced: damage here
    // is damage to the disk, and guessing the zxid could resurrect txns.
    decode_intent(&bytes).map(Some).map_err(|why| {
        RecoveryError(format!(
            "{}: an interrupted truncation's intent is damaged ({why}); refusing to start, since txns above \
             its zxid must not be replayed",
            path.display()
        ))
    })
}

/// Step 5: the truncation is complete once this is durable.
fn remove_intent(dirs: &Dirs) -> Result<(), RecoveryError> {
    remove_if_present(&dirs.logs.join(TRUNCATE_INTENT_FILE_NAME))?;
    sync_dir(&dirs.logs)
}

fn remove_if_present(path: &Path) -> Result<(), RecoveryError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RecoveryError(format!("truncation: cannot remove {}: {e}", path.display()))),
    }
}

fn sync_dir(dir: &Path) -> Result<(), RecoveryError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RecoveryError(format!("truncation: cannot sync the directory {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    //! Data directories built by hand (log files with the log_format
    //! encoder, snapshots with the snapshot writer), truncated, then
    //! recovered with `recovery::recover`: the tree must hold a node
    //! `/n<zxid hex>` for exactly the txns at or below the zxid.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::proto::{op, open_acl_unsafe};
    use crate::server::log_writer::log_file_name;
    use crate::server::recovery::{apply, recover};
    use crate::server::snapshots::write_snapshot_file;
    use crate::storage::log_format::{encode_batch_to_vec, encode_file_header};
    use crate::storage::txn::{LoggedTxn, Txn, TxnHeader};
    use crate::tree::DataTree;

    const BS: usize = 4096;
    const E1: i64 = 0x1_0000_0000;
    const E2: i64 = 0x2_0000_0000;
    const E3: i64 = 0x3_0000_0000;

    static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

    /// A data directory (dataLogDir = dataDir, as by default), removed on drop.
    struct Fixture {
        dir: PathBuf,
    }

    fn txn(zxid: i64) -> LoggedTxn {
        LoggedTxn {
            header: TxnHeader { session_id: 0, cxid: 0, zxid, time_ms: 0, op: op::CREATE },
            txn: Txn::Create {
                path: format!("/n{zxid:x}"),
                data: None,
                acl: open_acl_unsafe(),
                ephemeral: false,
                parent_cversion: 1,
            },
            digest: None,
        }
    }

    impl Fixture {
        fn new() -> Fixture {
            let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("zoocore-truncate-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("zoocore")).unwrap();
            Fixture { dir }
        }

        fn store(&self) -> PathBuf {
            self.dir.join("zoocore")
        }

        /// A log file named for its first txn, one batch per slice, with
        /// preallocated zeros after them as the writer leaves them.
        fn log(&self, batches: &[&[i64]]) -> PathBuf {
            let first = batches[0][0];
            let mut file = encode_file_header(BS, first);
            for batch in batches {
                let payloads: Vec<(i64, bytes::Bytes)> = batch.iter().map(|z| (*z, txn(*z).to_bytes())).collect();
                let refs: Vec<(i64, &[u8])> = payloads.iter().map(|(z, b)| (*z, b.as_ref())).collect();
                file.extend(encode_batch_to_vec(&refs, BS).unwrap());
            }
            file.resize(file.len() + 4 * BS, 0);
            let path = self.store().join(log_file_name(first));
            std::fs::write(&path, file).unwrap();
            path
        }

        /// A snapshot at `at` of the tree after applying `zxids`.
        fn snapshot(&self, zxids: &[i64], at: i64) -> PathBuf {
            let mut tree = DataTree::new();
            let mut sessions = BTreeMap::new();
            for z in zxids {
                apply(&mut tree, &mut sessions, &txn(*z));
            }
            write_snapshot_file(&self.store(), &tree, &[], at).unwrap().0
        }

        fn truncate(&self, zxid: i64) -> Result<TruncateReport, RecoveryError> {
            truncate_after(&self.dir, &self.dir, zxid)
        }

        fn truncate_until(&self, zxid: i64, step: TruncateStep) -> TruncateReport {
            truncate_after_until(&self.dir, &self.dir, zxid, step).unwrap()
        }

        /// Recovers and returns (last zxid, the zxids whose nodes exist).
        fn recovered(&self) -> (i64, Vec<i64>) {
            let r = recover(&self.dir, &self.dir, false).unwrap_or_else(|e| panic!("recovery: {e}"));
            let mut zxids: Vec<i64> = r
                .tree
                .children("/")
                .unwrap()
                .iter()
                .filter_map(|name| name.strip_prefix('n'))
                .map(|hex| i64::from_str_radix(hex, 16).unwrap())
                .collect();
            zxids.sort();
            (r.last_zxid, zxids)
        }

        /// Every file name and content in the store, for "nothing changed".
        fn contents(&self) -> BTreeMap<String, Vec<u8>> {
            std::fs::read_dir(self.store())
                .unwrap()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
                .collect()
        }

        fn log_names(&self) -> Vec<i64> {
            list_by_zxid(&self.store(), "log").into_iter().map(|(z, _)| z).collect()
        }

        fn snapshot_names(&self) -> Vec<i64> {
            list_by_zxid(&self.store(), "snapshot").into_iter().map(|(z, _)| z).collect()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn range(from: i64, to: i64) -> Vec<i64> {
        (from..=to).collect()
    }

    /// A newer snapshot that does not verify (say one a SNAP installed),
    /// and a log that continues its state across an epoch jump: recovery
    /// from the older snapshot must not bridge the jump (txns without a
    /// carried digest, as these, would hide the missing epoch).
    #[test]
    fn recovery_refuses_to_jump_an_epoch_past_a_snapshot_that_does_not_verify() {
        let f = Fixture::new();
        f.log(&[&[E1 + 1, E1 + 2, E1 + 3]]);
        f.snapshot(&range(E1 + 1, E1 + 2), E1 + 2);
        let installed = f.snapshot(&[E1 + 1, E1 + 2, E1 + 3, E2 + 1, E2 + 2], E2 + 2);
        f.log(&[&[E3 + 1, E3 + 2]]);
        assert_eq!(f.recovered(), (E3 + 2, vec![E1 + 1, E1 + 2, E1 + 3, E2 + 1, E2 + 2, E3 + 1, E3 + 2]));
        let mut bytes = std::fs::read(&installed).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&installed, bytes).unwrap();
        let refused = recover(&f.dir, &f.dir, false).err().expect("recovery must refuse the jump");
        assert!(refused.0.contains("past snapshot 0x200000002"), "{refused}");
    }

    /// Three files, a snapshot in the middle and one above the zxids kept:
    /// log.1 [1 2 3][4 5] | snapshot.5 | log.6 [6 7 8][9] [10] | log.b [11 12] | snapshot.c
    fn three_files() -> Fixture {
        let f = Fixture::new();
        f.log(&[&[1, 2, 3], &[4, 5]]);
        f.snapshot(&range(1, 5), 5);
        f.log(&[&[6, 7, 8], &[9], &[10]]);
        f.log(&[&[11, 12]]);
        f.snapshot(&range(1, 12), 12);
        f
    }

    #[test]
    fn inside_a_batch() {
        let f = three_files();
        assert_eq!(f.recovered(), (12, range(1, 12)));
        let report = f.truncate(7).unwrap();
        assert_eq!(report.last_kept_zxid, Some(7));
        assert_eq!(report.first_dropped_zxid, Some(8));
        assert_eq!(report.removed_snapshots, vec![f.store().join("snapshot.c")]);
        assert_eq!(report.removed_logs, vec![f.store().join("log.b")]);
        assert_eq!(report.rewritten_log(), Some(f.store().join("log.6").as_path()));
        assert_eq!(f.recovered(), (7, range(1, 7)));
        assert_eq!(f.log_names(), vec![1, 6]);
        assert_eq!(f.snapshot_names(), vec![5]);
        assert!(!f.store().join(TRUNCATE_INTENT_FILE_NAME).exists());
        // Again: nothing above 7 is left.
        assert!(f.truncate(7).unwrap().changed_nothing());
    }

    #[test]
    fn at_a_batch_boundary_and_at_a_file_boundary() {
        let f = three_files();
        f.truncate(9).unwrap();
        assert_eq!(f.recovered(), (9, range(1, 9)));
        let log6 = std::fs::read(f.store().join("log.6")).unwrap();
        assert_eq!(log6.len(), 3 * BS, "header, [6 7 8], [9]: the batches before the cut, verbatim");

        // The cut at a file's end: the next file is the one the writer
        // would create for the next zxid, and its name must be free.
        let f = three_files();
        let report = f.truncate(10).unwrap();
        assert!(report.rewritten_logs.is_empty());
        assert_eq!(f.recovered(), (10, range(1, 10)));
        assert!(!f.store().join(log_file_name(11)).exists());
    }

    #[test]
    fn below_every_txn_leaves_an_empty_history() {
        let f = Fixture::new();
        f.log(&[&[1, 2], &[3]]);
        f.log(&[&[4, 5]]);
        f.snapshot(&range(1, 4), 4);
        let report = f.truncate(0).unwrap();
        assert_eq!((report.last_kept_zxid, report.first_dropped_zxid), (Some(0), Some(1)));
        assert_eq!(f.recovered(), (0, vec![]));
        assert!(f.log_names().is_empty() && f.snapshot_names().is_empty());
    }

    #[test]
    fn above_every_txn_changes_nothing() {
        let f = three_files();
        let before = f.contents();
        for zxid in [12, 13, E2 | 1] {
            let report = f.truncate(zxid).unwrap();
            assert!(report.changed_nothing(), "{zxid:#x}: {report:?}");
            assert_eq!(report.last_kept_zxid, Some(12));
            assert_eq!(f.contents(), before, "no file touched, no intent written");
        }
        assert_eq!(f.recovered(), (12, range(1, 12)));
    }

    /// A snapshot exactly at the zxid is kept and recovery starts from it.
    #[test]
    fn snapshot_at_the_zxid_is_kept() {
        let f = three_files();
        let report = f.truncate(5).unwrap();
        assert_eq!(f.snapshot_names(), vec![5]);
        assert_eq!(f.log_names(), vec![1]);
        assert_eq!(report.removed_logs.len(), 2);
        let r = recover(&f.dir, &f.dir, false).unwrap();
        assert_eq!((r.snapshot_zxid, r.last_zxid, r.replayed), (5, 5, 0));
    }

    /// A file the writer opened for the next zxid, whose first batch never
    /// became durable, carries the name the writer will create next.
    #[test]
    fn a_file_without_txns_at_or_below_the_zxid_goes() {
        let f = Fixture::new();
        f.log(&[&[1, 2, 3]]);
        let empty = f.store().join(log_file_name(4));
        let mut bytes = encode_file_header(BS, 4);
        bytes.resize(8 * BS, 0);
        std::fs::write(&empty, bytes).unwrap();
        let report = f.truncate(5).unwrap();
        assert_eq!(report.removed_logs, vec![empty.clone()]);
        assert!(!empty.exists());
        assert_eq!(f.recovered(), (3, range(1, 3)));
    }

    /// Epoch 1 ends at 7, epochs 2 and 3 follow at counter 1.
    fn epochs() -> Fixture {
        let f = Fixture::new();
        f.log(&[&[E1 | 1, E1 | 2], &[E1 | 3, E1 | 4, E1 | 5, E1 | 6, E1 | 7]]);
        f.log(&[&[E2 | 1, E2 | 2], &[E3 | 1]]);
        f
    }

    #[test]
    fn across_epochs() {
        let all = vec![E1 | 1, E1 | 2, E1 | 3, E1 | 4, E1 | 5, E1 | 6, E1 | 7, E2 | 1, E2 | 2, E3 | 1];
        let f = epochs();
        assert_eq!(f.recovered(), (E3 | 1, all.clone()));
        // At the end of an epoch, and at a zxid between epochs that no txn has.
        for zxid in [E1 | 7, E1 | 9, E2 - 1] {
            let f = epochs();
            let report = f.truncate(zxid).unwrap();
            assert_eq!(report.last_kept_zxid, Some(E1 | 7), "{zxid:#x}");
            assert_eq!(f.recovered(), (E1 | 7, all[..7].to_vec()), "{zxid:#x}");
            assert_eq!(f.log_names(), vec![E1 | 1]);
        }
        // Inside the second file, across its epoch jump.
        let f = epochs();
        f.truncate(E2 | 2).unwrap();
        assert_eq!(f.recovered(), (E2 | 2, all[..9].to_vec()));
        let f = epochs();
        f.truncate(E2 | 1).unwrap();
        assert_eq!(f.recovered(), (E2 | 1, all[..8].to_vec()));
    }

    /// The txns up to the zxid exist only in a snapshot above it (the log
    /// was purged behind it, or a leader sent it): refused, nothing changed.
    #[test]
    fn refuses_when_history_at_or_below_the_zxid_would_be_lost() {
        // Purged: snapshot.a, the log from 9 on.
        let f = Fixture::new();
        f.snapshot(&range(1, 10), 10);
        f.log(&[&[9, 10], &[11, 12]]);
        let before = f.contents();
        for zxid in [3, 7] {
            let err = f.truncate(zxid).unwrap_err().0;
            assert!(err.contains("snapshot sync is needed"), "{err}");
            assert_eq!(f.contents(), before);
        }
        // The same layout can be truncated at or above the snapshot.
        f.truncate(10).unwrap();
        assert_eq!(f.recovered(), (10, range(1, 10)));

        // A leader's snapshot: the old log, then SNAP at e3|16 and logging after it.
        let f = Fixture::new();
        f.log(&[&[E1 | 1, E1 | 2]]);
        f.snapshot(&[E1 | 1, E1 | 2, E2 | 1], E3 | 16);
        f.log(&[&[E3 | 17]]);
        let before = f.contents();
        let err = f.truncate(E2 | 4).unwrap_err().0;
        assert!(err.contains("log.300000011") && err.contains("offset"), "{err}");
        assert_eq!(f.contents(), before);
        // No log at all after the snapshot: the snapshot alone is history.
        let f = Fixture::new();
        f.log(&[&[1, 2]]);
        f.snapshot(&range(1, 4), 4);
        let err = f.truncate(3).unwrap_err().0;
        assert!(err.contains("snapshot at 0x4"), "{err}");
    }

    #[test]
    fn refuses_a_corrupt_straddling_file() {
        let f = Fixture::new();
        let path = f.log(&[&[1, 2], &[3], &[4]]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2 * BS + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = f.truncate(2).unwrap_err().0;
        assert!(err.contains(&path.display().to_string()) && err.contains(&format!("offset {}", 2 * BS)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    /// A crash right after each step: recovery yields the original history
    /// before the intent is durable, exactly the txns at or below the zxid
    /// from then on, and finishes the truncation (no intent is left).
    #[test]
    fn crash_after_each_step() {
        let steps = [
            TruncateStep::Checked,
            TruncateStep::IntentWritten,
            TruncateStep::SnapshotsRemoved,
            TruncateStep::LogsRemoved,
            TruncateStep::LogRewritten,
            TruncateStep::Done,
        ];
        for step in steps {
            let f = three_files();
            f.truncate_until(7, step);
            let intent = f.store().join(TRUNCATE_INTENT_FILE_NAME);
            assert_eq!(intent.exists(), step > TruncateStep::Checked && step < TruncateStep::Done, "{step:?}");
            let want = if step == TruncateStep::Checked { (12, range(1, 12)) } else { (7, range(1, 7)) };
            assert_eq!(f.recovered(), want, "crash after {step:?}");
            assert!(!intent.exists(), "{step:?}: recovery finished the truncation");
            // And again, as after a crash right after that recovery.
            assert_eq!(f.recovered(), want, "second recovery after {step:?}");
            if step > TruncateStep::Checked {
                assert_eq!(f.log_names(), vec![1, 6], "{step:?}");
                assert_eq!(f.snapshot_names(), vec![5], "{step:?}");
            }
        }
    }

    /// Crashes inside a step: part of the files removed, a half-written
    /// copy, an intent that never got its name.
    #[test]
    fn crash_inside_a_step() {
        // Only the newest file removed (in no particular order).
        let f = three_files();
        f.truncate_until(7, TruncateStep::SnapshotsRemoved);
        std::fs::remove_file(f.store().join("log.b")).unwrap();
        assert_eq!(f.recovered(), (7, range(1, 7)));

        // Only the snapshot above the zxid gone, not yet any log.
        let f = three_files();
        f.truncate_until(7, TruncateStep::IntentWritten);
        std::fs::remove_file(f.store().join("snapshot.c")).unwrap();
        assert_eq!(f.recovered(), (7, range(1, 7)));

        // The copy half-written under its temporary name.
        let f = three_files();
        f.truncate_until(7, TruncateStep::LogsRemoved);
        let copy = f.store().join(format!("log.6{LOG_COPY_SUFFIX}"));
        std::fs::write(&copy, &std::fs::read(f.store().join("log.6")).unwrap()[..BS + 100]).unwrap();
        assert_eq!(f.recovered(), (7, range(1, 7)));
        assert!(!copy.exists(), "the copy was rewritten and renamed into place");

        // The intent written but never renamed: nothing had started.
        let f = three_files();
        std::fs::write(f.store().join(INTENT_TEMP_FILE_NAME), &intent_bytes(7)[..10]).unwrap();
        assert_eq!(f.recovered(), (12, range(1, 12)));
        assert!(!f.store().join(INTENT_TEMP_FILE_NAME).exists());
    }

    /// After a finished truncation new txns are logged; a crash must not
    /// let an old intent cut them (it is gone before truncate returns).
    #[test]
    fn txns_logged_after_a_truncation_survive() {
        let f = three_files();
        f.truncate(7).unwrap();
        assert_eq!(f.recovered(), (7, range(1, 7)));
        f.log(&[&[E2 | 1, E2 | 2]]);
        let mut want = range(1, 7);
        want.extend([E2 | 1, E2 | 2]);
        assert_eq!(f.recovered(), (E2 | 2, want));
    }

    #[test]
    fn a_damaged_intent_refuses_start_up() {
        let f = three_files();
        let mut bytes = intent_bytes(7);
        bytes[9] ^= 1;
        std::fs::write(f.store().join(TRUNCATE_INTENT_FILE_NAME), bytes).unwrap();
        let err = recover(&f.dir, &f.dir, false).err().unwrap().0;
        assert!(err.contains(TRUNCATE_INTENT_FILE_NAME) && err.contains("damaged"), "{err}");
        assert_eq!(decode_intent(&intent_bytes(0x5_0000_0001)), Ok(0x5_0000_0001));
        assert!(decode_intent(&[0; 3]).is_err());
    }

    #[test]
    fn an_interrupted_truncation_is_finished_before_a_new_one() {
        let f = three_files();
        f.truncate_until(9, TruncateStep::SnapshotsRemoved);
        let report = f.truncate(7).unwrap();
        assert_eq!(report.last_kept_zxid, Some(7));
        assert_eq!(f.recovered(), (7, range(1, 7)));
    }
}
