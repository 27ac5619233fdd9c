//! The quorum-port network links between a ZAB leader and its learners, on
//! glommio: TCP sockets carrying `zab::packets` (and the SNAP stream), so
//! the lead's driver can carry out `LeaderAction::Send` / `SendSnapshot`
//! and `LearnerAction::Send` / `ReadSnapshot` without touching a socket.
//!
//! Owns: one TCP connection per link, its writer task (send queue, batching,
//! snapshot streaming), its reader task (decoding, the bounded receive
//! queue) and the helper thread that serializes an outgoing snapshot. It
//! owns no protocol state: what to send and when is the state machines'.
//!
//! ```text
//! // Learner side (one glommio executor; the link is !Send)
//! LeaderLink::connect(addr, timeout).await -> io::Result<LeaderLink>  // one attempt; retries are the caller's
//! LeaderLink::connect_with(addr, timeout, &transport).await             // the same over quorum TLS / SASL (server::quorum_tls, quorum_sasl)
//! link.send(ToLeader) -> Result<(), LinkError>        // queued; Err once the link has failed
//! link.recv().await  -> Result<FromLeader, LinkError> // FromLeader::Packet(ToLearner) | ::Snapshot{zxid, tree, sessions}
//! link.close(); link.peer(); link.stats()
//!
//! // Leader side
//! LearnerListener::bind(addr) -> io::Result<LearnerListener>; .local_addr(); .accept().await -> io::Result<LearnerLink>
//! LearnerListener::bind_with(addr, transport)   // quorum TLS / SASL: handshakes run in their own tasks, accept() gets the ready links
//! link.send(ToLearner) -> Result<(), LinkError>
//! link.send_snapshot(zxid, tree, sessions) -> Result<(), LinkError>  // SNAP, then the stream, in order with send()
//! link.send_logged_txns(produce) -> Result<(), LinkError>  // a DIFF's logged txns, made on a thread, in order
//! link.recv().await  -> Result<ToLeader, LinkError>
//! link.close(); link.peer(); link.stats()
//! ```
//!
//! Sending never waits: `send` encodes the packet onto the link's queue and
//! wakes the writer task, which takes everything queued since its last
//! write and writes it with one `write_all` (so a burst of proposals costs
//! one syscall, not one each). TCP_NODELAY is set: batching is ours, not
//! Nagle's. The queue is bounded by [`SEND_QUEUE_MAX_BYTES`]; a peer that
//! lets it fill is failing, and the link closes with
//! [`LinkFailure::SendQueueFull`] (the state machine would drop it at
//! syncLimit anyway; this bounds the memory until then).
//!
//! `send_snapshot` queues the SNAP packet, then a snapshot segment, then
//! whatever is sent afterwards. The stream itself is written by
//! `storage::apache::write_snap_stream` on a helper thread into a bounded
//! pipe ([`SNAP_PIPE_MAX_CHUNKS`] chunks) that the writer task drains into
//! the socket. A helper thread rather than incremental serialization on the
//! executor: the serializer needs a whole pass over the tree (the ACL
//! cache) before its first node, so it cannot be resumed in slices without
//! a second copy of the format; the tree is a persistent structure whose
//! clone is O(1) and `Send`, so the thread gets its own view for free; and
//! the executor only ever copies ready chunks, so a tree of millions of
//! nodes stalls no other link. The pipe's bound gives back-pressure from the
//! learner's socket to the serializer and keeps memory at a few MiB.
//!
//! `send_logged_txns` uses the same pipe for a DIFF from the leader's
//! on-disk log: the helper thread reads the log files and writes the
//! PROPOSAL + COMMIT pairs, so reading many MiB never stalls the commit
//! shard, and the pairs reach the socket after everything queued before
//! the call and before everything queued after it (NEWLEADER included).
//!
//! Receiving: a reader task decodes packets as bytes arrive and queues them
//! (at most [`RECV_QUEUE_MAX_MESSAGES`]; when full it stops reading the
//! socket). On the learner side a SNAP packet switches it to decoding the
//! snapshot stream into a `DataTree`; the whole of it is delivered as one
//! [`FromLeader::Snapshot`], and packets after it follow it. The driver
//! feeds the state machine `ToLearner::Snap { zxid }` itself when it gets
//! the snapshot (then `LearnerAction::ReadSnapshot` is already satisfied).
//!
//! Failure: malformed or oversized input, an IO error, the peer closing, a
//! full send queue or `close()` ends the link: the socket is shut down,
//! queued output is dropped, and `recv` returns a [`LinkError`] naming the
//! peer and the cause (after any messages received before it, when the
//! cause is the peer's). Nothing here panics on input or stops the server.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use crate::server::quorum_tls::{QuorumStream, QuorumTransport};
use crate::storage::apache::{write_snap_stream, ApacheFormatError, SnapStreamDecoder};
use crate::tree::DataTree;
use crate::zab::packets::{PacketDecoder, PacketError, ToLeader, ToLearner, SNAP_FIELD_MAX_BYTES};

