//! A worker shard: one glommio executor pinned to a core.
//!
//! It owns its listener (SO_REUSEPORT, so the kernel spreads connections
//! over the shards), the connections accepted there, the sessions bound to
//! them, their watch registry, and its current view of the tree. Reads run
//! here against the view; writes go to the commit shard, whose batches come
//! back in commit order. Processing a batch first swaps the view, then
//! delivers every watch event of the batch, then the replies, and only then
//! runs reads that were queued behind a write: so no reply can reveal a
//! change before the event for it has been queued on the same connection.
//! A batch that does not concern the shard is not sent to it: the shard
//! takes the newest tree from its slot when a read needs it
//! (`server::view_slot`, `WorkerShard::catch_up`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::net::TcpListener;
use glommio::sync::Semaphore;
use glommio::{Latency, Shares, TaskQueueHandle};

use crate::acl::{AuthContext, Authz};
use crate::config::Config;
use crate::proto::records::*;
use crate::proto::{op, perms, watcher_type, ErrorCode, EventType};
use crate::server::conn_limit::ConnectionLimiter;
use crate::server::connection;
use crate::server::dump_pieces::DumpPieces;
use crate::server::fourlw;
use crate::server::messages::*;
use crate::server::pending_requests::PendingRequests;
use crate::server::stats::ServerStats;
use crate::server::tls;
use crate::server::view_slot::{ViewAdvance, WorkerGate};
use crate::tree::DataTree;
use crate::watch::WatchRegistry;

/// Requests one connection may have in flight before the shard stops
/// reading its socket (back-pressure instead of unbounded queues).
pub const MAX_OUTSTANDING_PER_CONNECTION: u64 = 1000;

/// Set in the `conn_id` of a report requested by the AdminServer or the
/// Prometheus endpoint (`server::admin`) rather than by a client
/// connection: the finished report goes to the waiting HTTP task.
/// Client connection ids count up from 1 and never reach it.
pub const ADMIN_REQUESTER_BIT: u64 = 1 << 63;
/// Lines of wchc / wchp formatted between two yields (a path's watchers
/// are not split, see `WatchRegistry::write_watches_by_path`).
const WATCH_DUMP_CHUNK_ENTRIES: usize = 4096;
/// A wchc / wchp dump is handed on in pieces of this size: growing one
/// String for the whole dump would double-and-copy hundreds of MiB in one
/// step, and freeing one mapping per piece stays a short step too.
const WATCH_DUMP_PIECE_BYTES: usize = 1 << 20;
/// How often the executor leaves its tasks for its reactor while a dump is
/// formatted (glommio's default, 100 ms, held a shard's connections for up
/// to 300 ms per 10M-watch dump).
const REPORT_PREEMPT_QUANTUM: Duration = Duration::from_micros(500);
/// A four-letter-word answer is copied into its connection's out buffer at
/// most this much at a time, and only while the buffer holds less than
/// this: a 500 MB wchp then costs the shard one short copy per MiB, not
/// one long one, and its memory once, not twice.
const REPORT_OUT_CHUNK_BYTES: usize = 1 << 20;
/// How long a report waits for its connection's writer to drain the buffer.
const REPORT_DRAIN_WAIT: Duration = Duration::from_millis(1);

/// This connection's requests in flight (see `server::pending_requests`).
pub type ConnPending = PendingRequests<Request, ToCommit>;

#[derive(Default)]
pub struct ConnStats {
    pub received: Cell<u64>,
    pub sent: Cell<u64>,
    pub last_op: Cell<i32>,
    pub last_cxid: Cell<i32>,
    pub last_zxid: Cell<i64>,
    pub last_latency_ms: Cell<u64>,
    pub min_latency_ms: Cell<u64>,
    pub max_latency_ms: Cell<u64>,
    pub sum_latency_ms: Cell<u64>,
    pub count_latency: Cell<u64>,
    /// Wall-clock ms of the last request answered; 0 before one (Apache's
    /// lastResponseTime).
    pub last_response_ms: Cell<i64>,
}

impl ConnStats {
    fn record_latency(&self, since: Instant) {
        let ms = since.elapsed().as_millis() as u64;
        self.last_latency_ms.set(ms);
        if self.count_latency.get() == 0 || ms < self.min_latency_ms.get() {
            self.min_latency_ms.set(ms);
        }
        self.max_latency_ms.set(self.max_latency_ms.get().max(ms));
        self.sum_latency_ms.set(self.sum_latency_ms.get() + ms);
        self.count_latency.set(self.count_latency.get() + 1);
        self.last_response_ms.set(crate::server::wall_clock_ms());
    }
    fn reset(&self) {
        self.received.set(0);
        self.sent.set(0);
        self.min_latency_ms.set(0);
        self.max_latency_ms.set(0);
        self.sum_latency_ms.set(0);
        self.count_latency.set(0);
        self.last_response_ms.set(0);
    }
}

/// One client connection, owned by its shard.
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub established_ms: i64,
    /// Over TLS (set once the handshake is done).
    pub secure: Cell<bool>,
    pub session_id: Cell<i64>,
    pub timeout_ms: Cell<i32>,
    /// Whether the ConnectRequest carried the readOnly byte (3.4+ client);
    /// the ConnectResponse then carries one too.
    pub read_only_flag: Cell<Option<bool>>,
    pub authz: RefCell<Arc<Authz>>,
    /// The connection's SASL exchange, from its first SASL request on.
    pub sasl: RefCell<Option<crate::sasl::digest_md5::DigestMd5Server>>,
    /// Bytes queued for the socket, in the order the client must see them.
    pub out: RefCell<BytesMut>,
    wake_writer: LocalSender<()>,
    pub pending: RefCell<ConnPending>,
    /// Set when the connection should close once `out` is flushed.
    pub closing: Cell<bool>,
    pub permits: Semaphore,
    /// Of the shard's `shard_permits`, how many this connection holds
    /// (given back as its requests finish, the rest when it goes).
    pub shard_permits_held: Cell<u64>,
    /// Signalled when the handshake is settled (true = session bound).
    pub handshake: RefCell<Option<LocalSender<bool>>>,
    /// Signalled with the text of a four-letter word gathered from all
    /// shards, in the pieces it is sent in.
    pub report: RefCell<Option<LocalSender<Vec<Bytes>>>>,
    pub stats: ConnStats,
    /// The shard's response sizes (Apache's server-wide clientResponseStats),
    /// which every reply and event this connection sends adds to.
    response_sizes: Rc<Cell<BufferSizes>>,
}

