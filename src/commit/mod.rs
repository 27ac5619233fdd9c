//! The one writer's state, sans-IO: the tree, the zxid counter, the
//! session table with each session's holder, the expiry queue, the
//! session-id allocator and the in-memory tail of the log.
//!
//! The production commit shard (`server::commit_shard`, `quorum_peer`) and
//! the simulator (`sim::peer`) both drive a `Sequencer`, so the logic that
//! turns a client's request into a txn (next zxid, execute, the session
//! checks that refuse it with SESSIONEXPIRED / SESSIONMOVED, create and
//! close, expiry, revalidation) is written once. No clock, no I/O: the
//! session clock (`now_ms`) and the txn wall time (`time_ms`) are passed
//! in, and every logged txn goes to the caller's `TxnSink`.
//!
//! Generic over `Owner`, the local connection a session is attached to:
//! production's `ConnRef`, the simulator's client id.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use bytes::Bytes;

use crate::acl::{AuthContext, ServerIdentity};
use crate::proto::{op, ErrorCode};
use crate::session::{ExpiryQueue, SessionChange, SessionIdAllocator};
use crate::storage::txn::{Txn, TxnDigest, TxnHeader};
use crate::tree::{DataTree, QuotaNote, TxnContext, WatchTrigger, WriteOp, WriteResult};
use crate::zab::leader::LearnerConn;

pub mod between_roles;
pub mod forwarded;
pub mod leader_term;
pub mod leader_turn;
pub mod learner_pending;
pub mod learner_turn;
pub mod standalone_turn;
pub mod wake;
pub use between_roles::{BetweenRoles, BetweenRolesStep, ElectionCarry};
pub use leader_term::{Intake, LeaderInput, LeaderTerm, PendingBatches};
pub use leader_turn::{LeaderStep, LeaderTurn, TurnBatch};
pub use learner_pending::{LearnerPending, TxnWaiter};
pub use learner_turn::{LearnerStep, LearnerTurn};
pub use standalone_turn::{StandaloneStep, StandaloneTurn};

/// Where the sequencer's txns go, in zxid order: production's
/// `BatchBuilder` (encoded for the log and the proposal), the simulator's
/// batch (plus its history).
pub trait TxnSink {
    /// A txn was applied to the tree. `digest`: the digest it is logged
    /// with (None for an error txn, as Apache's leader leaves it out);
    /// `tree_digest`: the tree's digest right after it, whatever is logged.
    fn log(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<TxnDigest>, tree_digest: i64);
    /// A txn logged next changes the session table (in txn order).
    fn session_changed(&mut self, change: SessionChange);
}

/// Which server holds a session's connection, as a leader (or a standalone
/// server) sees it: a write from any other is refused with SESSIONMOVED, as
/// Apache's SessionTracker.checkSession refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionHolder {
    /// Not known since this server started leading: the first server to
    /// send a request for the session claims it (Apache's null owner).
    Unclaimed,
    /// A client connection on this server.
    Here,
    /// A client of the learner on this link (Apache's LearnerHandler).
    Learner(LearnerConn),
}

impl SessionHolder {
    /// Whether `from` may write for a session held by `self`; an unclaimed
    /// session becomes `from`'s.
    fn claim(&mut self, from: SessionHolder) -> bool {
        if *self == SessionHolder::Unclaimed {
            *self = from;
        }
        *self == from
    }
}

#[derive(Debug, Clone)]
pub struct SessionEntry<Owner> {
    pub timeout_ms: i32,
    /// This server's connection for the session, if it has one.
    pub owner: Option<Owner>,
    pub holder: SessionHolder,
}

impl<Owner> SessionEntry<Owner> {
    /// A session known from disk or a snapshot: no connection, unclaimed.
    fn restored(timeout_ms: i32) -> Self {
        SessionEntry { timeout_ms, owner: None, holder: SessionHolder::Unclaimed }
    }
}

/// What the tree's `execute` needs beyond the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecSettings {
    /// `zookeeper.extendedTypesEnabled`: TTL nodes allowed.
    pub extended_types_enabled: bool,
    /// `zookeeper.enforceQuota`.
    pub enforce_quota: bool,
}