/// Bytes queued for one link and not yet handed to the socket (the write
/// in progress, at most as much again, is not counted). 32 times the
/// largest packet; a learner this far behind (or a peer that stopped
/// reading) is failing.
pub const SEND_QUEUE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Decoded messages waiting for `recv`; when full, the reader stops reading
/// the socket (TCP back-pressure to the peer).
pub const RECV_QUEUE_MAX_MESSAGES: usize = 1024;

/// Bytes asked of the socket per read.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Serialized snapshot chunks the helper thread may run ahead of the
/// socket. A chunk is one flush of `write_snap_stream`'s 256 KiB buffer
/// (or one field larger than that), so about 2 MiB ahead at most.
pub const SNAP_PIPE_MAX_CHUNKS: usize = 8;

/// A write the peer does not drain for this long fails the link. A backstop
/// only: a learner that stops reading stops answering PINGs, and the state
/// machine closes it after syncLimit, long before this.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- errors

/// Why a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFailure {
    /// The peer closed the connection (end of stream).
    PeerClosed,
    /// A socket error.
    Io { kind: io::ErrorKind, message: String },
    /// Bytes that are not a packet we accept (bad length, bad layout,
    /// a type this direction never carries).
    Malformed(PacketError),
    /// The snapshot stream after SNAP is malformed.
    BadSnapshot(ApacheFormatError),
    /// More than [`SEND_QUEUE_MAX_BYTES`] queued: the peer is not keeping up.
    SendQueueFull { queued_bytes: usize },
    /// The helper thread could not serialize the snapshot.
    SnapshotSerialization(String),
    /// The helper thread could not read the logged txns of a DIFF from disk
    /// (the learner must not get a DIFF with a hole, so the link ends).
    LoggedTxns(String),
    /// `close()` was called (or the link dropped).
    ClosedLocally,
}

impl LinkFailure {
    fn io(e: &io::Error) -> LinkFailure {
        LinkFailure::Io { kind: e.kind(), message: e.to_string() }
    }

    /// Decided on this side: reported at once, ahead of anything received.
    fn is_local(&self) -> bool {
        matches!(
            self,
            LinkFailure::SendQueueFull { .. }
                | LinkFailure::SnapshotSerialization(_)
                | LinkFailure::LoggedTxns(_)
                | LinkFailure::ClosedLocally
        )
    }
}

impl std::fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkFailure::PeerClosed => f.write_str("the peer closed the connection"),
            LinkFailure::Io { message, .. } => write!(f, "socket error: {message}"),
            LinkFailure::Malformed(e) => write!(f, "malformed input: {e}"),
            LinkFailure::BadSnapshot(e) => write!(f, "malformed snapshot stream after SNAP: {e}"),
            LinkFailure::SendQueueFull { queued_bytes } => {
                write!(
                    f,
                    "send queue full ({queued_bytes} bytes queued, limit {SEND_QUEUE_MAX_BYTES}): peer not keeping up"
                )
            }
            LinkFailure::SnapshotSerialization(e) => write!(f, "cannot serialize the snapshot: {e}"),
            LinkFailure::LoggedTxns(e) => write!(f, "cannot read the logged txns of a DIFF: {e}"),
            LinkFailure::ClosedLocally => f.write_str("closed by this server"),
        }
    }
}

/// A link's end, naming the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    pub peer: SocketAddr,
    pub failure: LinkFailure,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quorum link with {}: {}", self.peer, self.failure)
    }
}

impl std::error::Error for LinkError {}

/// Counters of one link, for tests and `mntr`-style reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets accepted by `send` / `send_snapshot`.
    pub packets_queued: u64,
    /// `write_all` calls on the socket (one per writer wake-up, plus one
    /// per snapshot chunk).
    pub socket_writes: u64,
    /// Bytes of completed `write_all` calls.
    pub bytes_written: u64,
    /// Messages the reader decoded (a snapshot counts once).
    pub messages_received: u64,
    /// Of those, forwarded client requests (REQUEST packets).
    pub requests_received: u64,
    /// Packets queued and not yet handed to the socket (a snapshot or a
    /// DIFF stream counts once).
    pub packets_waiting: u64,
    /// Packet bytes queued and not yet handed to the socket.
    pub bytes_waiting: u64,
    /// The zxid of the newest packet queued with one (> 0); -1 before any.
    pub last_zxid_queued: i64,
}

// ---------------------------------------------------------------- the snapshot pipe

/// A bounded queue of serialized snapshot chunks from the helper thread
/// (blocking producer) to the writer task (async consumer).
struct SnapPipe {
    state: Mutex<PipeState>,
    /// Signalled when a chunk is taken or the consumer goes away.
    space: Condvar,
}

#[derive(Default)]
struct PipeState {
    chunks: VecDeque<Bytes>,
    /// Set once by the producer: the stream's length, or why it failed.
    end: Option<Result<u64, String>>,
    consumer_gone: bool,
    waker: Option<Waker>,
}

impl SnapPipe {
    fn new() -> Arc<SnapPipe> {
        Arc::new(SnapPipe { state: Mutex::new(PipeState::default()), space: Condvar::new() })
    }

