//! Every message that crosses a shard boundary, in one place.
//!
//! Worker shards send `ToCommit` to the commit shard over one bounded
//! glommio shared channel each; the commit shard answers every worker with
//! `FromCommit` over one bounded channel per worker. Everything here is
//! `Send`: it is the only data that moves between threads (besides the
//! immutable tree versions inside `CommitBatch` and the stats atomics).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::acl::Authz;
use crate::proto::records::Response;
use crate::proto::ErrorCode;
use crate::tree::{DataTree, WatchTrigger, WriteOp};

/// Identifies one client connection on one worker shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub shard: usize,
    pub conn_id: u64,
}

/// Worker shard -> commit shard.
pub enum ToCommit {
    /// A new session from a ConnectRequest with sessionId 0.
    CreateSession { conn: ConnRef, timeout_ms: i32 },
    /// A reconnect with an id and password (already checked by the worker);
    /// the commit shard checks the session is alive and moves it here.
    Revalidate { conn: ConnRef, session_id: i64, timeout_ms: i32 },
    /// A write request (create, delete, setData, setACL, multi).
    Write { conn: ConnRef, session_id: i64, xid: i32, op: i32, write: WriteOp, auth: Arc<Authz> },
    /// sync: an ordering barrier answered in the next batch.
    Sync { conn: ConnRef, session_id: i64, xid: i32, path: String },
    /// The client asked to close its session (op -11).
    CloseSession { conn: ConnRef, session_id: i64, xid: i32 },
    /// Sessions that showed liveness on this worker since the last flush,
    /// each with the time of its latest request (expiry counts from then,
    /// not from this message's arrival up to tickTime/2 later).
    Touch { sessions: Vec<(i64, Instant)> },
    /// The connection bound to this session went away (the session lives on
    /// until it expires or the client reconnects).
    Disconnected { conn: ConnRef, session_id: i64 },
    /// A worker's part of a four-letter-word report.
    ReportPart { request_id: u64, part: ShardReport },
    /// A four-letter word that needs every shard's view (cons, wchc, ...).
    Report { conn: ConnRef, request_id: u64, cmd: &'static str },
}

/// What the client is told about its request once the batch is durable.
/// `ConnectReadOnly` is the answer of a server in read-only mode
/// (`server::read_only`): the ConnectResponse says readOnly=true, and a
/// connection whose ConnectRequest did not ask for read-only is closed.
pub enum ReplyKind {
    Connect { session_id: i64, timeout_ms: i32, passwd: [u8; 16], valid: bool },
    ConnectReadOnly { session_id: i64, timeout_ms: i32, passwd: [u8; 16], valid: bool },
    Write { xid: i32, op: i32, result: Result<Option<Response>, ErrorCode> },
    Sync { xid: i32, path: String },
    CloseSession { xid: i32 },
}

pub struct Reply {
    pub conn: ConnRef,
    pub zxid: i64,
    pub kind: ReplyKind,
}

/// One entry of a batch, in commit order.
pub enum BatchEntry {
    /// A committed transaction: the watch triggers it fired (to be matched
    /// against each shard's watch registry), then the reply for its origin.
    Txn {
        zxid: i64,
        triggers: Vec<WatchTrigger>,
        reply: Option<Reply>,
        /// A session this txn closed (client close or expiry): its shard
        /// drops the connection after any reply.
        closed_session: Option<i64>,
    },
    /// A reply that consumes no zxid (sync, revalidation).
    Reply(Reply),
    /// Close this connection without a word (its session moved or died).
    DropConnection { conn: ConnRef },
}

/// A group of entries made durable together, and the tree version that
/// results from them. Shared by all workers through an `Arc`.
pub struct CommitBatch {
    pub tree: DataTree,
    pub last_zxid: i64,
    pub entries: Vec<BatchEntry>,
}

/// Commit shard -> worker shard.
pub enum FromCommit {
    Batch(Arc<CommitBatch>),
    /// The server stopped serving (an ensemble member lost its leader or
    /// quorum): close every client connection, as Apache does, so clients
    /// move to a server that serves.
    DropAllConnections,
    /// Collect this shard's part of a four-letter-word report.
    CollectReport {
        request_id: u64,
        cmd: &'static str,
    },
    /// A finished report for a connection of this shard.
    ReportReady {
        conn: ConnRef,
        text: Bytes,
    },
}

/// One worker shard's contribution to a four-letter-word report.
#[derive(Debug, Default, Clone)]
pub struct ShardReport {
    pub connections: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub outstanding: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub latency_sum_ms: u64,
    pub latency_count: u64,
    pub watch_count: u64,
    pub data_watch_count: u64,
    pub watched_paths: u64,
    pub watching_sessions: u64,
    /// Pre-formatted lines (cons/stat connection lines, wchc/wchp entries).
    pub lines: String,
}
