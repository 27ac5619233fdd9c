//! The commit shard: the one writer.
//!
//! It owns the authoritative data tree, the zxid counter, the session table
//! and its expiry queue, the transaction log and the container/TTL reaper.
//! Workers send it `ToCommit`; it gathers whatever has arrived into a batch,
//! executes every write against the tree in arrival order, hands the
//! batch's txns to the log thread (`log_writer`), and only after the log
//! says they are durable sends the batch (tree version + watch triggers +
//! replies) to every worker. It does not wait for the disk meanwhile: the
//! next batches are executed and queue behind, and the txns logged while a
//! write is in flight all go into the next one (`storage::group_commit`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use crate::acl::{AuthContext, ServerIdentity};
use crate::commit::{
    wake, ExecSettings, PendingBatches, Sequencer, SessionHolder, StandaloneStep, StandaloneTurn, TxnSink, WriteDone,
};
use crate::config::Config;
use crate::proto::records::{MultiResult, Response};
use crate::proto::{op, ErrorCode, Stat};
use crate::server::fourlw;
use crate::server::log_writer::LogHandle;
use crate::server::messages::*;
use crate::server::recovery::Recovered;
use crate::server::snapshots::{SnapshotPolicy, Snapshotter};
use crate::server::stats::ServerStats;
use crate::server::view_slot::{BatchAudience, ViewAdvance, WorkerGate, NUDGE_AFTER_SKIPPED_BATCHES};
use crate::session::{PublishedSessions, SessionChange, SessionIdAllocator};
use crate::storage::txn::{encode_txn, Txn, TxnHeader};
use crate::tree::{DataTree, MultiOpResult, WriteOp, WriteResult};

struct PendingReport {
    conn: ConnRef,
    cmd: &'static str,
    parts: Vec<ShardReport>,
    awaiting: usize,
}

pub struct CommitShard {
    pub(super) config: Arc<Config>,
    /// Tree, zxid counter, session table and expiry, session ids, the
    /// in-memory log tail: the sans-IO core the simulator runs too.
    pub(super) seq: Sequencer<ConnRef>,
    pub(super) digest_log: DigestLog,
    pub(super) log: LogHandle,
    pub(super) snapshots: Snapshotter,
    pub(super) snapshot_policy: SnapshotPolicy,
    pub(super) workers: Vec<ConnectedSender<FromCommit>>,
    /// Per worker: its slot and flags (`view_slot`), the publish number of
    /// the last batch sent over its channel, and how many batches it was
    /// left out of since it was last sent or woken.
    gates: Vec<Arc<WorkerGate>>,
    last_sent: Vec<u64>,
    skipped: Vec<u32>,
    /// Publishes so far (`ServerStats::publish_seq`).
    publish_seq: u64,
    /// Scratch for `BatchAudience::of`: which workers a batch addresses.
    addressed: Vec<bool>,
    reports: HashMap<u64, PendingReport>,
    pub(super) stats: Arc<ServerStats>,
    pub(super) started: Instant,
    pub(super) next_reap_ms: i64,
    /// The tree of the last batch published to workers: the committed state.
    pub(super) published_tree: DataTree,
    /// The session table of that same moment (`sessions` runs ahead of it
    /// on a leader). Reset wherever `published_tree` is reset.
    pub(super) published_sessions: PublishedSessions,
    /// Election, proposal and ack latencies (ensemble members).
    pub(super) quorum_metrics: crate::server::quorum_metrics::QuorumMetrics,
    /// What the leader reports of its proposals and observers.
    pub(super) leader_report: crate::server::quorum_peer::LeaderReport,
    /// Writes refused for a hard quota, per top namespace (Apache's
    /// `quota_exceeded_error_per_namespace`).
    pub(super) quota_exceeded: BTreeMap<String, u64>,
    /// When a "Quota exceeded" line was last logged, and how many were
    /// held back since (Apache rate-limits the line).
    quota_log: (Option<Instant>, u64),
}

