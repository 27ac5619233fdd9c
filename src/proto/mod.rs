//! The ZooKeeper wire protocol: shared types, every request/response record,
//! and frame splitting. Sans-IO.

pub mod frame;
pub mod records;
pub mod types;

pub use records::*;
pub use types::*;
