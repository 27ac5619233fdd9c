//! What a learner (follower or observer) keeps of its own clients'
//! requests while they travel to the leader and back, sans-IO.
//!
//! Owned by the commit shard while it follows (`server::quorum_peer::follow`)
//! and by the simulator's `sim::peer::Following`: both record a forwarded
//! request here and find who is waiting for a committed txn, a SYNC or a
//! REVALIDATE answer by the same rules, and build the PING reply's session
//! list the same way. The waiter types are the driver's: production keeps
//! connections and xids, the simulator its client ids.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::storage::txn::{Txn, TxnHeader};
use crate::zab::packets::SessionTouch;

/// Who waits for a committed txn of this learner's clients.
#[derive(Debug, PartialEq, Eq)]
pub enum TxnWaiter<C, X, W> {
    /// The client whose createSession this is.
    Connect(C),
    /// The client that closed the session.
    Close(X),
    /// The client that sent the write (any other txn, by session and cxid).
    Write(W),
}

/// `C`: a createSession's waiter; `R`: a revalidation's; `W`: a write's;
/// `X`: a closeSession's; `S`: a sync's.
pub struct LearnerPending<C, R, W, X, S> {
    /// New sessions, by the id this learner allocated.
    connects: BTreeMap<i64, C>,
    /// Reconnects waiting for the leader's REVALIDATE answer, in order.
    revalidations: BTreeMap<i64, VecDeque<R>>,
    /// Writes, by (session, cxid).
    writes: BTreeMap<(i64, i32), W>,
    closes: BTreeMap<i64, X>,
    /// Forwarded syncs, answered in the order sent (the leader answers
    /// them in order, after the commits before each).
    syncs: VecDeque<S>,
    /// Sessions heard from since the last PING reply.
    touched: BTreeSet<i64>,
}

impl<C, R, W, X, S> Default for LearnerPending<C, R, W, X, S> {
    fn default() -> Self {
        LearnerPending {
            connects: BTreeMap::new(),
            revalidations: BTreeMap::new(),
            writes: BTreeMap::new(),
            closes: BTreeMap::new(),
            syncs: VecDeque::new(),
            touched: BTreeSet::new(),
        }
    }
}

impl<C, R, W, X, S> LearnerPending<C, R, W, X, S> {
    pub fn forwarded_connect(&mut self, session_id: i64, waiter: C) {
        self.connects.insert(session_id, waiter);
    }

    pub fn forwarded_revalidate(&mut self, session_id: i64, waiter: R) {
        self.revalidations.entry(session_id).or_default().push_back(waiter);
    }

    /// A write of `session_id` (which the session's next PING reply
    /// reports as heard from).
    pub fn forwarded_write(&mut self, session_id: i64, cxid: i32, waiter: W) {
        self.touched.insert(session_id);
        self.writes.insert((session_id, cxid), waiter);
    }

    pub fn forwarded_sync(&mut self, waiter: S) {
        self.syncs.push_back(waiter);
    }

    pub fn forwarded_close(&mut self, session_id: i64, waiter: X) {
        self.closes.insert(session_id, waiter);
    }

    /// A client of `session_id` was heard from (a ping, any request).
    pub fn touched(&mut self, session_id: i64) {
        self.touched.insert(session_id);
    }

    /// The client that waits for this committed txn, if it is one of ours:
    /// a createSession answers the connect, a closeSession the close, any
    /// other txn (error txns included) the write with its session and cxid.
    pub fn take_txn_waiter(&mut self, header: &TxnHeader, txn: &Txn) -> Option<TxnWaiter<C, X, W>> {
        match txn {
            Txn::CreateSession { .. } => self.connects.remove(&header.session_id).map(TxnWaiter::Connect),
            Txn::CloseSession { .. } => self.closes.remove(&header.session_id).map(TxnWaiter::Close),
            _ => self.writes.remove(&(header.session_id, header.cxid)).map(TxnWaiter::Write),
        }
    }

    /// The oldest forwarded sync (the leader answered it: SyncDone).
    pub fn take_sync(&mut self) -> Option<S> {
        self.syncs.pop_front()
    }

    /// The oldest reconnect of `session_id` (the leader's REVALIDATE answer).
    pub fn take_revalidation(&mut self, session_id: i64) -> Option<R> {
        let queue = self.revalidations.get_mut(&session_id)?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.revalidations.remove(&session_id);
        }
        waiter
    }

    /// The PING reply's sessions: those heard from since the last reply
    /// that are still in this learner's table (`timeout_ms_of`), with the
    /// timeout the table holds. Starts the next interval.
    pub fn take_ping_sessions(&mut self, timeout_ms_of: impl Fn(i64) -> Option<i32>) -> Vec<SessionTouch> {
        std::mem::take(&mut self.touched)
            .into_iter()
            .filter_map(|session_id| Some(SessionTouch { session_id, timeout_ms: timeout_ms_of(session_id)? }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pending = LearnerPending<&'static str, &'static str, &'static str, &'static str, &'static str>;

    fn header(session_id: i64, cxid: i32) -> TxnHeader {
        TxnHeader { session_id, cxid, zxid: 1, time_ms: 0, op: 0 }
    }

    #[test]
    fn committed_txns_find_their_waiters_by_kind_session_and_cxid() {
        let mut p = Pending::default();
        p.forwarded_connect(7, "connect");
        p.forwarded_write(7, 3, "write");
        p.forwarded_close(7, "close");
        let create = Txn::CreateSession { timeout_ms: 3000 };
        assert_eq!(p.take_txn_waiter(&header(7, 0), &create), Some(TxnWaiter::Connect("connect")));
        assert_eq!(p.take_txn_waiter(&header(7, 0), &create), None);
        let set = Txn::SetData { path: "/a".into(), data: None, version: 1 };
        assert_eq!(p.take_txn_waiter(&header(7, 2), &set), None, "another cxid");
        assert_eq!(p.take_txn_waiter(&header(8, 3), &set), None, "another session");
        assert_eq!(p.take_txn_waiter(&header(7, 3), &set), Some(TxnWaiter::Write("write")));
        assert_eq!(
            p.take_txn_waiter(&header(7, 9), &Txn::CloseSession { paths_to_delete: None }),
            Some(TxnWaiter::Close("close"))
        );
    }

    #[test]
    fn syncs_and_revalidations_are_answered_in_order() {
        let mut p = Pending::default();
        p.forwarded_sync("s1");
        p.forwarded_sync("s2");
        p.forwarded_revalidate(5, "r1");
        p.forwarded_revalidate(5, "r2");
        assert_eq!((p.take_sync(), p.take_sync(), p.take_sync()), (Some("s1"), Some("s2"), None));
        assert_eq!(p.take_revalidation(5), Some("r1"));
        assert_eq!(p.take_revalidation(6), None);
        assert_eq!(p.take_revalidation(5), Some("r2"));
        assert_eq!(p.take_revalidation(5), None);
    }

    #[test]
    fn ping_sessions_are_those_heard_from_and_still_in_the_table() {
        let mut p = Pending::default();
        p.touched(3);
        p.forwarded_write(1, 1, "w");
        p.touched(9);
        let table = |id: i64| (id != 9).then_some(4000);
        let touches = p.take_ping_sessions(table);
        let ids: Vec<i64> = touches.iter().map(|t| t.session_id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!(touches.iter().all(|t| t.timeout_ms == 4000));
        assert!(p.take_ping_sessions(table).is_empty(), "a new interval starts");
    }
}