/// Milliseconds since the Unix epoch: the txn time (ctime/mtime), as the
/// ZooKeeper leader stamps it.
pub(super) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl CommitShard {
    pub fn new(
        config: Arc<Config>,
        workers: Vec<ConnectedSender<FromCommit>>,
        gates: Vec<Arc<WorkerGate>>,
        stats: Arc<ServerStats>,
        recovered: Recovered,
        log: LogHandle,
        snapshots: Snapshotter,
    ) -> Self {
        let tick = config.tick_time_ms as i64;
        let started = Instant::now();
        stats.set_last_zxid(recovered.last_zxid);
        stats.set_mode(if config.quorum.is_some() {
            crate::server::stats::ServerMode::Looking
        } else {
            crate::server::stats::ServerMode::Standalone
        });
        stats.sessions_changed(recovered.sessions.len() as u64);
        let settings =
            ExecSettings { extended_types_enabled: config.extended_types_enabled, enforce_quota: config.enforce_quota };
        // Restored sessions get a fresh deadline: their clients may reconnect.
        let restored_sessions = recovered.sessions.iter().map(|(id, t)| (*id, *t));
        let mut seq = Sequencer::new(
            recovered.tree.clone(),
            recovered.last_zxid,
            restored_sessions,
            recovered.recent_txns.clone(),
            tick,
            SessionIdAllocator::starting_at(1),
            settings,
            0,
        );
        // Session ids carry the server id in their top byte (0 standalone),
        // so every ensemble member can hand them out without asking.
        let server_id = config.quorum.as_ref().map(|q| u8::try_from(q.my_id).unwrap_or(u8::MAX)).unwrap_or(0);
        seq.start_session_ids(server_id, wall_clock_ms());
        let seed = (wall_clock_ms() as u64) ^ ((std::process::id() as u64) << 32);
        CommitShard {
            published_tree: recovered.tree.clone(),
            published_sessions: {
                let mut published = PublishedSessions::default();
                published.reset(recovered.sessions.iter().map(|(id, t)| (*id, *t)));
                published
            },
            quorum_metrics: Default::default(),
            leader_report: Default::default(),
            quota_exceeded: BTreeMap::new(),
            quota_log: (None, 0),
            seq,
            digest_log: DigestLog::default(),
            log,
            snapshots,
            snapshot_policy: SnapshotPolicy::new(config.snap_count, seed),
            last_sent: vec![0; workers.len()],
            skipped: vec![0; workers.len()],
            addressed: vec![false; workers.len()],
            publish_seq: 0,
            gates,
            workers,
            reports: HashMap::new(),
            stats,
            started,
            next_reap_ms: config.container_check_interval_ms as i64,
            config,
        }
    }

    /// Monotonic milliseconds since the shard started: the session clock.
    pub(super) fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs the shard until every worker has hung up: standalone, or as an
    /// ensemble member (`quorum_peer`).
    pub(super) async fn run(mut self, events: Rc<EventQueue>) {
        // One long-lived ticker wakes the loop for expiry and the reaper; a
        // timer armed per wake-up would cost two io_uring ops per batch. It
        // wakes at the session clock's tick boundaries, when buckets fall due
        // (every half tick in an ensemble, where the leader pings that often).
        let tick_ms = wake::wake_interval_ms(self.config.tick_time_ms as i64, self.config.quorum.is_some());
        let started = self.started;
        let ticker = {
            let events = events.clone();
            glommio::spawn_local(async move {
                loop {
                    let due_ms = wake::next_wake_ms(tick_ms, started.elapsed().as_millis() as i64);
                    let due = started + Duration::from_millis(due_ms as u64);
                    glommio::timer::sleep(due.saturating_duration_since(Instant::now())).await;
                    events.wake();
                }
            })
            .detach()
        };
        if self.config.quorum.is_some() {
            self.run_quorum(&events).await;
        } else {
            self.run_standalone(&events).await;
        }
        ticker.cancel();
        self.log.stop().await;
        tracing::debug!("commit shard stopped");
    }

    async fn run_standalone(&mut self, events: &Rc<EventQueue>) {
        // Batches executed and logged, waiting for the log to say durable.
        let mut pending: PendingBatches<Arc<CommitBatch>> = PendingBatches::default();
        let mut turn = StandaloneTurn::default();
        loop {
            self.log.wait_for_room().await;
            let Some(items) = events.next_batch().await else { break };
            let mut batch = BatchBuilder::default();
            for event in items {
                if let Event::Worker(arrived, msg) = event {
                    self.handle_worker_message(arrived, msg, &mut batch).await;
                }
            }
            // The turn's order is the shared `StandaloneTurn`'s.
            turn.begin();
            loop {
                match turn.next(&batch) {
                    StandaloneStep::ExpireSessions => {
                        self.expire_sessions(&mut batch);
                        self.reap(&mut batch);
                    }
                    StandaloneStep::HandToLog => {
                        let logged_txns = batch.logged.len() as u64;
                        self.log_txns(&mut batch);
                        let sealed = self.seal(std::mem::take(&mut batch));
                        pending.push(sealed.last_zxid, sealed);
                        self.maybe_snapshot(logged_txns);
                    }
                    StandaloneStep::ReportDurable => turn.durable(self.log.durable_through()),
                    // Durability point: nothing of a batch reaches a client first.
                    StandaloneStep::Publish(durable) => self.publish_through(&mut pending, durable).await,
                    StandaloneStep::Done => break,
                }
            }
        }
        self.log.drain().await;
        self.publish_through(&mut pending, self.log.durable_through()).await;
    }

    /// Publishes, in order, every pending batch whose txns are all at or
    /// below `zxid` (durable, or committed by a quorum).
    pub(super) async fn publish_through(&mut self, pending: &mut PendingBatches<Arc<CommitBatch>>, zxid: i64) {
        for b in pending.take_through(zxid) {
            self.publish(b).await;
        }
    }

    /// One worker message into the batch being built.
    pub(super) async fn handle_worker_message(&mut self, arrived: Instant, msg: ToCommit, batch: &mut BatchBuilder) {
        let logged_before = batch.logged.len();
        self.handle(msg, batch).await;
        if batch.logged.len() > logged_before {
            batch.arrivals.push(arrived);
        }
    }

    /// Hands the batch's txns to the log thread (moved out: whatever else
    /// reads them runs first). The caller publishes the batch once
    /// `log.durable_through()` reaches it; a failed write or fsync stops
    /// the server (`LogHandle`), never retried.
    pub(super) fn log_txns(&mut self, batch: &mut BatchBuilder) {
        for (zxid, digest) in batch.digest_marks.drain(..) {
            self.digest_log.note(zxid, digest);
        }
        self.log.log(std::mem::take(&mut batch.logged), &batch.arrivals);
    }

    /// The batch as every worker will see it: the tree as of its end.
    pub(super) fn seal(&self, batch: BatchBuilder) -> Arc<CommitBatch> {
        Arc::new(CommitBatch {
            tree: self.seq.tree().clone(),
            last_zxid: self.seq.last_zxid(),
            entries: batch.entries,
            session_changes: batch.session_changes,
        })
    }

    pub(super) async fn publish(&mut self, shared: Arc<CommitBatch>) {
        self.published_tree = shared.tree.clone();
        self.published_sessions.apply(&shared.session_changes);
        self.stats.set_last_zxid(shared.last_zxid);
        self.stats.set_node_count(shared.tree.node_count() as u64);
        // Numbered before any worker's `watching` is read (`view_slot`).
        self.publish_seq += 1;
        let publish_seq = self.publish_seq;
        self.stats.set_publish_seq(publish_seq);
        let audience = BatchAudience::of(&shared, &mut self.addressed);
        // Every worker with room gets the batch at once; only then wait for
        // the ones whose channel is full, so one slow worker does not hold
        // the batch back from the others. A worker the batch does not
        // concern gets its tree in its slot, and a wake only if it asks.
        let mut full = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            let addressed = self.addressed.get(i).copied().unwrap_or(true);
            let skip = self.gates.get(i).filter(|gate| !audience.concerns(addressed, gate));
            let Some(gate) = skip else {
                self.last_sent[i] = publish_seq;
                self.skipped[i] = 0;
                let msg = FromCommit::Batch { batch: shared.clone(), publish_seq };
                if let Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) = w.try_send(msg) {
                    full.push((i, msg));
                }
                continue;
            };
            gate.put(ViewAdvance {
                tree: shared.tree.clone(),
                last_zxid: shared.last_zxid,
                publish_seq,
                after_batch: self.last_sent[i],
            });
            self.skipped[i] += 1;
            // Read after the slot is filled (`view_slot`). A full channel
            // needs no wake: the worker looks at the slot after every message.
            if gate.waiting() || self.skipped[i] >= NUDGE_AFTER_SKIPPED_BATCHES {
                self.skipped[i] = 0;
                let _ = w.try_send(FromCommit::Advance);
            }
        }
        for (i, msg) in full {
            let _ = self.workers[i].send(msg).await;
        }
    }

    pub(super) async fn drop_all_connections(&mut self) {
        for w in &self.workers {
            let _ = w.send(FromCommit::DropAllConnections).await;
        }
    }

    /// Starts a background snapshot when the policy says so. The tree must
    /// be exactly the logged state at `last_zxid` (between batches).
    pub(super) fn maybe_snapshot(&mut self, logged_txns: u64) {
        if self.snapshot_policy.logged(logged_txns) && !self.snapshots.in_progress() {
            let sessions = self.seq.sessions().collect();
            if self.snapshots.start(self.seq.tree().clone(), sessions, self.seq.last_zxid()) {
                self.log.roll();
                self.snapshot_policy.taken();
            }
        }
    }

    /// Prepares and applies one write at the next zxid and logs its txn.
    pub(super) fn execute(
        &mut self,
        batch: &mut BatchBuilder,
        session_id: i64,
        cxid: i32,
        write: &WriteOp,
        auth: &dyn AuthContext,
    ) -> (i64, Result<crate::tree::WriteResult, ErrorCode>, Vec<crate::tree::WatchTrigger>) {
        let done = self.seq.execute(batch, session_id, cxid, write, auth, wall_clock_ms());
        if !done.quota_notes.is_empty() {
            self.note_quota(&done.quota_notes);
        }
        (done.zxid, done.result, done.triggers)
    }

    pub(super) async fn handle(&mut self, msg: ToCommit, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        match msg {
            ToCommit::CreateSession { conn, timeout_ms } => {
                let session_id = self.seq.next_session_id();
                let holder = SessionHolder::Here;
                let time_ms = wall_clock_ms();
                let zxid = self.seq.create_session(batch, session_id, 0, timeout_ms, Some(conn), holder, now, time_ms);
                self.stats.sessions_changed(self.seq.session_count() as u64);
                batch.entries.push(BatchEntry::Txn {
                    zxid,
                    triggers: Vec::new(),
                    reply: Some(Reply { conn, zxid, kind: ReplyKind::connect(session_id, timeout_ms, true) }),
                    closed_session: None,
                });
            }
            ToCommit::Revalidate { conn, session_id, timeout_ms } => {
                let revalidated = self.seq.revalidate(session_id, timeout_ms, Some(conn), SessionHolder::Here, now);
                let valid = revalidated.valid;
                if let Some(previous) = revalidated.previous_owner {
                    batch.entries.push(BatchEntry::DropConnection { conn: previous });
                }
                batch.entries.push(BatchEntry::Reply(Reply {
                    conn,
                    zxid: self.seq.last_zxid(),
                    kind: ReplyKind::connect(session_id, timeout_ms, valid),
                }));
            }
            ToCommit::Write { conn, session_id, xid, op, write, auth } => {
                if let Err(code) = self.seq.admit_write(session_id, SessionHolder::Here, now) {
                    batch.entries.push(BatchEntry::Reply(Reply {
                        conn,
                        zxid: self.seq.last_zxid(),
                        kind: ReplyKind::Write { xid, op, result: Err(code) },
                    }));
                    return;
                }
                let (zxid, result, triggers) = self.execute(batch, session_id, xid, &write, auth.as_ref());
                let result = result.map(|r| write_response(op, &write, &r));
                batch.entries.push(BatchEntry::Txn {
                    zxid,
                    triggers,
                    reply: Some(Reply { conn, zxid, kind: ReplyKind::Write { xid, op, result } }),
                    closed_session: None,
                });
            }
            ToCommit::Sync { conn, xid, path, .. } => {
                batch.entries.push(BatchEntry::Reply(Reply {
                    conn,
                    zxid: self.seq.last_zxid(),
                    kind: ReplyKind::Sync { xid, path },
                }));
            }
            ToCommit::CloseSession { conn, session_id, xid } => {
                if self.seq.holds_session(session_id) {
                    self.close_session(
                        batch,
                        session_id,
                        Some(Reply { conn, zxid: 0, kind: ReplyKind::CloseSession { xid } }),
                    );
                } else {
                    batch.entries.push(BatchEntry::Reply(Reply {
                        conn,
                        zxid: self.seq.last_zxid(),
                        kind: ReplyKind::CloseSession { xid },
                    }));
                }
            }
            ToCommit::Touch { sessions } => {
                for (sid, heard_at) in sessions {
                    let heard_ms = heard_at.saturating_duration_since(self.started).as_millis() as i64;
                    self.seq.heard_from(sid, heard_ms);
                }
            }
            ToCommit::Disconnected { conn, session_id } => self.seq.disconnected(session_id, conn),
            ToCommit::Report { conn, request_id, cmd } => {
                if cmd == "srst" {
                    self.log.reset_metrics();
                    self.quorum_metrics.reset();
                    self.leader_report.proposal_sizes = Default::default();
                }
                if cmd == "orst" {
                    self.leader_report.reset_observer_stats = true;
                }
                self.reports
                    .insert(request_id, PendingReport { conn, cmd, parts: Vec::new(), awaiting: self.workers.len() });
                for w in &self.workers {
                    let _ = w.send(FromCommit::CollectReport { request_id, cmd }).await;
                }
            }
            ToCommit::ReportPart { request_id, part } => {
                let done = match self.reports.get_mut(&request_id) {
                    Some(r) => {
                        r.parts.push(part);
                        r.awaiting = r.awaiting.saturating_sub(1);
                        r.awaiting == 0
                    }
                    None => false,
                };
                if done {
                    if let Some(mut r) = self.reports.remove(&request_id) {
                        let answer = if crate::server::admin_report::merged_by_requester(r.cmd) {
                            FromCommit::ReportParts { conn: r.conn, parts: r.parts }
                        } else {
                            let chunks =
                                self.with_report_context(|view| fourlw::report_chunks(r.cmd, &mut r.parts, view));
                            FromCommit::ReportReady { conn: r.conn, chunks }
                        };
                        if let Some(w) = self.workers.get(r.conn.shard) {
                            let _ = w.send(answer).await;
                        }
                    }
                }
            }
        }
    }

    /// Counts the hard quota refusals and logs the notes, at most one line
    /// a second (with how many were held back), as Apache's RateLogger.
    fn note_quota(&mut self, notes: &[crate::tree::QuotaNote]) {
        for note in notes {
            if note.hard {
                if let Some(ns) = &note.namespace {
                    *self.quota_exceeded.entry(ns.clone()).or_insert(0) += 1;
                }
            }
            let (last, held_back) = &mut self.quota_log;
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                tracing::warn!(held_back = *held_back, "{}", note.message);
                *last = Some(Instant::now());
                *held_back = 0;
            } else {
                *held_back += 1;
            }
        }
    }

    pub(super) fn with_report_context<R>(&self, f: impl FnOnce(&fourlw::CommitView<'_>) -> R) -> R {
        self.log.with_metrics(|log| self.report_context(log, f))
    }

    fn report_context<R>(
        &self,
        log: &crate::server::log_writer::LogMetrics,
        f: impl FnOnce(&fourlw::CommitView<'_>) -> R,
    ) -> R {
        f(&fourlw::CommitView {
            config: &self.config,
            tree: self.seq.tree(),
            last_zxid: self.seq.last_zxid(),
            sessions: self.seq.sessions().collect(),
            session_deadlines_ms: self
                .seq
                .sessions()
                .filter_map(|(id, _)| Some((id, self.seq.deadline_of(id)?)))
                .collect(),
            session_clock_ms: self.now_ms(),
            digest_log: &self.digest_log,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            log,
            mode: self.stats.mode(),
            digest_mismatches: self.stats.digest_mismatches(),
            leader_view: self.stats.leader_view(),
            pending_syncs: self.stats.pending_syncs(),
            quorum_metrics: self.config.quorum.is_some().then_some(&self.quorum_metrics),
            quorum_size: self.stats.quorum_size(),
            proposal_sizes: self.leader_report.proposal_sizes,
            observers: &self.leader_report.observers,
            quota_exceeded: &self.quota_exceeded,
        })
    }

    /// Writes a closeSession txn: the session's ephemerals go, their watches
    /// fire, and the worker drops the connection after any reply.
    pub(super) fn close_session(&mut self, batch: &mut BatchBuilder, session_id: i64, reply: Option<Reply>) {
        let WriteDone { zxid, triggers, .. } = self.seq.close_session(batch, session_id, wall_clock_ms());
        self.stats.sessions_changed(self.seq.session_count() as u64);
        batch.entries.push(BatchEntry::Txn {
            zxid,
            triggers,
            reply: reply.map(|r| Reply { zxid, ..r }),
            closed_session: Some(session_id),
        });
    }

    pub(super) fn expire_sessions(&mut self, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        for sid in self.seq.take_expired(now) {
            // Apache's "Expiring session ..., timeout of N ms exceeded", and
            // who held it: a learner's session lives on its pings' touches.
            let (timeout_ms, holder) = self.seq.session(sid).map(|e| (e.timeout_ms, e.holder)).unzip();
            tracing::info!(session = format_args!("0x{sid:x}"), ?timeout_ms, ?holder, "session expired");
            self.close_session(batch, sid, None);
        }
    }

    /// Deletes empty containers and expired TTL nodes, at most
    /// `container_max_per_minute` a minute, as ZooKeeper's ContainerManager.
    pub(super) fn reap(&mut self, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        if now < self.next_reap_ms {
            return;
        }
        let interval = self.config.container_check_interval_ms.max(1) as i64;
        self.next_reap_ms = now + interval;
        let per_interval = (self.config.container_max_per_minute as i64 * interval / 60_000).max(1) as usize;
        let candidates = self.seq.tree().reapable(
            wall_clock_ms(),
            self.config.container_max_never_used_interval_ms as i64,
            per_interval,
        );
        for path in candidates {
            let write = WriteOp::DeleteContainer { path: path.clone() };
            let (zxid, result, triggers) = self.execute(batch, 0, 0, &write, &ServerIdentity);
            if let Err(e) = &result {
                tracing::debug!(%path, error = %e, "reaper skipped a node");
            }
            batch.entries.push(BatchEntry::Txn { zxid, triggers, reply: None, closed_session: None });
        }
    }
}

/// What wakes the commit shard: worker messages and, in an ensemble, the
/// quorum network's events. One queue, drained whole, makes a batch.
pub(super) enum Event {
    Worker(Instant, ToCommit),
    /// From a network task of one role term (see `quorum_peer::RoleTerm`):
    /// events of an earlier term are stale and dropped.
    Quorum(crate::server::quorum_peer::RoleTerm, crate::server::quorum_peer::QuorumEvent),
    /// A log write became durable (`LogHandle::durable_through` says how far).
    LogDurable,
}

/// The commit shard's inbox: one receiving task per worker channel (and
/// per quorum link) pushes here; the loop drains it whole.
pub(super) struct EventQueue {
    items: RefCell<VecDeque<Event>>,
    wake_tx: local_channel::LocalSender<()>,
    wake_rx: local_channel::LocalReceiver<()>,
    open_inboxes: std::cell::Cell<usize>,
}

impl EventQueue {
    pub(super) fn start(inboxes: Vec<ConnectedReceiver<ToCommit>>) -> Rc<EventQueue> {
        let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
        let queue = Rc::new(EventQueue {
            items: RefCell::new(VecDeque::new()),
            wake_tx,
            wake_rx,
            open_inboxes: std::cell::Cell::new(inboxes.len()),
        });
        for inbox in inboxes {
            let queue = queue.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = inbox.recv().await {
                    queue.push(Event::Worker(Instant::now(), msg));
                }
                queue.open_inboxes.set(queue.open_inboxes.get() - 1);
                queue.wake();
            })
            .detach();
        }
        queue
    }

    pub(super) fn push(&self, event: Event) {
        self.items.borrow_mut().push_back(event);
        self.wake();
    }

    pub(super) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    pub(super) fn stopping(&self) -> bool {
        self.open_inboxes.get() == 0 || crate::server::STOP.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for a wake-up and takes everything queued; None once the
    /// server stops and nothing is left.
    pub(super) async fn next_batch(&self) -> Option<Vec<Event>> {
        if self.stopping() && self.items.borrow().is_empty() {
            return None;
        }
        if self.wake_rx.recv().await.is_none() && self.items.borrow().is_empty() {
            return None;
        }
        Some(self.items.borrow_mut().drain(..).collect())
    }
}

