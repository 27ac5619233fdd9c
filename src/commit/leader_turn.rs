//! The order of one leader turn, sans-IO: which step comes next once the
//! turn's events are in.
//!
//! Production's `server::quorum_peer::lead` and the simulator's
//! `sim::peer::Leading` both drive a `LeaderTurn`: they feed it the turn's
//! actions, then ask `next()` what to do until it says `Done`, carrying out
//! each step's effects (sockets or simulated links, the real log thread or
//! the simulated one, worker channels or the simulator's clients). So the
//! sequence itself — the core's tick, the actions in order with the batch
//! open, session expiry once established, the proposals going out before
//! the batch goes to the log, the log's durability report, then publishing
//! through the commit point — is written once. The simulator may stop
//! calling `next()` while an action waits on its simulated disk (an epoch
//! file's write) and resume later: the machine keeps the queue.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::commit::LeaderTerm;
use crate::zab::leader::{LeaderAction, LeaderCore};

/// The batch a turn builds, as the turn's order needs to see it.
pub trait TurnBatch {
    /// The txns executed into it so far, (zxid, encoded txn), in order.
    fn logged(&self) -> &[(i64, Bytes)];
    /// Anything for clients in it (txns, error replies, sync answers).
    fn has_entries(&self) -> bool;
}

/// What the driver does next.
#[derive(Debug)]
pub enum LeaderStep {
    /// Carry out one action, in order. `batch_open`: the turn's batch still
    /// takes forwarded requests and sync answers; once it is closed a sync
    /// answer is sealed into a batch of its own, queued behind it.
    /// Follow-up actions (a forwarded SYNC's round, a revalidation's
    /// answer) go back through `LeaderTurn::queue`.
    Act { action: LeaderAction, batch_open: bool },
    /// Established, after the turn's first actions and before proposing:
    /// expire the sessions due into the open batch.
    ExpireSessions,
    /// The batch's proposals have gone out (the txns are handed to the
    /// DIFF index's not-yet-durable list): hand the batch to the log
    /// (which does not wait for the disk), seal it into
    /// `LeaderTerm::pending`, and maybe start a snapshot.
    HandToLog,
    /// Tell `LeaderTurn::durable` what the log reports newly durable.
    ReportDurable,
    /// Publish every pending batch through this zxid (the commit point).
    Publish(i64),
    /// The role must end: the zxid counter is exhausted.
    StepDown(String),
    /// The turn is over; wait for the next events.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between turns.
    Idle,
    /// The turn's first actions, the batch open.
    FirstActions,
    /// Sessions expired into the batch; it is proposed next.
    Expired,
    /// The proposals' actions, the batch closed.
    ProposalActions,
    /// Waiting for the driver's `durable` call.
    AwaitingDurable,
    /// The durability report's actions, then publish.
    DurableActions,
}

/// One leadership term's turn order (kept across turns for the queue).
pub struct LeaderTurn {
    stage: Stage,
    queue: VecDeque<LeaderAction>,
}

impl Default for LeaderTurn {
    fn default() -> Self {
        LeaderTurn { stage: Stage::Idle, queue: VecDeque::new() }
    }
}

impl LeaderTurn {
    /// Between turns: the next events may be taken.
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// The turn's events are in (their actions in `actions`, in order):
    /// the core's timers run, and its actions join the end of the list.
    pub fn begin(&mut self, core: &mut LeaderCore, now_ms: u64, mut actions: Vec<LeaderAction>) {
        debug_assert!(self.is_idle(), "a leader turn began inside another");
        core.tick(now_ms, &mut actions);
        self.queue.extend(actions);
        self.stage = Stage::FirstActions;
    }

    /// Actions an action led to, carried out after those already queued.
    pub fn queue(&mut self, more: Vec<LeaderAction>) {
        self.queue.extend(more);
    }

    /// The log's report after `ReportDurable` (None: nothing new): the
    /// DIFF index learns of the records and the leader's own ACK counts.
    pub fn durable<B, S>(&mut self, core: &mut LeaderCore, term: &mut LeaderTerm<B, S>, newly_durable: Option<i64>) {
        debug_assert_eq!(self.stage, Stage::AwaitingDurable);
        if let Some(durable) = newly_durable {
            let mut actions = Vec::new();
            term.log_durable(core, durable, &mut actions);
            self.queue.extend(actions);
        }
        self.stage = Stage::DurableActions;
    }

    /// The next step. `batch` is the turn's batch (after `HandToLog` the
    /// driver's emptied one: it is not read again this turn).
    pub fn next<B, S>(
        &mut self,
        core: &mut LeaderCore,
        term: &mut LeaderTerm<B, S>,
        batch: &impl TurnBatch,
    ) -> LeaderStep {
        match self.stage {
            Stage::Idle => LeaderStep::Done,
            Stage::FirstActions => {
                if let Some(action) = self.queue.pop_front() {
                    return LeaderStep::Act { action, batch_open: true };
                }
                // Once the `Established` action ran (it is in this list
                // when the core established during the turn's events).
                if term.takes_client_requests() {
                    self.stage = Stage::Expired;
                    return LeaderStep::ExpireSessions;
                }
                self.propose(core, term, batch)
            }
            Stage::Expired => self.propose(core, term, batch),
            Stage::ProposalActions => {
                if let Some(action) = self.queue.pop_front() {
                    return LeaderStep::Act { action, batch_open: false };
                }
                self.stage = Stage::AwaitingDurable;
                if batch.has_entries() {
                    term.handed_to_log(batch.logged());
                    return LeaderStep::HandToLog;
                }
                LeaderStep::ReportDurable
            }
            Stage::AwaitingDurable => LeaderStep::ReportDurable,
            Stage::DurableActions => {
                if let Some(action) = self.queue.pop_front() {
                    return LeaderStep::Act { action, batch_open: false };
                }
                self.stage = Stage::Idle;
                LeaderStep::Publish(term.commit_point(core))
            }
        }
    }

    /// The batch's txns to the learners, in zxid order, before our own log
    /// write: their fsyncs and ours run at once.
    fn propose<B, S>(
        &mut self,
        core: &mut LeaderCore,
        term: &mut LeaderTerm<B, S>,
        batch: &impl TurnBatch,
    ) -> LeaderStep {
        let mut actions = Vec::new();
        if let Err(why) = term.propose(core, batch.logged(), &mut actions) {
            self.stage = Stage::Idle;
            self.queue.clear();
            return LeaderStep::StepDown(why);
        }
        self.queue.extend(actions);
        self.stage = Stage::ProposalActions;
        self.next(core, term, batch)
    }
}

// Tests: `zab::scenario_tests` (the turn driven on an established leader
// of the scenario harness).
