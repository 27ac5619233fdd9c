//! What an ensemble member does between two roles, sans-IO: the order in
//! which a role's end is cleaned up before the next election.
//!
//! Production's `quorum_peer::run_quorum` and the simulator's
//! `sim::peer::Server::leave_role_as` both drive a `BetweenRoles` after a
//! role (leading, following, observing, or connecting to a leader) ends,
//! carrying out each `BetweenRolesStep`. The order: stop answering
//! LOOKING peers with the settled vote; drain the log (what the role
//! handed it must be durable before the state is judged); drop the client
//! connections; then either keep the state (a learner that lost its
//! leader cleanly applies the logged but uncommitted tail of its log, a
//! fail-over's fast path) or rebuild it from disk (a leader's tree holds
//! speculation, and an error midway may leave anything); re-read the epoch
//! files for the state now held; elect again with the election's logical
//! clock and held vote carried over (`ElectionCarry`).

use crate::zab::election::{Election, ProposalBasis, Vote};

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetweenRolesStep {
    /// Stop answering LOOKING peers with the settled vote.
    StopAnsweringElection,
    /// Wait until everything handed to the log is durable.
    DrainLog,
    /// Drop every client connection (clients reconnect to a serving server).
    DropClientConnections,
    /// Apply the logged, uncommitted tail kept in memory; report with
    /// `BetweenRoles::caught_up` whether the state was kept.
    CatchUpToLog,
    /// Rebuild the tree, sessions and zxid from the snapshots and log. A
    /// failure stops the server (the operator must step in).
    ReloadFromDisk,
    /// Re-read (and reconcile) the epoch files for the state now held. A
    /// failure stops the server.
    LoadEpochs,
    /// Start the next election (`ElectionCarry::basis`).
    Elect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Stopped,
    Drained,
    Dropped,
    AwaitingCatchUp,
    Kept,
    Reload,
    Loaded,
    Done,
}

/// The steps after one role ended.
pub struct BetweenRoles {
    stage: Stage,
    /// A learner role that ended because its leader went away or could not
    /// be reached (not an error of its own): its state may be kept.
    may_keep_state: bool,
}

impl BetweenRoles {
    /// After a role ended. `learner_left_cleanly`: a learner (or a server
    /// connecting to its leader) that lost or never reached the leader;
    /// false for a leader and for a learner that failed on its own.
    pub fn after_role(learner_left_cleanly: bool) -> BetweenRoles {
        BetweenRoles { stage: Stage::Start, may_keep_state: learner_left_cleanly }
    }

    /// The answer to `CatchUpToLog`: true when the state was kept.
    pub fn caught_up(&mut self, kept: bool) {
        debug_assert_eq!(self.stage, Stage::AwaitingCatchUp);
        self.stage = if kept { Stage::Kept } else { Stage::Reload };
    }

    pub fn next_step(&mut self) -> BetweenRolesStep {
        use BetweenRolesStep::*;
        let (stage, step) = match self.stage {
            Stage::Start => (Stage::Stopped, StopAnsweringElection),
            Stage::Stopped => (Stage::Drained, DrainLog),
            Stage::Drained => (Stage::Dropped, DropClientConnections),
            Stage::Dropped if self.may_keep_state => (Stage::AwaitingCatchUp, CatchUpToLog),
            Stage::Dropped | Stage::Reload => (Stage::Kept, ReloadFromDisk),
            Stage::AwaitingCatchUp => (Stage::AwaitingCatchUp, CatchUpToLog),
            Stage::Kept => (Stage::Loaded, LoadEpochs),
            Stage::Loaded | Stage::Done => (Stage::Done, Elect),
        };
        self.stage = stage;
        step
    }
}

/// What one election hands the next: its logical clock (so this server's
/// next round is newer than any it took part in) and the vote it settled
/// on (Apache's `QuorumPeer` keeps its current vote between rounds).
#[derive(Debug, Clone, Copy, Default)]
pub struct ElectionCarry {
    pub logical_clock: i64,
    pub held_vote: Option<Vote>,
}

impl ElectionCarry {
    /// An election decided: carry its clock and settled vote.
    pub fn decided(&mut self, election: &Election) {
        self.logical_clock = election.logical_clock();
        self.held_vote = election.settled().map(|s| s.held_vote());
    }

    /// What the next election proposes from.
    pub fn basis(&self, last_logged_zxid: i64, current_epoch: i64) -> ProposalBasis {
        ProposalBasis { last_logged_zxid, current_epoch, held_vote: self.held_vote }
    }
}

#[cfg(test)]
mod tests {
    use super::BetweenRolesStep::*;
    use super::*;

    fn steps(mut between: BetweenRoles, keeps: bool) -> Vec<BetweenRolesStep> {
        let mut steps = Vec::new();
        loop {
            let step = between.next_step();
            steps.push(step);
            match step {
                CatchUpToLog => between.caught_up(keeps),
                Elect => return steps,
                _ => {}
            }
        }
    }

    #[test]
    fn a_leader_always_reloads_and_a_clean_learner_keeps_its_state_when_it_can() {
        let start = [StopAnsweringElection, DrainLog, DropClientConnections];
        let reload = [&start[..], &[ReloadFromDisk, LoadEpochs, Elect]].concat();
        assert_eq!(steps(BetweenRoles::after_role(false), true), reload);
        let kept = [&start[..], &[CatchUpToLog, LoadEpochs, Elect]].concat();
        assert_eq!(steps(BetweenRoles::after_role(true), true), kept);
        // The tail does not reach back to the applied state: reload.
        let fell_back = [&start[..], &[CatchUpToLog, ReloadFromDisk, LoadEpochs, Elect]].concat();
        assert_eq!(steps(BetweenRoles::after_role(true), false), fell_back);
    }
}
