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
