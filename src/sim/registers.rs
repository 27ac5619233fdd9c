//! The register / compare-and-set workload and what its clients observed,
//! for the `linearizable` checker (`linearize`).
//!
//! A few keys (`/r0`..) are created once (data `r0`, version 0), then
//! clients write them blindly (setData version -1), conditionally (setData
//! with the version they last saw: ok with the new version, or
//! BadVersion), and read them with sync + getData on any serving server.
//! Writes go where the other client writes go (an established leader);
//! every written value is unique (`r<id>`), so a read names the write it
//! saw. Each op keeps its invocation and answer time (simulated ms); an op
//! never answered is indeterminate.

use std::collections::BTreeMap;

use super::linearize::{self, Answer, OpKind, RegOp, RegState, Verdict};
use crate::proto::ErrorCode;
use crate::tree::{DataTree, WriteResult};

/// Register keys (`/r0`..`/r3`).
pub const REGISTER_KEYS: u64 = 4;
/// Client labels ops are drawn from (each has its own view of versions).
pub const REGISTER_CLIENTS: u64 = 4;
/// Register op ids start here: disjoint from the write ids (a counter)
/// and the sync / watch tokens.
pub const REGISTER_OP_ID_BASE: u64 = 1 << 48;
/// The checker's work bound per key (search steps).
pub const LINEARIZE_MAX_STEPS_PER_KEY: u64 = 2_000_000;
/// The initial value id (the create's data `r0`).
const INITIAL_VALUE: u64 = 0;
/// A read of data that names no value the workload wrote.
const UNKNOWN_VALUE: u64 = u64::MAX;

pub fn register_path(key: u64) -> String {
    format!("/r{key}")
}

pub fn is_register_op(id: u64) -> bool {
    id >= REGISTER_OP_ID_BASE
}

pub fn value_data(value: u64) -> bytes::Bytes {
    bytes::Bytes::from(format!("r{value}"))
}

/// What the leader's execute told the client (delivered when published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAnswer {
    /// A create or setData succeeded; the answer's stat version.
    Ok {
        version: i32,
    },
    Err(ErrorCode),
}

impl WriteAnswer {
    pub fn of(result: &Result<WriteResult, ErrorCode>) -> WriteAnswer {
        match result {
            Ok(WriteResult::Stat(stat)) => WriteAnswer::Ok { version: stat.version },
            Ok(WriteResult::Created { stat, .. }) => WriteAnswer::Ok { version: stat.version },
            Ok(_) => WriteAnswer::Err(ErrorCode::SystemError),
            Err(e) => WriteAnswer::Err(*e),
        }
    }
}

#[derive(Debug)]
struct Pending {
    key: u64,
    /// A create of the key (setup), not part of the history.
    create: bool,
    /// Set by the executing leader; delivered when its batch is published.
    executed: Option<WriteAnswer>,
    /// The client's plain-read connection (server, generation), if the
    /// write went to the server that connection is on (read-your-writes
    /// applies while the client is still on that connection).
    own_connection: Option<(crate::zab::ensemble::Sid, u64)>,
}

/// A register client's connection for plain reads: it stays on one server
/// until that server drops its clients (restart, end of a role), as a
/// ZooKeeper session's connection does.
#[derive(Debug, Clone)]
pub struct StickyConn {
    pub sid: crate::zab::ensemble::Sid,
    /// The server's `client_generation` when the client connected.
    pub generation: u64,
    /// Per key, the lowest version its next plain read may see, and why.
    floor: BTreeMap<u64, (i32, String)>,
}

/// The workload's state and every op's history.
#[derive(Debug, Default)]
pub struct Registers {
    next_id: u64,
    /// Per key: known to exist (a create answered ok or NodeExists).
    exists: BTreeMap<u64, bool>,
    /// (client, key) -> the newest version that client saw.
    seen_version: BTreeMap<(u64, u64), i32>,
    pending: BTreeMap<u64, Pending>,
    /// Per key, the history (ops in invocation order).
    pub history: BTreeMap<u64, Vec<RegOp>>,
    pub ops_invoked: u64,
    pub ops_answered: u64,
    pub keys_checked: u64,
    pub inconclusive: u64,
    /// Plain-read connections per client.
    pub sticky: BTreeMap<u64, StickyConn>,
    pub sticky_reads: u64,
}

impl StickyConn {
    pub fn new(sid: crate::zab::ensemble::Sid, generation: u64) -> StickyConn {
        StickyConn { sid, generation, floor: BTreeMap::new() }
    }
}

impl Registers {
    pub fn exists(&self, key: u64) -> bool {
        self.exists.get(&key).copied().unwrap_or(false)
    }

