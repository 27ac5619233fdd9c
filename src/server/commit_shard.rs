//! The commit shard: the one writer.
//!
//! It owns the authoritative data tree, the zxid counter, the session table
//! and its expiry queue, the transaction log and the container/TTL reaper.
//! Workers send it `ToCommit`; it gathers whatever has arrived into a batch,
//! executes every write against the tree in arrival order, appends the batch
//! to the log, and only after the log says the batch is durable sends the
//! batch (tree version + watch triggers + replies) to every worker.
//! While one batch is being made durable, new requests queue up and form
//! the next batch (group commit).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use crate::acl::{AuthContext, ServerIdentity};
use crate::config::Config;
use crate::proto::records::{MultiResult, Response};
use crate::proto::{op, ErrorCode, Stat};
use crate::server::fourlw;
use crate::server::log_writer::LogWriter;
use crate::server::messages::*;
use crate::server::recovery::Recovered;
use crate::server::snapshots::{SnapshotPolicy, Snapshotter};
use crate::server::stats::ServerStats;
use crate::session::expiry::next_tick_boundary_ms;
use crate::session::{session_password, ExpiryQueue, SessionIdAllocator};
use crate::storage::txn::{encode_txn, Txn, TxnHeader};
use crate::tree::{DataTree, MultiOpResult, TxnContext, WriteOp, WriteResult};

struct SessionEntry {
    timeout_ms: i32,
    owner: Option<ConnRef>,
}

struct PendingReport {
    conn: ConnRef,
    cmd: &'static str,
    parts: Vec<ShardReport>,
    awaiting: usize,
}

pub struct CommitShard {
    config: Arc<Config>,
    tree: DataTree,
    last_zxid: i64,
    sessions: HashMap<i64, SessionEntry>,
    expiry: ExpiryQueue,
    session_ids: SessionIdAllocator,
    log: LogWriter,
    snapshots: Snapshotter,
    snapshot_policy: SnapshotPolicy,
    workers: Vec<ConnectedSender<FromCommit>>,
    reports: HashMap<u64, PendingReport>,
    stats: Arc<ServerStats>,
    started: Instant,
    next_reap_ms: i64,
}

