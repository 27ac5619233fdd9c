//! Scripted scenarios of the leader and learner state machines wired
//! together in memory: one test per situation Apache's Leader,
//! LearnerHandler and Learner handle. Each server's log is a Vec; "durable"
//! is reported by the harness, immediately or when the test says so.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::ensemble::{Ensemble, Sid};
use super::follower::{LearnerAction, LearnerCore, LearnerSettings};
use super::leader::{
    LeaderAction, LeaderCore, LeaderSettings, LeaderStart, LearnerConn, SyncRequester, COMMITTED_WINDOW_TXNS,
};
use super::packets::{make_zxid, ForwardedRequest, ToLeader, ToLearner};
use super::sync_plan::{DiskLogIndex, SyncPlan, SyncPolicy, SyncReason};
use crate::proto::op;
use crate::storage::txn::{LoggedTxn, Txn, TxnHeader};

const TICK_MS: u64 = 100;

/// A txn payload with a real header (the learner checks its zxid).
fn txn(zxid: i64) -> Bytes {
    LoggedTxn {
        header: TxnHeader { session_id: 1, cxid: 1, zxid, time_ms: 1, op: op::CREATE_SESSION },
        txn: Txn::CreateSession { timeout_ms: 1000 },
        digest: None,
    }
    .to_bytes()
}

fn history(epoch: i64, count: i64) -> Vec<(i64, Bytes)> {
    (1..=count).map(|c| (make_zxid(epoch, c), txn(make_zxid(epoch, c)))).collect()
}

#[derive(Default)]
struct Disk {
    log: Vec<(i64, Bytes)>,
    accepted_epoch: i64,
    current_epoch: i64,
    /// As a leader: how many of the log's newest txns its in-memory window
    /// starts with (None: `COMMITTED_WINDOW_TXNS`; Some(0): a leader that
    /// recovered from a snapshot with no txn after it).
    window_txns: Option<usize>,
}

impl Disk {
    fn last(&self) -> i64 {
        self.log.last().map(|(z, _)| *z).unwrap_or(0)
    }
}

struct LearnerNode {
    sid: Sid,
    core: LearnerCore,
    disk: Disk,
    applied: Vec<i64>,
    serving: bool,
    gave_up: Option<String>,
    /// When false, the test reports durability itself.
    auto_durable: bool,
    syncs_done: usize,
}

struct Harness {
    leader: LeaderCore,
    leader_disk: Disk,
    leader_committed: i64,
    established: Option<i64>,
    stepped_down: Option<String>,
    learners: BTreeMap<LearnerConn, LearnerNode>,
    to_leader: VecDeque<(LearnerConn, ToLeader)>,
    to_learner: VecDeque<(LearnerConn, ToLearner)>,
    snapshots_sent: Vec<LearnerConn>,
    /// Every plan the leader chose, by learner sid.
    syncs_chosen: Vec<(Sid, SyncPlan, SyncReason)>,
    /// Every `SendLoggedTxns` (conn, after, through) the driver served.
    logged_txns_served: Vec<(LearnerConn, i64, i64)>,
    /// Every packet the leader sent, in order (the stream of each link).
    sent: Vec<(LearnerConn, ToLearner)>,
    truncations: Vec<(Sid, i64)>,
    forwarded: Vec<ForwardedRequest>,
    /// Tokens of the leader's own clients' syncs, as they were answered.
    local_syncs_answered: Vec<u64>,
    now_ms: u64,
}

impl Harness {
    /// `leader_sid` leads `voters` (+ `observers`); `disks` gives each
    /// server's starting disk.
    fn new(leader_sid: Sid, voters: &[Sid], observers: &[Sid], mut disks: BTreeMap<Sid, Disk>) -> Harness {
        let ensemble = Ensemble::new(leader_sid, voters.iter().copied(), observers.iter().copied());
        let leader_disk = disks.remove(&leader_sid).unwrap_or_default();
        let start = LeaderStart {
            accepted_epoch: leader_disk.accepted_epoch,
            current_epoch: leader_disk.current_epoch,
            last_logged_zxid: leader_disk.last(),
            recent_txns: leader_disk
                .log
                .iter()
                .rev()
                .take(leader_disk.window_txns.unwrap_or(COMMITTED_WINDOW_TXNS))
                .rev()
                .cloned()
                .collect(),
            disk_log: disk_index(&leader_disk.log),
        };
        let settings = LeaderSettings {
            tick_ms: TICK_MS,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            config_text: Bytes::from_static(b"version=0"),
            sync_policy: SyncPolicy::with_snapshot_bytes(0),
            committed_window_txns: COMMITTED_WINDOW_TXNS,
        };
        let mut h = Harness {
            leader_committed: leader_disk.last(),
            leader: LeaderCore::new(ensemble, settings, start, 0),
            leader_disk,
            established: None,
            stepped_down: None,
            learners: BTreeMap::new(),
            to_leader: VecDeque::new(),
            to_learner: VecDeque::new(),
            snapshots_sent: Vec::new(),
            syncs_chosen: Vec::new(),
            logged_txns_served: Vec::new(),
            sent: Vec::new(),
            truncations: Vec::new(),
            forwarded: Vec::new(),
            local_syncs_answered: Vec::new(),
            now_ms: 0,
        };
        for &sid in voters.iter().chain(observers) {
            if sid != leader_sid {
                let disk = disks.remove(&sid).unwrap_or_default();
                h.connect(sid, observers.contains(&sid), disk);
            }
        }
        h
    }

    fn connect(&mut self, sid: Sid, observer: bool, disk: Disk) -> LearnerConn {
        let conn = sid as LearnerConn * 100 + self.learners.len() as LearnerConn;
        self.leader.learner_connected(conn, self.now_ms);
        let settings =
            LearnerSettings { my_sid: sid, observer, tick_ms: TICK_MS, init_limit_ticks: 10, sync_limit_ticks: 5 };
        let mut actions = Vec::new();
        let core =
            LearnerCore::new(settings, disk.accepted_epoch, disk.current_epoch, disk.last(), self.now_ms, &mut actions);
        self.learners.insert(
            conn,
            LearnerNode {
                sid,
                core,
                disk,
                applied: Vec::new(),
                serving: false,
                gave_up: None,
                auto_durable: true,
                syncs_done: 0,
            },
        );
        self.learner_actions(conn, actions);
        conn
    }

