//! Sessions: ids and passwords (`password`), tick-bucketed expiry
//! (`expiry`) and the session table as of the last published batch
//! (`published`, what a SNAP carries).
//! The live table itself belongs to the one writer's core
//! (`commit::Sequencer`). Sans-IO: every time is passed in.

pub mod expiry;
pub mod password;
pub mod published;

pub use expiry::ExpiryQueue;
pub use password::{initial_session_id, newest_own_session_id, session_password, SessionIdAllocator};
pub use published::{PublishedSessions, SessionChange};

pub type SessionId = i64;