    pub fn seen_version(&self, client: u64, key: u64) -> i32 {
        self.seen_version.get(&(client, key)).copied().unwrap_or(0)
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        REGISTER_OP_ID_BASE + self.next_id
    }

    /// A setup create of `key`, invoked now: its id.
    pub fn invoke_create(&mut self, key: u64) -> u64 {
        let id = self.new_id();
        self.pending.insert(id, Pending { key, create: true, executed: None, own_connection: None });
        id
    }

    /// A history op invoked now: its id (and, for writes, the value id).
    pub fn invoke(&mut self, key: u64, client: u64, server: crate::zab::ensemble::Sid, kind: OpKind, now: u64) -> u64 {
        let id = self.new_id();
        let kind = match kind {
            OpKind::Write { .. } => OpKind::Write { value: id - REGISTER_OP_ID_BASE },
            OpKind::Cas { expected, .. } => OpKind::Cas { expected, value: id - REGISTER_OP_ID_BASE },
            OpKind::Read => OpKind::Read,
        };
        self.ops_invoked += 1;
        let own_connection = self.sticky.get(&client).filter(|c| c.sid == server).map(|c| (c.sid, c.generation));
        self.pending.insert(id, Pending { key, create: false, executed: None, own_connection });
        let op =
            RegOp { id, client: client as u32, server, kind, call_ms: now, return_ms: None, answer: Answer::Unknown };
        self.history.entry(key).or_default().push(op);
        id
    }