    fn conn_of(&self, sid: Sid) -> LearnerConn {
        *self.learners.iter().find(|(_, n)| n.sid == sid).map(|(c, _)| c).expect("learner")
    }

    fn node(&self, sid: Sid) -> &LearnerNode {
        &self.learners[&self.conn_of(sid)]
    }

    fn leader_actions(&mut self, actions: Vec<LeaderAction>) {
        for a in actions {
            match a {
                LeaderAction::PersistAcceptedEpoch(e) => self.leader_disk.accepted_epoch = e,
                LeaderAction::PersistCurrentEpoch(e) => self.leader_disk.current_epoch = e,
                LeaderAction::Send(conn, p) => self.send(conn, p),
                // The driver's part: the txns from the leader's log, as
                // PROPOSAL + COMMIT pairs, in order with the other packets.
                LeaderAction::SendLoggedTxns { conn, after_zxid, through_zxid } => {
                    self.logged_txns_served.push((conn, after_zxid, through_zxid));
                    let logged: Vec<(i64, Bytes)> = self
                        .leader_disk
                        .log
                        .iter()
                        .filter(|(z, _)| *z > after_zxid && *z <= through_zxid)
                        .cloned()
                        .collect();
                    assert_eq!(logged.last().map(|(z, _)| *z), Some(through_zxid), "the log holds through_zxid");
                    for (zxid, txn) in logged {
                        self.send(conn, ToLearner::Proposal { zxid, txn });
                        self.send(conn, ToLearner::Commit { zxid });
                    }
                }
                LeaderAction::SendSnapshot { conn, zxid } => {
                    assert_eq!(zxid, self.leader_committed, "a snapshot is of the committed state");
                    self.snapshots_sent.push(conn);
                    let image: Vec<(i64, Bytes)> =
                        self.leader_disk.log.iter().filter(|(z, _)| *z <= zxid).cloned().collect();
                    self.send(conn, ToLearner::Snap { zxid });
                    // The stream itself, modelled as a side channel in order.
                    if let Some(node) = self.learners.get_mut(&conn) {
                        node.disk.log = image.clone();
                        node.applied = image.iter().map(|(z, _)| *z).collect();
                    }
                }
                LeaderAction::Established { epoch } => self.established = Some(epoch),
                LeaderAction::SyncChosen { sid, plan, reason, .. } => self.syncs_chosen.push((sid, plan, reason)),
                LeaderAction::Committed { zxid } => self.leader_committed = zxid,
                // The driver's part: a forwarded sync goes back to the core
                // in request order, after what was proposed before it.
                LeaderAction::Forwarded { conn, request, .. } if request.op_type == op::SYNC => {
                    let mut out = Vec::new();
                    let after = self.leader.last_proposed();
                    self.leader.sync(SyncRequester::Learner(conn), after, &mut out);
                    self.leader_actions(out);
                }
                LeaderAction::Forwarded { request, .. } => self.forwarded.push(request),
                LeaderAction::LocalSyncReady { token } => self.local_syncs_answered.push(token),
                LeaderAction::Revalidate { conn, session_id, .. } => {
                    let mut out = Vec::new();
                    self.leader.revalidated(conn, session_id, true, &mut out);
                    self.leader_actions(out);
                }
                LeaderAction::SessionsTouched(_) => {}
                LeaderAction::Close { conn, reason } => {
                    if let Some(node) = self.learners.get_mut(&conn) {
                        node.gave_up.get_or_insert(format!("closed by the leader: {reason}"));
                    }
                }
                LeaderAction::StepDown { reason } => self.stepped_down = Some(reason),
            }
        }
    }

    fn send(&mut self, conn: LearnerConn, p: ToLearner) {
        self.sent.push((conn, p.clone()));
        self.to_learner.push_back((conn, p));
    }

    /// The packets the leader sent to `conn`, in order.
    fn sent_to(&self, conn: LearnerConn) -> Vec<&ToLearner> {
        self.sent.iter().filter(|(c, _)| *c == conn).map(|(_, p)| p).collect()
    }

    fn learner_actions(&mut self, conn: LearnerConn, actions: Vec<LearnerAction>) {
        let mut follow_up = Vec::new();
        let Some(node) = self.learners.get_mut(&conn) else { return };
        for a in actions {
            match a {
                LearnerAction::Send(p) => self.to_leader.push_back((conn, p)),
                LearnerAction::PingReply { zxid } => {
                    self.to_leader.push_back((conn, ToLeader::Ping { zxid, sessions: Vec::new() }))
                }
                LearnerAction::PersistAcceptedEpoch(e) => node.disk.accepted_epoch = e,
                LearnerAction::PersistCurrentEpoch(e) => node.disk.current_epoch = e,
                LearnerAction::Truncate { zxid } => {
                    node.disk.log.retain(|(z, _)| *z <= zxid);
                    node.applied.retain(|z| *z <= zxid);
                    self.truncations.push((node.sid, zxid));
                }
                LearnerAction::ReadSnapshot { zxid } => node.core.snapshot_installed(zxid, self.now_ms),
                LearnerAction::Log(txns) => {
                    for (z, t) in txns {
                        assert!(z > node.disk.last(), "log order");
                        node.disk.log.push((z, t));
                    }
                    if node.auto_durable {
                        follow_up.push(node.disk.last());
                    }
                }
                LearnerAction::Apply(txns) => {
                    for (z, _) in txns {
                        assert!(node.applied.last().is_none_or(|last| *last < z), "apply order");
                        node.applied.push(z);
                    }
                }
                LearnerAction::SyncDone => node.syncs_done += 1,
                LearnerAction::Revalidated { .. } => {}
                LearnerAction::Serving { .. } => node.serving = true,
                LearnerAction::GiveUp { reason } => node.gave_up = Some(reason),
            }
        }
        for z in follow_up {
            self.report_durable(conn, z);
        }
    }

    fn report_durable(&mut self, conn: LearnerConn, zxid: i64) {
        let mut out = Vec::new();
        if let Some(node) = self.learners.get_mut(&conn) {
            node.core.durable(zxid, &mut out);
        }
        self.learner_actions(conn, out);
    }

