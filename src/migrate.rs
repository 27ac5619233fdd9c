//! `zoocore import` and `zoocore export`: moving a data directory between
//! Apache ZooKeeper and zoocore, both ways, so a migration can be rolled back.
//!
//! * [`import`] reads an Apache data directory the way Apache's own start-up
//!   does (FileTxnSnapLog.restore): the newest snapshot in `version-2` whose
//!   seals verify, falling back to older ones (gz and snappy too), then every
//!   txn log entry after it, every checksum verified, applied with the same
//!   `DataTree::apply_txn` replication uses and checked against the digest
//!   each txn carries. A torn entry at the very end of a log (followed only
//!   by zeros) is left out, as Apache leaves it; anything else that does not
//!   read is an error naming the file and the byte offset. The result is a
//!   zoocore data directory holding one zoocore snapshot at the last zxid,
//!   the sessions, the epoch files and `myid`.
//! * [`export`] recovers a zoocore data directory (`server::recovery`, as a
//!   starting server does) and writes an Apache `version-2/snapshot.<zxid>`
//!   with its digest, plus the epoch files and `myid`.
//!
//! Neither ever writes into a non-empty target, and import never writes to
//! the Apache directory it reads. Plain `std::fs`: this is an offline tool.
//! The byte layouts themselves live in `storage::apache` (sans-IO).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::server::recovery::{self, snapshot_dir};
use crate::storage::apache::digest::{DigestCheck, DigestVerifier};
use crate::storage::apache::snapshot::SNAPSHOT_DECOMPRESSED_MAX_BYTES;
use crate::storage::apache::{
    is_valid_snapshot, read_snapshot_file, snapshot_file_name, sort_by_zxid, write_snapshot_file, SnapshotCompression,
    SnapshotLayout, TxnLogEnd, TxnLogReader, FILE_HEADER_BYTES,
};
use crate::storage::epoch_files::{
    read_epoch_file, write_epoch_file, ACCEPTED_EPOCH_FILE_NAME, CURRENT_EPOCH_FILE_NAME,
};
use crate::storage::log_format::zxid_follows;
use crate::storage::txn::LoggedTxn;
use crate::tree::DataTree;

/// Where Apache keeps snapshots, logs and epoch files under dataDir / dataLogDir.
pub const APACHE_VERSION_DIR: &str = "version-2";
/// The file naming a quorum member, in dataDir (both servers read it there).
pub const MYID_FILE_NAME: &str = "myid";
/// How many snapshots import tries, newest first, before giving up
/// (Apache's FileSnap tries up to 100 as well).
pub const SNAPSHOT_CANDIDATES_MAX_FILES: usize = 100;
/// Largest snapshot file (compressed or not) read into memory.
pub const SNAPSHOT_FILE_MAX_BYTES: u64 = SNAPSHOT_DECOMPRESSED_MAX_BYTES;
/// Largest txn log file read into memory: Apache rolls its log after
/// snapCount txns, so a real log is far below this.
pub const LOG_FILE_MAX_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// Largest `myid` copied (it holds one small number).
pub const MYID_FILE_MAX_BYTES: u64 = 4096;
/// A progress line every this many replayed txns.
pub const PROGRESS_EVERY_TXNS: u64 = 100_000;
/// The snapshot layout export writes: 3.6-3.9 check its digest, 3.4 and
/// 3.5 read it too (they ignore what follows the first seal).
pub const EXPORT_SNAPSHOT_LAYOUT: SnapshotLayout = SnapshotLayout::V36;

/// Why an import or export stopped; the message names the file (and, for
/// corrupt data, the byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateError(pub String);

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MigrateError {}

fn fail<T>(message: String) -> Result<T, MigrateError> {
    Err(MigrateError(message))
}

/// What an Apache data directory holds, restored in memory.
pub struct ApacheState {
    pub tree: DataTree,
    /// session id -> timeout ms.
    pub sessions: BTreeMap<i64, i32>,
    pub last_zxid: i64,
    /// The snapshot the tree was loaded from (None: replayed from zxid 0).
    pub snapshot: Option<PathBuf>,
    pub snapshot_zxid: i64,
    /// Newer snapshots that did not verify, with the reason.
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    pub logs_read: usize,
    pub txns_replayed: u64,
    /// Torn last entries left out: (log file, offset).
    pub torn_tails: Vec<(PathBuf, u64)>,
    /// Digests compared (snapshot and txns) and how many disagreed.
    pub digests_compared: u64,
    pub digest_mismatches: u64,
    /// Things the operator should know (no log found, a digest the logs
    /// never reached), also sent to progress.
    pub notes: Vec<String>,
}

