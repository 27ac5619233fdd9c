//! ZAB, Apache ZooKeeper's quorum protocol, as sans-IO state machines and
//! codecs that interoperate byte for byte with Apache ZooKeeper 3.8/3.9.

pub mod election;
pub mod election_wire;