    /// Delivers every queued packet until nothing moves.
    fn run(&mut self) {
        for _ in 0..100_000 {
            if let Some((conn, p)) = self.to_learner.pop_front() {
                let mut out = Vec::new();
                if let Some(node) = self.learners.get_mut(&conn) {
                    if node.gave_up.is_none() {
                        node.core.packet(p, self.now_ms, &mut out);
                    }
                }
                self.learner_actions(conn, out);
            } else if let Some((conn, p)) = self.to_leader.pop_front() {
                let mut out = Vec::new();
                self.leader.learner_packet(conn, p, self.now_ms, &mut out);
                self.leader_actions(out);
            } else {
                return;
            }
        }
        panic!("the scenario did not settle");
    }

    /// The leader logs and proposes `n` txns and is durable at once.
    fn propose(&mut self, n: usize) -> Vec<i64> {
        let mut zxids = Vec::new();
        for _ in 0..n {
            let zxid = self.leader.next_zxid().expect("established");
            let mut out = Vec::new();
            self.leader_disk.log.push((zxid, txn(zxid)));
            self.leader.propose(zxid, txn(zxid), &mut out);
            self.leader.local_durable(zxid, &mut out);
            // The driver reports each durable append to the disk index.
            self.leader.disk_logged([(zxid, 16 + txn(zxid).len() as u64)]);
            self.leader_actions(out);
            zxids.push(zxid);
        }
        self.run();
        zxids
    }

    /// Delivers what the leader sent, but not the learners' answers.
    fn deliver_to_learners(&mut self) {
        while let Some((conn, p)) = self.to_learner.pop_front() {
            let mut out = Vec::new();
            if let Some(node) = self.learners.get_mut(&conn) {
                node.core.packet(p, self.now_ms, &mut out);
            }
            self.learner_actions(conn, out);
        }
    }

    /// A client of the leader itself asks for a sync.
    fn local_sync(&mut self, token: u64) {
        let mut out = Vec::new();
        let after = self.leader.last_proposed();
        self.leader.sync(SyncRequester::Local(token), after, &mut out);
        self.leader_actions(out);
    }

    fn tick(&mut self, advance_ms: u64) {
        self.now_ms += advance_ms;
        let mut out = Vec::new();
        self.leader.tick(self.now_ms, &mut out);
        self.leader_actions(out);
        let conns: Vec<LearnerConn> = self.learners.keys().copied().collect();
        for conn in conns {
            let mut out = Vec::new();
            if let Some(node) = self.learners.get_mut(&conn) {
                node.core.tick(self.now_ms, &mut out);
            }
            self.learner_actions(conn, out);
        }
    }
}

/// The index a driver builds from its log files: every txn, with the
/// bytes of its log record.
fn disk_index(log: &[(i64, Bytes)]) -> DiskLogIndex {
    let mut index = DiskLogIndex::new(0);
    for (zxid, txn) in log {
        index.logged(*zxid, 16 + txn.len() as u64);
    }
    index
}

fn disk(accepted_epoch: i64, current_epoch: i64, log: Vec<(i64, Bytes)>) -> Disk {
    Disk { log, accepted_epoch, current_epoch, window_txns: None }
}

fn zxids(log: &[(i64, Bytes)]) -> Vec<i64> {
    log.iter().map(|(z, _)| *z).collect()
}

#[test]
fn fresh_ensemble_establishes_epoch_one_and_commits() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    assert_eq!(h.established, Some(1));
    assert_eq!((h.leader_disk.accepted_epoch, h.leader_disk.current_epoch), (1, 1));
    for sid in [1, 2] {
        let n = h.node(sid);
        assert!(n.serving, "server {sid} serves: {:?}", n.gave_up);
        assert_eq!((n.disk.accepted_epoch, n.disk.current_epoch), (1, 1));
    }
    let proposed = h.propose(3);
    assert_eq!(proposed, vec![make_zxid(1, 1), make_zxid(1, 2), make_zxid(1, 3)]);
    assert_eq!(h.leader_committed, make_zxid(1, 3));
    for sid in [1, 2] {
        assert_eq!(h.node(sid).applied, proposed);
        assert_eq!(zxids(&h.node(sid).disk.log), proposed);
    }
}

/// The new epoch is one more than any accepted epoch in the quorum.
#[test]
fn new_epoch_exceeds_every_accepted_epoch() {
    let disks =
        BTreeMap::from([(1, disk(7, 5, history(5, 2))), (2, disk(4, 4, vec![])), (3, disk(5, 5, history(5, 2)))]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.established, Some(8));
    assert_eq!(h.leader.next_zxid(), Some(make_zxid(8, 1)));
}

