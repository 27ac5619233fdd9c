//! Durable storage formats (sans-IO).
pub mod log_format;
pub mod snapshot_format;
pub mod txn;