#[derive(Default)]
pub(super) struct BatchBuilder {
    pub(super) entries: Vec<BatchEntry>,
    /// (zxid, encoded txn payload) for the log.
    pub(super) logged: Vec<(i64, Bytes)>,
    /// When the requests behind `logged` reached the commit shard.
    pub(super) arrivals: Vec<Instant>,
    /// (zxid, tree digest after it) of this batch's txns that belong in the
    /// digest history (`DigestLog`).
    pub(super) digest_marks: Vec<(i64, i64)>,
    /// What this batch's txns do to the session table, in txn order.
    pub(super) session_changes: Vec<SessionChange>,
    /// Where txns are encoded: each logged payload is a slice of it, so a
    /// batch of small txns costs one allocation, not one per txn.
    pub(super) encode_buf: bytes::BytesMut,
    /// The size of the next chunk `encode_buf` reserves: doubling from
    /// `TXN_ENCODE_FIRST_CHUNK_BYTES` to `TXN_ENCODE_MAX_CHUNK_BYTES`, so a
    /// one-txn batch keeps no more than a small chunk alive (the leader's
    /// recent-txn window holds payloads for DIFFs).
    pub(super) next_chunk_bytes: usize,
}

const TXN_ENCODE_FIRST_CHUNK_BYTES: usize = 1024;
const TXN_ENCODE_MAX_CHUNK_BYTES: usize = 64 * 1024;
/// A txn's encoding beyond its data is well under this.
const TXN_ENCODE_HEADROOM_BYTES: usize = 512;