/// Milliseconds since the Unix epoch: the txn time (ctime/mtime), as the
/// ZooKeeper leader stamps it.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl CommitShard {
    pub fn new(
        config: Arc<Config>,
        workers: Vec<ConnectedSender<FromCommit>>,
        stats: Arc<ServerStats>,
        recovered: Recovered,
        log: LogWriter,
        snapshots: Snapshotter,
    ) -> Self {
        let tick = config.tick_time_ms as i64;
        let started = Instant::now();
        let mut expiry = ExpiryQueue::new(tick);
        let mut sessions = HashMap::new();
        // Restored sessions get a fresh deadline: their clients may reconnect.
        for (&id, &timeout_ms) in &recovered.sessions {
            sessions.insert(id, SessionEntry { timeout_ms, owner: None });
            expiry.touch(id, timeout_ms as i64, 0);
        }
        let newest_id = recovered.sessions.keys().next_back().copied().unwrap_or(0);
        let mut session_ids = SessionIdAllocator::new(0, wall_clock_ms());
        if session_ids.peek() <= newest_id {
            session_ids = SessionIdAllocator::starting_at(newest_id + 1);
        }
        stats.set_last_zxid(recovered.last_zxid);
        stats.sessions_changed(sessions.len() as u64);
        let seed = (wall_clock_ms() as u64) ^ ((std::process::id() as u64) << 32);
        CommitShard {
            expiry,
            session_ids,
            tree: recovered.tree,
            last_zxid: recovered.last_zxid,
            sessions,
            log,
            snapshots,
            snapshot_policy: SnapshotPolicy::new(config.snap_count, seed),
            workers,
            reports: HashMap::new(),
            stats,
            started,
            next_reap_ms: config.container_check_interval_ms as i64,
            config,
        }
    }

    /// Monotonic milliseconds since the shard started: the session clock.
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs the shard until every worker has hung up.
    pub async fn run(mut self, inboxes: Vec<ConnectedReceiver<ToCommit>>) {
        // One receiving task per worker channel funnels into a local queue;
        // the batch loop below drains it whole, which is what makes a batch.
        let queue: Rc<RefCell<VecDeque<(Instant, ToCommit)>>> = Rc::new(RefCell::new(VecDeque::new()));
        let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
        let wake_tx = Rc::new(wake_tx);
        let open_inboxes = Rc::new(std::cell::Cell::new(inboxes.len()));
        for inbox in inboxes {
            let queue = queue.clone();
            let wake_tx = wake_tx.clone();
            let open_inboxes = open_inboxes.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = inbox.recv().await {
                    queue.borrow_mut().push_back((Instant::now(), msg));
                    let _ = wake_tx.try_send(());
                }
                open_inboxes.set(open_inboxes.get() - 1);
                let _ = wake_tx.try_send(());
            })
            .detach();
        }

        // One long-lived ticker wakes the loop for expiry and the reaper; a
        // timer armed per wake-up would cost two io_uring ops per batch. It
        // wakes at the session clock's tick boundaries, when buckets fall due.
        let (tick_ms, started) = (self.config.tick_time_ms.max(1) as i64, self.started);
        let ticker = {
            let wake_tx = wake_tx.clone();
            glommio::spawn_local(async move {
                loop {
                    let due_ms = next_tick_boundary_ms(tick_ms, started.elapsed().as_millis() as i64);
                    let due = started + Duration::from_millis(due_ms as u64);
                    glommio::timer::sleep(due.saturating_duration_since(Instant::now())).await;
                    let _ = wake_tx.try_send(());
                }
            })
            .detach()
        };
        loop {
            let stopping = open_inboxes.get() == 0 || crate::server::STOP.load(std::sync::atomic::Ordering::Relaxed);
            if stopping && queue.borrow().is_empty() {
                break;
            }
            if wake_rx.recv().await.is_none() && queue.borrow().is_empty() {
                break;
            }
            let msgs: Vec<(Instant, ToCommit)> = queue.borrow_mut().drain(..).collect();
            let mut batch = BatchBuilder::default();
            for (arrived, msg) in msgs {
                let logged_before = batch.logged.len();
                self.handle(msg, &mut batch).await;
                if batch.logged.len() > logged_before {
                    batch.arrivals.push(arrived);
                }
            }
            self.expire_sessions(&mut batch);
            self.reap(&mut batch);
            if batch.entries.is_empty() {
                continue;
            }
            // Durability point: nothing of this batch reaches a client first.
            if let Err(e) = self.log.append(&batch.logged, &batch.arrivals).await {
                // The in-memory tree is ahead of the log now; serving on
                // would acknowledge writes that are not durable.
                tracing::error!(error = %e, "transaction log append failed; stopping the server");
                std::process::exit(2);
            }
            let shared =
                Arc::new(CommitBatch { tree: self.tree.clone(), last_zxid: self.last_zxid, entries: batch.entries });
            self.stats.set_last_zxid(self.last_zxid);
            self.stats.set_node_count(self.tree.node_count() as u64);
            for w in &self.workers {
                let _ = w.send(FromCommit::Batch(shared.clone())).await;
            }
            if self.snapshot_policy.logged(batch.logged.len() as u64) && !self.snapshots.in_progress() {
                // The tree here is exactly the durable state at last_zxid.
                let sessions = self.sessions.iter().map(|(id, e)| (*id, e.timeout_ms)).collect();
                if self.snapshots.start(self.tree.clone(), sessions, self.last_zxid) {
                    self.log.roll();
                    self.snapshot_policy.taken();
                }
            }
        }
        ticker.cancel();
        self.log.close().await;
        tracing::debug!("commit shard stopped");
    }

    fn next_zxid(&mut self) -> i64 {
        self.last_zxid += 1;
        self.last_zxid
    }

    /// Prepares and applies one write at the next zxid and logs its txn.
    fn execute(
        &mut self,
        batch: &mut BatchBuilder,
        session_id: i64,
        cxid: i32,
        write: &WriteOp,
        auth: &dyn AuthContext,
    ) -> (i64, Result<crate::tree::WriteResult, ErrorCode>, Vec<crate::tree::WatchTrigger>) {
        let zxid = self.next_zxid();
        let ctx = TxnContext {
            session_id,
            cxid,
            zxid,
            time_ms: wall_clock_ms(),
            auth,
            extended_types_enabled: self.config.extended_types_enabled,
        };
        let executed = self.tree.execute(&ctx, write);
        batch.log(&executed.header, &executed.txn);
        (zxid, executed.result, executed.triggers)
    }

    async fn handle(&mut self, msg: ToCommit, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        match msg {
            ToCommit::CreateSession { conn, timeout_ms } => {
                let session_id = self.session_ids.next_id();
                let zxid = self.next_zxid();
                let header = TxnHeader { session_id, cxid: 0, zxid, time_ms: wall_clock_ms(), op: op::CREATE_SESSION };
                let txn = Txn::CreateSession { timeout_ms };
                let _ = self.tree.apply_txn(&header, &txn);
                batch.log(&header, &txn);
                self.sessions.insert(session_id, SessionEntry { timeout_ms, owner: Some(conn) });
                self.expiry.touch(session_id, timeout_ms as i64, now);
                self.stats.sessions_changed(self.sessions.len() as u64);
                batch.entries.push(BatchEntry::Txn {
                    zxid,
                    triggers: Vec::new(),
                    reply: Some(Reply {
                        conn,
                        zxid,
                        kind: ReplyKind::Connect {
                            session_id,
                            timeout_ms,
                            passwd: session_password(session_id),
                            valid: true,
                        },
                    }),
                    closed_session: None,
                });
            }
            ToCommit::Revalidate { conn, session_id, timeout_ms } => {
                let valid = match self.sessions.get_mut(&session_id) {
                    Some(entry) => {
                        if let Some(previous) = entry.owner.replace(conn) {
                            if previous != conn {
                                batch.entries.push(BatchEntry::DropConnection { conn: previous });
                            }
                        }
                        entry.timeout_ms = timeout_ms;
                        true
                    }
                    None => false,
                };
                if valid {
                    self.expiry.touch(session_id, timeout_ms as i64, now);
                }
                batch.entries.push(BatchEntry::Reply(Reply {
                    conn,
                    zxid: self.last_zxid,
                    kind: ReplyKind::Connect {
                        session_id: if valid { session_id } else { 0 },
                        timeout_ms: if valid { timeout_ms } else { 0 },
                        passwd: if valid { session_password(session_id) } else { [0; 16] },
                        valid,
                    },
                }));
            }
            ToCommit::Write { conn, session_id, xid, op, write, auth } => {
                if !self.sessions.contains_key(&session_id) {
                    batch.entries.push(BatchEntry::Reply(Reply {
                        conn,
                        zxid: self.last_zxid,
                        kind: ReplyKind::Write { xid, op, result: Err(ErrorCode::SessionExpired) },
                    }));
                    return;
                }
                self.expiry.touch(session_id, self.sessions[&session_id].timeout_ms as i64, now);
                let (zxid, result, triggers) = self.execute(batch, session_id, xid, &write, auth.as_ref());
                let result = result.map(|r| write_response(op, &write, &r));
                batch.entries.push(BatchEntry::Txn {
                    zxid,
                    triggers,
                    reply: Some(Reply { conn, zxid, kind: ReplyKind::Write { xid, op, result } }),
                    closed_session: None,
                });
            }
            ToCommit::Sync { conn, xid, path } => {
                batch.entries.push(BatchEntry::Reply(Reply {
                    conn,
                    zxid: self.last_zxid,
                    kind: ReplyKind::Sync { xid, path },
                }));
            }
            ToCommit::CloseSession { conn, session_id, xid } => {
                if self.sessions.contains_key(&session_id) {
                    self.close_session(
                        batch,
                        session_id,
                        Some(Reply { conn, zxid: 0, kind: ReplyKind::CloseSession { xid } }),
                    );
                } else {
                    batch.entries.push(BatchEntry::Reply(Reply {
                        conn,
                        zxid: self.last_zxid,
                        kind: ReplyKind::CloseSession { xid },
                    }));
                }
            }
            ToCommit::Touch { sessions } => {
                for (sid, heard_at) in sessions {
                    if let Some(entry) = self.sessions.get(&sid) {
                        let heard_ms = heard_at.saturating_duration_since(self.started).as_millis() as i64;
                        self.expiry.heard_from(sid, entry.timeout_ms as i64, heard_ms);
                    }
                }
            }
            ToCommit::Disconnected { conn, session_id } => {
                if let Some(entry) = self.sessions.get_mut(&session_id) {
                    if entry.owner == Some(conn) {
                        entry.owner = None;
                    }
                }
            }
            ToCommit::Report { conn, request_id, cmd } => {
                if cmd == "srst" {
                    self.log.metrics.reset();
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
                    if let Some(r) = self.reports.remove(&request_id) {
                        let text = fourlw::format_report(r.cmd, &r.parts, &self.report_context());
                        if let Some(w) = self.workers.get(r.conn.shard) {
                            let _ = w.send(FromCommit::ReportReady { conn: r.conn, text: Bytes::from(text) }).await;
                        }
                    }
                }
            }
        }
    }

    fn report_context(&self) -> fourlw::CommitView<'_> {
        fourlw::CommitView {
            config: &self.config,
            tree: &self.tree,
            last_zxid: self.last_zxid,
            sessions: self.sessions.iter().map(|(id, e)| (*id, e.timeout_ms)).collect(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            log: &self.log.metrics,
        }
    }

    /// Writes a closeSession txn: the session's ephemerals go, their watches
    /// fire, and the worker drops the connection after any reply.
    fn close_session(&mut self, batch: &mut BatchBuilder, session_id: i64, reply: Option<Reply>) {
        self.sessions.remove(&session_id);
        self.expiry.remove(session_id);
        self.stats.sessions_changed(self.sessions.len() as u64);
        let (zxid, _result, triggers) = self.execute(batch, session_id, 0, &WriteOp::CloseSession, &ServerIdentity);
        batch.entries.push(BatchEntry::Txn {
            zxid,
            triggers,
            reply: reply.map(|r| Reply { zxid, ..r }),
            closed_session: Some(session_id),
        });
    }

    fn expire_sessions(&mut self, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        for sid in self.expiry.take_expired(now) {
            if self.sessions.contains_key(&sid) {
                tracing::info!(session = format_args!("0x{sid:x}"), "session expired");
                self.close_session(batch, sid, None);
            }
        }
    }

    /// Deletes empty containers and expired TTL nodes, at most
    /// `container_max_per_minute` a minute, as ZooKeeper's ContainerManager.
    fn reap(&mut self, batch: &mut BatchBuilder) {
        let now = self.now_ms();
        if now < self.next_reap_ms {
            return;
        }
        let interval = self.config.container_check_interval_ms.max(1) as i64;
        self.next_reap_ms = now + interval;
        let per_interval = (self.config.container_max_per_minute as i64 * interval / 60_000).max(1) as usize;
        let candidates =
            self.tree.reapable(wall_clock_ms(), self.config.container_max_never_used_interval_ms as i64, per_interval);
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

#[derive(Default)]
struct BatchBuilder {
    entries: Vec<BatchEntry>,
    /// (zxid, encoded txn payload) for the log.
    logged: Vec<(i64, Bytes)>,
    /// When the requests behind `logged` reached the commit shard.
    arrivals: Vec<Instant>,
}

impl BatchBuilder {
    fn log(&mut self, header: &TxnHeader, txn: &Txn) {
        let mut buf = bytes::BytesMut::with_capacity(128);
        encode_txn(&mut buf, header, txn, None);
        self.logged.push((header.zxid, buf.freeze()));
    }
}

/// The wire response for a successful write.
fn write_response(opcode: i32, write: &WriteOp, res: &WriteResult) -> Option<Response> {
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
