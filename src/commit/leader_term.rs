//! What one leadership term keeps beside its `LeaderCore`, sans-IO, and
//! the queue of sealed batches a standalone server keeps too.
//!
//! Owned by the commit shard while it leads (`server::quorum_peer::lead`)
//! and by the simulator's `sim::peer::Leading`: both call the same methods
//! at the same points of a turn, so the point up to which clients may see
//! (the commit point), the zxid-exhaustion check, the order in which a
//! batch's txns are proposed, the records the DIFF-from-disk index learns
//! of once durable and the leader's own syncs are one code. The drivers
//! keep only what differs: how batches are sealed and published, and how
//! actions are carried out.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::storage::log_format::record_bytes;
use crate::zab::leader::{LeaderAction, LeaderCore, LearnerConn, SyncRequester, ZXID_COUNTER_MAX};
use crate::zab::packets::ToLeader;

/// Batches sealed and waiting for the point that lets clients see them (a
/// quorum's commit when leading, the log's fsync when standalone), oldest
/// first, each with the last zxid it holds.
pub struct PendingBatches<B> {
    batches: VecDeque<(i64, B)>,
}

impl<B> Default for PendingBatches<B> {
    fn default() -> Self {
        PendingBatches { batches: VecDeque::new() }
    }
}

impl<B> PendingBatches<B> {
    /// A batch sealed at `last_zxid` (the sequencer's last zxid when it was
    /// sealed: a batch without txns carries the zxid of the state it shows).
    pub fn push(&mut self, last_zxid: i64, batch: B) {
        debug_assert!(self.batches.back().is_none_or(|(z, _)| *z <= last_zxid));
        self.batches.push_back((last_zxid, batch));
    }

    /// The batches that hold nothing past `through`, oldest first: they may
    /// be published now, in this order.
    pub fn take_through(&mut self, through: i64) -> impl Iterator<Item = B> + '_ {
        let due = self.batches.partition_point(|(z, _)| *z <= through);
        self.batches.drain(..due).map(|(_, b)| b)
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }
}

/// One event of a leader turn's intake, as both drivers hand it over in
/// arrival order (production's `lead()`: worker messages and quorum
/// events; the simulator's `leader_turn`: its clients and links).
pub enum LeaderInput<R, S> {
    /// A local client's write or session request (`R`: the driver's own).
    Request(R),
    /// A local client's sync (`S`: what the driver keeps until it is answered).
    Sync(S),
    /// A learner connected. `disk_files`: the oldest log's first zxid and
    /// the newest snapshot's size now (purges and snapshots since the term
    /// began are re-checked before each learner is synced).
    LearnerUp {
        conn: LearnerConn,
        disk_files: (Option<i64>, u64),
    },
    Learner(LearnerConn, ToLeader),
    LearnerDown(LearnerConn),
}

/// What the driver does with one intake event.
#[derive(Debug, PartialEq)]
pub enum Intake<R, S> {
    /// Execute it now, before the next event: it takes the next zxid, and
    /// a sync after it in this turn is ordered after it.
    Execute(R),
    /// Turned away: not established yet (the client retries).
    Refuse(R),
    RefuseSync(S),
    /// Taken here: handed to the core (a learner's event, a sync's round).
    Taken,
}

/// One leadership term's bookkeeping. `B`: the driver's sealed batch;
/// `S`: what it keeps of a local client's sync until it may be answered.
pub struct LeaderTerm<B, S> {
    /// Sealed batches, published once a quorum holds them.
    pub pending: PendingBatches<B>,
    /// Everything logged before this epoch is committed once established.
    committed_floor: i64,
    /// `LeaderAction::Established` was carried out: `last_zxid` is in the
    /// new epoch, so client requests may be given zxids.
    established: bool,
    /// (zxid, record bytes) handed to the log and not yet durable: the
    /// DIFF-from-disk index learns of them once they are on disk.
    not_yet_durable: VecDeque<(i64, u64)>,
    /// Syncs of this server's own clients, by the token `LeaderCore` knows.
    local_syncs: BTreeMap<u64, S>,
    next_sync_token: u64,
}

impl<B, S> Default for LeaderTerm<B, S> {
    fn default() -> Self {
        LeaderTerm {
            pending: PendingBatches::default(),
            committed_floor: i64::MIN,
            established: false,
            not_yet_durable: VecDeque::new(),
            local_syncs: BTreeMap::new(),
            next_sync_token: 0,
        }
    }
}

impl<B, S> LeaderTerm<B, S> {
    /// A local client's sync, ordered after everything assigned a zxid so
    /// far (`last_zxid`, the writes before it in this turn included);
    /// `LeaderCore` answers its token with `LocalSyncReady` after a quorum
    /// round (ZOOKEEPER-2136's rule: a sync is a round, not a local read).
    pub fn sync_local(&mut self, core: &mut LeaderCore, sync: S, last_zxid: i64, actions: &mut Vec<LeaderAction>) {
        let token = self.next_sync_token;
        self.next_sync_token += 1;
        self.local_syncs.insert(token, sync);
        core.sync(SyncRequester::Local(token), last_zxid, actions);
    }