impl BatchBuilder {
    /// Logs a txn with Apache's tree digest after it (None for an error
    /// txn, as Apache's leader leaves it out there).
    pub(super) fn log_txn(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<crate::storage::txn::TxnDigest>) {
        let needed = TXN_ENCODE_HEADROOM_BYTES + txn_data_len(txn);
        if self.encode_buf.capacity() < needed {
            let chunk = self.next_chunk_bytes.clamp(TXN_ENCODE_FIRST_CHUNK_BYTES, TXN_ENCODE_MAX_CHUNK_BYTES);
            self.next_chunk_bytes = chunk * 2;
            self.encode_buf.reserve(chunk.max(needed));
        }
        encode_txn(&mut self.encode_buf, header, txn, digest);
        self.logged.push((header.zxid, self.encode_buf.split().freeze()));
        if let Some(d) = digest {
            if DigestLog::keeps(header.zxid) {
                self.digest_marks.push((header.zxid, d.tree_digest));
            }
        }
    }

    /// A batch of txns already encoded (a learner logs the leader's bytes).
    pub(super) fn of_logged(logged: Vec<(i64, Bytes)>, arrivals: Vec<Instant>) -> BatchBuilder {
        BatchBuilder { logged, arrivals, ..Default::default() }
    }
}

impl crate::commit::TurnBatch for BatchBuilder {
    fn logged(&self) -> &[(i64, Bytes)] {
        &self.logged
    }

