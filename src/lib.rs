//! zoocore: a ZooKeeper-compatible coordination service, thread-per-core on
//! io_uring (glommio).
//!
//! Sans-IO cores (no executor, no sockets, no clock reads): `jute`, `proto`,
//! `tree`, `acl`, `session`, `commit`, `watch`, `config`, `sasl`. The `server` module drives
//! them from glommio shards.

pub mod acl;
pub mod client;
pub mod commit;
pub mod config;
pub mod jute;
pub mod migrate;
pub mod proto;
pub mod sasl;
pub mod server;
pub mod session;
pub mod sim;
pub mod storage;
pub mod tools;
pub mod tree;
pub mod watch;
pub mod zab;
