//! Sessions: ids and passwords (`password`), tick-bucketed expiry
//! (`expiry`), and the session table owned by the commit shard. Sans-IO:
//! every time is passed in.

pub mod expiry;
pub mod password;
pub mod published;

pub use expiry::ExpiryQueue;
pub use password::{initial_session_id, newest_own_session_id, session_password, SessionIdAllocator};
pub use published::{PublishedSessions, SessionChange};

use std::collections::{BTreeMap, BTreeSet};

pub type SessionId = i64;

/// One live (or closing) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Negotiated timeout.
    pub timeout_ms: i64,
    /// The worker shard holding its connection.
    pub owner_shard: usize,
    /// closeSession or expiry has started; the session no longer counts as alive.
    pub closing: bool,
    /// Paths of the ephemeral nodes it owns.
    pub ephemerals: BTreeSet<String>,
}

/// All sessions plus their expiry schedule.
#[derive(Debug, Clone)]
pub struct SessionTable {
    sessions: BTreeMap<SessionId, Session>,
    expiry: ExpiryQueue,
}

impl SessionTable {
    pub fn new(tick_ms: i64) -> Self {
        SessionTable { sessions: BTreeMap::new(), expiry: ExpiryQueue::new(tick_ms) }
    }

    /// Registers a session (createSession commit, or restore) and schedules
    /// it. An existing entry keeps its ephemerals.
    pub fn create(&mut self, id: SessionId, timeout_ms: i64, owner_shard: usize, now_ms: i64) {
        let session = self.sessions.entry(id).or_insert_with(|| Session {
            timeout_ms,
            owner_shard,
            closing: false,
            ephemerals: BTreeSet::new(),
        });
        session.timeout_ms = timeout_ms;
        session.owner_shard = owner_shard;
        session.closing = false;
        self.expiry.touch(id, timeout_ms, now_ms);
    }

    /// Renews a session on any accepted request. False if it is unknown or
    /// closing (the request then gets SessionExpired).
    pub fn touch(&mut self, id: SessionId, now_ms: i64) -> bool {
        match self.sessions.get(&id) {
            Some(s) if !s.closing => {
                self.expiry.touch(id, s.timeout_ms, now_ms);
                true
            }
            _ => false,
        }
    }

    pub fn is_alive(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.closing)
    }

    /// Reconnect check: the password matches byte for byte and the session
    /// is alive.
    pub fn validate(&self, id: SessionId, passwd: &[u8]) -> bool {
        passwd == session_password(id) && self.is_alive(id)
    }

    /// Reconnect: validates, then renews with the newly negotiated timeout
    /// and records the new owner shard.
    pub fn revalidate(
        &mut self,
        id: SessionId,
        passwd: &[u8],
        timeout_ms: i64,
        owner_shard: usize,
        now_ms: i64,
    ) -> bool {
        if !self.validate(id, passwd) {
            return false;
        }
        if let Some(s) = self.sessions.get_mut(&id) {
            s.timeout_ms = timeout_ms;
            s.owner_shard = owner_shard;
        }
        self.expiry.touch(id, timeout_ms, now_ms);
        true
    }

    /// Marks a session closing (closeSession received or expiry started).
    /// False if unknown.
    pub fn set_closing(&mut self, id: SessionId) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.closing = true;
                true
            }
            None => false,
        }
    }

    /// Drops a session (closeSession txn applied); the caller deletes the
    /// returned ephemerals.
    pub fn close(&mut self, id: SessionId) -> Option<Session> {
        self.expiry.remove(id);
        self.sessions.remove(&id)
    }

    /// Sessions whose deadline passed: they are marked closing and
    /// unscheduled; the caller writes a closeSession txn for each.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<SessionId> {
        let expired = self.expiry.take_expired(now_ms);
        for id in &expired {
            if let Some(s) = self.sessions.get_mut(id) {
                s.closing = true;
            }
        }
        expired
    }

    pub fn next_expiration_ms(&self) -> Option<i64> {
        self.expiry.next_expiration_ms()
    }

    /// Records an ephemeral node; false if the session is unknown.
    pub fn add_ephemeral(&mut self, id: SessionId, path: &str) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.ephemerals.insert(path.to_owned());
                true
            }
            None => false,
        }
    }

    pub fn remove_ephemeral(&mut self, id: SessionId, path: &str) -> bool {
        self.sessions.get_mut(&id).is_some_and(|s| s.ephemerals.remove(path))
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Sessions in id order (for snapshots and the dump/cons 4lw).
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut t = SessionTable::new(2000);
        t.create(42, 6000, 1, 0);
        assert!(t.is_alive(42));
        assert!(t.validate(42, &session_password(42)));
        assert!(!t.validate(42, &[0; 16]));
        assert!(!t.validate(43, &session_password(43)));
        assert!(t.add_ephemeral(42, "/e1"));
        assert!(t.add_ephemeral(42, "/e2"));
        assert!(t.remove_ephemeral(42, "/e1"));
        assert!(!t.add_ephemeral(7, "/x"));
        assert_eq!(t.next_expiration_ms(), Some(8000));
        assert!(t.touch(42, 3000)); // 9000 -> 10000
        assert_eq!(t.take_expired(8000), Vec::<i64>::new());
        assert_eq!(t.take_expired(10000), vec![42]);
        assert!(!t.is_alive(42));
        assert!(!t.touch(42, 10001));
        assert!(!t.validate(42, &session_password(42)));
        let closed = t.close(42).unwrap();
        assert_eq!(closed.ephemerals.into_iter().collect::<Vec<_>>(), vec!["/e2".to_owned()]);
        assert!(t.is_empty());
    }

    #[test]
    fn revalidate_renews_with_new_timeout() {
        let mut t = SessionTable::new(1000);
        t.create(5, 4000, 0, 0);
        assert!(!t.revalidate(5, &[1; 16], 10000, 1, 100));
        assert!(t.revalidate(5, &session_password(5), 10000, 1, 100));
        assert_eq!(t.get(5).unwrap().owner_shard, 1);
        assert_eq!(t.next_expiration_ms(), Some(11000));
        assert!(t.set_closing(5));
        assert!(!t.revalidate(5, &session_password(5), 10000, 1, 200));
    }
}
