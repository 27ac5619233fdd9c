//! ZAB, Apache ZooKeeper's atomic broadcast, sans-IO: fast leader election
//! and its election-port wire format, the quorum-port packets, the leader's
//! learner-sync decision, and the leader and learner state machines the
//! commit shard drives (messages, ticks and "durable up to zxid" in;
//! ordered actions out).
pub mod election;
pub mod election_wire;
pub mod ensemble;
pub mod follower;
pub mod leader;
pub mod packets;
#[cfg(test)]
mod scenario_tests;
pub mod sync_plan;

/// Where a member is in ZAB, as Apache's ZabStateCommand names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZabPhase {
    Election,
    /// Leader: gathering FOLLOWERINFO and choosing the epoch; learner:
    /// until its ACKEPOCH is answered with a sync mode.
    Discovery,
    Synchronization,
    Broadcast,
}

impl ZabPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ZabPhase::Election => "election",
            ZabPhase::Discovery => "discovery",
            ZabPhase::Synchronization => "synchronization",
            ZabPhase::Broadcast => "broadcast",
        }
    }
}