#[test]
fn follower_behind_gets_a_diff_of_what_it_misses() {
    let leader_log = history(1, 10);
    let disks = BTreeMap::from([
        (1, disk(1, 1, leader_log[..4].to_vec())),
        (2, disk(1, 1, leader_log.clone())),
        (3, disk(1, 1, leader_log.clone())),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.established, Some(2));
    assert!(h.snapshots_sent.is_empty() && h.truncations.is_empty());
    assert_eq!(zxids(&h.node(1).disk.log), zxids(&leader_log));
    assert_eq!(h.node(1).applied, zxids(&leader_log[4..]), "the DIFF is applied");
    assert!(h.node(1).serving);
}

/// A follower that logged txns of an old epoch that never committed gets
/// a snapshot: Apache never sends a TRUNC across an epoch boundary.
#[test]
fn follower_with_uncommitted_txns_of_an_old_epoch_gets_a_snapshot() {
    let common = history(1, 3);
    let mut divergent = common.clone();
    divergent.push((make_zxid(1, 4), txn(make_zxid(1, 4))));
    divergent.push((make_zxid(1, 5), txn(make_zxid(1, 5))));
    let mut leader_log = common.clone();
    leader_log.extend(history(2, 2));
    let disks = BTreeMap::from([
        (1, disk(2, 1, divergent)),
        (2, disk(2, 2, leader_log.clone())),
        (3, disk(2, 2, leader_log.clone())),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.established, Some(3));
    assert_eq!(h.snapshots_sent, vec![h.conn_of(1)]);
    assert_eq!(zxids(&h.node(1).disk.log), zxids(&leader_log), "the old epoch's tail is gone");
    assert!(h.node(1).serving);
}

/// A follower with uncommitted txns past the leader's newest, in the same
/// epoch, that answers after the epoch quorum was reached, is truncated.
#[test]
fn follower_ahead_in_the_same_epoch_is_truncated() {
    let leader_log = history(2, 3);
    let disks = BTreeMap::from([
        (1, disk(2, 2, history(2, 5))),
        (2, disk(2, 2, leader_log.clone())),
        (3, disk(2, 2, leader_log.clone())),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    // Server 2 completes the epoch quorum before server 1 is heard.
    let c1 = h.conn_of(1);
    let held: Vec<_> = h.to_leader.iter().filter(|(c, _)| *c == c1).cloned().collect();
    h.to_leader.retain(|(c, _)| *c != c1);
    h.run();
    h.to_leader.extend(held);
    h.run();
    assert_eq!(h.established, Some(3));
    assert_eq!(h.truncations, vec![(1, make_zxid(2, 3))]);
    assert_eq!(zxids(&h.node(1).disk.log), zxids(&leader_log));
    assert!(h.node(1).serving);
}

#[test]
fn follower_below_the_window_gets_a_snapshot() {
    let leader_log = history(1, COMMITTED_WINDOW_TXNS as i64 + 100);
    let disks = BTreeMap::from([
        (1, disk(1, 1, vec![])),
        (2, disk(1, 1, leader_log.clone())),
        (3, disk(1, 1, leader_log.clone())),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.snapshots_sent, vec![h.conn_of(1)]);
    assert_eq!(zxids(&h.node(1).disk.log), zxids(&leader_log));
    assert!(h.node(1).serving);
    // And it takes part in the broadcast afterwards.
    let z = h.propose(1);
    assert_eq!(h.node(1).applied.last(), z.last());
}

/// A leader must never establish itself over a voter with a newer history.
#[test]
fn follower_ahead_of_the_leader_makes_it_step_down() {
    let disks = BTreeMap::from([
        (1, disk(2, 2, history(2, 5))),
        (2, disk(2, 2, history(2, 3))),
        (3, disk(2, 2, history(2, 3))),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    // Let only server 1 answer before the quorum is complete.
    let c2 = h.conn_of(2);
    h.to_leader.retain(|(c, _)| *c != c2);
    h.run();
    assert!(h.stepped_down.as_deref().is_some_and(|r| r.contains("ahead")), "{:?}", h.stepped_down);
    assert_eq!(h.established, None);
}

/// The leader commits only when a quorum, itself included, has the
/// proposal durably: a follower acks after its own fsync, not on receipt.
#[test]
fn commit_waits_for_a_durable_quorum() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    for sid in [1, 2] {
        let c = h.conn_of(sid);
        if let Some(n) = h.learners.get_mut(&c) {
            n.auto_durable = false;
        }
    }
    let z = h.propose(1)[0];
    assert_eq!(h.leader_committed, 0, "logged but not durable anywhere else: not committed");
    assert!(h.node(1).applied.is_empty());
    let c1 = h.conn_of(1);
    h.report_durable(c1, z);
    h.run();
    assert_eq!(h.leader_committed, z);
    assert_eq!(h.node(1).applied, vec![z]);
    assert_eq!(h.node(2).applied, vec![z], "a commit reaches every follower, durable or not");
}

/// A follower's log runs beside its reading of the leader: the COMMIT of a
/// proposal can arrive before the follower's own fsync of it. The follower
/// still acks it once durable, as Apache's does (the leader ignores acks of
/// committed proposals, but counts their latency).
#[test]
fn a_proposal_committed_before_its_fsync_is_still_acked() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    let c2 = h.conn_of(2);
    if let Some(n) = h.learners.get_mut(&c2) {
        n.auto_durable = false;
    }
    let z = h.propose(1)[0];
    h.run();
    assert_eq!(h.leader_committed, z, "committed by the leader and follower 1");
    assert_eq!(h.node(2).applied, vec![z], "follower 2 applied it before its own fsync");
    assert!(h.to_leader.is_empty());
    h.report_durable(c2, z);
    assert!(
        h.to_leader.iter().any(|(c, p)| *c == c2 && *p == ToLeader::Ack { zxid: z }),
        "follower 2 acks its durable proposal: {:?}",
        h.to_leader
    );
    h.run();
    assert_eq!(h.leader_committed, z, "a late ack changes nothing");
}

#[test]
fn leader_steps_down_when_its_quorum_goes_silent() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    for _ in 0..3 {
        h.tick(TICK_MS);
        h.run();
    }
    assert_eq!(h.stepped_down, None, "pings answered: still leading");
    // Both followers vanish (their packets are lost from now on).
    let silent_ticks = 7;
    for _ in 0..silent_ticks {
        h.tick(TICK_MS);
        h.to_learner.clear();
    }
    assert!(h.stepped_down.as_deref().is_some_and(|r| r.contains("quorum")), "{:?}", h.stepped_down);
}

#[test]
fn learner_gives_up_on_a_silent_leader() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    h.now_ms += TICK_MS * 6;
    let c = h.conn_of(1);
    let mut out = Vec::new();
    if let Some(n) = h.learners.get_mut(&c) {
        n.core.tick(h.now_ms, &mut out);
    }
    assert!(matches!(&out[..], [LearnerAction::GiveUp { .. }]), "{out:?}");
}

#[test]
fn no_zxid_past_the_counter_limit() {
    let almost_full = vec![(make_zxid(1, 0xFFFF_FFFE), txn(make_zxid(1, 0xFFFF_FFFE)))];
    let disks = BTreeMap::from([(3, disk(1, 1, almost_full.clone())), (2, disk(1, 1, almost_full))]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.established, Some(2), "a new epoch resets the counter");
    assert_eq!(h.leader.next_zxid(), Some(make_zxid(2, 1)));
}

#[test]
fn forwarded_sync_is_answered_after_the_outstanding_commit() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    for sid in [1, 2] {
        let c = h.conn_of(sid);
        if let Some(n) = h.learners.get_mut(&c) {
            n.auto_durable = false;
        }
    }
    let z = h.propose(1)[0];
    let c1 = h.conn_of(1);
    let sync = ForwardedRequest { session_id: 9, cxid: 1, op_type: op::SYNC, body: Bytes::new(), authinfo: vec![] };
    h.to_leader.push_back((c1, ToLeader::Request(sync)));
    h.run();
    assert_eq!(h.node(1).syncs_done, 0, "a sync waits for what was proposed before it");
    h.report_durable(c1, z);
    h.run();
    assert_eq!(h.node(1).syncs_done, 0, "committed, but no quorum has answered a round sent after the sync");
    h.tick(1);
    h.run();
    assert_eq!(h.node(1).syncs_done, 1);
    let write = ForwardedRequest { session_id: 9, cxid: 2, op_type: op::CREATE, body: Bytes::new(), authinfo: vec![] };
    h.to_leader.push_back((c1, ToLeader::Request(write.clone())));
    h.run();
    assert_eq!(h.forwarded, vec![write]);
}

#[test]
fn observers_learn_commits_but_never_count() {
    let mut h = Harness::new(3, &[1, 2, 3], &[4], BTreeMap::new());
    h.run();
    assert!(h.node(4).serving);
    for sid in [1, 2] {
        let c = h.conn_of(sid);
        if let Some(n) = h.learners.get_mut(&c) {
            n.auto_durable = false;
        }
    }
    let z = h.propose(1)[0];
    assert_eq!(h.leader_committed, 0, "the observer's copy does not make a quorum");
    assert!(h.node(4).applied.is_empty());
    let c1 = h.conn_of(1);
    h.report_durable(c1, z);
    h.run();
    assert_eq!(h.node(4).applied, vec![z], "INFORM after the commit");
    assert_eq!(zxids(&h.node(4).disk.log), vec![z]);
}

/// A learner that joins an established leader is synced and served at
/// once, including the proposals still in flight.
#[test]
fn late_learner_joins_with_outstanding_proposals() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    let c2 = h.conn_of(2);
    h.leader.learner_disconnected(c2);
    h.learners.remove(&c2);
    h.to_leader.retain(|(c, _)| *c != c2);
    h.run();
    assert_eq!(h.established, Some(1));
    let c1 = h.conn_of(1);
    if let Some(n) = h.learners.get_mut(&c1) {
        n.auto_durable = false;
    }
    let first = h.propose(2);
    assert_eq!(h.leader_committed, 0);
    h.report_durable(c1, first[0]);
    h.run();
    assert_eq!(h.leader_committed, first[0]);
    h.connect(2, false, Disk::default());
    h.run();
    let n2 = h.node(2);
    assert!(n2.serving, "{:?}", n2.gave_up);
    assert_eq!(zxids(&n2.disk.log), first, "committed by DIFF, outstanding by PROPOSAL");
    assert_eq!(h.leader_committed, first[1], "the newcomer's ack completes the quorum");
}

#[test]
fn a_learner_from_outside_the_ensemble_is_refused() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    let stranger = h.connect(9, false, Disk::default());
    h.run();
    assert!(h.learners[&stranger].gave_up.as_deref().is_some_and(|r| r.contains("sid 9")));
}