    /// Takes one intake event, in arrival order. Client requests and syncs
    /// wait for `takes_client_requests`; a sync is ordered after everything
    /// given a zxid so far (`last_zxid`: the requests executed before it in
    /// this turn included). Learner events go to the core, their actions
    /// into `actions` for the turn (`LeaderTurn::begin`).
    pub fn intake<R>(
        &mut self,
        core: &mut LeaderCore,
        input: LeaderInput<R, S>,
        now_ms: u64,
        last_zxid: i64,
        actions: &mut Vec<LeaderAction>,
    ) -> Intake<R, S> {
        match input {
            LeaderInput::Request(request) if self.takes_client_requests() => Intake::Execute(request),
            LeaderInput::Request(request) => Intake::Refuse(request),
            LeaderInput::Sync(sync) if self.takes_client_requests() => {
                self.sync_local(core, sync, last_zxid, actions);
                Intake::Taken
            }
            LeaderInput::Sync(sync) => Intake::RefuseSync(sync),
            LeaderInput::LearnerUp { conn, disk_files: (oldest_log_zxid, snapshot_bytes) } => {
                core.disk_files_changed(oldest_log_zxid, snapshot_bytes);
                core.learner_connected(conn, now_ms);
                Intake::Taken
            }
            LeaderInput::Learner(conn, packet) => {
                core.learner_packet(conn, packet, now_ms, actions);
                Intake::Taken
            }
            LeaderInput::LearnerDown(conn) => {
                core.learner_disconnected(conn);
                Intake::Taken
            }
        }
    }

    /// The sync `LocalSyncReady { token }` answers (None: not this term's).
    pub fn take_local_sync(&mut self, token: u64) -> Option<S> {
        self.local_syncs.remove(&token)
    }

    /// `LeaderAction::Established`: `last_zxid` is the sequencer's, raised
    /// to the new epoch's first zxid; all logged before it is committed.
    pub fn established(&mut self, last_zxid: i64) {
        self.committed_floor = last_zxid;
        self.established = true;
    }

    /// Whether this turn's client requests (writes, sessions, syncs) may be
    /// executed. Not `LeaderCore::is_established`: the core establishes
    /// while it reads the quorum's NEWLEADER ACK, in the middle of a turn's
    /// events, and a request taken after that ACK but before the
    /// `Established` action raised `last_zxid` to the new epoch would be
    /// given the next zxid of the old epoch (a txn no quorum ever saw,
    /// proposed below the epoch's first zxid). Refused until then, as
    /// before establishment: the client retries.
    pub fn takes_client_requests(&self) -> bool {
        self.established
    }

    /// The zxid through which clients may see this leader's state.
    pub fn commit_point(&self, core: &LeaderCore) -> i64 {
        self.visible_through(core.last_committed())
    }

    /// `LeaderAction::Committed { zxid }`: what may be published now.
    pub fn visible_through(&self, committed: i64) -> i64 {
        committed.max(self.committed_floor)
    }

    /// Nothing assigned a zxid waits for a quorum or to be published.
    pub fn is_quiescent(&self, core: &LeaderCore, last_zxid: i64) -> bool {
        self.pending.is_empty() && self.commit_point(core) >= last_zxid
    }

    /// Proposes a batch's txns to the learners, in zxid order. Err (the
    /// role must end) when the batch used the epoch's last zxid counter:
    /// only a new epoch can go on.
    pub fn propose(
        &mut self,
        core: &mut LeaderCore,
        logged: &[(i64, Bytes)],
        actions: &mut Vec<LeaderAction>,
    ) -> Result<(), String> {
        if logged.last().is_some_and(|(z, _)| z & ZXID_COUNTER_MAX == ZXID_COUNTER_MAX) {
            return Err("the zxid counter is exhausted; a new epoch is needed".to_owned());
        }
        for (zxid, txn) in logged {
            core.propose(*zxid, txn.clone(), actions);
        }
        Ok(())
    }

    /// The batch's txns were handed to the log (after their proposals went
    /// out: the learners' fsyncs and ours run at once).
    pub fn handed_to_log(&mut self, logged: &[(i64, Bytes)]) {
        self.not_yet_durable.extend(logged.iter().map(|(z, t)| (*z, record_bytes(t.len()))));
    }

    /// The log reports everything through `durable` on disk: the core's
    /// disk index learns of those records, and its own ACK counts.
    pub fn log_durable(&mut self, core: &mut LeaderCore, durable: i64, actions: &mut Vec<LeaderAction>) {
        let split = self.not_yet_durable.partition_point(|(z, _)| *z <= durable);
        core.disk_logged(self.not_yet_durable.drain(..split));
        core.local_durable(durable, actions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_batches_come_out_oldest_first_up_to_the_point() {
        let mut p = PendingBatches::default();
        p.push(3, "a");
        p.push(5, "b");
        p.push(5, "b-sync");
        p.push(9, "c");
        assert_eq!(p.take_through(2).count(), 0);
        assert_eq!(p.take_through(5).collect::<Vec<_>>(), vec!["a", "b", "b-sync"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.take_through(i64::MAX).collect::<Vec<_>>(), vec!["c"]);
        assert!(p.is_empty());
    }
}