    /// A poisoned lock only means the other side panicked; the state is
    /// still consistent (every update is a single assignment or push).
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Producer: waits while the pipe is full; fails once the consumer is gone.
    fn push(&self, chunk: Bytes) -> io::Result<()> {
        let mut state = self.lock();
        while state.chunks.len() >= SNAP_PIPE_MAX_CHUNKS && !state.consumer_gone {
            state = self.space.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.consumer_gone {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the quorum link closed"));
        }
        state.chunks.push_back(chunk);
        let waker = state.waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    fn finish(&self, end: Result<u64, String>) {
        let mut state = self.lock();
        state.end = Some(end);
        let waker = state.waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The helper thread's `Write`: every write becomes one chunk
/// (`write_snap_stream` buffers, so writes arrive 256 KiB at a time).
struct PipeWriter(Arc<SnapPipe>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.0.push(Bytes::copy_from_slice(buf))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum SnapItem {
    Chunk(Bytes),
    End(Result<u64, String>),
}

/// The writer task's end of a pipe; dropping it stops the helper thread.
/// Carries a SNAP stream, or the logged txns of a DIFF from disk: bytes
/// made on a helper thread and written in order with the link's packets.
struct SnapSource {
    pipe: Arc<SnapPipe>,
    /// What a failure of the helper thread ends the link with.
    failure: fn(String) -> LinkFailure,
}

impl SnapSource {
    /// Starts serializing `tree` and `sessions` on a helper thread.
    fn spawn(tree: DataTree, sessions: BTreeMap<i64, i32>) -> io::Result<SnapSource> {
        SnapSource::spawn_producer("zk-snap-send", LinkFailure::SnapshotSerialization, move |out| {
            write_snap_stream(out, &tree, &sessions).map_err(|e| e.to_string())
        })
    }

    /// Starts `produce` on a helper thread; every `write` it makes becomes
    /// one chunk of the pipe (so it should write in large pieces).
    fn spawn_producer(
        thread_name: &str,
        failure: fn(String) -> LinkFailure,
        produce: impl FnOnce(&mut PipeWriter) -> Result<u64, String> + Send + 'static,
    ) -> io::Result<SnapSource> {
        let pipe = SnapPipe::new();
        let producer = pipe.clone();
        std::thread::Builder::new().name(thread_name.into()).spawn(move || {
            let result = produce(&mut PipeWriter(producer.clone()));
            producer.finish(result);
        })?;
        Ok(SnapSource { pipe, failure })
    }

    fn next(&self) -> NextSnapItem<'_> {
        NextSnapItem { source: self }
    }
}

impl Drop for SnapSource {
    fn drop(&mut self) {
        self.pipe.lock().consumer_gone = true;
        self.pipe.space.notify_all();
    }
}

struct NextSnapItem<'a> {
    source: &'a SnapSource,
}

impl Future for NextSnapItem<'_> {
    type Output = SnapItem;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SnapItem> {
        let pipe = &self.source.pipe;
        let mut state = pipe.lock();
        if let Some(chunk) = state.chunks.pop_front() {
            drop(state);
            pipe.space.notify_all();
            return Poll::Ready(SnapItem::Chunk(chunk));
        }
        if let Some(end) = state.end.take() {
            return Poll::Ready(SnapItem::End(end));
        }
        // The producer wakes this from its own thread (glommio queues
        // foreign wake-ups to the task's executor).
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

// ---------------------------------------------------------------- the shared link core

enum Segment {
    /// Encoded packets (this many), written with one `write_all`.
    Packets(BytesMut, u64),
    /// A SNAP stream being serialized.
    Snapshot(SnapSource),
}

#[derive(Default)]
struct SendQueue {
    /// Everything up to and including the last queued snapshot.
    segments: VecDeque<Segment>,
    /// Packets queued after the last snapshot: the next write's bytes.
    tail: BytesMut,
    /// How many packets `tail` holds.
    tail_packets: u64,
    /// Packets in `segments` and `tail` (a snapshot segment counts once).
    queued_packets: u64,
    /// Packet bytes not yet handed to the socket (snapshot bytes are
    /// bounded by the pipe instead).
    queued_bytes: usize,
}

impl SendQueue {
    fn pop(&mut self) -> Option<Segment> {
        let next = match self.segments.pop_front() {
            Some(segment) => segment,
            None if self.tail.is_empty() => return None,
            None => Segment::Packets(self.tail.split(), std::mem::take(&mut self.tail_packets)),
        };
        let packets = match &next {
            Segment::Packets(buf, packets) => {
                self.queued_bytes = self.queued_bytes.saturating_sub(buf.len());
                *packets
            }
            Segment::Snapshot(_) => 1,
        };
        self.queued_packets = self.queued_packets.saturating_sub(packets);
        Some(next)
    }
}

/// What the reader, the writer and the link handle share (one executor).
struct Shared {
    peer: SocketAddr,
    fd: RawFd,
    /// The stream's halves still held by the tasks. While non-zero the
    /// stream, and so `fd`, is open: only then may it be shut down.
    halves_alive: Cell<u8>,
    out: RefCell<SendQueue>,
    writer_wake: LocalSender<()>,
    failure: RefCell<Option<LinkError>>,
    stats: Cell<LinkStats>,
}

impl Shared {
    fn failed(&self) -> Option<LinkError> {
        self.failure.borrow().clone()
    }

    /// The counters, with the queue's present depth.
    fn stats(&self) -> LinkStats {
        let out = self.out.borrow();
        LinkStats { packets_waiting: out.queued_packets, bytes_waiting: out.queued_bytes as u64, ..self.stats.get() }
    }

    fn update_stats(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Ends the link (the first cause wins) and returns the error it ended with.
    fn fail(&self, failure: LinkFailure) -> LinkError {
        let error = {
            let mut slot = self.failure.borrow_mut();
            match &*slot {
                Some(first) => first.clone(),
                None => {
                    let e = LinkError { peer: self.peer, failure };
                    *slot = Some(e.clone());
                    e
                }
            }
        };
        // Drops queued output; a snapshot source's drop stops its thread.
        let dropped = std::mem::take(&mut *self.out.borrow_mut());
        drop(dropped);
        self.shutdown_socket();
        let _ = self.writer_wake.try_send(());
        error
    }

    /// Wakes both tasks' pending socket operations.
    fn shutdown_socket(&self) {
        if self.halves_alive.get() > 0 {
            // SAFETY: fd belongs to the stream, which is still open: a task
            // holds one of its halves (see `halves_alive`).
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RDWR);
            }
        }
    }

    fn half_dropped(&self) {
        self.halves_alive.set(self.halves_alive.get().saturating_sub(1));
    }

    /// Appends one encoded packet to the queue.
    fn enqueue(&self, encode: impl FnOnce(&mut BytesMut)) -> Result<(), LinkError> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let queued = {
            let mut out = self.out.borrow_mut();
            let before = out.tail.len();
            encode(&mut out.tail);
            out.queued_bytes += out.tail.len() - before;
            out.tail_packets += 1;
            out.queued_packets += 1;
            out.queued_bytes
        };
        self.update_stats(|s| s.packets_queued += 1);
        if queued > SEND_QUEUE_MAX_BYTES {
            return Err(self.fail(LinkFailure::SendQueueFull { queued_bytes: queued }));
        }
        let _ = self.writer_wake.try_send(());
        Ok(())
    }

    fn enqueue_snapshot(&self, source: SnapSource) {
        let mut out = self.out.borrow_mut();
        if !out.tail.is_empty() {
            let before = out.tail.split();
            let packets = std::mem::take(&mut out.tail_packets);
            out.segments.push_back(Segment::Packets(before, packets));
        }
        out.segments.push_back(Segment::Snapshot(source));
        out.queued_packets += 1;
        drop(out);
        let _ = self.writer_wake.try_send(());
    }
}

/// Drains the send queue into the socket until the link fails.
async fn writer_task(shared: Rc<Shared>, mut writer: WriteHalf<QuorumStream>, wake: LocalReceiver<()>) {
    let failure = write_loop(&shared, &mut writer, &wake).await;
    drop(writer);
    shared.half_dropped();
    if let Some(f) = failure {
        shared.fail(f);
    }
}

async fn write_all(shared: &Shared, writer: &mut WriteHalf<QuorumStream>, bytes: &[u8]) -> Result<(), LinkFailure> {
    writer.write_all(bytes).await.map_err(|e| LinkFailure::io(&e))?;
    shared.update_stats(|s| {
        s.socket_writes += 1;
        s.bytes_written += bytes.len() as u64;
    });
    Ok(())
}

/// Returns the failure that stopped it (None: the link had already failed).
async fn write_loop(
    shared: &Shared,
    writer: &mut WriteHalf<QuorumStream>,
    wake: &LocalReceiver<()>,
) -> Option<LinkFailure> {
    loop {
        if shared.failed().is_some() {
            return None;
        }
        let next = shared.out.borrow_mut().pop();
        match next {
            Some(Segment::Packets(buf, _)) => {
                if let Err(f) = write_all(shared, writer, &buf).await {
                    return Some(f);
                }
            }
            Some(Segment::Snapshot(source)) => loop {
                match source.next().await {
                    SnapItem::Chunk(chunk) => {
                        if shared.failed().is_some() {
                            return None;
                        }
                        if let Err(f) = write_all(shared, writer, &chunk).await {
                            return Some(f);
                        }
                    }
                    SnapItem::End(Ok(_)) => break,
                    SnapItem::End(Err(e)) => return Some((source.failure)(e)),
                }
            },
            None => {
                // The sender lives in `shared`, which we hold: never None.
                let _ = wake.recv().await;
            }
        }
    }
}

/// Reads one chunk into the decoder.
async fn read_chunk(
    reader: &mut ReadHalf<QuorumStream>,
    chunk: &mut [u8],
    decoder: &mut PacketDecoder,
) -> Result<(), LinkFailure> {
    match reader.read(chunk).await {
        Ok(0) => Err(LinkFailure::PeerClosed),
        Ok(n) => {
            decoder.feed(chunk.get(..n).unwrap_or_default());
            Ok(())
        }
        Err(e) => Err(LinkFailure::io(&e)),
    }
}

/// Ends a reader task: the half is released, the link failed (unless it
/// already was) and the receive queue closed so `recv` reports it.
fn reader_done<M>(shared: &Shared, reader: ReadHalf<QuorumStream>, incoming: LocalSender<M>, failure: LinkFailure) {
    drop(reader);
    shared.half_dropped();
    shared.fail(failure);
    drop(incoming);
}

/// The link parts every link has: the shared core, the receive queue.
struct LinkCore<M> {
    shared: Rc<Shared>,
    incoming: LocalReceiver<M>,
}

impl<M> LinkCore<M> {
    /// Wires up a connected stream; `reader` becomes the reader task.
    fn start<F, Fut>(stream: QuorumStream, reader: F) -> io::Result<LinkCore<M>>
    where
        F: FnOnce(Rc<Shared>, ReadHalf<QuorumStream>, LocalSender<M>) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let tcp = stream.tcp();
        let peer = tcp.peer_addr()?;
        tcp.set_nodelay(true)?;
        tcp.set_write_timeout(Some(WRITE_STALL_TIMEOUT))?;
        let fd = tcp.as_raw_fd();
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        let (in_tx, in_rx) = local_channel::new_bounded(RECV_QUEUE_MAX_MESSAGES);
        let shared = Rc::new(Shared {
            peer,
            fd,
            halves_alive: Cell::new(2),
            out: RefCell::new(SendQueue::default()),
            writer_wake: wake_tx,
            failure: RefCell::new(None),
            stats: Cell::new(LinkStats { last_zxid_queued: -1, ..LinkStats::default() }),
        });
        let (read_half, write_half) = futures_lite::io::split(stream);
        glommio::spawn_local(writer_task(shared.clone(), write_half, wake_rx)).detach();
        glommio::spawn_local(reader(shared.clone(), read_half, in_tx)).detach();
        Ok(LinkCore { shared, incoming: in_rx })
    }

    async fn recv(&self) -> Result<M, LinkError> {
        if let Some(e) = self.shared.failed() {
            if e.failure.is_local() {
                return Err(e);
            }
        }
        match self.incoming.recv().await {
            Some(m) => Ok(m),
            None => Err(self
                .shared
                .failed()
                .unwrap_or(LinkError { peer: self.shared.peer, failure: LinkFailure::ClosedLocally })),
        }
    }
}

impl<M> Drop for LinkCore<M> {
    fn drop(&mut self) {
        self.shared.fail(LinkFailure::ClosedLocally);
    }
}

// ---------------------------------------------------------------- learner side

/// What a learner receives from its leader.
pub enum FromLeader {
    Packet(ToLearner),
    /// SNAP and the whole stream after it, decoded: the tree (its last
    /// zxid set to `zxid`) and the session table.
    Snapshot {
        zxid: i64,
        tree: DataTree,
        sessions: BTreeMap<i64, i32>,
    },
}

impl std::fmt::Debug for FromLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FromLeader::Packet(p) => f.debug_tuple("Packet").field(p).finish(),
            FromLeader::Snapshot { zxid, tree, sessions } => f
                .debug_struct("Snapshot")
                .field("zxid", &format_args!("{zxid:#x}"))
                .field("nodes", &tree.node_count())
                .field("sessions", &sessions.len())
                .finish(),
        }
    }
}