/// An Apache leader pings a learner once its sync packets are queued, so
/// PINGs come between the DIFF's packets, after NEWLEADER while the
/// learner is still making the sync durable, and before UPTODATE. The
/// learner stays silent until UPTODATE, as Apache's does: the next packet
/// Apache's LearnerHandler reads must be the NEWLEADER ACK.
#[test]
fn pings_during_sync_are_ignored_until_uptodate() {
    let settings =
        LearnerSettings { my_sid: 1, observer: false, tick_ms: TICK_MS, init_limit_ticks: 10, sync_limit_ticks: 5 };
    let mut out = Vec::new();
    let mut learner = LearnerCore::new(settings, 0, 0, 0, 0, &mut out);
    let sent = |out: &mut Vec<LearnerAction>| -> Vec<LearnerAction> { std::mem::take(out) };
    sent(&mut out);
    let z1 = make_zxid(1, 1);
    let script = [
        ToLearner::LeaderInfo { new_epoch: 1, protocol_version: super::packets::PROTOCOL_VERSION_ZAB_1_0 },
        ToLearner::Diff { zxid: z1 },
        ToLearner::Proposal { zxid: z1, txn: txn(z1) },
        ToLearner::Ping { zxid: z1 },
        ToLearner::Commit { zxid: z1 },
        ToLearner::NewLeader { zxid: make_zxid(1, 0), config: None },
        ToLearner::Ping { zxid: z1 },
    ];
    for p in script {
        learner.packet(p, 10, &mut out);
    }
    let actions = sent(&mut out);
    assert!(
        !actions.iter().any(|a| matches!(a, LearnerAction::PingReply { .. } | LearnerAction::GiveUp { .. })),
        "no ping reply and no giving up during sync: {actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, LearnerAction::Send(ToLeader::Ack { .. }))), "not durable yet");
    learner.durable(z1, &mut out);
    let acks = sent(&mut out);
    assert_eq!(
        acks.iter().filter_map(|a| if let LearnerAction::Send(p) = a { Some(p) } else { None }).collect::<Vec<_>>(),
        vec![&ToLeader::Ack { zxid: make_zxid(1, 0) }],
        "the NEWLEADER ACK is the one packet sent"
    );
    learner.packet(ToLearner::Ping { zxid: z1 }, 20, &mut out);
    assert!(sent(&mut out).is_empty(), "still no reply before UPTODATE");
    learner.packet(ToLearner::UpToDate, 30, &mut out);
    assert!(learner.is_serving());
    sent(&mut out);
    learner.packet(ToLearner::Ping { zxid: z1 }, 40, &mut out);
    assert_eq!(sent(&mut out), vec![LearnerAction::PingReply { zxid: z1 }], "pings are answered in the broadcast");
}

/// Linearizable sync: committing what came before is not enough; a quorum
/// must answer a PING round sent after the sync arrived (one follower and
/// the leader make a quorum of three).
#[test]
fn sync_waits_for_a_quorum_round_sent_after_it() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    h.local_sync(7);
    h.run();
    assert!(h.local_syncs_answered.is_empty(), "no round has been sent since the sync");
    assert_eq!(h.leader.pending_sync_count(), 1);
    h.tick(1);
    // Follower 2 never hears this round; follower 1 does.
    let c2 = h.conn_of(2);
    h.to_learner.retain(|(c, _)| *c != c2);
    assert!(h.local_syncs_answered.is_empty(), "the round is out, not answered");
    h.run();
    assert_eq!(h.local_syncs_answered, vec![7]);
    assert_eq!(h.leader.pending_sync_count(), 0);
}

