//! The ZooKeeper wire protocol: shared types, every request/response record,
//! and frame splitting. Sans-IO.

pub mod types;

pub use types::*;
