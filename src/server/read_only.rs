//! Read-only mode: what an ensemble member with `readonlymode.enabled`
//! does for clients while it is not in a quorum (Apache's
//! ReadOnlyZooKeeperServer and ReadOnlyRequestProcessor).
//!
//! While the member is LOOKING it first turns every client away (as
//! before). After a grace period of `max(2 s, tickTime)` it starts serving
//! read-only: a client whose ConnectRequest carries readOnly=true gets a
//! session local to this server (its ConnectResponse says readOnly=true)
//! and reads from the tree this member last had on disk; every request
//! that needs the quorum (create, delete, setData, setACL, multi, sync, a
//! global session's close) is answered NOTREADONLY (-119). A client
//! without the flag is closed at its handshake, and so is a reconnect of a
//! global session (its state belongs to the quorum). As soon as the
//! election decides, read-only mode ends: its sessions are forgotten and
//! every connection is dropped, so clients reconnect to a read/write
//! server (where a read-only session's id is unknown, i.e. expired).
//!
//! `ReadOnlySessions` is the sans-IO core (session table, expiry, the
//! answer to each worker message); the `impl CommitShard` part below only
//! feeds it the commit shard's events and publishes its answers.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::proto::{op, ErrorCode};
use crate::server::commit_shard::{BatchBuilder, CommitShard, Event, EventQueue};
use crate::server::messages::{BatchEntry, ConnRef, Reply, ReplyKind, ToCommit};
use crate::server::stats::ServerMode;
use crate::session::{session_password, ExpiryQueue};

/// Apache waits at least this long in LOOKING before it decides it is
/// partitioned and starts its read-only server.
pub const READ_ONLY_GRACE_MIN_MS: u64 = 2000;

/// Read-only sessions one member keeps at most; a connect beyond it is
/// closed (the client tries another server).
pub const READ_ONLY_SESSIONS_MAX: usize = 1 << 16;

/// How long a looking member waits before it serves read-only clients:
/// Apache's `max(2000, tickTime)`.
pub fn read_only_grace_ms(tick_ms: u64) -> u64 {
    tick_ms.max(READ_ONLY_GRACE_MIN_MS)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadOnlySession {
    timeout_ms: i32,
    /// The connection the session is bound to, if any.
    owner: Option<ConnRef>,
}

/// Sessions created in read-only mode. Like Apache's local sessions they
/// exist only in this server's memory: no txn, no zxid, no log entry, and
/// they are gone when read-only mode ends.
#[derive(Debug)]
pub struct ReadOnlySessions {
    sessions: HashMap<i64, ReadOnlySession>,
    expiry: ExpiryQueue,
}

/// What the read-only server knows of the rest of the commit shard.
pub struct ReadOnlyContext<'a> {
    /// The session clock (ms).
    pub now_ms: i64,
    /// The zxid replies carry: the last one in the tree being served.
    pub last_zxid: i64,
    /// True for a global session (one of the quorum's, restored from disk).
    pub is_global: &'a dyn Fn(i64) -> bool,
}