/// What [`import`] did.
pub struct ImportSummary {
    pub state: ApacheState,
    /// The zoocore snapshot written.
    pub written: PathBuf,
    /// Epoch files and `myid` copied, by name.
    pub copied: Vec<String>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.state;
        match &s.snapshot {
            Some(path) => writeln!(f, "snapshot used:    {} (zxid 0x{:x})", path.display(), s.snapshot_zxid)?,
            None => writeln!(f, "snapshot used:    none (replayed from an empty tree)")?,
        }
        for (path, why) in &s.skipped_snapshots {
            writeln!(f, "snapshot skipped: {}: {why}", path.display())?;
        }
        writeln!(f, "txns replayed:    {} from {} log files", s.txns_replayed, s.logs_read)?;
        for (path, offset) in &s.torn_tails {
            writeln!(f, "torn tail:        {} at offset {offset} left out", path.display())?;
        }
        writeln!(f, "nodes:            {}", s.tree.node_count())?;
        writeln!(f, "sessions:         {}", s.sessions.len())?;
        writeln!(f, "last zxid:        0x{:x}", s.last_zxid)?;
        writeln!(
            f,
            "digest:           0x{:x} ({} compared, {} mismatches)",
            s.tree.digest() as u64,
            s.digests_compared,
            s.digest_mismatches
        )?;
        writeln!(f, "copied:           {}", if self.copied.is_empty() { "-".into() } else { self.copied.join(", ") })?;
        for note in &s.notes {
            writeln!(f, "note:             {note}")?;
        }
        writeln!(f, "written:          {}", self.written.display())
    }
}

/// What [`export`] did.
pub struct ExportSummary {
    pub written: PathBuf,
    pub last_zxid: i64,
    pub snapshot_zxid: i64,
    pub txns_replayed: u64,
    pub nodes: usize,
    pub sessions: usize,
    pub digest: i64,
    pub copied: Vec<String>,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "recovered:        zoocore snapshot 0x{:x} + {} txns", self.snapshot_zxid, self.txns_replayed)?;
        writeln!(f, "nodes:            {}", self.nodes)?;
        writeln!(f, "sessions:         {}", self.sessions)?;
        writeln!(f, "last zxid:        0x{:x}", self.last_zxid)?;
        writeln!(f, "digest:           0x{:x}", self.digest as u64)?;
        writeln!(f, "copied:           {}", if self.copied.is_empty() { "-".into() } else { self.copied.join(", ") })?;
        writeln!(f, "written:          {}", self.written.display())
    }
}

// ----------------------------------------------------------------- import