/// A learner's connection to its leader's quorum port. `!Send`: it lives on
/// the executor that connected it.
pub struct LeaderLink {
    core: LinkCore<FromLeader>,
}

impl LeaderLink {
    /// One connection attempt, failing after `timeout`; retries (Apache
    /// tries 5 times, a second apart) are the caller's.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<LeaderLink> {
        LeaderLink::connect_with(addr, timeout, &QuorumTransport::default()).await
    }

    /// [`LeaderLink::connect`] over `transport` (quorum TLS: the handshake
    /// and the leader's name check come before the link starts).
    pub async fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        transport: &QuorumTransport,
    ) -> io::Result<LeaderLink> {
        let tcp = TcpStream::connect_timeout(addr, timeout).await?;
        let mut stream = transport
            .dial(tcp, addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with the leader failed: {e}")))?;
        if let Some(sasl) = transport.sasl() {
            sasl.authenticate_to(&mut stream, addr)
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        }
        let core = LinkCore::start(stream, learner_reader)?;
        Ok(LeaderLink { core })
    }

    pub fn peer(&self) -> SocketAddr {
        self.core.shared.peer
    }

    /// Queues a packet; the writer task sends it with whatever else is
    /// queued. `Err` once the link has failed (or fails now because the
    /// queue is full).
    pub fn send(&self, p: ToLeader) -> Result<(), LinkError> {
        self.core.shared.enqueue(|buf| p.encode(buf))
    }

    /// The next message from the leader, in the order it was sent.
    pub async fn recv(&self) -> Result<FromLeader, LinkError> {
        self.core.recv().await
    }

    /// Drops the connection now; queued output is discarded (so does
    /// dropping the link).
    pub fn close(&self) {
        self.core.shared.fail(LinkFailure::ClosedLocally);
    }

    pub fn stats(&self) -> LinkStats {
        self.core.shared.stats()
    }
}

