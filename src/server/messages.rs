//! Every message that crosses a shard boundary, in one place.
//!
//! Worker shards send `ToCommit` to the commit shard over one bounded
//! glommio shared channel each; the commit shard answers every worker with
//! `FromCommit` over one bounded channel per worker. Everything here is
//! `Send`: it is the only data that moves between threads (besides the
//! immutable tree versions inside `CommitBatch`, the stats atomics, and
//! each worker's `view_slot::WorkerGate`).

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

impl ReplyKind {
    /// The ConnectResponse to a new or revalidated session; an invalid one
    /// (expired, unknown) carries no id, timeout or password, as Apache's.
    pub fn connect(session_id: i64, timeout_ms: i32, valid: bool) -> ReplyKind {
        ReplyKind::Connect {
            session_id: if valid { session_id } else { 0 },
            timeout_ms: if valid { timeout_ms } else { 0 },
            passwd: if valid { crate::session::session_password(session_id) } else { [0; 16] },
            valid,
        }
    }
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
    /// What the batch's txns do to the session table, in txn order: the
    /// commit shard keeps the table as of the published batch with them
    /// (a SNAP sends it with the published tree). Workers ignore it.
    pub session_changes: Vec<crate::session::SessionChange>,
}

/// Commit shard -> worker shard.
pub enum FromCommit {
    /// A batch that concerns this worker (`server::view_slot`), with the
    /// number of its publish (`ServerStats::publish_seq`). A batch that
    /// does not is left in the worker's slot instead.
    Batch { batch: Arc<CommitBatch>, publish_seq: u64 },
    /// Look at the slot (`view_slot::WorkerGate`): a read waits for the
    /// tree there, or the view is many batches old.
    Advance,
    /// The server stopped serving (an ensemble member lost its leader or
    /// quorum): close every client connection, as Apache does, so clients
    /// move to a server that serves.
    DropAllConnections,
    /// Collect this shard's part of a four-letter-word report.
    CollectReport { request_id: u64, cmd: &'static str },
    /// A finished report for a connection of this shard, in pieces to be
    /// sent in order: a wchc / wchp answer is each shard's dump as it came,
    /// never joined into one copy (at 10M watches that is half a gigabyte).
    ReportReady { conn: ConnRef, chunks: Vec<Bytes> },
    /// A report the requester merges itself (the AdminServer's `watches` /
    /// `watches_by_path`): every shard's part as it came, so the commit
    /// shard, which orders every write, does no O(watches) work for it.
    ReportParts { conn: ConnRef, parts: Vec<ShardReport> },
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
    /// Pre-formatted lines (cons/stat connection lines).
    pub lines: String,
    /// wchc / wchp text in pieces of `WATCH_DUMP_PIECE_BYTES`, each in a
    /// mapping of its own (`server::dump_pieces`) and filled between two
    /// yields, so no single step of a 10M-watch dump grows (and copies) or
    /// frees one buffer of hundreds of MiB.
    pub dump: Vec<Bytes>,
    /// Which worker shard this part is from.
    pub shard: usize,
    /// AdminServer `connections` / `stats`: one entry per connection.
    pub connections_info: Vec<ConnectionInfo>,
    /// AdminServer `watches`: data-watch paths by session, listed in
    /// chunks on the worker; merged and written as JSON by worker 0's
    /// AdminServer off the executors (`admin_watches`). Boxed, as the
    /// next: every `ToCommit` is as large as a report part.
    pub session_watches: Box<crate::watch::SessionWatchList>,
    /// AdminServer `watches_by_path`: watching sessions by path, likewise.
    pub path_watches: Box<crate::watch::PathWatchList>,
    /// Request latency on this shard, since start or `srst` (boxed: it
    /// would make every `ToCommit` as large as its buckets).
    pub request_latency: Box<LatencyHistogram>,
    /// Sizes of the responses this shard sent, since start or `srst`.
    pub response_sizes: BufferSizes,
}

/// One observer in a leader's broadcast, as Apache's
/// `LearnerHandler.getLearnerHandlerInfo` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserverInfo {
    pub remote_socket_address: std::net::SocketAddr,
    pub sid: i64,
    /// Wall-clock ms the connection was accepted.
    pub established_ms: i64,
    pub queued_packets: u64,
    pub queued_packets_bytes: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Forwarded client requests received.
    pub requests: u64,
    /// The newest zxid sent; -1 before any.
    pub last_zxid: i64,
}