/// Imports the Apache data directory `from` (logs under `from_log`, default
/// `from`) into the new zoocore data directory `to`, which must be missing
/// or empty. `progress` receives a line per step.
pub fn import(
    from: &Path,
    from_log: Option<&Path>,
    to: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ImportSummary, MigrateError> {
    let snap_dir = from.join(APACHE_VERSION_DIR);
    let log_dir = from_log.unwrap_or(from).join(APACHE_VERSION_DIR);
    if !snap_dir.is_dir() {
        return fail(format!("{} is not an Apache data directory: {} is missing", from.display(), snap_dir.display()));
    }
    ensure_empty_target(to)?;
    let state = read_apache_dir(&snap_dir, &log_dir, progress)?;

    let target_snap_dir = snapshot_dir(to);
    create_dir(&target_snap_dir)?;
    let sessions: Vec<(i64, i32)> = state.sessions.iter().map(|(&id, &timeout)| (id, timeout)).collect();
    progress(&format!("writing the zoocore snapshot at zxid 0x{:x}", state.last_zxid));
    let (written, _) =
        crate::server::snapshots::write_snapshot_file(&target_snap_dir, &state.tree, &sessions, state.last_zxid)
            .map_err(|e| MigrateError(format!("cannot write a snapshot in {}: {e}", target_snap_dir.display())))?;
    let mut copied = copy_epoch_files(&snap_dir, &target_snap_dir)?;
    if copy_myid(from, to)? {
        copied.push(MYID_FILE_NAME.to_owned());
    }
    sync_dir(to)?;
    Ok(ImportSummary { state, written, copied })
}

/// Restores the state an Apache server would start with from its snapshot
/// directory and log directory (both the `version-2` directories). Reads
/// only; never changes a file.
pub fn read_apache_dir(
    snap_dir: &Path,
    log_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ApacheState, MigrateError> {
    let snap_names = file_names(snap_dir)?;
    let log_names = if log_dir == snap_dir { snap_names.clone() } else { file_names(log_dir)? };
    let logs: Vec<(i64, PathBuf)> = sort_by_zxid(log_names.iter().map(String::as_str), "log", true)
        .into_iter()
        .map(|(zxid, name)| (zxid, log_dir.join(name)))
        .collect();

    let mut state = ApacheState {
        tree: DataTree::new(),
        sessions: BTreeMap::new(),
        last_zxid: 0,
        snapshot: None,
        snapshot_zxid: 0,
        skipped_snapshots: Vec::new(),
        logs_read: 0,
        txns_replayed: 0,
        torn_tails: Vec::new(),
        digests_compared: 0,
        digest_mismatches: 0,
        notes: Vec::new(),
    };
    let mut verifier = DigestVerifier::new();
    let candidates = sort_by_zxid(snap_names.iter().map(String::as_str), "snapshot", false);
    for (zxid, name) in candidates.into_iter().take(SNAPSHOT_CANDIDATES_MAX_FILES) {
        let path = snap_dir.join(name);
        progress(&format!("loading {}", path.display()));
        match load_snapshot(&path, name, zxid) {
            Ok(snap) => {
                let (v, check) = DigestVerifier::after_snapshot(&snap.tree, snap.digest);
                verifier = v;
                count_check(&mut state, check, &path, zxid, progress);
                state.tree = snap.tree;
                state.sessions = snap.sessions;
                state.snapshot = Some(path);
                state.snapshot_zxid = zxid;
                state.last_zxid = zxid;
                break;
            }
            Err(why) => {
                progress(&format!("skipping {}: {why}; trying an older snapshot", path.display()));
                state.skipped_snapshots.push((path, why));
            }
        }
    }
    if state.snapshot.is_none() {
        if logs.is_empty() {
            return fail(format!(
                "{}: no snapshot that verifies and no transaction log: nothing to import",
                snap_dir.display()
            ));
        }
        if !state.skipped_snapshots.is_empty() {
            progress("no snapshot verifies; replaying the logs from an empty tree");
        }
    }

    // As FileTxnLog.getLogFiles: the newest log that starts at or before
    // the snapshot's zxid, and every later one.
    let start = logs.iter().rposition(|(first, _)| *first <= state.snapshot_zxid).unwrap_or(0);
    let relevant = logs.get(start..).unwrap_or_default();
    // A torn entry ends an older log only when the server crashed there and
    // started a new log on restart: the next log must then continue the
    // zxids, or the torn entry was really corruption in that file.
    let mut torn_before: Option<(PathBuf, u64)> = None;
    for (i, (_, path)) in relevant.iter().enumerate() {
        let is_newest = i + 1 == relevant.len();
        progress(&format!("replaying {} ({} of {})", path.display(), i + 1, relevant.len()));
        let bytes = Bytes::from(read_bounded(path, LOG_FILE_MAX_BYTES)?);
        state.logs_read += 1;
        if is_newest && bytes.len() <= FILE_HEADER_BYTES && bytes.iter().all(|&b| b == 0) {
            // Created, never written: Apache writes the header with the
            // first entry, so nothing was lost.
            progress(&format!("{} holds no transaction (never written)", path.display()));
            break;
        }
        let mut reader = TxnLogReader::new(bytes.clone()).map_err(|e| {
            MigrateError(format!("{}: not a transaction log at offset {}: {e}", path.display(), e.offset()))
        })?;
        loop {
            let entry = match reader.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    return fail(format!("{}: corrupt transaction log at offset {}: {e}", path.display(), e.offset()))
                }
            };
            let zxid = entry.zxid();
            if zxid <= state.last_zxid {
                if state.txns_replayed > 0 {
                    return fail(format!(
                        "{}: offset {}: transaction 0x{zxid:x} comes after 0x{:x}: zxids go backwards",
                        path.display(),
                        entry.offset,
                        state.last_zxid
                    ));
                }
                // Before the snapshot: already in the tree.
                continue;
            }
            if !zxid_follows(state.last_zxid, zxid) {
                if let Some((torn, offset)) = &torn_before {
                    return fail(format!(
                        "{}: corrupt transaction log at offset {offset}: the entry there does not end where its \
                         length says, and the next transaction found ({} offset {}) is 0x{zxid:x}, not the one \
                         after 0x{:x}",
                        torn.display(),
                        path.display(),
                        entry.offset,
                        state.last_zxid
                    ));
                }
                return fail(format!(
                    "{}: offset {}: transactions after 0x{:x} are missing (found 0x{zxid:x})",
                    path.display(),
                    entry.offset,
                    state.last_zxid
                ));
            }
            torn_before = None;
            let logged = LoggedTxn::decode(entry.payload.clone()).map_err(|e| {
                MigrateError(format!(
                    "{}: offset {}: transaction 0x{zxid:x} does not decode: {e}",
                    path.display(),
                    entry.offset
                ))
            })?;
            recovery::apply(&mut state.tree, &mut state.sessions, &logged);
            let check = verifier.after_apply(&state.tree, zxid, logged.digest);
            count_check(&mut state, check, path, zxid, progress);
            state.last_zxid = zxid;
            state.txns_replayed += 1;
            if state.txns_replayed.is_multiple_of(PROGRESS_EVERY_TXNS) {
                progress(&format!("{} txns replayed, at zxid 0x{zxid:x}", state.txns_replayed));
            }
        }
        let end = reader.end().unwrap_or(TxnLogEnd::Eof { offset: bytes.len() as u64 });
        match end {
            TxnLogEnd::Eof { .. } => {}
            TxnLogEnd::ZeroLength { offset } => {
                if let Some(at) = first_nonzero_at_or_after(&bytes, offset) {
                    return fail(format!(
                        "{}: corrupt transaction log at offset {offset}: a zero length, but data follows at offset {at}",
                        path.display()
                    ));
                }
            }
            TxnLogEnd::PartialEntry { offset } => {
                let entry_end = declared_entry_end(&bytes, offset);
                if let Some(at) = first_nonzero_at_or_after(&bytes, entry_end) {
                    return fail(format!(
                        "{}: corrupt transaction log at offset {offset}: the entry there does not end where its \
                         length says, and data follows at offset {at}",
                        path.display()
                    ));
                }
                progress(&format!("{}: leaving out the torn entry at offset {offset}", path.display()));
                state.torn_tails.push((path.clone(), offset));
                if !is_newest {
                    torn_before = Some((path.clone(), offset));
                }
            }
        }
    }
    if logs.is_empty() {
        state.notes.push(format!(
            "no transaction log in {}: if Apache's dataLogDir is not its dataDir, pass --from-log",
            log_dir.display()
        ));
    }
    if let Some(pending) = verifier.pending() {
        state
            .notes
            .push(format!("the snapshot's digest is for zxid 0x{:x}, which the logs never reached", pending.zxid));
    }
    for note in &state.notes {
        progress(&format!("note: {note}"));
    }
    state.tree.set_last_zxid(state.last_zxid);
    Ok(state)
}