async fn learner_reader(shared: Rc<Shared>, mut reader: ReadHalf<QuorumStream>, incoming: LocalSender<FromLeader>) {
    let failure = learner_read_loop(&shared, &mut reader, &incoming).await;
    reader_done(&shared, reader, incoming, failure);
}

async fn deliver<M>(shared: &Shared, incoming: &LocalSender<M>, m: M) -> Result<(), LinkFailure> {
    incoming.send(m).await.map_err(|_| LinkFailure::ClosedLocally)?;
    shared.update_stats(|s| s.messages_received += 1);
    Ok(())
}

async fn learner_read_loop(
    shared: &Shared,
    reader: &mut ReadHalf<QuorumStream>,
    incoming: &LocalSender<FromLeader>,
) -> LinkFailure {
    let mut decoder = PacketDecoder::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    // Some while reading the stream after a SNAP packet with this zxid.
    let mut snapshot: Option<(i64, SnapStreamDecoder)> = None;
    loop {
        loop {
            if let Some((zxid, snap)) = &mut snapshot {
                let used = match snap.decode(decoder.buffered()) {
                    Ok(used) => used,
                    Err(e) => return LinkFailure::BadSnapshot(e),
                };
                decoder.consume(used);
                if !snap.is_done() {
                    break;
                }
                let zxid = *zxid;
                let Some((_, snap)) = snapshot.take() else { break };
                let (tree, sessions) = match snap.finish(zxid) {
                    Ok(done) => done,
                    Err(e) => return LinkFailure::BadSnapshot(e),
                };
                if let Err(f) = deliver(shared, incoming, FromLeader::Snapshot { zxid, tree, sessions }).await {
                    return f;
                }
                continue;
            }
            let packet = match decoder.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return LinkFailure::Malformed(e),
            };
            match ToLearner::from_packet(&packet) {
                Ok(ToLearner::Snap { zxid }) => {
                    // Apache's readRecord bounds every field by jute.maxbuffer.
                    snapshot = Some((zxid, SnapStreamDecoder::new().with_max_field_bytes(SNAP_FIELD_MAX_BYTES)));
                }
                Ok(m) => {
                    if let Err(f) = deliver(shared, incoming, FromLeader::Packet(m)).await {
                        return f;
                    }
                }
                Err(e) => return LinkFailure::Malformed(e),
            }
        }
        // Decoding a large snapshot is CPU work on this executor: let other
        // tasks run between chunks.
        glommio::yield_if_needed().await;
        if let Err(f) = read_chunk(reader, &mut chunk, &mut decoder).await {
            return f;
        }
    }
}