/// One write executed at a zxid.
pub struct WriteDone {
    pub zxid: i64,
    pub result: Result<WriteResult, ErrorCode>,
    pub triggers: Vec<WatchTrigger>,
    /// Quota limits the write went over (the caller counts and logs them).
    pub quota_notes: Vec<QuotaNote>,
}

/// The answer to a reconnect with a session id and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revalidation<Owner> {
    /// The session is in the table (and now attached to the new owner).
    pub valid: bool,
    /// The connection the session was attached to here before, if another
    /// one: the caller drops it.
    pub previous_owner: Option<Owner>,
}

/// A committed txn applied on a learner (or any replica that does not
/// execute): the tree's answer, and what it did to the session table.
pub struct AppliedTxn {
    pub result: Result<WriteResult, ErrorCode>,
    pub triggers: Vec<WatchTrigger>,
    pub session_change: Option<SessionChange>,
}

/// Deterministic hashing: the simulator iterates the table and must see
/// the same order in every run of a seed.
type SessionTable<Owner> = HashMap<i64, SessionEntry<Owner>, BuildHasherDefault<DefaultHasher>>;

pub struct Sequencer<Owner> {
    tree: DataTree,
    last_zxid: i64,
    sessions: SessionTable<Owner>,
    expiry: ExpiryQueue,
    session_ids: SessionIdAllocator,
    /// The newest logged txns (for DIFFs when this server leads, and a
    /// learner's catching up without a reload).
    recent_txns: VecDeque<(i64, Bytes)>,
    settings: ExecSettings,
}