    fn has_entries(&self) -> bool {
        !self.entries.is_empty()
    }
}

impl TxnSink for BatchBuilder {
    fn log(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<crate::storage::txn::TxnDigest>, _: i64) {
        self.log_txn(header, txn, digest);
    }

    fn session_changed(&mut self, change: SessionChange) {
        self.session_changes.push(change);
    }
}

/// The bytes of path and znode data a txn carries (the bulk of a large
/// one); encoding grows the buffer anyway when this falls short.
fn txn_data_len(txn: &Txn) -> usize {
    match txn {
        Txn::Create { data, path, .. }
        | Txn::CreateContainer { data, path, .. }
        | Txn::CreateTtl { data, path, .. }
        | Txn::SetData { data, path, .. } => path.len() + data.as_ref().map_or(0, |d| d.len()),
        Txn::Multi(txns) => txns.iter().map(|(_, t)| txn_data_len(t)).sum(),
        _ => 0,
    }
}

/// The tree's digest at every 128th zxid, the newest 1,024 (Apache's
/// DataTree digestLog, which the AdminServer's `hash` command lists): a
/// replica's history can be compared with another's after the fact.
/// Owned by the commit shard; started empty at each start-up and reload.
#[derive(Default)]
pub struct DigestLog {
    entries: std::collections::VecDeque<(i64, i64)>,
}