impl ReadOnlySessions {
    pub fn new(tick_ms: i64) -> ReadOnlySessions {
        ReadOnlySessions { sessions: HashMap::new(), expiry: ExpiryQueue::new(tick_ms.max(1)) }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn contains(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    /// Answers one worker message into `out`. `new_session_id` is called
    /// only when a session is created. Gives back the messages it does not
    /// answer itself: `Touch` (see `heard_from`) and the report plumbing.
    pub fn handle(
        &mut self,
        msg: ToCommit,
        ctx: &ReadOnlyContext<'_>,
        new_session_id: &mut dyn FnMut() -> i64,
        out: &mut Vec<BatchEntry>,
    ) -> Option<ToCommit> {
        let reply = |conn, kind| BatchEntry::Reply(Reply { conn, zxid: ctx.last_zxid, kind });
        let not_read_only =
            |conn, xid, op| reply(conn, ReplyKind::Write { xid, op, result: Err(ErrorCode::NotReadOnly) });
        match msg {
            ToCommit::CreateSession { conn, timeout_ms } => {
                if self.sessions.len() >= READ_ONLY_SESSIONS_MAX {
                    tracing::warn!(limit = READ_ONLY_SESSIONS_MAX, "too many read-only sessions; closing a connect");
                    out.push(BatchEntry::DropConnection { conn });
                    return None;
                }
                let session_id = new_session_id();
                self.sessions.insert(session_id, ReadOnlySession { timeout_ms, owner: Some(conn) });
                self.expiry.touch(session_id, timeout_ms as i64, ctx.now_ms);
                tracing::debug!(session = format_args!("0x{session_id:x}"), "read-only session created");
                out.push(reply(conn, connect_answer(session_id, timeout_ms, true)));
            }
            ToCommit::Revalidate { conn, session_id, timeout_ms } => {
                if (ctx.is_global)(session_id) {
                    // Apache: "Refusing global session reconnection in RO mode".
                    tracing::info!(
                        session = format_args!("0x{session_id:x}"),
                        "refusing a global session's reconnect in read-only mode"
                    );
                    out.push(BatchEntry::DropConnection { conn });
                    return None;
                }
                let Some(session) = self.sessions.get_mut(&session_id) else {
                    out.push(reply(conn, connect_answer(0, 0, false)));
                    return None;
                };
                if let Some(previous) = session.owner.replace(conn) {
                    if previous != conn {
                        out.push(BatchEntry::DropConnection { conn: previous });
                    }
                }
                session.timeout_ms = timeout_ms;
                self.expiry.touch(session_id, timeout_ms as i64, ctx.now_ms);
                out.push(reply(conn, connect_answer(session_id, timeout_ms, true)));
            }
            ToCommit::Write { conn, xid, op, .. } => out.push(not_read_only(conn, xid, op)),
            ToCommit::Sync { conn, xid, .. } => out.push(not_read_only(conn, xid, op::SYNC)),
            ToCommit::CloseSession { conn, session_id, xid } => {
                if self.sessions.remove(&session_id).is_some() {
                    self.expiry.remove(session_id);
                    out.push(reply(conn, ReplyKind::CloseSession { xid }));
                } else {
                    // A global session's close needs the quorum.
                    out.push(not_read_only(conn, xid, op::CLOSE_SESSION));
                }
            }
            ToCommit::Disconnected { conn, session_id } => {
                if let Some(session) = self.sessions.get_mut(&session_id) {
                    if session.owner == Some(conn) {
                        session.owner = None;
                    }
                }
            }
            other @ (ToCommit::Touch { .. } | ToCommit::Report { .. } | ToCommit::ReportPart { .. }) => {
                return Some(other)
            }
        }
        None
    }

    /// A read-only session showed liveness at `heard_at_ms`.
    pub fn heard_from(&mut self, session_id: i64, heard_at_ms: i64) {
        if let Some(session) = self.sessions.get(&session_id) {
            self.expiry.heard_from(session_id, session.timeout_ms as i64, heard_at_ms);
        }
    }

    /// Expires the sessions due at `now_ms`: each one's connection closes.
    pub fn expire(&mut self, now_ms: i64, out: &mut Vec<BatchEntry>) {
        for session_id in self.expiry.take_expired(now_ms) {
            if let Some(session) = self.sessions.remove(&session_id) {
                tracing::info!(session = format_args!("0x{session_id:x}"), "read-only session expired");
                if let Some(conn) = session.owner {
                    out.push(BatchEntry::DropConnection { conn });
                }
            }
        }
    }
}

fn connect_answer(session_id: i64, timeout_ms: i32, valid: bool) -> ReplyKind {
    ReplyKind::ConnectReadOnly {
        session_id,
        timeout_ms,
        passwd: if valid { session_password(session_id) } else { [0; 16] },
        valid,
    }
}

impl CommitShard {
    /// The clients' side of the looking phase, raced against the election:
    /// turns every client away, or, with `readonlymode.enabled`, serves
    /// read-only clients once the grace period has passed. Runs until the
    /// server stops (or the election wins the race and drops it; then
    /// `leave_read_only` cleans up).
    pub(super) async fn serve_while_looking(&mut self, events: &Rc<EventQueue>) {
        let tick_ms = self.config.tick_time_ms as u64;
        let grace = self
            .config
            .quorum
            .as_ref()
            .filter(|q| q.read_only_enabled)
            .map(|_| Duration::from_millis(read_only_grace_ms(tick_ms)));
        let looking_since = Instant::now();
        let mut read_only: Option<ReadOnlySessions> = None;
        // The commit shard's ticker wakes this loop every half tick, so the
        // grace period is noticed without a timer of its own.
        while let Some(items) = events.next_batch().await {
            if read_only.is_none() && grace.is_some_and(|g| looking_since.elapsed() >= g) {
                read_only = Some(self.start_read_only().await);
            }
            match read_only.as_mut() {
                Some(sessions) => self.serve_read_only(sessions, items).await,
                None => self.refuse_all(items).await,
            }
            if events.stopping() {
                break;
            }
        }
    }

    /// Enters read-only mode: the workers get the tree as this member has
    /// it on disk (Apache serves its database fast-forwarded to the log).
    async fn start_read_only(&mut self) -> ReadOnlySessions {
        self.stats.set_mode(ServerMode::ReadOnly);
        let shared = self.seal(BatchBuilder::default());
        self.publish(shared).await;
        tracing::info!(
            zxid = format_args!("0x{:x}", self.seq.last_zxid()),
            "not in a quorum: read-only server started (serving only read-only clients)"
        );
        ReadOnlySessions::new(self.config.tick_time_ms as i64)
    }

    async fn serve_read_only(&mut self, sessions: &mut ReadOnlySessions, items: Vec<Event>) {
        let mut batch = BatchBuilder::default();
        for event in items {
            let Event::Worker(_, msg) = event else { continue };
            let now_ms = self.now_ms();
            let last_zxid = self.seq.last_zxid();
            let unanswered = {
                let (is_global, ids) = self.seq.ids_beside_table();
                let ctx = ReadOnlyContext { now_ms, last_zxid, is_global: &is_global };
                sessions.handle(msg, &ctx, &mut || ids.next_id(), &mut batch.entries)
            };
            match unanswered {
                Some(ToCommit::Touch { sessions: touched }) => {
                    for (session_id, heard_at) in touched {
                        let heard_ms = heard_at.saturating_duration_since(self.started).as_millis() as i64;
                        sessions.heard_from(session_id, heard_ms);
                    }
                }
                Some(report) => self.handle(report, &mut batch).await,
                None => {}
            }
        }
        sessions.expire(self.now_ms(), &mut batch.entries);
        if !batch.entries.is_empty() {
            let shared = self.seal(batch);
            self.publish(shared).await;
        }
    }

    /// After an election decided: if read-only mode was on, it ends here,
    /// before the new role serves anyone. Every connection is dropped (as
    /// Apache's read-only server closes all connections at shutdown), which
    /// also ends the read-only sessions on the workers.
    pub(super) async fn leave_read_only(&mut self) {
        if self.stats.mode() != ServerMode::ReadOnly {
            return;
        }
        self.stats.set_mode(ServerMode::Looking);
        self.drop_all_connections().await;
        tracing::info!("read-only server stopped; its clients must reconnect");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::WriteOp;
    use std::sync::Arc;

    const TICK_MS: i64 = 100;
    const LAST_ZXID: i64 = 0x1_0000_0007;
    const GLOBAL_SESSION: i64 = 0x0100_0000_0000_0001;

    fn conn(id: u64) -> ConnRef {
        ConnRef { shard: 0, conn_id: id }
    }

    /// Drives the core like the commit shard does; returns what went out.
    struct Harness {
        ro: ReadOnlySessions,
        next_id: i64,
        now_ms: i64,
    }

    impl Harness {
        fn new() -> Harness {
            Harness { ro: ReadOnlySessions::new(TICK_MS), next_id: 0x0300_0000_0001_0000, now_ms: 0 }
        }

        fn send(&mut self, msg: ToCommit) -> Vec<BatchEntry> {
            let is_global = |id: i64| id == GLOBAL_SESSION;
            let ctx = ReadOnlyContext { now_ms: self.now_ms, last_zxid: LAST_ZXID, is_global: &is_global };
            let mut out = Vec::new();
            let next = &mut self.next_id;
            let mut new_id = || {
                *next += 1;
                *next
            };
            assert!(self.ro.handle(msg, &ctx, &mut new_id, &mut out).is_none(), "answered here");
            out
        }

        fn connect(&mut self, c: ConnRef, timeout_ms: i32) -> i64 {
            let out = self.send(ToCommit::CreateSession { conn: c, timeout_ms });
            match out.as_slice() {
                [BatchEntry::Reply(Reply {
                    conn: to,
                    zxid: LAST_ZXID,
                    kind: ReplyKind::ConnectReadOnly { session_id, timeout_ms: t, passwd, valid: true },
                })] => {
                    assert_eq!((*to, *t), (c, timeout_ms));
                    assert_eq!(*passwd, session_password(*session_id));
                    *session_id
                }
                _ => panic!("expected a read-only ConnectResponse, got {}", describe(&out)),
            }
        }
    }

    fn describe(out: &[BatchEntry]) -> String {
        out.iter()
            .map(|e| match e {
                BatchEntry::Reply(r) => match &r.kind {
                    ReplyKind::Connect { session_id, valid, .. } => format!("connect(0x{session_id:x},{valid})"),
                    ReplyKind::ConnectReadOnly { session_id, valid, .. } => {
                        format!("connect-ro(0x{session_id:x},{valid})")
                    }
                    ReplyKind::Write { xid, op, result } => {
                        format!("write(xid={xid},op={op},{:?})", result.as_ref().err())
                    }
                    ReplyKind::Sync { xid, .. } => format!("sync({xid})"),
                    ReplyKind::CloseSession { xid } => format!("close({xid})"),
                },
                BatchEntry::DropConnection { conn } => format!("drop({})", conn.conn_id),
                BatchEntry::Txn { zxid, .. } => format!("txn(0x{zxid:x})"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn grace_period_is_apaches_max_of_two_seconds_and_a_tick() {
        assert_eq!(read_only_grace_ms(200), 2000);
        assert_eq!(read_only_grace_ms(3000), 3000);
    }

    #[test]
    fn a_new_session_is_local_and_consumes_no_zxid() {
        let mut h = Harness::new();
        let a = h.connect(conn(1), 4000);
        let b = h.connect(conn(2), 4000);
        assert_ne!(a, b);
        assert_eq!(a >> 56, 3, "the server id stays in the top byte");
        assert!(h.ro.contains(a) && h.ro.contains(b));
        assert_eq!(h.ro.len(), 2);
    }

    #[test]
    fn every_request_that_needs_the_quorum_is_not_read_only() {
        let mut h = Harness::new();
        let sid = h.connect(conn(1), 4000);
        let write = |op, write| ToCommit::Write {
            conn: conn(1),
            session_id: sid,
            xid: op,
            op,
            write,
            auth: Arc::new(crate::acl::Authz::new("127.0.0.1".parse().expect("ip"))),
        };
        let requests = vec![
            write(op::CREATE, WriteOp::Delete { path: "/a".into(), version: -1 }),
            write(op::DELETE, WriteOp::Delete { path: "/a".into(), version: -1 }),
            write(op::SET_DATA, WriteOp::SetData { path: "/a".into(), data: None, version: -1 }),
            write(op::MULTI, WriteOp::Multi(vec![WriteOp::Check { path: "/a".into(), version: 0 }])),
            ToCommit::Sync { conn: conn(1), session_id: sid, xid: 77, path: "/".into() },
        ];
        for request in requests {
            let out = h.send(request);
            let [BatchEntry::Reply(Reply { zxid: LAST_ZXID, kind: ReplyKind::Write { result, .. }, .. })] =
                out.as_slice()
            else {
                panic!("one error reply expected, got {}", describe(&out));
            };
            assert_eq!(result.as_ref().err(), Some(&ErrorCode::NotReadOnly));
        }
        assert!(h.ro.contains(sid), "the session survives refused writes");
    }

    #[test]
    fn a_global_session_cannot_reconnect_but_a_read_only_one_can() {
        let mut h = Harness::new();
        let out = h.send(ToCommit::Revalidate { conn: conn(1), session_id: GLOBAL_SESSION, timeout_ms: 4000 });
        assert_eq!(describe(&out), "drop(1)");

        let sid = h.connect(conn(2), 4000);
        // The client moves to a new connection: the old one is dropped.
        let out = h.send(ToCommit::Revalidate { conn: conn(3), session_id: sid, timeout_ms: 6000 });
        assert_eq!(describe(&out), format!("drop(2) connect-ro(0x{sid:x},true)"));

        // An id this server never handed out: the expired answer.
        let out = h.send(ToCommit::Revalidate { conn: conn(4), session_id: sid + 1000, timeout_ms: 4000 });
        assert_eq!(describe(&out), "connect-ro(0x0,false)");
    }

    #[test]
    fn close_ends_a_read_only_session_and_a_global_close_needs_the_quorum() {
        let mut h = Harness::new();
        let sid = h.connect(conn(1), 4000);
        let out = h.send(ToCommit::CloseSession { conn: conn(1), session_id: sid, xid: 9 });
        assert_eq!(describe(&out), "close(9)");
        assert!(h.ro.is_empty());
        let out = h.send(ToCommit::CloseSession { conn: conn(2), session_id: GLOBAL_SESSION, xid: 3 });
        assert_eq!(describe(&out), format!("write(xid=3,op={},Some(NotReadOnly))", op::CLOSE_SESSION));
    }

    #[test]
    fn a_silent_session_expires_and_its_connection_closes() {
        let mut h = Harness::new();
        let quiet = h.connect(conn(1), 1000);
        let chatty = h.connect(conn(2), 1000);
        let gone = h.connect(conn(3), 1000);
        h.send(ToCommit::Disconnected { conn: conn(3), session_id: gone });
        let mut out = Vec::new();
        h.ro.heard_from(chatty, 900);
        h.ro.expire(1000, &mut out);
        assert!(out.is_empty(), "not due before its timeout");
        h.ro.expire(1000 + TICK_MS, &mut out);
        assert_eq!(describe(&out), "drop(1)", "the disconnected one goes without a connection to drop");
        assert!(!h.ro.contains(quiet) && !h.ro.contains(gone));
        assert!(h.ro.contains(chatty));
        out.clear();
        h.ro.expire(1900 + TICK_MS, &mut out);
        assert_eq!(describe(&out), "drop(2)");
    }

    #[test]
    fn touches_and_reports_are_handed_back() {
        let mut h = Harness::new();
        let is_global = |_: i64| false;
        let ctx = ReadOnlyContext { now_ms: 0, last_zxid: LAST_ZXID, is_global: &is_global };
        let mut out = Vec::new();
        let mut no_ids = || -> i64 { panic!("no session is created") };
        let back = h.ro.handle(ToCommit::Touch { sessions: Vec::new() }, &ctx, &mut no_ids, &mut out);
        assert!(matches!(back, Some(ToCommit::Touch { .. })));
        let report = ToCommit::Report { conn: conn(1), request_id: 5, cmd: "srvr" };
        assert!(matches!(h.ro.handle(report, &ctx, &mut no_ids, &mut out), Some(ToCommit::Report { .. })));
        assert!(out.is_empty());
    }
}