impl Conn {
    pub fn wake(&self) {
        let _ = self.wake_writer.try_send(());
    }

    /// Queues a whole reply frame.
    pub fn push_reply(&self, xid: i32, zxid: i64, err: ErrorCode, body: Option<&Response>) {
        let mut out = self.out.borrow_mut();
        let before = out.len();
        encode_reply(&mut out, xid, zxid, err.code(), body);
        self.record_response_size(out.len() - before);
        drop(out);
        self.stats.sent.set(self.stats.sent.get() + 1);
        if zxid > 0 {
            self.stats.last_zxid.set(zxid);
        }
        self.wake();
    }

    pub fn push_event(&self, zxid: i64, event: EventType, path: &str) {
        let mut out = self.out.borrow_mut();
        let before = out.len();
        encode_notification(zxid, event as i32, path, &mut out);
        self.record_response_size(out.len() - before);
        drop(out);
        self.stats.sent.set(self.stats.sent.get() + 1);
        self.wake();
    }

    /// Apache counts the packet without its 4-byte length prefix.
    fn record_response_size(&self, frame_bytes: usize) {
        let mut sizes = self.response_sizes.get();
        sizes.record(frame_bytes.saturating_sub(4), Instant::now());
        self.response_sizes.set(sizes);
    }

    pub fn close_after_flush(&self) {
        self.closing.set(true);
        self.wake();
    }

    /// Closes without sending what is queued (expired or moved session).
    pub fn drop_now(&self) {
        self.out.borrow_mut().clear();
        // A handshake waiting for its session ends too (the closed channel
        // reads as "not bound"), so its reader task and the connection go.
        self.handshake.borrow_mut().take();
        self.close_after_flush();
    }
}

pub struct WorkerShard {
    pub index: usize,
    pub config: Arc<Config>,
    pub view: RefCell<DataTree>,
    pub view_zxid: Cell<i64>,
    /// The publish number (`ServerStats::publish_seq`) of the view, and of
    /// the last batch applied from the channel (0: the recovered tree).
    view_seq: Cell<u64>,
    applied_seq: Cell<u64>,
    /// This shard's slot and flags, shared with the commit shard.
    gate: Arc<WorkerGate>,
    /// Taken from the slot but not yet installable: a batch sent before it
    /// is still in the channel.
    held_advance: RefCell<Option<Box<ViewAdvance>>>,
    /// The shard's `gate` flags as it last set them.
    watching: Cell<bool>,
    waiting: Cell<bool>,
    /// The publish number read when `watching` went up: no watch may be
    /// registered on an older view (`view_slot`).
    watch_floor: Cell<u64>,
    pub watches: RefCell<WatchRegistry>,
    pub conns: RefCell<HashMap<u64, Rc<Conn>>>,
    /// Session id -> the connection it is bound to on this shard.
    pub sessions: RefCell<HashMap<i64, u64>>,
    /// Sessions that showed liveness since the last Touch flush, with the
    /// time of the latest request.
    touched: RefCell<HashMap<i64, Instant>>,
    next_conn_id: Cell<u64>,
    next_report_id: Cell<u64>,
    pub to_commit: ConnectedSender<ToCommit>,
    pub limiter: Arc<ConnectionLimiter>,
    /// This shard's share of `globalOutstandingLimit`: requests in flight
    /// on all its connections together. Split evenly across the shards,
    /// so no counter is shared between them.
    pub shard_permits: Semaphore,
    /// The commit shard's published last zxid: a read on a shard whose view
    /// is older waits for the batch in flight, so a client never reads a
    /// state older than one another client was already told about.
    pub server_stats: Arc<ServerStats>,
    /// Connections with reads waiting for this shard's view to catch up,
    /// each with the published zxid and the publish number the view must
    /// reach first.
    lagging: RefCell<Vec<(Rc<Conn>, i64, u64)>>,
    /// Held writes released while applying a batch, sent right after it.
    released: RefCell<Vec<ToCommit>>,
    pub started: Instant,
    /// HTTP tasks waiting for a report, by their reserved requester id.
    admin_waiters: RefCell<HashMap<u64, LocalSender<AdminAnswer>>>,
    next_admin_requester: Cell<u64>,
    /// Latency of every request answered on this shard (Prometheus).
    pub request_latency: RefCell<LatencyHistogram>,
    /// Sizes of every response and event sent (see `Conn::response_sizes`).
    pub response_sizes: Rc<Cell<BufferSizes>>,
    /// The task queue wchc / wchp dumps are formatted in (set by `run`).
    report_queue: Cell<Option<TaskQueueHandle>>,
}

impl WorkerShard {
    pub fn new(
        index: usize,
        config: Arc<Config>,
        to_commit: ConnectedSender<ToCommit>,
        gate: Arc<WorkerGate>,
        limiter: Arc<ConnectionLimiter>,
        server_stats: Arc<ServerStats>,
        shard_count: usize,
    ) -> Rc<Self> {
        let shard_share = (config.global_outstanding_limit as u64 / shard_count.max(1) as u64).max(1);
        // Clients choose the watched paths: the registry's hash is keyed
        // per process and shard so they cannot aim collisions at it.
        let watch_hash_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ ((std::process::id() as u64) << 32)
            ^ ((index as u64) << 56);
        Rc::new(WorkerShard {
            index,
            config,
            view: RefCell::new(DataTree::new()),
            view_zxid: Cell::new(0),
            view_seq: Cell::new(0),
            applied_seq: Cell::new(0),
            gate,
            held_advance: RefCell::new(None),
            watching: Cell::new(false),
            waiting: Cell::new(false),
            watch_floor: Cell::new(0),
            watches: RefCell::new(WatchRegistry::with_hash_seed(watch_hash_seed)),
            conns: RefCell::new(HashMap::new()),
            sessions: RefCell::new(HashMap::new()),
            touched: RefCell::new(HashMap::new()),
            next_conn_id: Cell::new(1),
            next_report_id: Cell::new(1),
            to_commit,
            limiter,
            shard_permits: Semaphore::new(shard_share),
            server_stats,
            lagging: RefCell::new(Vec::new()),
            released: RefCell::new(Vec::new()),
            started: Instant::now(),
            admin_waiters: RefCell::new(HashMap::new()),
            next_admin_requester: Cell::new(1),
            request_latency: RefCell::new(LatencyHistogram::default()),
            response_sizes: Rc::new(Cell::new(BufferSizes::default())),
            report_queue: Cell::new(None),
        })
    }