fn count_check(state: &mut ApacheState, check: DigestCheck, path: &Path, zxid: i64, progress: &mut dyn FnMut(&str)) {
    match check {
        DigestCheck::Match => state.digests_compared += 1,
        DigestCheck::Mismatch { .. } => {
            state.digests_compared += 1;
            state.digest_mismatches += 1;
            progress(&format!("{}: at zxid 0x{zxid:x}: {check}", path.display()));
        }
        _ => {}
    }
}

fn load_snapshot(path: &Path, name: &str, zxid: i64) -> Result<crate::storage::apache::ApacheSnapshot, String> {
    let raw = read_bounded(path, SNAPSHOT_FILE_MAX_BYTES).map_err(|e| e.0)?;
    if !is_valid_snapshot(name, &raw) {
        return Err("incomplete (does not end with a seal, or lacks its compression magic)".into());
    }
    let plain = SnapshotCompression::from_file_name(name)
        .decompress(&raw, SNAPSHOT_DECOMPRESSED_MAX_BYTES)
        .map_err(|e| format!("offset {}: {e}", e.offset()))?;
    read_snapshot_file(&plain, zxid).map_err(|e| format!("offset {}: {e}", e.offset()))
}

/// Where the entry at `offset` would end by its own length field (checksum
/// l, len i, payload, 'B'), clamped to the file.
fn declared_entry_end(bytes: &[u8], offset: u64) -> u64 {
    let len_at = offset as usize + 8;
    let len = bytes
        .get(len_at..len_at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .unwrap_or(0)
        .max(0) as u64;
    (offset + 12 + len + 1).min(bytes.len() as u64)
}

fn first_nonzero_at_or_after(bytes: &[u8], offset: u64) -> Option<u64> {
    let rest = bytes.get(offset as usize..)?;
    rest.iter().position(|&b| b != 0).map(|i| offset + i as u64)
}

// ----------------------------------------------------------------- export

/// Exports the zoocore data directory `from` (logs under `from_log`,
/// default `from`) as an Apache data directory `to`, which must be missing
/// or empty. Recovery runs as at a server start (so a torn log tail in
/// `from` is cut, as the server would).
pub fn export(
    from: &Path,
    from_log: Option<&Path>,
    to: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ExportSummary, MigrateError> {
    let from_log = from_log.unwrap_or(from);
    let zoocore_snap_dir = snapshot_dir(from);
    let zoocore_log_dir = crate::server::log_writer::log_dir(from_log);
    if !zoocore_snap_dir.is_dir() && !zoocore_log_dir.is_dir() {
        return fail(format!(
            "{} is not a zoocore data directory: neither {} nor {} exists",
            from.display(),
            zoocore_snap_dir.display(),
            zoocore_log_dir.display()
        ));
    }
    ensure_empty_target(to)?;
    progress(&format!("recovering {}", from.display()));
    let mut recovered = recovery::recover(from, from_log, false).map_err(|e| MigrateError(e.0))?;
    recovered.tree.set_last_zxid(recovered.last_zxid);

    let target = to.join(APACHE_VERSION_DIR);
    create_dir(&target)?;
    let name = snapshot_file_name(recovered.last_zxid);
    let written = target.join(&name);
    progress(&format!("writing {}", written.display()));
    write_file_atomically(&target, &name, |out| {
        write_snapshot_file(out, &recovered.tree, &recovered.sessions, EXPORT_SNAPSHOT_LAYOUT).map(|_| ())
    })?;
    let mut copied = copy_epoch_files(&zoocore_snap_dir, &target)?;
    if copy_myid(from, to)? {
        copied.push(MYID_FILE_NAME.to_owned());
    }
    sync_dir(to)?;
    Ok(ExportSummary {
        written,
        last_zxid: recovered.last_zxid,
        snapshot_zxid: recovered.snapshot_zxid,
        txns_replayed: recovered.replayed,
        nodes: recovered.tree.node_count(),
        sessions: recovered.sessions.len(),
        digest: recovered.tree.digest(),
        copied,
    })
}

// ------------------------------------------------------------------ files

/// `to` must be missing (it is created) or an empty directory: a migration
/// never mixes with, or overwrites, existing data.
pub fn ensure_empty_target(to: &Path) -> Result<(), MigrateError> {
    match std::fs::read_dir(to) {
        Ok(mut entries) => {
            if let Some(entry) = entries.next() {
                let name = entry.map(|e| e.file_name().to_string_lossy().into_owned()).unwrap_or_default();
                return fail(format!("refusing to write into {}: it is not empty (holds {name:?})", to.display()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_dir(to),
        Err(e) => fail(format!("cannot use {} as the target: {e}", to.display())),
    }
}

fn create_dir(dir: &Path) -> Result<(), MigrateError> {
    std::fs::create_dir_all(dir).map_err(|e| MigrateError(format!("cannot create {}: {e}", dir.display())))
}

fn file_names(dir: &Path) -> Result<Vec<String>, MigrateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return fail(format!("cannot list {}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| MigrateError(format!("cannot list {}: {e}", dir.display())))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The whole file, refused before reading if longer than `max_bytes`.
fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, MigrateError> {
    let len = std::fs::metadata(path).map_err(|e| MigrateError(format!("cannot read {}: {e}", path.display())))?.len();
    if len > max_bytes {
        return fail(format!("{}: {len} bytes is more than the {max_bytes} this tool reads", path.display()));
    }
    std::fs::read(path).map_err(|e| MigrateError(format!("cannot read {}: {e}", path.display())))
}

/// Copies acceptedEpoch / currentEpoch (validated) from one snapshot
/// directory to another, so an ensemble member keeps its epochs.
fn copy_epoch_files(from: &Path, to: &Path) -> Result<Vec<String>, MigrateError> {
    let mut copied = Vec::new();
    for name in [ACCEPTED_EPOCH_FILE_NAME, CURRENT_EPOCH_FILE_NAME] {
        let epoch = read_epoch_file(from, name).map_err(|e| MigrateError(e.to_string()))?;
        if let Some(epoch) = epoch {
            write_epoch_file(to, name, epoch).map_err(|e| MigrateError(e.to_string()))?;
            copied.push(format!("{name}={epoch}"));
        }
    }
    Ok(copied)
}

/// Copies `from/myid` to `to/myid` if there is one; true if copied.
fn copy_myid(from: &Path, to: &Path) -> Result<bool, MigrateError> {
    let source = from.join(MYID_FILE_NAME);
    if !source.is_file() {
        return Ok(false);
    }
    let contents = read_bounded(&source, MYID_FILE_MAX_BYTES)?;
    write_file_atomically(to, MYID_FILE_NAME, |out| out.write_all(&contents))?;
    Ok(true)
}

/// Writes `dir/name` through `<name>.tmp`, fsync, rename, fsync of `dir`:
/// a crash never leaves a half-written file under the real name.
fn write_file_atomically(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), MigrateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let result = (|| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        write(&mut out)?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!("cannot write {}: {e}", path.display()));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), MigrateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MigrateError(format!("cannot sync {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{op, open_acl_unsafe};
    use crate::storage::apache::TxnLogWriter;
    use crate::storage::snapshot_format::read_snapshot;
    use crate::storage::txn::{Txn, TxnHeader};
    use bytes::BytesMut;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A scratch directory removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(what: &str) -> Scratch {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("zoocore-migrate-{what}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const SESSION: i64 = 0x1234;

    /// The txns 1..=count of a small history (a session, then creates and
    /// setData), each carrying the digest of the tree after it, applied to
    /// `tree` as they are made. Txn i for i >= 2 touches `/n<i>`.
    fn history(tree: &mut DataTree, sessions: &mut BTreeMap<i64, i32>, count: i64) -> Vec<Bytes> {
        let mut out = Vec::new();
        for zxid in 1..=count {
            let (txn_op, txn) = if zxid == 1 {
                (op::CREATE_SESSION, Txn::CreateSession { timeout_ms: 30_000 })
            } else if zxid % 3 == 0 {
                (
                    op::SET_DATA,
                    Txn::SetData { path: format!("/n{}", zxid - 1), data: Some(Bytes::from("v2")), version: 1 },
                )
            } else {
                let cversion = tree.get("/").map(|n| n.stat().cversion).unwrap_or(0) + 1;
                let txn = Txn::Create {
                    path: format!("/n{zxid}"),
                    data: Some(Bytes::from(format!("value {zxid}"))),
                    acl: open_acl_unsafe(),
                    ephemeral: zxid == 4,
                    parent_cversion: cversion,
                };
                (op::CREATE, txn)
            };
            let header = TxnHeader {
                session_id: SESSION,
                cxid: zxid as i32,
                zxid,
                time_ms: 1_700_000_000_000 + zxid,
                op: txn_op,
            };
            let mut logged = LoggedTxn { header, txn, digest: None };
            recovery::apply(tree, sessions, &logged);
            logged.digest = Some(tree.txn_digest());
            out.push(logged.to_bytes());
        }
        tree.set_last_zxid(count);
        out
    }

    /// An Apache log file holding `payloads`, preallocated with zeros;
    /// returns the file and each entry's offset.
    fn log_file(payloads: &[Bytes]) -> (Vec<u8>, Vec<u64>) {
        let mut writer = TxnLogWriter::new(4096);
        let mut out = BytesMut::new();
        writer.start(&mut out);
        let mut offsets = Vec::new();
        for p in payloads {
            offsets.push(out.len() as u64);
            writer.append(p, &mut out).unwrap();
        }
        let mut file = out.to_vec();
        file.resize(writer.file_len() as usize, 0);
        (file, offsets)
    }

    fn snapshot_bytes(tree: &DataTree, sessions: &BTreeMap<i64, i32>) -> Vec<u8> {
        let mut file = Vec::new();
        write_snapshot_file(&mut file, tree, sessions, SnapshotLayout::V36).unwrap();
        file
    }

    /// An Apache dataDir: snapshot.2, snapshot.5, log.1 (txns 1..=5) and
    /// log.6 (txns 6..=8), epoch files and myid. Returns the final tree.
    fn apache_dir(dir: &Path) -> (DataTree, Vec<u64>) {
        let version = dir.join(APACHE_VERSION_DIR);
        std::fs::create_dir_all(&version).unwrap();
        let (mut tree, mut sessions) = (DataTree::new(), BTreeMap::new());
        let payloads = history(&mut tree, &mut sessions, 8);
        let mut replay = (DataTree::new(), BTreeMap::new());
        for (i, p) in payloads.iter().enumerate() {
            let logged = LoggedTxn::decode(p.clone()).unwrap();
            recovery::apply(&mut replay.0, &mut replay.1, &logged);
            let zxid = i as i64 + 1;
            if zxid == 2 || zxid == 5 {
                replay.0.set_last_zxid(zxid);
                std::fs::write(version.join(snapshot_file_name(zxid)), snapshot_bytes(&replay.0, &replay.1)).unwrap();
            }
        }
        let (log1, _) = log_file(&payloads[..5]);
        let (log6, offsets6) = log_file(&payloads[5..]);
        std::fs::write(version.join("log.1"), log1).unwrap();
        std::fs::write(version.join("log.6"), log6).unwrap();
        std::fs::write(version.join(CURRENT_EPOCH_FILE_NAME), "0").unwrap();
        std::fs::write(version.join(ACCEPTED_EPOCH_FILE_NAME), "1").unwrap();
        std::fs::write(dir.join(MYID_FILE_NAME), "3\n").unwrap();
        (tree, offsets6)
    }

    fn same_tree(a: &DataTree, b: &DataTree) {
        assert_eq!(a.node_count(), b.node_count());
        for (path, node) in a.iter() {
            let other = b.get(if path.is_empty() { "/" } else { path }).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(node.data(), other.data(), "{path}");
            assert_eq!(node.stored_stat(), other.stored_stat(), "{path}");
            assert_eq!(&node.acl()[..], &other.acl()[..], "{path}");
        }
        assert_eq!(a.digest(), b.digest());
    }

    fn quiet() -> impl FnMut(&str) {
        |_line: &str| {}
    }

    #[test]
    fn import_then_export_keeps_tree_sessions_epochs_and_myid() {
        let scratch = Scratch::new("roundtrip");
        let (apache, zoo, back) = (scratch.0.join("apache"), scratch.0.join("zoo"), scratch.0.join("back"));
        let (expected, _) = apache_dir(&apache);
        let summary = import(&apache, None, &zoo, &mut quiet()).unwrap();
        assert_eq!(summary.state.snapshot_zxid, 5, "the newest snapshot");
        assert_eq!((summary.state.txns_replayed, summary.state.last_zxid), (3, 8));
        assert!(summary.state.digests_compared >= 3, "every txn's digest compared");
        assert_eq!(summary.state.digest_mismatches, 0);
        assert!(summary.to_string().contains("last zxid:        0x8"), "{summary}");
        let snap = read_snapshot(&std::fs::read(snapshot_dir(&zoo).join("snapshot.8")).unwrap()).unwrap();
        assert_eq!(snap.last_zxid, 8);
        assert_eq!(snap.sessions, vec![(SESSION, 30_000)]);
        same_tree(&snap.tree, &expected);
        assert_eq!(read_epoch_file(&snapshot_dir(&zoo), ACCEPTED_EPOCH_FILE_NAME).unwrap(), Some(1));
        assert_eq!(read_epoch_file(&snapshot_dir(&zoo), CURRENT_EPOCH_FILE_NAME).unwrap(), Some(0));
        assert_eq!(std::fs::read_to_string(zoo.join(MYID_FILE_NAME)).unwrap(), "3\n");

        let exported = export(&zoo, None, &back, &mut quiet()).unwrap();
        assert_eq!((exported.last_zxid, exported.sessions), (8, 1));
        let version = back.join(APACHE_VERSION_DIR);
        let file = std::fs::read(version.join(snapshot_file_name(8))).unwrap();
        let apache_snap = read_snapshot_file(&file, 8).unwrap();
        same_tree(&apache_snap.tree, &expected);
        assert_eq!(apache_snap.digest.map(|d| (d.zxid, d.digest)), Some((8, expected.digest())));
        assert_eq!(read_epoch_file(&version, ACCEPTED_EPOCH_FILE_NAME).unwrap(), Some(1));
        assert_eq!(std::fs::read_to_string(back.join(MYID_FILE_NAME)).unwrap(), "3\n");
        // The exported directory imports again to the same tree.
        let again = read_apache_dir(&version, &version, &mut quiet()).unwrap();
        same_tree(&again.tree, &expected);
    }

    #[test]
    fn reads_gzip_snapshots_and_a_separate_log_dir() {
        use std::io::Write as _;
        let scratch = Scratch::new("gz-logdir");
        let (apache, logs, zoo) = (scratch.0.join("apache"), scratch.0.join("logs"), scratch.0.join("zoo"));
        let (expected, _) = apache_dir(&apache);
        let version = apache.join(APACHE_VERSION_DIR);
        let plain = version.join(snapshot_file_name(5));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        std::fs::write(version.join(format!("{}.gz", snapshot_file_name(5))), gz.finish().unwrap()).unwrap();
        std::fs::remove_file(&plain).unwrap();
        std::fs::create_dir_all(logs.join(APACHE_VERSION_DIR)).unwrap();
        for name in ["log.1", "log.6"] {
            std::fs::rename(version.join(name), logs.join(APACHE_VERSION_DIR).join(name)).unwrap();
        }
        let summary = import(&apache, Some(&logs), &zoo, &mut quiet()).unwrap();
        assert_eq!((summary.state.snapshot_zxid, summary.state.last_zxid), (5, 8));
        same_tree(&summary.state.tree, &expected);
        // Without the log directory the txns after the snapshot are not found.
        let zoo2 = scratch.0.join("zoo2");
        let without = import(&apache, None, &zoo2, &mut quiet()).unwrap();
        assert_eq!(without.state.last_zxid, 5);
        assert!(without.to_string().contains("pass --from-log"), "{without}");
    }

    #[test]
    fn a_corrupt_newest_snapshot_falls_back_to_an_older_one() {
        let scratch = Scratch::new("fallback");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        let (expected, _) = apache_dir(&apache);
        let newest = apache.join(APACHE_VERSION_DIR).join(snapshot_file_name(5));
        let mut bytes = std::fs::read(&newest).unwrap();
        // A flipped byte inside the body: the file still ends with a seal,
        // so only the Adler-32 check can catch it.
        bytes[40] ^= 0x55;
        std::fs::write(&newest, bytes).unwrap();
        let summary = import(&apache, None, &zoo, &mut quiet()).unwrap();
        assert_eq!(summary.state.snapshot_zxid, 2, "fell back to snapshot.2");
        assert_eq!(summary.state.skipped_snapshots.len(), 1);
        assert_eq!(summary.state.skipped_snapshots[0].0, newest);
        assert_eq!((summary.state.txns_replayed, summary.state.last_zxid), (6, 8));
        same_tree(&summary.state.tree, &expected);
        assert!(summary.to_string().contains("snapshot skipped"), "{summary}");
    }

    #[test]
    fn a_corrupt_entry_in_the_middle_of_a_log_is_an_error_naming_file_and_offset() {
        let scratch = Scratch::new("corrupt-log");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        let (_, offsets) = apache_dir(&apache);
        let log = apache.join(APACHE_VERSION_DIR).join("log.6");
        let mut bytes = std::fs::read(&log).unwrap();
        // The payload of the second of three entries.
        bytes[offsets[1] as usize + 12 + 20] ^= 0xff;
        std::fs::write(&log, bytes).unwrap();
        let err = import(&apache, None, &zoo, &mut quiet()).err().expect("corruption must stop the import");
        assert!(err.0.contains(&log.display().to_string()), "{err}");
        assert!(err.0.contains(&format!("offset {}", offsets[1])), "{err}");
    }

    #[test]
    fn a_torn_last_entry_of_the_newest_log_is_left_out() {
        let scratch = Scratch::new("torn");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        let (_, offsets) = apache_dir(&apache);
        let log = apache.join(APACHE_VERSION_DIR).join("log.6");
        let mut bytes = std::fs::read(&log).unwrap();
        // The last entry was being written: its second half (and 'B') never landed.
        let last = offsets[2] as usize;
        let len = i32::from_be_bytes(bytes[last + 8..last + 12].try_into().unwrap()) as usize;
        bytes[last + 12 + len / 2..last + 12 + len + 1].fill(0);
        std::fs::write(&log, &bytes).unwrap();
        let summary = import(&apache, None, &zoo, &mut quiet()).unwrap();
        assert_eq!(summary.state.last_zxid, 7);
        assert_eq!(summary.state.torn_tails, vec![(log.clone(), offsets[2])]);
        // The same damage with data after it is corruption, not a tail.
        let end = last + 12 + len + 1;
        bytes[end + 100] = 7;
        std::fs::write(&log, &bytes).unwrap();
        let zoo2 = scratch.0.join("zoo2");
        let err = import(&apache, None, &zoo2, &mut quiet()).err().expect("data after a torn entry");
        assert!(err.0.contains(&format!("offset {last}")) && err.0.contains("log.6"), "{err}");
    }

    #[test]
    fn a_torn_entry_ending_an_older_log_is_fine_only_if_the_next_log_continues() {
        let scratch = Scratch::new("torn-older");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        apache_dir(&apache);
        let version = apache.join(APACHE_VERSION_DIR);
        // Apache crashed while writing txn 6 to log.1, restarted and wrote
        // txn 6 again to a new log.6.
        let (mut tree, mut sessions) = (DataTree::new(), BTreeMap::new());
        let payloads = history(&mut tree, &mut sessions, 8);
        let (mut log1, offsets) = log_file(&payloads[..6]);
        let torn = offsets[5] as usize;
        log1[torn + 20..torn + 12 + payloads[5].len() + 1].fill(0);
        std::fs::write(version.join("log.1"), &log1).unwrap();
        let summary = import(&apache, None, &zoo, &mut quiet()).unwrap();
        assert_eq!(summary.state.last_zxid, 8);
        assert_eq!(summary.state.torn_tails, vec![(version.join("log.1"), offsets[5])]);
        // Without txn 6 in a later log, the torn entry lost data: an error
        // naming the torn file and offset.
        let (log7, _) = log_file(&payloads[6..]);
        std::fs::remove_file(version.join("log.6")).unwrap();
        std::fs::write(version.join("log.7"), log7).unwrap();
        let err = import(&apache, None, &scratch.0.join("zoo2"), &mut quiet()).err().expect("lost txn 6");
        assert!(err.0.contains("log.1") && err.0.contains(&format!("offset {torn}")), "{err}");
    }

    #[test]
    fn a_gap_between_logs_is_an_error() {
        let scratch = Scratch::new("gap");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        apache_dir(&apache);
        let version = apache.join(APACHE_VERSION_DIR);
        // Without snapshot.5, log.1 is needed from zxid 3; cut its last two entries.
        std::fs::remove_file(version.join(snapshot_file_name(5))).unwrap();
        let (mut tree, mut sessions) = (DataTree::new(), BTreeMap::new());
        let payloads = history(&mut tree, &mut sessions, 3);
        std::fs::write(version.join("log.1"), log_file(&payloads).0).unwrap();
        let err = import(&apache, None, &zoo, &mut quiet()).err().expect("a gap");
        assert!(err.0.contains("log.6") && err.0.contains("missing"), "{err}");
    }

    #[test]
    fn non_empty_targets_are_refused() {
        let scratch = Scratch::new("target");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        apache_dir(&apache);
        std::fs::create_dir_all(&zoo).unwrap();
        std::fs::write(zoo.join("leftover"), "x").unwrap();
        let err = import(&apache, None, &zoo, &mut quiet()).err().expect("non-empty target");
        assert!(err.0.contains("not empty") && err.0.contains("leftover"), "{err}");
        // An empty directory is fine.
        std::fs::remove_file(zoo.join("leftover")).unwrap();
        import(&apache, None, &zoo, &mut quiet()).unwrap();
        let err = import(&apache, None, &zoo, &mut quiet()).err().expect("import twice");
        assert!(err.0.contains("not empty"), "{err}");
        let err = export(&zoo, None, &apache, &mut quiet()).err().expect("export over Apache's data");
        assert!(err.0.contains("not empty"), "{err}");
        let err =
            import(&scratch.0.join("apache-typo"), None, &scratch.0.join("t2"), &mut quiet()).err().expect("no source");
        assert!(err.0.contains("not an Apache data directory"), "{err}");
        assert!(!scratch.0.join("t2").exists(), "nothing is created when the source is wrong");
        let err =
            export(&scratch.0.join("nothing"), None, &scratch.0.join("out"), &mut quiet()).err().expect("no source");
        assert!(err.0.contains("not a zoocore data directory"), "{err}");
    }

    #[test]
    fn an_invalid_epoch_file_stops_the_import() {
        let scratch = Scratch::new("epoch");
        let (apache, zoo) = (scratch.0.join("apache"), scratch.0.join("zoo"));
        apache_dir(&apache);
        std::fs::write(apache.join(APACHE_VERSION_DIR).join(CURRENT_EPOCH_FILE_NAME), "garbage").unwrap();
        let err = import(&apache, None, &zoo, &mut quiet()).err().expect("bad epoch file");
        assert!(err.0.contains(CURRENT_EPOCH_FILE_NAME), "{err}");
    }
}
