//! ZAB, Apache ZooKeeper's atomic broadcast: the quorum-port packets and the leader's learner-sync decision, sans-IO.
pub mod packets;
pub mod sync_plan;
