//! The session table as of the last published batch.
//!
//! The commit shard's live table runs ahead of what clients can see: a
//! leader's table already holds the sessions created in batches that a
//! quorum has not acknowledged yet, and lacks the ones closed there. A
//! SNAP sends the *published* tree, so it must send the sessions of that
//! same moment; with the live table a learner could keep a session whose
//! createSession never commits, and a learner never expires sessions, so
//! nothing would ever remove it. Each batch carries the session changes
//! its txns make, and publishing the batch applies them here.

use std::collections::BTreeMap;

use super::SessionId;

/// What one txn does to the session table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionChange {
    /// createSession: the session exists from this txn on.
    Opened { id: SessionId, timeout_ms: i32 },
    /// closeSession (by the client or by expiry).
    Closed { id: SessionId },
}

/// Session id -> negotiated timeout, as of the last published batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedSessions {
    timeouts_ms: BTreeMap<SessionId, i32>,
}

impl PublishedSessions {
    /// Starts over from a table that is itself the published state (after
    /// recovery, a SNAP install, or a learner that applied its whole log).
    pub fn reset(&mut self, table: impl IntoIterator<Item = (SessionId, i32)>) {
        self.timeouts_ms = table.into_iter().collect();
    }

    /// Applies one published batch's changes, in txn order.
    pub fn apply(&mut self, changes: &[SessionChange]) {
        for change in changes {
            match *change {
                SessionChange::Opened { id, timeout_ms } => {
                    self.timeouts_ms.insert(id, timeout_ms);
                }
                SessionChange::Closed { id } => {
                    self.timeouts_ms.remove(&id);
                }
            }
        }
    }

    pub fn timeouts_ms(&self) -> &BTreeMap<SessionId, i32> {
        &self.timeouts_ms
    }

    pub fn len(&self) -> usize {
        self.timeouts_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timeouts_ms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_changes_count_and_in_txn_order() {
        let mut published = PublishedSessions::default();
        published.reset([(1, 4000), (2, 6000)]);
        // A batch that closes 1, opens 3 and closes it again, opens 4.
        let batch = [
            SessionChange::Closed { id: 1 },
            SessionChange::Opened { id: 3, timeout_ms: 5000 },
            SessionChange::Closed { id: 3 },
            SessionChange::Opened { id: 4, timeout_ms: 3000 },
        ];
        // Until it is published, nothing changes.
        assert_eq!(published.timeouts_ms(), &BTreeMap::from([(1, 4000), (2, 6000)]));
        published.apply(&batch);
        assert_eq!(published.timeouts_ms(), &BTreeMap::from([(2, 6000), (4, 3000)]));
        // Closing an unknown session (a close and an expiry both in flight)
        // changes nothing.
        published.apply(&[SessionChange::Closed { id: 99 }]);
        assert_eq!(published.len(), 2);
    }
}
