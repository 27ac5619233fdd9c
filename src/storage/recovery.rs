//! Start-up recovery, sans-IO: the newest snapshot whose seal verifies
//! (falling back to older ones), then every logged transaction after it,
//! in zxid order, with the checks that keep a damaged or incomplete history
//! from being served.
//!
//! The files come through `RecoveryStore`: production's data directory
//! (`server::recovery`, mapped files) and the simulator's disk
//! (`sim::peer`) both implement it, so the simulator tortures this very
//! code. A torn tail at the end of the newest log is cut (through the
//! store); corruption anywhere else stops start-up with a message naming
//! the file and offset, unless `repair` is set, in which case the log is cut
//! at the first bad batch and every later log set aside.
//!
//! Zxids must follow each other by `log_format::zxid_follows` (the next
//! counter, or counter 1 of a higher epoch); a gap stops start-up.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::storage::log_format::{decode_file_header, scan_log, zxid_follows, Tail};
use crate::storage::txn::{LoggedTxn, Txn};
use crate::tree::DataTree;

/// What the commit shard starts from.
pub struct Recovered {
    pub tree: DataTree,
    pub last_zxid: i64,
    /// Live sessions (id -> timeout); re-armed with a fresh deadline at start.
    pub sessions: BTreeMap<i64, i32>,
    pub snapshot_zxid: i64,
    pub replayed: u64,
    /// The newest replayed txns, oldest first (at most
    /// `RecoveryOptions::recent_window_txns`): a new leader DIFFs from them.
    pub recent_txns: VecDeque<(i64, Bytes)>,
}

#[derive(Debug)]
pub struct RecoveryError(pub String);

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot as a store reads it: the zxid inside, the tree and sessions.
pub struct LoadedSnapshot {
    pub last_zxid: i64,
    pub tree: DataTree,
    pub sessions: BTreeMap<i64, i32>,
}

/// Why a snapshot could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSkip {
    /// The file could not be read at all.
    Unreadable,
    /// Its seal, end marker or contents do not verify.
    DoesNotVerify,
    /// It holds another zxid than its name says.
    NameMismatch,
}

/// Things recovery did or passed over, for the store to log (production)
/// or trace (the simulator).
pub enum RecoveryNote<'a> {
    /// A snapshot could not be used; an older one is tried next.
    SnapshotSkipped {
        name: &'a str,
        skip: SnapshotSkip,
        why: &'a str,
        older_left: bool,
    },
    SnapshotLoaded {
        name: &'a str,
        zxid: i64,
        nodes: usize,
    },
    /// The newest log's header never reached the disk: the file is removed.
    LogNeverWritten {
        name: &'a str,
        why: &'a str,
    },
    TornTailCut {
        name: &'a str,
        offset: u64,
        reason: &'a str,
    },
    RepairCut {
        name: &'a str,
        offset: u64,
        reason: &'a str,
    },
    RepairSetAside {
        name: &'a str,
        to: &'a str,
    },
    /// The newest log holds no transaction (crash before its first batch
    /// was durable, or all of it cut): removed, so its name can be reused.
    EmptyNewestRemoved {
        name: &'a str,
    },
}