impl DigestLog {
    pub const INTERVAL_ZXIDS: i64 = 128;
    pub const LIMIT_ENTRIES: usize = 1024;

    pub fn keeps(zxid: i64) -> bool {
        zxid % Self::INTERVAL_ZXIDS == 0
    }

    /// The digest after `zxid` was applied (kept only for every 128th).
    pub fn note(&mut self, zxid: i64, digest: i64) {
        if !Self::keeps(zxid) {
            return;
        }
        self.entries.push_back((zxid, digest));
        while self.entries.len() > Self::LIMIT_ENTRIES {
            self.entries.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// (zxid, digest), oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &(i64, i64)> {
        self.entries.iter()
    }
}

/// The wire response for a successful write.
pub(super) fn write_response(opcode: i32, write: &WriteOp, res: &WriteResult) -> Option<Response> {
    match res {
        WriteResult::Created { path, stat } => Some(created_response(opcode, path, stat)),
        WriteResult::Stat(stat) => Some(Response::Stat(*stat)),
        WriteResult::Multi(results) => {
            let ops: &[WriteOp] = match write {
                WriteOp::Multi(ops) => ops,
                _ => &[],
            };
            let results = results
                .iter()
                .enumerate()
                .map(|(i, r)| match r {
                    MultiOpResult::Created { path, stat } => {
                        let sub_op = match ops.get(i) {
                            Some(WriteOp::Create { op, .. }) => *op,
                            _ => op::CREATE,
                        };
                        match created_response(sub_op, path, stat) {
                            Response::Create { path } => MultiResult::Create { path },
                            Response::Create2 { path, stat } => MultiResult::Create2 { path, stat },
                            _ => MultiResult::Create { path: path.clone() },
                        }
                    }
                    MultiOpResult::Deleted => MultiResult::Delete,
                    MultiOpResult::Checked => MultiResult::Check,
                    MultiOpResult::SetData(stat) => MultiResult::SetData { stat: *stat },
                    MultiOpResult::Error(code) => MultiResult::Error(code.code()),
                })
                .collect();
            Some(Response::Multi(results))
        }
        WriteResult::Deleted
        | WriteResult::Checked
        | WriteResult::SessionClosed { .. }
        | WriteResult::SessionCreated => None,
    }
}

/// create (op 1) answers with the path only; create2, createContainer and
/// createTTL with the path and the Stat.
fn created_response(opcode: i32, path: &str, stat: &Stat) -> Response {
    if opcode == op::CREATE {
        Response::Create { path: path.to_string() }
    } else {
        Response::Create2 { path: path.to_string(), stat: *stat }
    }
}