impl<Owner: Copy + PartialEq> Sequencer<Owner> {
    /// The state recovered from disk (or empty). Every restored session
    /// gets a fresh deadline from `now_ms`: its client may reconnect.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tree: DataTree,
        last_zxid: i64,
        sessions: impl IntoIterator<Item = (i64, i32)>,
        recent_txns: VecDeque<(i64, Bytes)>,
        tick_ms: i64,
        session_ids: SessionIdAllocator,
        settings: ExecSettings,
        now_ms: i64,
    ) -> Self {
        let mut seq = Sequencer {
            tree,
            last_zxid,
            sessions: SessionTable::default(),
            expiry: ExpiryQueue::new(tick_ms.max(1)),
            session_ids,
            recent_txns,
            settings,
        };
        seq.reset_sessions(sessions, now_ms);
        seq
    }

    /// Replaces the whole state (a reload from disk, a SNAP): the table is
    /// the restored one, every session re-armed from `now_ms`.
    pub fn reset(
        &mut self,
        tree: DataTree,
        last_zxid: i64,
        sessions: impl IntoIterator<Item = (i64, i32)>,
        recent_txns: VecDeque<(i64, Bytes)>,
        now_ms: i64,
    ) {
        self.tree = tree;
        self.last_zxid = last_zxid;
        self.recent_txns = recent_txns;
        self.reset_sessions(sessions, now_ms);
    }

    fn reset_sessions(&mut self, sessions: impl IntoIterator<Item = (i64, i32)>, now_ms: i64) {
        self.sessions = sessions.into_iter().map(|(id, t)| (id, SessionEntry::restored(t))).collect();
        self.rearm_sessions(now_ms);
    }

    /// Every session loses its connection and holder and gets a fresh
    /// deadline (a role ended without a reload: its clients may reconnect
    /// anywhere).
    pub fn release_sessions(&mut self, now_ms: i64) {
        for e in self.sessions.values_mut() {
            e.owner = None;
            e.holder = SessionHolder::Unclaimed;
        }
        self.rearm_sessions(now_ms);
    }

    fn rearm_sessions(&mut self, now_ms: i64) {
        self.expiry = ExpiryQueue::new(self.expiry.tick_ms());
        for (&id, e) in &self.sessions {
            self.expiry.touch(id, e.timeout_ms as i64, now_ms);
        }
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// A new epoch's leader starts counting at the epoch's first zxid.
    pub fn raise_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = self.last_zxid.max(zxid);
    }

    pub fn next_zxid(&mut self) -> i64 {
        self.last_zxid += 1;
        self.last_zxid
    }

    /// A starting server's session ids: its id in the top byte, the rest
    /// from the wall clock, continuing after the newest id in the table it
    /// handed out itself. The table also holds other members' sessions;
    /// continuing after one of those would hand out that member's next ids
    /// (found by the simulator: two clients with one session id).
    pub fn start_session_ids(&mut self, server_id: u8, wall_ms: i64) {
        let newest = crate::session::newest_own_session_id(server_id, self.sessions.keys().copied());
        self.session_ids = SessionIdAllocator::new(server_id, wall_ms);
        if self.session_ids.peek() <= newest {
            self.session_ids = SessionIdAllocator::starting_at(newest + 1);
        }
    }

    pub fn next_session_id(&mut self) -> i64 {
        self.session_ids.next_id()
    }

    /// Prepares and applies one write at the next zxid; its txn to `sink`.
    pub fn execute(
        &mut self,
        sink: &mut impl TxnSink,
        session_id: i64,
        cxid: i32,
        write: &WriteOp,
        auth: &dyn AuthContext,
        time_ms: i64,
    ) -> WriteDone {
        let zxid = self.next_zxid();
        let ctx = TxnContext {
            session_id,
            cxid,
            zxid,
            time_ms,
            auth,
            extended_types_enabled: self.settings.extended_types_enabled,
            enforce_quota: self.settings.enforce_quota,
        };
        let executed = self.tree.execute(&ctx, write);
        sink.log(&executed.header, &executed.txn, executed.digest, self.tree.digest());
        WriteDone { zxid, result: executed.result, triggers: executed.triggers, quota_notes: executed.quota_notes }
    }

    /// A txn the server writes without executing a request: the next zxid,
    /// applied and logged (with the tree digest when `with_digest`).
    #[allow(clippy::too_many_arguments)]
    fn log_server_txn(
        &mut self,
        sink: &mut impl TxnSink,
        session_id: i64,
        cxid: i32,
        txn_op: i32,
        txn: &Txn,
        with_digest: bool,
        time_ms: i64,
    ) -> i64 {
        let zxid = self.next_zxid();
        let header = TxnHeader { session_id, cxid, zxid, time_ms, op: txn_op };
        let _ = self.tree.apply_txn(&header, txn);
        let digest = with_digest.then(|| self.tree.txn_digest());
        sink.log(&header, txn, digest, self.tree.digest());
        zxid
    }

    /// A createSession txn for `session_id` (allocated here with
    /// `next_session_id`, or by the learner that forwards it): the session
    /// enters the table, held by `holder`, and its deadline starts.
    #[allow(clippy::too_many_arguments)]
    pub fn create_session(
        &mut self,
        sink: &mut impl TxnSink,
        session_id: i64,
        cxid: i32,
        timeout_ms: i32,
        owner: Option<Owner>,
        holder: SessionHolder,
        now_ms: i64,
        time_ms: i64,
    ) -> i64 {
        let txn = Txn::CreateSession { timeout_ms };
        let zxid = self.log_server_txn(sink, session_id, cxid, op::CREATE_SESSION, &txn, true, time_ms);
        self.sessions.insert(session_id, SessionEntry { timeout_ms, owner, holder });
        sink.session_changed(SessionChange::Opened { id: session_id, timeout_ms });
        self.expiry.touch(session_id, timeout_ms as i64, now_ms);
        zxid
    }

    /// An error txn: a learner's client is told `code` when it commits.
    pub fn execute_error(
        &mut self,
        sink: &mut impl TxnSink,
        session_id: i64,
        cxid: i32,
        code: ErrorCode,
        time_ms: i64,
    ) -> i64 {
        let txn = Txn::Error { err: code.code() };
        self.log_server_txn(sink, session_id, cxid, op::ERROR, &txn, false, time_ms)
    }

    /// Whether a write for `session_id` arriving from `from` may execute:
    /// SESSIONEXPIRED when the session is not in the table, SESSIONMOVED
    /// when another server holds it. An admitted write touches the session.
    pub fn admit_write(&mut self, session_id: i64, from: SessionHolder, now_ms: i64) -> Result<(), ErrorCode> {
        let Some(entry) = self.sessions.get_mut(&session_id) else { return Err(ErrorCode::SessionExpired) };
        if !entry.holder.claim(from) {
            return Err(ErrorCode::SessionMoved);
        }
        self.expiry.touch(session_id, entry.timeout_ms as i64, now_ms);
        Ok(())
    }

    /// A closeSession txn (by the client or by expiry): the session leaves
    /// the table and the queue, its ephemerals go, their watches fire.
    pub fn close_session(&mut self, sink: &mut impl TxnSink, session_id: i64, time_ms: i64) -> WriteDone {
        self.sessions.remove(&session_id);
        sink.session_changed(SessionChange::Closed { id: session_id });
        self.expiry.remove(session_id);
        self.execute(sink, session_id, 0, &WriteOp::CloseSession, &ServerIdentity, time_ms)
    }

    /// The sessions due to expire at `now_ms` that are still in the table,
    /// sorted; the caller closes each (`close_session`).
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<i64> {
        let mut due = self.expiry.take_expired(now_ms);
        due.retain(|id| self.sessions.contains_key(id));
        due
    }

    /// A reconnect with the session's id and password, on this server
    /// (`holder` Here, `owner` its connection) or through a learner: valid
    /// while the table holds it; the session then lives there (writes from
    /// anywhere else get SESSIONMOVED), with the timeout asked and a fresh
    /// deadline.
    pub fn revalidate(
        &mut self,
        session_id: i64,
        timeout_ms: i32,
        owner: Option<Owner>,
        holder: SessionHolder,
        now_ms: i64,
    ) -> Revalidation<Owner> {
        let Some(entry) = self.sessions.get_mut(&session_id) else {
            return Revalidation { valid: false, previous_owner: None };
        };
        let previous = std::mem::replace(&mut entry.owner, owner);
        entry.timeout_ms = timeout_ms;
        entry.holder = holder;
        self.expiry.touch(session_id, timeout_ms as i64, now_ms);
        Revalidation { valid: true, previous_owner: previous.filter(|p| Some(*p) != owner) }
    }

    /// The session was heard from now (a ping through a learner, or any
    /// request): its deadline starts over. Nothing for an unknown session.
    pub fn touch(&mut self, session_id: i64, now_ms: i64) {
        if let Some(e) = self.sessions.get(&session_id) {
            self.expiry.touch(session_id, e.timeout_ms as i64, now_ms);
        }
    }

    /// A heartbeat heard at `heard_ms`, maybe reported late and out of
    /// order: the deadline moves later, never earlier.
    pub fn heard_from(&mut self, session_id: i64, heard_ms: i64) {
        if let Some(e) = self.sessions.get(&session_id) {
            self.expiry.heard_from(session_id, e.timeout_ms as i64, heard_ms);
        }
    }

    /// Re-schedules a session's deadline with an explicit timeout. Only for
    /// the simulator's planted bugs, applied around the shared calls.
    pub fn reschedule_expiry(&mut self, session_id: i64, timeout_ms: i64, now_ms: i64) {
        if self.sessions.contains_key(&session_id) {
            self.expiry.touch(session_id, timeout_ms, now_ms);
        }
    }

    /// The connection `owner` of `session_id` closed.
    pub fn disconnected(&mut self, session_id: i64, owner: Owner) {
        if let Some(e) = self.sessions.get_mut(&session_id) {
            if e.owner == Some(owner) {
                e.owner = None;
            }
        }
    }

    /// A committed txn from the leader, applied with the same code as the
    /// leader and recovery: the table follows its createSession (attached
    /// to `opener`, the local connection that asked, if any) and
    /// closeSession. A replica does not expire sessions, so no deadline.
    pub fn apply_committed(&mut self, zxid: i64, header: &TxnHeader, txn: &Txn, opener: Option<Owner>) -> AppliedTxn {
        let (result, triggers) = self.tree.apply_txn(header, txn);
        let session_change = match txn {
            Txn::CreateSession { timeout_ms } => {
                let entry = SessionEntry { owner: opener, ..SessionEntry::restored(*timeout_ms) };
                self.sessions.insert(header.session_id, entry);
                Some(SessionChange::Opened { id: header.session_id, timeout_ms: *timeout_ms })
            }
            Txn::CloseSession { .. } => {
                self.sessions.remove(&header.session_id);
                Some(SessionChange::Closed { id: header.session_id })
            }
            _ => None,
        };
        self.last_zxid = zxid;
        AppliedTxn { result, triggers, session_change }
    }

    /// The leader said a session a local client reconnected with is valid:
    /// it enters this learner's table (with the timeout asked) if absent,
    /// attached to `owner`. Returns the connection it was attached to
    /// before, if another one (the caller drops it).
    pub fn learner_revalidated(&mut self, session_id: i64, timeout_ms: i32, owner: Owner) -> Option<Owner> {
        let entry = self.sessions.entry(session_id).or_insert(SessionEntry::restored(timeout_ms));
        entry.timeout_ms = timeout_ms;
        entry.owner.replace(owner).filter(|p| *p != owner)
    }

    /// Keeps the tail of the log in memory, at most `window_txns` txns.
    pub fn remember_recent<'a>(&mut self, logged: impl IntoIterator<Item = &'a (i64, Bytes)>, window_txns: usize) {
        for (zxid, txn) in logged {
            self.recent_txns.push_back((*zxid, txn.clone()));
        }
        while self.recent_txns.len() > window_txns {
            self.recent_txns.pop_front();
        }
    }

    pub fn recent_txns(&self) -> &VecDeque<(i64, Bytes)> {
        &self.recent_txns
    }

    /// A learner that lost its leader cleanly keeps its state instead of
    /// reloading from disk when the in-memory log tail reaches back to the
    /// last applied txn and ends where the log is durable
    /// (`log_durable_through`): the logged, uncommitted txns above the last
    /// applied one, to apply in order (as Apache's fastForwardDataBase).
    /// None: the tail does not cover the gap; reload from disk.
    pub fn logged_tail_to_keep(&self, log_durable_through: i64) -> Option<Vec<(i64, Bytes)>> {
        let applied = self.last_zxid;
        let recent = &self.recent_txns;
        let reaches_back = recent.front().is_some_and(|(z, _)| *z <= applied) || log_durable_through == applied;
        let ends_at_log_end = recent.back().map_or(applied, |(z, _)| *z) == log_durable_through;
        (reaches_back && ends_at_log_end).then(|| recent.iter().filter(|(z, _)| *z > applied).cloned().collect())
    }

    pub fn forget_recent(&mut self) {
        self.recent_txns.clear();
    }

    pub fn holds_session(&self, session_id: i64) -> bool {
        self.sessions.contains_key(&session_id)
    }

    pub fn session(&self, session_id: i64) -> Option<&SessionEntry<Owner>> {
        self.sessions.get(&session_id)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Session id -> negotiated timeout, sorted.
    pub fn session_timeouts(&self) -> BTreeMap<i64, i32> {
        self.sessions.iter().map(|(id, e)| (*id, e.timeout_ms)).collect()
    }

    /// (session id, timeout), in table order (for snapshots and reports).
    pub fn sessions(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        self.sessions.iter().map(|(id, e)| (*id, e.timeout_ms))
    }

    /// When a session is due to expire, on the session clock.
    pub fn deadline_of(&self, session_id: i64) -> Option<i64> {
        self.expiry.deadline_of(session_id)
    }

    /// Whether a session is in the table, and the allocator, at once (a
    /// read-only server hands out ids that must not collide with them).
    pub fn ids_beside_table(&mut self) -> (impl Fn(i64) -> bool + '_, &mut SessionIdAllocator) {
        let sessions = &self.sessions;
        (move |id| sessions.contains_key(&id), &mut self.session_ids)
    }
}

#[cfg(test)]
mod tests;