/// The files recovery reads and the few changes it makes to them.
pub trait RecoveryStore {
    /// Snapshot candidates, newest first: (the zxid the name gives, an id
    /// for `load_snapshot`).
    fn snapshots(&mut self) -> Vec<(i64, usize)>;
    fn snapshot_name(&self, id: usize) -> String;
    /// Reads and verifies a snapshot (its seal), or says why it cannot.
    fn load_snapshot(&mut self, id: usize) -> Result<LoadedSnapshot, (SnapshotSkip, String)>;
    /// Log files' first zxids (from their names), oldest first.
    fn logs(&mut self) -> Vec<i64>;
    fn log_name(&self, index: usize) -> String;
    fn read_log(&mut self, index: usize) -> Result<Bytes, String>;
    /// Shortens a log to `offset` bytes, durably. Recovery holds no bytes
    /// of it when it asks.
    fn cut_log(&mut self, index: usize, offset: u64) -> Result<(), String>;
    fn remove_log(&mut self, index: usize) -> Result<(), String>;
    /// Moves a log out of the listing (repair); returns where it went.
    fn set_log_aside(&mut self, index: usize) -> Result<String, String>;
    fn note(&mut self, note: RecoveryNote<'_>);
    /// The snapshot recovery starts from (not called when none is used).
    fn snapshot_chosen(&mut self, _id: usize, _tree: &DataTree) {}
    /// A txn was replayed onto `tree`.
    fn replayed(&mut self, _zxid: i64, _payload: &Bytes, _tree: &DataTree) {}
}

#[derive(Debug, Clone, Copy)]
pub struct RecoveryOptions {
    /// Cut at the first corrupt batch instead of refusing to start.
    pub repair: bool,
    /// How many of the newest txns `Recovered::recent_txns` keeps.
    pub recent_window_txns: usize,
    /// Refuse a replay whose tree disagrees with a txn's carried digest.
    /// Always on in production; off only in the simulator, to show the
    /// finding the check fixed.
    pub check_txn_digests: bool,
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

/// True when nothing but zeros follows the first sector: no batch was ever
/// written to the file (a torn header write can only touch that sector).
fn never_appended(bytes: &[u8]) -> bool {
    bytes.get(512..).is_none_or(|rest| rest.iter().all(|&b| b == 0))
}

pub fn recover_from<S: RecoveryStore>(store: &mut S, options: RecoveryOptions) -> Result<Recovered, RecoveryError> {
    let mut tree = DataTree::new();
    let mut sessions = BTreeMap::new();
    let mut snapshot_zxid = 0;
    // Newer snapshots that could not be used: the log may continue their
    // state across an epoch jump, which the replay must then not bridge.
    let mut unusable_snapshots = Vec::new();
    let candidates = store.snapshots();
    for (position, &(zxid, id)) in candidates.iter().enumerate() {
        let older_left = position + 1 < candidates.len();
        unusable_snapshots.push(zxid);
        let name = store.snapshot_name(id);
        match store.load_snapshot(id) {
            Ok(snap) if snap.last_zxid != zxid => {
                let why = format!("it holds 0x{:x}", snap.last_zxid);
                let skip = SnapshotSkip::NameMismatch;
                store.note(RecoveryNote::SnapshotSkipped { name: &name, skip, why: &why, older_left });
            }
            Ok(snap) => {
                unusable_snapshots.pop();
                tree = snap.tree;
                sessions = snap.sessions;
                snapshot_zxid = zxid;
                store.note(RecoveryNote::SnapshotLoaded { name: &name, zxid, nodes: tree.node_count() });
                store.snapshot_chosen(id, &tree);
                break;
            }
            Err((skip, why)) => store.note(RecoveryNote::SnapshotSkipped { name: &name, skip, why: &why, older_left }),
        }
    }

    let logs = store.logs();
    // Start from the newest log that begins at or before the first zxid we
    // need (the rule autopurge keeps logs by).
    let start = super::retention::first_log_needed(&logs, snapshot_zxid);
    let mut last_zxid = snapshot_zxid;
    let mut replayed = 0u64;
    let mut recent_txns = VecDeque::new();
    let mut newest_without_records: Option<usize> = None;
    for index in start..logs.len() {
        let first = logs[index];
        let is_last = index + 1 == logs.len();
        let name = store.log_name(index);
        let bytes = store.read_log(index).map_err(|e| RecoveryError(format!("cannot read {name}: {e}")))?;
        let header = match decode_file_header(&bytes) {
            Ok(h) => h,
            // The writer creates and preallocates a file, then writes and
            // syncs its header before any batch. A newest file with a broken
            // header and nothing but zeros after its first sector is one the
            // server stopped while creating: it holds no transaction.
            Err(e) if is_last && never_appended(&bytes) => {
                store.note(RecoveryNote::LogNeverWritten { name: &name, why: &e.to_string() });
                drop(bytes);
                store.remove_log(index).map_err(RecoveryError)?;
                break;
            }
            Err(e) => return Err(RecoveryError(format!("{name}: {e}"))),
        };
        let scan = scan_log(&bytes, header.block_size).map_err(|e| RecoveryError(format!("{name}: {e}")))?;
        if let Some(record) = scan.records.first() {
            if first > last_zxid + 1 && record.zxid > last_zxid && !zxid_follows(last_zxid, record.zxid) {
                return Err(RecoveryError(format!(
                    "{name}: offset {}: transactions after 0x{last_zxid:x} are missing (the log starts at 0x{:x}); \
                     refusing to start with a gap",
                    record.offset(),
                    record.zxid
                )));
            }
        }
        let mut replayed_from_this_log = 0usize;
        for record in &scan.records {
            let zxid = record.zxid;
            if zxid <= last_zxid {
                continue;
            }
            // A jump (counter 1 of a higher epoch) over a snapshot that
            // does not verify: the txns before the jump may be only in that
            // snapshot (a SNAP-synced learner logs the leader's next epoch
            // right after it), and txns without a carried digest (error
            // txns) would let the wrong state through unseen. Found by the
            // simulator (seed 181, 5 servers, --snap-count 20).
            if zxid != last_zxid + 1 && options.check_txn_digests {
                if let Some(skipped) = unusable_snapshots.iter().find(|s| **s > last_zxid && **s < zxid) {
                    return Err(RecoveryError(format!(
                        "{name}: offset {}: the log goes from 0x{last_zxid:x} to 0x{zxid:x} past snapshot 0x{skipped:x}, \
                         which could not be read: the transactions in between are only in it. Refusing to start; \
                         restore this server's data, or (in an ensemble) remove it and let the server sync from the leader",
                        record.offset()
                    )));
                }
            }
            // The next counter, or counter 1 of a higher epoch (a new ZAB
            // leader's first proposal); anything else is a gap.
            if !zxid_follows(last_zxid, zxid) {
                return Err(RecoveryError(format!(
                    "{name}: offset {}: expected transaction 0x{:x} (or counter 1 of a higher epoch) after 0x{last_zxid:x} \
                     but found 0x{zxid:x}",
                    record.offset(),
                    last_zxid + 1
                )));
            }
            let payload = bytes.slice(record.payload.clone());
            let rec = LoggedTxn::decode(payload.clone())
                .map_err(|e| RecoveryError(format!("{name}: transaction 0x{zxid:x} does not decode: {e}")))?;
            apply(&mut tree, &mut sessions, &rec);
            // Each txn carries the tree digest its leader (or this server)
            // had after it. A replay that disagrees does not continue the
            // history the txn was written on: txns before it are missing
            // (a snapshot or older log that could not be read, an epoch's
            // txns lost), and serving this state would diverge silently.
            // Found by the simulator (seeds 247 and 1004, docs/simulation.md).
            if options.check_txn_digests {
                let check = tree.check_txn_digest(rec.digest);
                if check.is_mismatch() {
                    return Err(RecoveryError(format!(
                        "{name}: offset {}: replaying transaction 0x{zxid:x} gives another tree than the one it was \
                         written on ({check}): the history before it is incomplete. Refusing to start; restore this \
                         server's data, or (in an ensemble) remove it and let the server sync from the leader",
                        record.offset()
                    )));
                }
            }
            store.replayed(zxid, &payload, &tree);
            // A slice for now (no copy): most of these fall out of the
            // window before this file is done; the survivors are copied
            // below, before the file's bytes are released.
            recent_txns.push_back((zxid, payload));
            if recent_txns.len() > options.recent_window_txns {
                recent_txns.pop_front();
            }
            replayed_from_this_log += 1;
            last_zxid = zxid;
            replayed += 1;
        }
        // The window's entries from this file are slices of its buffer (a
        // mapped file in production): copied out, so that the window pins
        // ~500 small txns, not the whole file, and no slice outlives the
        // mapping a cut below may shorten.
        let from_this_log = replayed_from_this_log.min(recent_txns.len());
        let first_from_this_log = recent_txns.len() - from_this_log;
        for (_, payload) in recent_txns.range_mut(first_from_this_log..) {
            *payload = Bytes::copy_from_slice(payload);
        }
        // The writer opens `log.<next zxid>` with create_new; a newest file
        // left without a transaction (crash before its first batch was
        // durable, or all of it cut) carries that very name.
        newest_without_records = if scan.records.is_empty() { Some(index) } else { None };
        // Released before a cut may shorten the file (a mapping must not
        // outlive the bytes under it).
        drop(bytes);
        match &scan.tail {
            Tail::Clean => {}
            Tail::Torn { offset, reason } if is_last => {
                store.note(RecoveryNote::TornTailCut { name: &name, offset: *offset, reason });
                store.cut_log(index, *offset).map_err(RecoveryError)?;
            }
            // A newer file is only started once every write to this one is
            // durable (one write in flight, `storage::group_commit`), so a
            // damaged tail here is not a torn write: acknowledged data was
            // lost. Treated as corruption.
            Tail::Torn { offset, reason } | Tail::Corrupt { offset, reason } => {
                let reason =
                    if is_last { reason.clone() } else { format!("{reason} (in a log that is not the newest)") };
                if options.repair {
                    store.note(RecoveryNote::RepairCut { name: &name, offset: *offset, reason: &reason });
                    store.cut_log(index, *offset).map_err(RecoveryError)?;
                    // Later files would leave a gap: set them aside, each
                    // under a name the listing no longer picks up.
                    for later in index + 1..logs.len() {
                        let later_name = store.log_name(later);
                        if let Ok(to) = store.set_log_aside(later) {
                            store.note(RecoveryNote::RepairSetAside { name: &later_name, to: &to });
                        }
                    }
                    break;
                }
                return Err(RecoveryError(format!(
                    "{name}: corrupt transaction log at offset {offset}: {reason}. Start with --repair to cut the log there (transactions after it are lost)"
                )));
            }
        }
    }
    if let Some(index) = newest_without_records {
        let name = store.log_name(index);
        store.note(RecoveryNote::EmptyNewestRemoved { name: &name });
        store.remove_log(index).map_err(RecoveryError)?;
    }
    tree.set_last_zxid(last_zxid);
    Ok(Recovered { tree, last_zxid, sessions, snapshot_zxid, replayed, recent_txns })
}