/// An answer to a round sent before the sync proves nothing about the
/// time after it: the sync waits for the next round.
#[test]
fn an_echo_of_an_earlier_round_does_not_answer_a_later_sync() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    h.tick(1);
    h.deliver_to_learners();
    // Both followers' echoes are on their way when the sync arrives.
    h.local_sync(1);
    h.run();
    assert!(h.local_syncs_answered.is_empty(), "echoes of the earlier round answered a later sync");
    h.tick(1);
    h.run();
    assert_eq!(h.local_syncs_answered, vec![1]);
}

/// A leader whose followers went to another leader (a paused, then resumed
/// leader) never answers a sync: it steps down instead.
#[test]
fn a_leader_without_its_quorum_never_answers_a_sync() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    h.local_sync(1);
    let c1 = h.conn_of(1);
    let forwarded =
        ForwardedRequest { session_id: 9, cxid: 1, op_type: op::SYNC, body: Bytes::new(), authinfo: vec![] };
    h.to_leader.push_back((c1, ToLeader::Request(forwarded)));
    h.leader.learner_packet(c1, h.to_leader.pop_front().expect("queued").1, h.now_ms, &mut Vec::new());
    for _ in 0..10 {
        h.tick(TICK_MS);
        h.to_learner.clear();
    }
    assert!(h.local_syncs_answered.is_empty());
    assert_eq!(h.node(1).syncs_done, 0);
    assert!(h.stepped_down.is_some(), "a leader that cannot reach a quorum steps down");
}

/// Syncs are answered in arrival order, each after the writes before it.
#[test]
fn syncs_are_answered_in_order_after_the_writes_before_them() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    h.run();
    for sid in [1, 2] {
        let c = h.conn_of(sid);
        if let Some(n) = h.learners.get_mut(&c) {
            n.auto_durable = false;
        }
    }
    h.local_sync(1);
    let z = h.propose(1)[0];
    h.local_sync(2);
    h.tick(1);
    h.run();
    assert_eq!(h.local_syncs_answered, vec![1], "the second sync waits for the write proposed before it");
    let c1 = h.conn_of(1);
    h.report_durable(c1, z);
    h.run();
    assert_eq!(h.local_syncs_answered, vec![1, 2]);
}

// ---------------------------------------------------------------- DIFF from the on-disk log
//
// The leader's window holds its last COMMITTED_WINDOW_TXNS committed txns;
// below it the leader replays its on-disk log (Apache's txnlog sync), then
// the window, as long as the log reaches back to the learner and is not
// larger than snapshotSizeFactor × the newest snapshot.

const LONG_HISTORY: i64 = COMMITTED_WINDOW_TXNS as i64 + 100;

/// Leader 3 and follower 2 hold `LONG_HISTORY` txns of epoch 1; follower 1
/// is not connected yet. Returns the harness with the leader established.
fn established_with_a_long_history() -> (Harness, Vec<(i64, Bytes)>) {
    let leader_log = history(1, LONG_HISTORY);
    let h = established_by_2_and_3(disk(1, 1, leader_log.clone()), &leader_log);
    (h, leader_log)
}