    /// Runs the accept loops (one per client listener: the client port and,
    /// with TLS, `secureClientPort`), the commit-stream consumer and the
    /// liveness flusher until the commit shard hangs up or `stop` fires.
    pub async fn run(
        self: Rc<Self>,
        listeners: Vec<(TcpListener, tls::Transport)>,
        from_commit: ConnectedReceiver<FromCommit>,
        stop: Rc<local_channel::LocalReceiver<()>>,
    ) {
        // While a dump is being formatted its queue is active, and glommio
        // then preempts every task of this executor after
        // `REPORT_PREEMPT_QUANTUM` instead of its default 100 ms: the dump
        // yields to the connections that often, and only while it runs.
        let report_queue = glommio::executor().create_task_queue(
            Shares::default(),
            Latency::Matters(REPORT_PREEMPT_QUANTUM),
            "reports",
        );
        self.report_queue.set(Some(report_queue));
        let consumer = {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = from_commit.recv().await {
                    shard.on_commit_message(msg).await;
                }
            })
            .detach()
        };
        let flusher = {
            let shard = self.clone();
            let every = Duration::from_millis((shard.config.tick_time_ms as u64 / 2).max(1));
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(every).await;
                    shard.flush_touches().await;
                }
            })
            .detach()
        };
        let accept = {
            // Dropping these tasks (at stop) cancels them and closes the listeners.
            let loops: Vec<_> = listeners
                .into_iter()
                .map(|(listener, transport)| glommio::spawn_local(accept_clients(self.clone(), listener, transport)))
                .collect();
            async move {
                for accept_loop in loops {
                    accept_loop.await;
                }
            }
        };
        futures_lite::future::or(accept, async {
            let _ = stop.recv().await;
        })
        .await;
        // Shutting down: close every connection; sessions live on (as in
        // ZooKeeper, a restart does not close sessions).
        for conn in self.conns.borrow().values() {
            conn.close_after_flush();
        }
        flusher.cancel();
        consumer.cancel();
        tracing::debug!(shard = self.index, "worker shard stopped");
    }

    pub fn new_conn(&self, peer: SocketAddr, wake_writer: LocalSender<()>) -> Rc<Conn> {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        let conn = Rc::new(Conn {
            id,
            peer,
            established_ms: crate::server::wall_clock_ms(),
            secure: Cell::new(false),
            session_id: Cell::new(0),
            timeout_ms: Cell::new(0),
            read_only_flag: Cell::new(None),
            authz: RefCell::new(Arc::new(Authz::new(peer.ip()))),
            sasl: RefCell::new(None),
            out: RefCell::new(BytesMut::with_capacity(4096)),
            wake_writer,
            pending: RefCell::new(ConnPending::default()),
            closing: Cell::new(false),
            permits: Semaphore::new(MAX_OUTSTANDING_PER_CONNECTION),
            shard_permits_held: Cell::new(0),
            handshake: RefCell::new(None),
            report: RefCell::new(None),
            stats: ConnStats::default(),
            response_sizes: self.response_sizes.clone(),
        });
        self.conns.borrow_mut().insert(id, conn.clone());
        conn
    }

    pub fn conn_ref(&self, conn: &Conn) -> ConnRef {
        ConnRef { shard: self.index, conn_id: conn.id }
    }

    /// The connection is gone: its watches go with it; its session lives
    /// on until it expires or the client reconnects.
    pub async fn forget_conn(&self, conn: &Conn) {
        self.conns.borrow_mut().remove(&conn.id);
        // Its unanswered requests no longer count against the shard.
        self.release_shard_permits(conn, u64::MAX);
        let sid = conn.session_id.get();
        if sid != 0 {
            let bound_here = self.sessions.borrow().get(&sid) == Some(&conn.id);
            if bound_here {
                self.sessions.borrow_mut().remove(&sid);
                self.watches.borrow_mut().remove_session(sid);
                self.note_watches_gone();
                let _ =
                    self.to_commit.send(ToCommit::Disconnected { conn: self.conn_ref(conn), session_id: sid }).await;
            }
        }
    }

    /// The tree recovered at start-up, before any batch arrives.
    pub fn install_view(&self, tree: DataTree, zxid: i64) {
        *self.view.borrow_mut() = tree;
        self.view_zxid.set(zxid);
    }

    /// True when the commit shard has published a batch this shard has not
    /// applied yet.
    pub fn view_is_behind(&self) -> bool {
        self.server_stats.last_zxid() > self.view_zxid.get()
    }

    /// The published zxid a read must wait for, if the view is older than
    /// it even after taking the slot's tree; `waiting` is then up, so the
    /// commit shard wakes this shard when its slot gets a newer tree.
    pub fn view_needed(&self) -> Option<i64> {
        let needed = self.server_stats.last_zxid();
        self.wait_unless(|shard| shard.view_zxid.get() >= needed).then_some(needed)
    }

    /// None when `request` may run on the view now; otherwise the publish
    /// number the view must reach first (`waiting` is then up). A request
    /// that can register a watch on a shard with none raises `watching`
    /// first and reads the publish number after (`view_slot`): batches the
    /// commit shard left out before it saw the flag are all in that view.
    pub fn watch_gate(&self, request: &Request) -> Option<u64> {
        if !may_register_watch(request) {
            return None;
        }
        if !self.watching.get() {
            self.watching.set(true);
            self.gate.set_watching(true);
            self.watch_floor.set(self.server_stats.publish_seq());
        }
        let floor = self.watch_floor.get();
        self.wait_unless(|shard| shard.view_seq.get() >= floor).then_some(floor)
    }

    /// Whether the caller must wait for `ready`: tries the slot, then
    /// raises `waiting` and tries again (the commit shard reads `waiting`
    /// after it fills the slot, so one of the two sees the other).
    fn wait_unless(&self, ready: impl Fn(&Self) -> bool) -> bool {
        if ready(self) {
            return false;
        }
        self.catch_up();
        if ready(self) {
            return false;
        }
        if !self.waiting.get() {
            self.waiting.set(true);
            self.gate.set_waiting(true);
        }
        self.catch_up();
        if ready(self) {
            self.lower_waiting_if_idle();
            return false;
        }
        true
    }

    /// Queues a read until the view reaches `zxid` and publish `seq` (after
    /// `view_needed` or `watch_gate` said so, with `waiting` up).
    pub fn wait_for(&self, conn: &Rc<Conn>, zxid: i64, seq: u64) {
        debug_assert!(self.waiting.get(), "a read waits with no wake asked for");
        self.lagging.borrow_mut().push((conn.clone(), zxid, seq));
    }

    fn lower_waiting_if_idle(&self) {
        if self.waiting.get() && self.lagging.borrow().is_empty() {
            self.waiting.set(false);
            self.gate.set_waiting(false);
        }
    }

    /// No watch is left: batches with triggers need not come here any more
    /// (the next watch raises the flag again, `watch_gate`). Not while a
    /// read waits, which may be one waiting to register a watch.
    fn note_watches_gone(&self) {
        if self.watching.get() && self.lagging.borrow().is_empty() && self.watches.borrow().is_empty() {
            self.watching.set(false);
            self.gate.set_watching(false);
        }
    }

    fn set_view(&self, tree: DataTree, zxid: i64, seq: u64) {
        *self.view.borrow_mut() = tree;
        self.view_zxid.set(zxid);
        self.view_seq.set(seq);
    }

    /// Takes the newest tree the commit shard left in the slot and installs
    /// it once every batch sent here before it has been applied, then runs
    /// the reads that waited for it.
    pub fn catch_up(&self) {
        if self.advance_from_slot() {
            self.release_lagging();
        }
    }

    fn advance_from_slot(&self) -> bool {
        let applied = self.applied_seq.get();
        let mut installed = false;
        if let Some(taken) = self.gate.take() {
            let older = self.held_advance.borrow_mut().replace(taken);
            if let Some(older) = older.filter(|a| a.after_batch <= applied) {
                installed |= self.install_advance(*older);
            }
        }
        let ready = {
            let mut held = self.held_advance.borrow_mut();
            if held.as_ref().is_some_and(|a| a.after_batch <= applied) {
                held.take()
            } else {
                None
            }
        };
        if let Some(advance) = ready {
            installed |= self.install_advance(*advance);
        }
        installed
    }

    /// Never an older publish than the view's.
    fn install_advance(&self, advance: ViewAdvance) -> bool {
        if advance.publish_seq <= self.view_seq.get() {
            return false;
        }
        self.set_view(advance.tree, advance.last_zxid, advance.publish_seq);
        true
    }

    /// Runs the queued reads whose view is here now.
    fn release_lagging(&self) {
        let (view_zxid, view_seq) = (self.view_zxid.get(), self.view_seq.get());
        let ready: Vec<Rc<Conn>> = {
            let mut lagging = self.lagging.borrow_mut();
            if lagging.is_empty() {
                return;
            }
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut *lagging)
                .into_iter()
                .partition(|(_, zxid, seq)| *zxid <= view_zxid && *seq <= view_seq);
            *lagging = waiting;
            ready.into_iter().map(|(conn, _, _)| conn).collect()
        };
        self.lower_waiting_if_idle();
        for conn in ready {
            self.drain_local(&conn);
        }
    }

    /// Sends the writes that were held behind reads answered since.
    pub async fn send_released(&self) {
        let released = std::mem::take(&mut *self.released.borrow_mut());
        for msg in released {
            let _ = self.to_commit.send(msg).await;
        }
    }

    pub fn touch(&self, session_id: i64) {
        if session_id != 0 {
            self.touched.borrow_mut().insert(session_id, Instant::now());
        }
    }

    async fn flush_touches(&self) {
        let sessions: Vec<(i64, Instant)> = {
            let mut t = self.touched.borrow_mut();
            t.drain().collect()
        };
        if !sessions.is_empty() {
            let _ = self.to_commit.send(ToCommit::Touch { sessions }).await;
        }
    }

    pub fn next_report_id(&self) -> u64 {
        let n = self.next_report_id.get();
        self.next_report_id.set(n + 1);
        ((self.index as u64) << 48) | n
    }

    async fn on_commit_message(self: &Rc<Self>, msg: FromCommit) {
        match msg {
            FromCommit::Batch { batch, publish_seq } => self.apply_batch(&batch, publish_seq),
            // Looked at below, as after every message.
            FromCommit::Advance => {}
            FromCommit::DropAllConnections => {
                let conns: Vec<Rc<Conn>> = self.conns.borrow().values().cloned().collect();
                for c in conns {
                    let sid = c.session_id.get();
                    if sid != 0 {
                        self.sessions.borrow_mut().remove(&sid);
                        self.watches.borrow_mut().remove_session(sid);
                    }
                    c.session_id.set(0);
                    c.drop_now();
                }
                self.note_watches_gone();
            }
            FromCommit::CollectReport { request_id, cmd } if is_watch_dump(cmd) => {
                // Its own task, so that the batches that follow are applied
                // while it runs (the cursor allows for the registry changing
                // between chunks).
                let shard = self.clone();
                let dump = async move {
                    let mut part = shard.report_part(cmd);
                    shard.watch_dump(cmd, &mut part).await;
                    let _ = shard.to_commit.send(ToCommit::ReportPart { request_id, part }).await;
                };
                let spawned = match self.report_queue.get() {
                    Some(queue) => glommio::spawn_local_into(dump, queue).map_err(|e| e.to_string()),
                    None => Ok(glommio::spawn_local(dump)),
                };
                match spawned {
                    Ok(task) => {
                        task.detach();
                    }
                    Err(e) => {
                        // The report still needs this shard's part.
                        tracing::warn!(error = %e, "cannot start a watch dump; this shard's part is left out");
                        let part = self.report_part(cmd);
                        let _ = self.to_commit.send(ToCommit::ReportPart { request_id, part }).await;
                    }
                }
            }
            FromCommit::CollectReport { request_id, cmd } => {
                let part = self.report_part(cmd);
                let _ = self.to_commit.send(ToCommit::ReportPart { request_id, part }).await;
            }
            FromCommit::ReportReady { conn, chunks } if conn.conn_id & ADMIN_REQUESTER_BIT != 0 => {
                if let Some(tx) = self.admin_waiters.borrow_mut().remove(&conn.conn_id) {
                    // The AdminServer's answers are one JSON piece each.
                    let text = match <[Bytes; 1]>::try_from(chunks) {
                        Ok([one]) => one,
                        Err(chunks) => Bytes::from(chunks.concat()),
                    };
                    let _ = tx.try_send(AdminAnswer::Text(text));
                }
            }
            FromCommit::ReportParts { conn, parts } => {
                if let Some(tx) = self.admin_waiters.borrow_mut().remove(&conn.conn_id) {
                    let _ = tx.try_send(AdminAnswer::Parts(parts));
                }
            }
            FromCommit::ReportReady { conn, chunks } => {
                if let Some(c) = self.conns.borrow().get(&conn.conn_id) {
                    if let Some(tx) = c.report.borrow_mut().take() {
                        let _ = tx.try_send(chunks);
                    }
                }
            }
        }
        // After every message, not only `Advance`: the commit shard sends
        // no wake to a full channel.
        self.catch_up();
        self.send_released().await;
    }

    /// Applies one durable batch in commit order (see the module comment).
    fn apply_batch(&self, batch: &CommitBatch, publish_seq: u64) {
        // Sent after every slot entry this shard may have installed.
        debug_assert!(publish_seq > self.view_seq.get(), "a batch older than the view");
        self.set_view(batch.tree.clone(), batch.last_zxid, publish_seq);
        self.applied_seq.set(publish_seq);
        let mut to_drain: Vec<Rc<Conn>> = Vec::new();
        for entry in &batch.entries {
            match entry {
                BatchEntry::Txn { zxid, triggers, reply, closed_session } => {
                    for t in triggers {
                        self.deliver_trigger(*zxid, t);
                    }
                    if let Some(r) = reply {
                        self.deliver_reply(r, &mut to_drain);
                    }
                    if let Some(sid) = closed_session {
                        self.session_closed(*sid, reply.as_ref());
                    }
                }
                BatchEntry::Reply(r) => self.deliver_reply(r, &mut to_drain),
                BatchEntry::DropConnection { conn } => {
                    if conn.shard == self.index {
                        if let Some(c) = self.conns.borrow().get(&conn.conn_id) {
                            // The session moved to a newer connection; this
                            // one no longer speaks for it.
                            let sid = c.session_id.get();
                            if self.sessions.borrow().get(&sid) == Some(&c.id) {
                                self.sessions.borrow_mut().remove(&sid);
                                self.watches.borrow_mut().remove_session(sid);
                            }
                            c.session_id.set(0);
                            c.drop_now();
                        }
                    }
                }
            }
        }
        for conn in to_drain {
            self.drain_local(&conn);
        }
        // Only reads whose needed zxid is now visible may run: an older
        // batch still in this shard's queue does not satisfy them.
        self.release_lagging();
        self.note_watches_gone();
    }

    fn deliver_trigger(&self, zxid: i64, t: &crate::tree::WatchTrigger) {
        let targets = self.watches.borrow_mut().trigger(&t.path, t.event);
        if targets.is_empty() {
            return;
        }
        let sessions = self.sessions.borrow();
        let conns = self.conns.borrow();
        for sid in targets {
            let Some(conn) = sessions.get(&sid).and_then(|cid| conns.get(cid)) else { continue };
            // CVE-2024-23944: no event for a session that may not read the node.
            if !conn.authz.borrow().allowed(&t.acl, perms::READ) {
                continue;
            }
            conn.push_event(zxid, t.event, &t.path);
        }
    }

    fn deliver_reply(&self, r: &Reply, to_drain: &mut Vec<Rc<Conn>>) {
        if r.conn.shard != self.index {
            return;
        }
        let Some(conn) = self.conns.borrow().get(&r.conn.conn_id).cloned() else { return };
        match &r.kind {
            ReplyKind::Connect { session_id, timeout_ms, passwd, valid } => {
                let read_only = conn.read_only_flag.get().map(|_| false);
                self.deliver_connect(&conn, *session_id, *timeout_ms, passwd, *valid, read_only);
            }
            ReplyKind::ConnectReadOnly { session_id, timeout_ms, passwd, valid } => {
                if conn.read_only_flag.get() != Some(true) {
                    // The server went read-only while this handshake was in
                    // flight: refused as Apache refuses a not-read-only client.
                    tracing::info!(peer = %conn.peer, "refusing a not-read-only client in read-only mode");
                    conn.drop_now();
                    return;
                }
                self.deliver_connect(&conn, *session_id, *timeout_ms, passwd, *valid, Some(true));
            }
            ReplyKind::Write { xid, op, result } => {
                let received = self.pop_commit(&conn, *xid);
                match result {
                    Ok(body) => conn.push_reply(*xid, r.zxid, ErrorCode::Ok, body.as_ref()),
                    Err(e) => conn.push_reply(*xid, r.zxid, *e, None),
                }
                self.finish_request(&conn, *op, received);
                to_drain.push(conn);
            }
            ReplyKind::Sync { xid, path } => {
                let received = self.pop_commit(&conn, *xid);
                conn.push_reply(
                    *xid,
                    r.zxid.max(self.view_zxid.get()),
                    ErrorCode::Ok,
                    Some(&Response::Sync { path: path.clone() }),
                );
                self.finish_request(&conn, op::SYNC, received);
                to_drain.push(conn);
            }
            ReplyKind::CloseSession { xid } => {
                let received = self.pop_commit(&conn, *xid);
                conn.push_reply(*xid, r.zxid, ErrorCode::Ok, None);
                self.finish_request(&conn, op::CLOSE_SESSION, received);
                conn.close_after_flush();
            }
        }
    }

    /// The ConnectResponse that settles a handshake (`read_only`: its
    /// readOnly byte, sent only when the ConnectRequest had one).
    fn deliver_connect(
        &self,
        conn: &Conn,
        session_id: i64,
        timeout_ms: i32,
        passwd: &[u8; 16],
        valid: bool,
        read_only: Option<bool>,
    ) {
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: Bytes::copy_from_slice(passwd),
            read_only,
        };
        encode_record_frame(&mut conn.out.borrow_mut(), &resp);
        conn.wake();
        if valid {
            conn.session_id.set(session_id);
            conn.timeout_ms.set(timeout_ms);
            self.sessions.borrow_mut().insert(session_id, conn.id);
        } else {
            conn.close_after_flush();
        }
        if let Some(tx) = conn.handshake.borrow_mut().take() {
            let _ = tx.try_send(valid);
        }
    }

    fn pop_commit(&self, conn: &Conn, reply_xid: i32) -> Option<Instant> {
        let received = conn.pending.borrow_mut().pop_sent(reply_xid);
        if received.is_none() {
            tracing::error!(conn = conn.id, xid = reply_xid, "commit reply out of order; closing connection");
            conn.close_after_flush();
        }
        received
    }

    pub fn finish_request(&self, conn: &Conn, op: i32, received: Option<Instant>) {
        conn.stats.last_op.set(op);
        if let Some(t) = received {
            conn.stats.record_latency(t);
            self.request_latency.borrow_mut().record_us(t.elapsed().as_micros() as u64);
        }
        conn.permits.signal(1);
        self.release_shard_permits(conn, 1);
    }

    /// Gives back up to `n` of the shard permits `conn` holds.
    fn release_shard_permits(&self, conn: &Conn, n: u64) {
        let n = n.min(conn.shard_permits_held.get());
        conn.shard_permits_held.set(conn.shard_permits_held.get() - n);
        self.shard_permits.signal(n);
    }

    fn session_closed(&self, session_id: i64, reply: Option<&Reply>) {
        let Some(cid) = self.sessions.borrow_mut().remove(&session_id) else { return };
        self.watches.borrow_mut().remove_session(session_id);
        if let Some(conn) = self.conns.borrow().get(&cid) {
            conn.session_id.set(0);
            if reply.is_none() {
                // Expiry: the socket is dropped without a word.
                conn.drop_now();
            }
        }
    }

    /// Runs the reads queued behind commits that have now completed.
    fn drain_local(&self, conn: &Rc<Conn>) {
        loop {
            // Not borrowed while answering: the answer may look at the queue.
            let Some(read) = conn.pending.borrow_mut().pop_ready_read() else { break };
            if let Some(seq) = self.watch_gate(&read.request) {
                // Back in front; the writes held behind it stay held.
                conn.pending.borrow_mut().push_front_read(read);
                self.wait_for(conn, i64::MIN, seq);
                return;
            }
            self.answer_local(conn, read.xid, read.op, read.request);
            self.finish_request(conn, read.op, Some(read.received));
        }
        // Writes held behind those reads may go now, up to the next read.
        let released = conn.pending.borrow_mut().release_held();
        self.released.borrow_mut().extend(released);
    }

    /// Answers a request served on this shard (reads, watch and auth ops).
    pub fn answer_local(&self, conn: &Conn, xid: i32, op: i32, request: Request) {
        let zxid = self.view_zxid.get();
        match self.execute_local(conn, request) {
            Ok(body) => conn.push_reply(xid, zxid, ErrorCode::Ok, body.as_ref()),
            Err(e) => conn.push_reply(xid, zxid, e, None),
        }
        let _ = op;
    }

    fn execute_local(&self, conn: &Conn, request: Request) -> Result<Option<Response>, ErrorCode> {
        let sid = conn.session_id.get();
        let tree = self.view.borrow();
        let authz = conn.authz.borrow().clone();
        let read_check = |acl: &[crate::proto::Acl]| {
            if authz.allowed(acl, perms::READ) {
                Ok(())
            } else {
                Err(ErrorCode::NoAuth)
            }
        };
        match request {
            Request::Ping => Ok(None),
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                // As Apache 3.9.2 / 3.8.4 / 3.7.3 and later (ZOOKEEPER-2590):
                // an existing node the caller may not READ answers NoAuth and
                // leaves no watch; a missing one is NoNode, its watch set.
                // Older servers (Debian's 3.8.0) answer the Stat.
                let node = tree.get(&r.path);
                if let Some(n) = &node {
                    read_check(n.acl())?;
                }
                if r.watch {
                    // Also on a missing node: an exists watch waits for creation.
                    self.watches.borrow_mut().add_data_watch(sid, &r.path);
                }
                let node = node.ok_or(ErrorCode::NoNode)?;
                Ok(Some(Response::Stat(node.stat())))
            }
            Request::GetData(r) => {
                let node = tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                read_check(node.acl())?;
                if r.watch {
                    self.watches.borrow_mut().add_data_watch(sid, &r.path);
                }
                Ok(Some(Response::GetData { data: node.data_bytes(), stat: node.stat() }))
            }
            Request::GetChildren(r) => {
                let node = tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                read_check(node.acl())?;
                if r.watch {
                    self.watches.borrow_mut().add_child_watch(sid, &r.path);
                }
                Ok(Some(Response::GetChildren { children: tree.children(&r.path).unwrap_or_default() }))
            }
            Request::GetChildren2(r) => {
                let node = tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                read_check(node.acl())?;
                if r.watch {
                    self.watches.borrow_mut().add_child_watch(sid, &r.path);
                }
                Ok(Some(Response::GetChildren2 {
                    children: tree.children(&r.path).unwrap_or_default(),
                    stat: node.stat(),
                }))
            }
            Request::GetAcl { path } => {
                let node = tree.get(&path).ok_or(ErrorCode::NoNode)?;
                let is_admin = authz.allowed(node.acl(), perms::ADMIN);
                if !is_admin && !authz.allowed(node.acl(), perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                let acl = crate::acl::redact_for_get_acl(node.acl(), is_admin);
                Ok(Some(Response::GetAcl { acl, stat: node.stat() }))
            }
            Request::GetAllChildrenNumber { path } => {
                let node = tree.get(&path).ok_or(ErrorCode::NoNode)?;
                read_check(node.acl())?;
                Ok(Some(Response::GetAllChildrenNumber { total: tree.all_children_number(&path).unwrap_or(0) }))
            }
            Request::GetEphemerals { prefix } => {
                let prefix = prefix.trim();
                let mut paths: Vec<String> = tree
                    .ephemerals_of(sid)
                    .into_iter()
                    .filter(|p| prefix.is_empty() || prefix == "/" || p.starts_with(prefix))
                    .collect();
                paths.sort();
                Ok(Some(Response::GetEphemerals { paths }))
            }
            Request::MultiRead(ops) => {
                let mut results = Vec::with_capacity(ops.len());
                for read in ops {
                    let r = match read {
                        ReadOp::GetData(p) => match tree.get(&p.path) {
                            None => MultiResult::Error(ErrorCode::NoNode.code()),
                            Some(n) if !authz.allowed(n.acl(), perms::READ) => {
                                MultiResult::Error(ErrorCode::NoAuth.code())
                            }
                            Some(n) => MultiResult::GetData { data: n.data_bytes(), stat: n.stat() },
                        },
                        ReadOp::GetChildren(p) => match tree.get(&p.path) {
                            None => MultiResult::Error(ErrorCode::NoNode.code()),
                            Some(n) if !authz.allowed(n.acl(), perms::READ) => {
                                MultiResult::Error(ErrorCode::NoAuth.code())
                            }
                            Some(_) => {
                                MultiResult::GetChildren { children: tree.children(&p.path).unwrap_or_default() }
                            }
                        },
                    };
                    results.push(r);
                }
                Ok(Some(Response::MultiRead(results)))
            }
            Request::WhoAmI => {
                let infos = authz
                    .who_am_i()
                    .into_iter()
                    .map(|(scheme, user)| ClientInfo { auth_scheme: scheme, user })
                    .collect();
                Ok(Some(Response::WhoAmI(infos)))
            }
            Request::AddWatch { path, mode } => {
                let mut w = self.watches.borrow_mut();
                match mode {
                    crate::proto::add_watch_mode::PERSISTENT => w.add_persistent(sid, &path),
                    crate::proto::add_watch_mode::PERSISTENT_RECURSIVE => w.add_persistent_recursive(sid, &path),
                    _ => return Err(ErrorCode::BadArguments),
                }
                Ok(Some(Response::AddWatch))
            }
            Request::CheckWatches { path, watcher_type } => {
                if !valid_watcher_type(watcher_type) {
                    return Err(ErrorCode::BadArguments);
                }
                if self.watches.borrow().check(sid, &path, watcher_type) {
                    Ok(None)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::RemoveWatches { path, watcher_type } => {
                if !valid_watcher_type(watcher_type) {
                    return Err(ErrorCode::BadArguments);
                }
                if self.watches.borrow_mut().remove(sid, &path, watcher_type) {
                    Ok(None)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            Request::SetWatches(sw) => {
                self.set_watches(conn, &tree, sw);
                Ok(None)
            }
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    /// setWatches / setWatches2 after a reconnect: re-register, and send
    /// the events the client missed relative to its last seen zxid.
    fn set_watches(&self, conn: &Conn, tree: &DataTree, sw: SetWatches) {
        let sid = conn.session_id.get();
        let rel = sw.relative_zxid;
        let mut w = self.watches.borrow_mut();
        // Synthesized events carry zxid -1.
        for path in &sw.data {
            match tree.get(path) {
                None => conn.push_event(-1, EventType::NodeDeleted, path),
                Some(n) if n.stat().mzxid > rel => conn.push_event(-1, EventType::NodeDataChanged, path),
                Some(_) => w.add_data_watch(sid, path),
            }
        }
        for path in &sw.exist {
            match tree.get(path) {
                Some(_) => conn.push_event(-1, EventType::NodeCreated, path),
                None => w.add_data_watch(sid, path),
            }
        }
        for path in &sw.child {
            match tree.get(path) {
                None => conn.push_event(-1, EventType::NodeDeleted, path),
                Some(n) if n.stat().pzxid > rel => conn.push_event(-1, EventType::NodeChildrenChanged, path),
                Some(_) => w.add_child_watch(sid, path),
            }
        }
        for path in &sw.persistent {
            w.add_persistent(sid, path);
        }
        for path in &sw.persistent_recursive {
            w.add_persistent_recursive(sid, path);
        }
    }

    fn report_part(&self, cmd: &str) -> ShardReport {
        let conns = self.conns.borrow();
        let mut part = ShardReport { connections: conns.len() as u64, ..Default::default() };
        let reset = cmd == "crst" || cmd == "srst";
        for c in conns.values() {
            let s = &c.stats;
            part.packets_received += s.received.get();
            part.packets_sent += s.sent.get();
            part.outstanding += c.pending.borrow().len() as u64;
            if s.count_latency.get() > 0 {
                if part.latency_count == 0 || s.min_latency_ms.get() < part.latency_min_ms {
                    part.latency_min_ms = s.min_latency_ms.get();
                }
                part.latency_max_ms = part.latency_max_ms.max(s.max_latency_ms.get());
                part.latency_sum_ms += s.sum_latency_ms.get();
                part.latency_count += s.count_latency.get();
            }
            if cmd == "cons" || cmd == "stat" {
                part.lines.push_str(&fourlw::connection_line(c, cmd == "cons", self.started));
            }
            if reset {
                s.reset();
            }
        }
        let w = self.watches.borrow();
        part.watch_count = w.total_watch_count() as u64;
        part.data_watch_count = w.data_watch_count() as u64;
        // wchc / wchp text is written by `append_watch_dump`, in chunks.
        if cmd == "wchs" {
            part.watched_paths = w.watched_path_count() as u64;
            part.watching_sessions = w.watching_session_count() as u64;
        }
        part.response_sizes = self.response_sizes.get();
        if cmd == "srst" {
            *self.request_latency.borrow_mut() = LatencyHistogram::default();
            self.response_sizes.set(BufferSizes::default());
        }
        crate::server::admin_report::fill_shard_part(self, cmd, &mut part);
        part
    }

    /// Asks the commit shard for report `cmd` on behalf of an HTTP task
    /// (`server::admin`), as a four-letter word does for a connection.
    /// None if no answer came within `limit`.
    pub async fn admin_report(&self, cmd: &'static str, limit: Duration) -> Option<Bytes> {
        match self.admin_answer(cmd, limit).await? {
            AdminAnswer::Text(text) => Some(text),
            AdminAnswer::Parts(_) => None,
        }
    }

    /// Every shard's part of report `cmd` (one the commit shard leaves to
    /// the requester, `admin_report::merged_by_requester`), unmerged.
    pub async fn admin_report_parts(&self, cmd: &'static str, limit: Duration) -> Option<Vec<ShardReport>> {
        match self.admin_answer(cmd, limit).await? {
            AdminAnswer::Parts(parts) => Some(parts),
            AdminAnswer::Text(_) => None,
        }
    }

    async fn admin_answer(&self, cmd: &'static str, limit: Duration) -> Option<AdminAnswer> {
        let requester = ADMIN_REQUESTER_BIT | self.next_admin_requester.get();
        self.next_admin_requester.set(self.next_admin_requester.get().wrapping_add(1) & !ADMIN_REQUESTER_BIT);
        let (tx, rx) = local_channel::new_bounded::<AdminAnswer>(1);
        self.admin_waiters.borrow_mut().insert(requester, tx);
        let conn = ConnRef { shard: self.index, conn_id: requester };
        let request_id = self.next_report_id();
        let answer = futures_lite::future::or(
            async {
                let _ = self.to_commit.send(ToCommit::Report { conn, request_id, cmd }).await;
                rx.recv().await
            },
            async {
                glommio::timer::sleep(limit).await;
                None
            },
        )
        .await;
        self.admin_waiters.borrow_mut().remove(&requester);
        answer
    }

    /// wchc / wchp text (into `part.dump`) or the AdminServer's watch
    /// listings (`part.session_watches` / `part.path_watches`), a chunk of
    /// the registry at a time with a yield between chunks, so a dump of
    /// millions of watches does not hold the shard (the dump is not one
    /// atomic view; ZooKeeper's is not either across its two tables).
    async fn watch_dump(&self, cmd: &str, part: &mut ShardReport) {
        use crate::server::admin_report::report;
        if cmd == report::WATCHES || cmd == report::WATCHES_BY_PATH {
            // As in `watch_text`: off the run queue once, so the next
            // preempt timer is the report queue's.
            glommio::timer::sleep(Duration::from_micros(1)).await;
            let mut cursor = Some(crate::watch::DumpCursor::default());
            while let Some(at) = cursor {
                {
                    let w = self.watches.borrow();
                    cursor = if cmd == report::WATCHES {
                        w.export_watches_by_session(at, WATCH_DUMP_CHUNK_ENTRIES, &mut part.session_watches)
                    } else {
                        w.export_watches_by_path(at, WATCH_DUMP_CHUNK_ENTRIES, &mut part.path_watches)
                    };
                }
                glommio::yield_if_needed().await;
            }
            return;
        }
        part.dump = self.watch_text(cmd).await;
    }

    /// wchc / wchp text in pieces of `WATCH_DUMP_PIECE_BYTES`, each in a
    /// mapping of its own (`dump_pieces`).
    async fn watch_text(&self, cmd: &str) -> Vec<Bytes> {
        let mut pieces = DumpPieces::new(WATCH_DUMP_PIECE_BYTES);
        // Off the run queue once first: the preempt timer armed before this
        // task's queue became active runs its full 100 ms, and only the next
        // one the reactor arms is `REPORT_PREEMPT_QUANTUM`.
        glommio::timer::sleep(Duration::from_micros(1)).await;
        let mut cursor = Some(crate::watch::DumpCursor::default());
        while let Some(at) = cursor {
            {
                let w = self.watches.borrow();
                cursor = if cmd == "wchc" {
                    w.write_watches_by_session(at, WATCH_DUMP_CHUNK_ENTRIES, &mut pieces)
                } else {
                    w.write_watches_by_path(at, WATCH_DUMP_CHUNK_ENTRIES, &mut pieces)
                };
            }
            glommio::yield_if_needed().await;
        }
        pieces.finish()
    }

    /// Answers a four-letter word on a fresh connection.
    pub async fn four_letter_word(&self, conn: &Rc<Conn>, cmd: &'static str) {
        if !self.config.fourlw_enabled(cmd) {
            conn.out
                .borrow_mut()
                .extend_from_slice(format!("{cmd} is not executed because it is not in the whitelist.\n").as_bytes());
            conn.close_after_flush();
            return;
        }
        match fourlw::local_answer(cmd, &self.config, self.server_stats.mode()) {
            Some(text) => {
                conn.out.borrow_mut().extend_from_slice(text.as_bytes());
                conn.close_after_flush();
            }
            None => {
                let request_id = self.next_report_id();
                let (tx, rx) = local_channel::new_bounded::<Vec<Bytes>>(1);
                *conn.report.borrow_mut() = Some(tx);
                let _ = self.to_commit.send(ToCommit::Report { conn: self.conn_ref(conn), request_id, cmd }).await;
                // The answer arrives as FromCommit::ReportReady.
                if let Some(chunks) = rx.recv().await {
                    send_report(conn, chunks).await;
                }
                conn.close_after_flush();
            }
        }
    }
}

/// Accepts connections on one client listener for ever.
async fn accept_clients(shard: Rc<WorkerShard>, listener: TcpListener, transport: tls::Transport) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let shard = shard.clone();
                let transport = transport.clone();
                glommio::spawn_local(async move { connection::serve(shard, stream, transport).await }).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reports whose part walks the whole watch registry: collected in chunks,
/// as a task of the report queue.
fn is_watch_dump(cmd: &str) -> bool {
    use crate::server::admin_report::report;
    matches!(cmd, "wchc" | "wchp" | report::WATCHES | report::WATCHES_BY_PATH)
}

/// What an HTTP task's report comes back as.
pub enum AdminAnswer {
    /// Rendered by the commit shard.
    Text(Bytes),
    /// Every shard's part, for the requester to merge.
    Parts(Vec<ShardReport>),
}

/// Whether answering `request` may register a watch (`watch_gate`).
fn may_register_watch(request: &Request) -> bool {
    match request {
        Request::Exists(r) | Request::GetData(r) | Request::GetChildren(r) | Request::GetChildren2(r) => r.watch,
        Request::AddWatch { .. } | Request::SetWatches(_) => true,
        _ => false,
    }
}

fn valid_watcher_type(t: i32) -> bool {
    (watcher_type::CHILDREN..=watcher_type::PERSISTENT_RECURSIVE).contains(&t)
}

/// Queues `chunks` on a four-letter-word connection a piece at a time (see
/// `REPORT_OUT_CHUNK_BYTES`), each chunk dropped once copied. Stops when the
/// connection's writer has gone (the client left).
async fn send_report(conn: &Conn, chunks: Vec<Bytes>) {
    for chunk in chunks {
        let mut at = 0;
        while at < chunk.len() {
            if conn.closing.get() {
                return;
            }
            if conn.out.borrow().len() >= REPORT_OUT_CHUNK_BYTES {
                glommio::timer::sleep(REPORT_DRAIN_WAIT).await;
                continue;
            }
            let end = (at + REPORT_OUT_CHUNK_BYTES).min(chunk.len());
            conn.out.borrow_mut().extend_from_slice(&chunk[at..end]);
            conn.wake();
            at = end;
            glommio::yield_if_needed().await;
        }
    }
}