/// Apache's BufferStats: the last, smallest and largest size (bytes) of
/// something sent, -1 before the first. `last_at` orders the parts of
/// several shards, so that their merge keeps the newest `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizes {
    pub last: i64,
    pub min: i64,
    pub max: i64,
    pub last_at: Option<Instant>,
}

impl Default for BufferSizes {
    fn default() -> Self {
        BufferSizes { last: -1, min: -1, max: -1, last_at: None }
    }
}

impl BufferSizes {
    pub fn record(&mut self, bytes: usize, at: Instant) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.last = bytes;
        if self.min < 0 || bytes < self.min {
            self.min = bytes;
        }
        self.max = self.max.max(bytes);
        self.last_at = Some(at);
    }

    /// The figures of both, as one BufferStats would hold them.
    pub fn merge(&mut self, other: &BufferSizes) {
        if other.last_at.is_none() {
            return;
        }
        if self.last_at.is_none() {
            *self = *other;
            return;
        }
        if other.last_at > self.last_at {
            self.last = other.last;
            self.last_at = other.last_at;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Apache's `BufferStats.toString`: last/min/max.
    pub fn display(&self) -> String {
        format!("{}/{}/{}", self.last, self.min, self.max)
    }
}

/// One client connection as Apache's `ServerCnxn.getConnectionInfo` lists
/// it (the AdminServer's `connections` and `stats`).
#[derive(Debug, Default, Clone)]
pub struct ConnectionInfo {
    pub remote_socket_address: String,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub session_id: i64,
    pub last_operation: &'static str,
    pub established_ms: i64,
    pub session_timeout_ms: i32,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_time_ms: i64,
    /// Over TLS.
    pub secure: bool,
    pub last_latency_ms: u64,
    pub min_latency_ms: u64,
    pub avg_latency_ms: u64,
    pub max_latency_ms: u64,
}

/// Upper bounds (µs) of the request-latency buckets each worker keeps:
/// roughly 1-2.5-5 per decade, 50 µs to 10 s, fixed so that shards'
/// histograms add up and Prometheus sees the same `le` on every scrape.
pub const LATENCY_BUCKET_BOUNDS_US: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 7_500_000, 10_000_000,
];

/// A fixed-bucket latency histogram: O(1) to record on a shard's request
/// path, and mergeable across shards (the buckets are the same everywhere).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Non-cumulative counts per `LATENCY_BUCKET_BOUNDS_US` bucket; the
    /// last slot counts what lies above the largest bound.
    pub counts: [u64; LATENCY_BUCKET_BOUNDS_US.len() + 1],
    pub count: u64,
    pub sum_us: u64,
}

impl LatencyHistogram {
    pub fn record_us(&mut self, us: u64) {
        let slot = LATENCY_BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// (upper bound µs, cumulative count) per bound, as Prometheus wants.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut running = 0;
        LATENCY_BUCKET_BOUNDS_US
            .iter()
            .zip(self.counts.iter())
            .map(|(&bound, &c)| {
                running += c;
                (bound, running)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_take_values_at_or_below_their_bound() {
        let mut h = LatencyHistogram::default();
        for us in [0, 50, 51, 100, 9_999_999, 10_000_000, 10_000_001, u64::MAX] {
            h.record_us(us);
        }
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], (50, 2), "0 and 50 are at or below 50");
        assert_eq!(cumulative[1], (100, 4));
        assert_eq!(cumulative.last(), Some(&(10_000_000, 6)));
        assert_eq!(h.counts[LATENCY_BUCKET_BOUNDS_US.len()], 2, "above the largest bound");
        assert_eq!(h.count, 8);
        assert_eq!(h.sum_us, u64::MAX, "the sum saturates");
    }

    #[test]
    fn merged_histograms_add_bucket_by_bucket() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.record_us(70);
        b.record_us(70);
        b.record_us(3_000);
        a.merge(&b);
        assert_eq!(a.count, 3);
        assert_eq!(a.sum_us, 3_140);
        assert_eq!(a.cumulative()[1], (100, 2));
        assert_eq!(a.cumulative()[6], (5_000, 3));
    }
}