/// Leader 3 (on `leader_disk`) established epoch 2 with follower 2, which
/// holds `leader_log`; follower 1 is not connected yet.
fn established_by_2_and_3(leader_disk: Disk, leader_log: &[(i64, Bytes)]) -> Harness {
    let disks = BTreeMap::from([(2, disk(1, 1, leader_log.to_vec())), (3, leader_disk)]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    let c1 = h.conn_of(1);
    h.leader.learner_disconnected(c1);
    h.learners.remove(&c1);
    h.to_leader.retain(|(c, _)| *c != c1);
    h.run();
    assert_eq!(h.established, Some(2));
    h
}

fn reason_for(h: &Harness, sid: Sid) -> SyncReason {
    h.syncs_chosen.iter().rev().find(|(s, _, _)| *s == sid).map(|(_, _, r)| *r).expect("a plan for the learner")
}

#[test]
fn follower_within_the_window_gets_a_diff_from_memory() {
    let (mut h, leader_log) = established_with_a_long_history();
    let c1 = h.connect(1, false, disk(1, 1, leader_log[..550].to_vec()));
    h.run();
    assert_eq!(reason_for(&h, 1), SyncReason::WithinWindow);
    assert!(h.logged_txns_served.is_empty(), "nothing read from disk");
    assert!(h.snapshots_sent.is_empty());
    assert_eq!(zxids(&h.learners[&c1].disk.log), zxids(&leader_log));
    assert!(h.learners[&c1].serving);
}

/// The packets, in order: DIFF, the log's txns up to the window's first,
/// the window's after it, the proposals still outstanding, NEWLEADER.
#[test]
fn follower_below_the_window_gets_a_diff_from_the_disk_log_then_the_window() {
    let (mut h, leader_log) = established_with_a_long_history();
    // Two proposals outstanding: follower 2 has not made them durable.
    let c2 = h.conn_of(2);
    if let Some(n) = h.learners.get_mut(&c2) {
        n.auto_durable = false;
    }
    let outstanding = h.propose(2);
    assert_eq!(h.leader_committed, make_zxid(1, LONG_HISTORY));
    let window_min = make_zxid(1, LONG_HISTORY - COMMITTED_WINDOW_TXNS as i64 + 1);
    let c1 = h.connect(1, false, disk(1, 1, leader_log[..50].to_vec()));
    h.run();
    assert_eq!(reason_for(&h, 1), SyncReason::FromDiskLog);
    assert_eq!(h.logged_txns_served, vec![(c1, make_zxid(1, 50), window_min)]);
    assert!(h.snapshots_sent.is_empty());
    let mut expected = vec![ToLearner::Diff { zxid: make_zxid(1, LONG_HISTORY) }];
    for (zxid, txn) in &leader_log[50..] {
        expected.push(ToLearner::Proposal { zxid: *zxid, txn: txn.clone() });
        expected.push(ToLearner::Commit { zxid: *zxid });
    }
    for zxid in &outstanding {
        expected.push(ToLearner::Proposal { zxid: *zxid, txn: txn(*zxid) });
    }
    let sync: Vec<&ToLearner> =
        h.sent_to(c1).into_iter().skip_while(|p| !matches!(p, ToLearner::Diff { .. })).take(expected.len()).collect();
    assert_eq!(sync, expected.iter().collect::<Vec<_>>());
    let after: Vec<&ToLearner> =
        h.sent_to(c1).into_iter().skip_while(|p| !matches!(p, ToLearner::Diff { .. })).collect();
    assert!(matches!(after.get(expected.len()), Some(ToLearner::NewLeader { .. })), "then NEWLEADER");
    let n1 = &h.learners[&c1];
    assert!(n1.serving, "{:?}", n1.gave_up);
    let mut all = zxids(&leader_log);
    all.extend(&outstanding);
    assert_eq!(zxids(&n1.disk.log), all, "every committed txn, then the outstanding proposals");
    assert_eq!(h.leader_committed, outstanding[1], "the newcomer's acks complete the quorum");
    assert_eq!(h.learners[&c1].applied.last(), outstanding.last());
}

/// A leader that recovered from a snapshot with no txn after it leads
/// with an empty window; a follower inside its on-disk log gets every txn
/// after its own from the log (the simulator's seed 317, 5 servers,
/// `--snap-count 20`: the DIFF carried nothing and the follower served
/// without them, a digest mismatch at the next txn).
#[test]
fn follower_in_the_disk_log_of_a_leader_with_an_empty_window_gets_the_log() {
    let leader_log = history(1, 20);
    let leader_disk = Disk { window_txns: Some(0), ..disk(1, 1, leader_log.clone()) };
    let mut h = established_by_2_and_3(leader_disk, &leader_log);
    let c1 = h.connect(1, false, disk(1, 1, leader_log[..10].to_vec()));
    h.run();
    assert_eq!(reason_for(&h, 1), SyncReason::FromDiskLog);
    assert_eq!(h.logged_txns_served, vec![(c1, make_zxid(1, 10), make_zxid(1, 20))]);
    let n1 = &h.learners[&c1];
    assert!(n1.serving, "{:?}", n1.gave_up);
    assert_eq!(zxids(&n1.disk.log), zxids(&leader_log), "every txn after its own");
}

#[test]
fn follower_below_the_disk_log_gets_a_snapshot() {
    let (mut h, leader_log) = established_with_a_long_history();
    // The log files before z(1,60) were purged.
    h.leader.disk_files_changed(Some(make_zxid(1, 60)), 0);
    let c1 = h.connect(1, false, disk(1, 1, leader_log[..50].to_vec()));
    h.run();
    assert_eq!(reason_for(&h, 1), SyncReason::NotInDiskLog);
    assert_eq!(h.snapshots_sent, vec![c1]);
    assert!(h.logged_txns_served.is_empty());
    assert_eq!(zxids(&h.learners[&c1].disk.log), zxids(&leader_log));
    assert!(h.learners[&c1].serving);
}

#[test]
fn follower_whose_disk_diff_is_too_large_gets_a_snapshot() {
    let (mut h, leader_log) = established_with_a_long_history();
    // A small newest snapshot: 0.33 × 10 000 B is far less than 550 txns.
    h.leader.disk_files_changed(Some(make_zxid(1, 1)), 10_000);
    let c1 = h.connect(1, false, disk(1, 1, leader_log[..50].to_vec()));
    h.run();
    assert!(
        matches!(reason_for(&h, 1), SyncReason::DiskLogTooLarge { limit_bytes: 3300, .. }),
        "{:?}",
        reason_for(&h, 1)
    );
    assert_eq!(h.snapshots_sent, vec![c1]);
    assert!(h.logged_txns_served.is_empty());
    // A large snapshot allows it.
    let c1b = {
        h.leader.disk_files_changed(Some(make_zxid(1, 1)), 100_000_000);
        h.connect(1, false, disk(1, 1, leader_log[..50].to_vec()))
    };
    h.run();
    assert_eq!(reason_for(&h, 1), SyncReason::FromDiskLog);
    assert_eq!(h.logged_txns_served.len(), 1);
    assert!(h.learners[&c1b].serving);
}

/// A follower holding uncommitted txns of epoch 1 below the window of a
/// leader whose log goes on in epoch 2: a TRUNC would cross the epoch
/// boundary, so it gets a snapshot (Apache: "Cannot send TRUNC to peer").
/// (TRUNC then DIFF from disk needs a zxid missing inside one epoch of the
/// leader's log, which a gap-free log never has; `sync_plan` tests it.)
#[test]
fn follower_with_an_old_epochs_uncommitted_tail_below_the_window_gets_a_snapshot() {
    let mut leader_log = history(1, 50);
    leader_log.extend(history(2, LONG_HISTORY));
    let mut divergent = history(1, 53);
    divergent.truncate(53);
    let disks = BTreeMap::from([
        (1, disk(2, 1, divergent)),
        (2, disk(2, 2, leader_log.clone())),
        (3, disk(2, 2, leader_log.clone())),
    ]);
    let mut h = Harness::new(3, &[1, 2, 3], &[], disks);
    h.run();
    assert_eq!(h.established, Some(3));
    assert_eq!(reason_for(&h, 1), SyncReason::DivergentAcrossEpochs);
    assert_eq!(h.snapshots_sent, vec![h.conn_of(1)]);
    assert_eq!(zxids(&h.node(1).disk.log), zxids(&leader_log), "epoch 1's uncommitted tail is gone");
    assert!(h.node(1).serving);
}

// ---------------------------------------------------------------------
// The shared turn order (`commit::LeaderTurn`) on a leader of the harness

#[derive(Default)]
struct TurnTestBatch {
    logged: Vec<(i64, Bytes)>,
}

impl crate::commit::TurnBatch for TurnTestBatch {
    fn logged(&self) -> &[(i64, Bytes)] {
        &self.logged
    }
    fn has_entries(&self) -> bool {
        !self.logged.is_empty()
    }
}

/// Drives one turn as production's `lead()` does, naming each step (an
/// action by its variant, "+open" while the batch takes requests); the
/// log reports `durable` when asked.
fn drive_turn(
    h: &mut Harness,
    turn: &mut crate::commit::LeaderTurn,
    term: &mut crate::commit::LeaderTerm<i64, ()>,
    batch: &mut TurnTestBatch,
    durable: Option<i64>,
) -> Vec<String> {
    use crate::commit::LeaderStep;
    let mut steps = Vec::new();
    loop {
        let step = turn.next(&mut h.leader, term, batch);
        let name = match &step {
            LeaderStep::Act { action, batch_open } => {
                let variant = format!("{action:?}");
                let variant = variant.split([' ', '(', '{']).next().unwrap_or_default().to_owned();
                format!("{variant}{}", if *batch_open { "+open" } else { "" })
            }
            LeaderStep::Publish(zxid) => format!("Publish(0x{zxid:x})"),
            other => format!("{other:?}"),
        };
        steps.push(name);
        match step {
            LeaderStep::Act { action, .. } => {
                if let LeaderAction::Established { epoch } = action {
                    term.established(make_zxid(epoch, 0));
                }
                h.leader_actions(vec![action]);
            }
            LeaderStep::ExpireSessions => {}
            LeaderStep::HandToLog => {
                let last = batch.logged.last().map(|(z, _)| *z).unwrap_or_default();
                h.leader_disk.log.extend(std::mem::take(&mut batch.logged));
                term.pending.push(last, last);
            }
            LeaderStep::ReportDurable => turn.durable(&mut h.leader, term, durable),
            LeaderStep::Publish(through) => {
                let _ = term.pending.take_through(through).count();
            }
            LeaderStep::StepDown(_) | LeaderStep::Done => return steps,
        }
    }
}

#[test]
fn a_turn_proposes_before_logging_and_publishes_only_what_a_quorum_holds() {
    let mut h = established_by_2_and_3(disk(1, 1, history(1, 3)), &history(1, 3));
    let (mut turn, mut term) = (crate::commit::LeaderTurn::default(), crate::commit::LeaderTerm::default());
    term.established(make_zxid(2, 0));
    let zxid = h.leader.next_zxid().expect("established");
    let mut batch = TurnTestBatch { logged: vec![(zxid, txn(zxid))] };
    turn.begin(&mut h.leader, h.now_ms, Vec::new());
    let steps = drive_turn(&mut h, &mut turn, &mut term, &mut batch, Some(zxid));
    // Expiry before the proposals (its txns are proposed with the batch);
    // the proposal goes out before the batch is handed to the log; the
    // leader's own fsync alone is no quorum of three: nothing is visible.
    // (First the tick's PING, with the batch open.)
    assert_eq!(
        steps,
        [
            "Send+open",
            "ExpireSessions",
            "Send",
            "HandToLog",
            "ReportDurable",
            &format!("Publish(0x{:x})", make_zxid(2, 0)),
            "Done"
        ]
    );
    assert!(turn.is_idle());
    assert_eq!(term.pending.len(), 1);

    // Follower 2's ACK arrives in the next turn's events: the commit is
    // carried out with that turn's batch open, and the batch is published.
    let c2 = h.conn_of(2);
    let mut actions = Vec::new();
    h.leader.learner_packet(c2, ToLeader::Ack { zxid }, h.now_ms, &mut actions);
    turn.begin(&mut h.leader, h.now_ms, actions);
    let steps = drive_turn(&mut h, &mut turn, &mut term, &mut TurnTestBatch::default(), None);
    assert_eq!(steps[0], "Send+open", "the COMMIT to follower 2 first: {steps:?}");
    assert!(steps.contains(&"Committed+open".to_owned()), "{steps:?}");
    assert_eq!(&steps[steps.len() - 2..], [format!("Publish(0x{zxid:x})"), "Done".to_owned()]);
    assert!(term.pending.is_empty(), "the batch was published");
}

#[test]
fn a_turn_before_establishment_expires_nothing_and_the_zxid_counter_end_steps_down() {
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    let (mut turn, mut term) = (crate::commit::LeaderTurn::default(), crate::commit::LeaderTerm::<i64, ()>::default());
    // Not established (nobody has answered yet): no session expiry, and
    // nothing proposed or logged.
    let mut fresh = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    turn.begin(&mut fresh.leader, 0, Vec::new());
    let steps = drive_turn(&mut fresh, &mut turn, &mut term, &mut TurnTestBatch::default(), None);
    assert_eq!(steps, ["ReportDurable", "Publish(0x0)", "Done"]);

    // A batch that used the epoch's last counter: the role must end.
    h.run();
    assert_eq!(h.established, Some(1));
    let last = make_zxid(1, crate::zab::leader::ZXID_COUNTER_MAX);
    let mut batch = TurnTestBatch { logged: vec![(last, txn(last))] };
    turn.begin(&mut h.leader, h.now_ms, Vec::new());
    let steps = drive_turn(&mut h, &mut turn, &mut term, &mut batch, None);
    assert_eq!(steps.last().map(|s| s.starts_with("StepDown")), Some(true), "{steps:?}");
    assert!(turn.is_idle());
}

#[test]
fn the_intake_refuses_client_requests_until_established_and_hands_learner_events_to_the_core() {
    use crate::commit::{Intake, LeaderInput};
    let mut h = Harness::new(3, &[1, 2, 3], &[], BTreeMap::new());
    let mut term = crate::commit::LeaderTerm::<i64, &str>::default();
    let mut actions = Vec::new();
    // Before the `Established` action is carried out, requests and syncs
    // are turned away, even once the core itself has established.
    for established_core in [false, true] {
        if established_core {
            h.run();
            assert_eq!(h.established, Some(1));
        }
        let req = term.intake(&mut h.leader, LeaderInput::Request("w"), h.now_ms, 0, &mut actions);
        assert_eq!(req, Intake::Refuse("w"));
        let sync = term.intake(&mut h.leader, LeaderInput::<&str, &str>::Sync("s"), h.now_ms, 0, &mut actions);
        assert_eq!(sync, Intake::RefuseSync("s"));
    }
    assert_eq!(h.leader.pending_sync_count(), 0);
    term.established(make_zxid(1, 0));
    let req = term.intake(&mut h.leader, LeaderInput::Request("w"), h.now_ms, make_zxid(1, 0), &mut actions);
    assert_eq!(req, Intake::Execute("w"));
    // A sync is taken and waits for a quorum round after what came before.
    let sync =
        term.intake(&mut h.leader, LeaderInput::<&str, &str>::Sync("s"), h.now_ms, make_zxid(1, 1), &mut actions);
    assert_eq!(sync, Intake::Taken);
    assert_eq!(h.leader.pending_sync_count(), 1);
    // A learner leaving is the core's to forget.
    let learners = h.leader.learner_count();
    let c2 = h.conn_of(2);
    let gone = term.intake(&mut h.leader, LeaderInput::<&str, &str>::LearnerDown(c2), h.now_ms, 0, &mut actions);
    assert_eq!(gone, Intake::Taken);
    assert_eq!(h.leader.learner_count(), learners - 1);
}