// ---------------------------------------------------------------- leader side

/// The leader's quorum-port listener.
pub struct LearnerListener {
    listener: Rc<TcpListener>,
    /// Quorum TLS: connections are handshaken off the accept path (one
    /// slow peer must not hold up the others) and arrive here.
    secured: Option<SecuredAccepts>,
}

/// Quorum TLS handshakes of accepted learner connections under way at once;
/// more are closed at once.
pub const TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 32;

struct SecuredAccepts {
    /// A ready connection and the bytes the quorum SASL exchange read past its end.
    ready: LocalReceiver<(QuorumStream, BytesMut)>,
    /// Cancelled with the listener (a glommio task dropped is cancelled).
    _acceptor: glommio::Task<()>,
}

/// Accepts learner connections and hands each to its own handshake task
/// (TLS, then quorum SASL); the ones that pass go to `ready`. A failed
/// handshake is logged naming the peer and costs nothing else.
async fn secure_accept_loop(
    listener: Rc<TcpListener>,
    transport: QuorumTransport,
    ready: LocalSender<(QuorumStream, BytesMut)>,
) {
    let ready = Rc::new(ready);
    let in_flight = Rc::new(Cell::new(0usize));
    loop {
        let tcp = match listener.accept().await {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a learner connection failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = tcp.peer_addr().ok();
        if in_flight.get() >= TLS_HANDSHAKES_IN_FLIGHT_MAX {
            tracing::warn!(
                ?peer,
                limit = TLS_HANDSHAKES_IN_FLIGHT_MAX,
                "too many learner TLS handshakes under way; closing this connection"
            );
            continue;
        }
        in_flight.set(in_flight.get() + 1);
        let (transport, ready, in_flight) = (transport.clone(), ready.clone(), in_flight.clone());
        glommio::spawn_local(async move {
            let secured = match transport.accept(tcp).await {
                Ok(stream) => Ok(stream),
                Err(e) => Err(format!("quorum TLS handshake failed: {e}")),
            };
            let authenticated = match (secured, transport.sasl()) {
                (Ok(mut stream), Some(sasl)) => {
                    let mut pending = BytesMut::new();
                    // The address only names the peer in messages.
                    let addr = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    sasl.authenticate_peer(&mut stream, &mut pending, addr).await.map(|_| (stream, pending))
                }
                (Ok(stream), None) => Ok((stream, BytesMut::new())),
                (Err(e), _) => Err(e),
            };
            in_flight.set(in_flight.get().saturating_sub(1));
            match authenticated {
                // Fails only once the listener is gone: the stream is dropped.
                Ok(ready_link) => {
                    let _ = ready.send(ready_link).await;
                }
                Err(reason) => tracing::warn!(?peer, %reason, "refused a learner connection"),
            }
        })
        .detach();
    }
}

impl LearnerListener {
    /// SO_REUSEPORT as glommio's own bind, plus SO_REUSEADDR: the learner
    /// connections we accept inherit it into their TIME-WAIT remains, which
    /// otherwise keep an Apache server (it binds with SO_REUSEADDR) off this
    /// port for up to 60 s after a zoocore leader stops.
    pub fn bind(addr: SocketAddr) -> io::Result<LearnerListener> {
        use socket2::{Domain, Protocol, Socket, Type};
        use std::os::fd::{FromRawFd, IntoRawFd};
        const LISTEN_BACKLOG: i32 = 1024;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        // SAFETY: `into_raw_fd` hands over a listening socket's fd that
        // nothing else owns; the glommio listener closes it when dropped.
        let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
        Ok(LearnerListener { listener: Rc::new(listener), secured: None })
    }

    /// [`LearnerListener::bind`], accepting as `transport` says (quorum TLS).
    pub fn bind_with(addr: SocketAddr, transport: QuorumTransport) -> io::Result<LearnerListener> {
        let mut listener = LearnerListener::bind(addr)?;
        if !transport.accepts_only_plaintext() {
            let (ready_tx, ready_rx) = local_channel::new_bounded(TLS_HANDSHAKES_IN_FLIGHT_MAX);
            let acceptor = glommio::spawn_local(secure_accept_loop(listener.listener.clone(), transport, ready_tx));
            listener.secured = Some(SecuredAccepts { ready: ready_rx, _acceptor: acceptor });
        }
        Ok(listener)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The next learner connection. An error here is about the listener
    /// (or one connection that died before it was set up); the listener
    /// keeps working.
    pub async fn accept(&self) -> io::Result<LearnerLink> {
        let (stream, already_read) = match &self.secured {
            None => (QuorumStream::Plain(self.listener.accept().await?), BytesMut::new()),
            Some(secured) => secured
                .ready
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the quorum TLS acceptor stopped"))?,
        };
        let core = LinkCore::start(stream, move |shared, reader, incoming| {
            leader_reader(shared, reader, incoming, already_read)
        })?;
        Ok(LearnerLink { core, established_ms: crate::server::wall_clock_ms() })
    }
}

/// The leader's connection to one learner. `!Send`.
pub struct LearnerLink {
    core: LinkCore<ToLeader>,
    /// Wall-clock ms the connection was accepted.
    established_ms: i64,
}

impl LearnerLink {
    pub fn peer(&self) -> SocketAddr {
        self.core.shared.peer
    }

    pub fn established_ms(&self) -> i64 {
        self.established_ms
    }

    /// Queues a packet (see [`LeaderLink::send`]).
    pub fn send(&self, p: ToLearner) -> Result<(), LinkError> {
        let packet = p.to_packet();
        let shared = &self.core.shared;
        shared.enqueue(|buf| packet.encode(buf))?;
        // A PING's zxid field carries zoocore's ping round, not a zxid.
        if packet.zxid > 0 && !matches!(p, ToLearner::Ping { .. }) {
            shared.update_stats(|s| s.last_zxid_queued = packet.zxid);
        }
        Ok(())
    }

    /// Queues SNAP with `zxid`, then the snapshot stream of `tree` and
    /// `sessions` (serialized on a helper thread), in order with the other
    /// sends: what is sent after this call arrives after the stream.
    pub fn send_snapshot(&self, zxid: i64, tree: DataTree, sessions: BTreeMap<i64, i32>) -> Result<(), LinkError> {
        let shared = &self.core.shared;
        shared.enqueue(|buf| ToLearner::Snap { zxid }.encode(buf))?;
        match SnapSource::spawn(tree, sessions) {
            Ok(source) => {
                shared.enqueue_snapshot(source);
                Ok(())
            }
            Err(e) => Err(shared.fail(LinkFailure::SnapshotSerialization(format!("cannot start a thread: {e}")))),
        }
    }

    /// Queues the bytes `produce` writes (on a helper thread, through the
    /// same bounded pipe as a snapshot stream) in order with the other
    /// sends: what is sent after this call arrives after them. For the
    /// PROPOSAL + COMMIT pairs of a DIFF read from the on-disk log
    /// (`server::disk_log::LoggedTxnFiles::write_pairs`); an `Err` from
    /// `produce` ends the link with [`LinkFailure::LoggedTxns`].
    pub fn send_logged_txns(
        &self,
        produce: impl FnOnce(&mut dyn Write) -> Result<u64, String> + Send + 'static,
    ) -> Result<(), LinkError> {
        let shared = &self.core.shared;
        if let Some(e) = shared.failed() {
            return Err(e);
        }
        match SnapSource::spawn_producer("zk-diff-send", LinkFailure::LoggedTxns, move |out| produce(out)) {
            Ok(source) => {
                shared.update_stats(|s| s.packets_queued += 1);
                shared.enqueue_snapshot(source);
                Ok(())
            }
            Err(e) => Err(shared.fail(LinkFailure::LoggedTxns(format!("cannot start a thread: {e}")))),
        }
    }

    /// The next packet from the learner, in the order it was sent.
    pub async fn recv(&self) -> Result<ToLeader, LinkError> {
        self.core.recv().await
    }

    /// Drops the connection now; queued output is discarded.
    pub fn close(&self) {
        self.core.shared.fail(LinkFailure::ClosedLocally);
    }

    pub fn stats(&self) -> LinkStats {
        self.core.shared.stats()
    }
}

/// `already_read`: the learner's first bytes, read during quorum SASL.
async fn leader_reader(
    shared: Rc<Shared>,
    mut reader: ReadHalf<QuorumStream>,
    incoming: LocalSender<ToLeader>,
    already_read: BytesMut,
) {
    let failure = leader_read_loop(&shared, &mut reader, &incoming, already_read).await;
    reader_done(&shared, reader, incoming, failure);
}

async fn leader_read_loop(
    shared: &Shared,
    reader: &mut ReadHalf<QuorumStream>,
    incoming: &LocalSender<ToLeader>,
    already_read: BytesMut,
) -> LinkFailure {
    let mut decoder = PacketDecoder::new();
    decoder.feed(&already_read);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        loop {
            let packet = match decoder.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return LinkFailure::Malformed(e),
            };
            let message = match ToLeader::from_packet(&packet) {
                Ok(m) => m,
                Err(e) => return LinkFailure::Malformed(e),
            };
            if matches!(message, ToLeader::Request(_)) {
                shared.update_stats(|s| s.requests_received += 1);
            }
            if let Err(f) = deliver(shared, incoming, message).await {
                return f;
            }
        }
        if let Err(f) = read_chunk(reader, &mut chunk, &mut decoder).await {
            return f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::open_acl_unsafe;
    use crate::storage::apache::decode_snap_stream;
    use crate::tree::StoredStat;
    use futures_lite::future::block_on;

    fn drain(source: &SnapSource) -> (Vec<u8>, Result<u64, String>) {
        let mut bytes = Vec::new();
        loop {
            match block_on(source.next()) {
                SnapItem::Chunk(c) => bytes.extend_from_slice(&c),
                SnapItem::End(end) => return (bytes, end),
            }
        }
    }

    fn tree_of(nodes: usize, data_bytes: usize) -> DataTree {
        let mut tree = DataTree::new();
        let stat = StoredStat { czxid: 5, mzxid: 6, ..StoredStat::default() };
        for i in 0..nodes {
            assert!(tree.restore_node(
                &format!("/n{i:05}"),
                Some(Bytes::from(vec![7u8; data_bytes])),
                &open_acl_unsafe(),
                stat
            ));
        }
        tree.set_last_zxid(6);
        tree
    }

    #[test]
    fn the_pipe_carries_the_same_bytes_as_write_snap_stream() {
        let tree = tree_of(3000, 100);
        let sessions = BTreeMap::from([(1i64, 4000i32), (2, 6000)]);
        let mut direct = Vec::new();
        write_snap_stream(&mut direct, &tree, &sessions).unwrap();
        let source = SnapSource::spawn(tree, sessions.clone()).unwrap();
        let (piped, end) = drain(&source);
        assert_eq!(end, Ok(direct.len() as u64));
        assert_eq!(piped, direct);
        let (decoded, decoded_sessions, used) = decode_snap_stream(&piped, 6).unwrap();
        assert_eq!((decoded.node_count(), decoded_sessions, used), (3000 + 4, sessions, piped.len()));
    }

    #[test]
    fn the_helper_thread_runs_at_most_the_pipe_bound_ahead_and_stops_when_the_link_goes() {
        // ~6 MiB of data: many more chunks than the pipe holds.
        let source = SnapSource::spawn(tree_of(6000, 1000), BTreeMap::new()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while source.pipe.lock().chunks.len() < SNAP_PIPE_MAX_CHUNKS {
            assert!(std::time::Instant::now() < deadline, "the producer never filled the pipe");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(source.pipe.lock().chunks.len(), SNAP_PIPE_MAX_CHUNKS, "the producer ran past the bound");
        assert!(source.pipe.lock().end.is_none());
        let pipe = source.pipe.clone();
        drop(source);
        while pipe.lock().end.is_none() {
            assert!(std::time::Instant::now() < deadline, "the producer did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(&pipe.lock().end, Some(Err(e)) if e.contains("closed")));
    }

    #[test]
    fn local_failures_are_the_ones_reported_ahead_of_received_messages() {
        assert!(LinkFailure::ClosedLocally.is_local());
        assert!(LinkFailure::SendQueueFull { queued_bytes: 1 }.is_local());
        assert!(!LinkFailure::PeerClosed.is_local());
        assert!(!LinkFailure::Malformed(PacketError::BadDataLength(-2)).is_local());
        let e = LinkError {
            peer: ([127, 0, 0, 1], 2888).into(),
            failure: LinkFailure::Malformed(PacketError::BadDataLength(-2)),
        };
        assert_eq!(
            e.to_string(),
            "quorum link with 127.0.0.1:2888: malformed input: quorum packet data length -2 outside -1..=2097150"
        );
    }
}