    /// The leader executed op `id` with this result (not yet answered).
    pub fn executed(&mut self, id: u64, answer: WriteAnswer) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.executed = Some(answer);
        }
    }

    fn op_mut(&mut self, key: u64, id: u64) -> Option<&mut RegOp> {
        // Ops are pushed in id order.
        let ops = self.history.get_mut(&key)?;
        let at = ops.binary_search_by_key(&id, |o| o.id).ok()?;
        ops.get_mut(at)
    }

    fn learn(&mut self, client: u64, key: u64, version: i32) {
        let seen = self.seen_version.entry((client, key)).or_insert(version);
        *seen = (*seen).max(version);
    }

    /// The write or CAS `id` was answered now (its batch published). A
    /// line for the trace.
    pub fn write_answered(&mut self, id: u64, now: u64) -> Option<String> {
        let p = self.pending.remove(&id)?;
        let answer = p.executed?;
        if p.create {
            let exists = matches!(answer, WriteAnswer::Ok { .. } | WriteAnswer::Err(ErrorCode::NodeExists));
            if exists {
                self.exists.insert(p.key, true);
            }
            return Some(format!("register {} created: {answer:?}", register_path(p.key)));
        }
        self.ops_answered += 1;
        let op = self.op_mut(p.key, id)?;
        op.return_ms = Some(now);
        op.answer = match answer {
            WriteAnswer::Ok { version } => Answer::Set { version },
            WriteAnswer::Err(ErrorCode::BadVersion) => Answer::BadVersion,
            // Anything else: an answer the model has no room for; kept as
            // unknown (it may or may not have taken effect) and shown.
            WriteAnswer::Err(_) => Answer::Unknown,
        };
        let (client, line) = (op.client as u64, op.describe());
        if let WriteAnswer::Ok { version } = answer {
            self.learn(client, p.key, version);
            // Read-your-writes: answered by the server its reads stay on,
            // on the same connection (generations count per server, so
            // another server's connection may carry the same number).
            if let Some(c) = self.sticky.get_mut(&client).filter(|c| Some((c.sid, c.generation)) == p.own_connection) {
                let floor = c.floor.entry(p.key).or_insert((version, String::new()));
                if version >= floor.0 {
                    *floor = (version, format!("its own write answered at t={now}"));
                }
            }
        }
        Some(format!("register {line}"))
    }

    /// The server turned write `id` away before executing it: it never
    /// takes effect, so it leaves the history.
    pub fn write_refused(&mut self, id: u64) {
        let Some(p) = self.pending.get(&id) else { return };
        if p.executed.is_some() {
            return;
        }
        let key = p.key;
        self.pending.remove(&id);
        if let Some(ops) = self.history.get_mut(&key) {
            ops.retain(|o| o.id != id);
        }
    }

    /// The sync + read `id` was answered now from `tree`.
    pub fn read_answered(&mut self, id: u64, tree: &DataTree, now: u64) -> Option<String> {
        let p = self.pending.remove(&id)?;
        let path = register_path(p.key);
        let state = tree.get(&path).map(|n| RegState {
            value: n
                .data()
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|s| s.strip_prefix('r'))
                .and_then(|s| s.parse().ok())
                .unwrap_or(UNKNOWN_VALUE),
            version: n.version(),
        });
        self.ops_answered += 1;
        let op = self.op_mut(p.key, id)?;
        op.return_ms = Some(now);
        op.answer = Answer::Read { state };
        let (client, line) = (op.client as u64, op.describe());
        if let Some(s) = state {
            self.learn(client, p.key, s.version);
        }
        Some(format!("register {line}"))
    }

    /// The sync `id` was refused: the read never happened.
    pub fn read_refused(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            if let Some(ops) = self.history.get_mut(&p.key) {
                ops.retain(|o| o.id != id);
            }
        }
    }

    /// Client `client`'s plain read of `key` on its connection saw
    /// `version` (-1: no node) at `now`: monotonic reads and
    /// read-your-writes on one connection. The violation, if any.
    pub fn sticky_read(&mut self, client: u64, key: u64, version: i32, now: u64) -> Option<String> {
        self.sticky_reads += 1;
        let c = self.sticky.get_mut(&client)?;
        let floor = c.floor.entry(key).or_insert((version, String::new()));
        if version < floor.0 {
            return Some(format!(
                "register client {client}, connected to s{} (generation {}), read {} at version {version} at t={now}, after it had seen version {} ({})",
                c.sid,
                c.generation,
                register_path(key),
                floor.0,
                floor.1
            ));
        }
        *floor = (version, format!("its plain read at t={now}"));
        None
    }

    /// Runs the checker on every key's history: the first violation (key,
    /// excerpt), if any. Inconclusive keys are counted.
    pub fn check(&mut self) -> Option<(u64, String)> {
        let init = RegState { value: INITIAL_VALUE, version: 0 };
        let mut first = None;
        for (&key, ops) in &self.history {
            self.keys_checked += 1;
            match linearize::check(ops, init, LINEARIZE_MAX_STEPS_PER_KEY) {
                Verdict::Linearizable => {}
                Verdict::Inconclusive { .. } => self.inconclusive += 1,
                Verdict::Violation(excerpt) => {
                    if first.is_none() {
                        first = Some((key, excerpt));
                    }
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_on_one_connection_never_go_back() {
        let mut r = Registers::default();
        r.sticky.insert(1, StickyConn::new(2, 7));
        assert_eq!(r.sticky_read(1, 0, 3, 10), None);
        assert_eq!(r.sticky_read(1, 0, 3, 11), None);
        assert_eq!(r.sticky_read(1, 0, 5, 12), None);
        let detail = r.sticky_read(1, 0, 4, 13).unwrap_or_default();
        assert!(detail.contains("at version 4") && detail.contains("seen version 5"), "{detail}");
        // Another key, another client: their own floors.
        assert_eq!(r.sticky_read(1, 1, 0, 14), None);
        assert_eq!(r.sticky_read(2, 0, 0, 14), None);
    }

    #[test]
    fn a_write_answered_on_the_connections_server_raises_the_floor() {
        let mut r = Registers::default();
        r.exists.insert(0, true);
        r.sticky.insert(1, StickyConn::new(2, 7));
        let id = r.invoke(0, 1, 2, OpKind::Write { value: 0 }, 5);
        r.executed(id, WriteAnswer::Ok { version: 9 });
        assert!(r.write_answered(id, 6).is_some());
        let detail = r.sticky_read(1, 0, 8, 7).unwrap_or_default();
        assert!(detail.contains("its own write answered at t=6"), "{detail}");
        // A write sent to another server sets no floor.
        let mut r = Registers::default();
        r.sticky.insert(1, StickyConn::new(2, 7));
        let id = r.invoke(0, 1, 3, OpKind::Write { value: 0 }, 5);
        r.executed(id, WriteAnswer::Ok { version: 9 });
        assert!(r.write_answered(id, 6).is_some());
        assert_eq!(r.sticky_read(1, 0, 8, 7), None);
        // Nor does one answered after the client moved to another server
        // whose connection has the same generation number (seed 858, 5
        // servers: the checker once raised the floor of the new connection).
        let mut r = Registers::default();
        r.sticky.insert(1, StickyConn::new(3, 2));
        let id = r.invoke(0, 1, 3, OpKind::Write { value: 0 }, 5);
        r.sticky.insert(1, StickyConn::new(4, 2));
        r.executed(id, WriteAnswer::Ok { version: 9 });
        assert!(r.write_answered(id, 6).is_some());
        assert_eq!(r.sticky_read(1, 0, 8, 7), None);
    }
}
