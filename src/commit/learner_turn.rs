//! The order of a learner's (follower's or observer's) turn, sans-IO.
//!
//! Production's `server::quorum_peer::follow` and the simulator's
//! `sim::peer::Following` both drive one `LearnerTurn`, so the order of a
//! turn's steps is written once:
//!
//! 1. the turn's inputs, in arrival order: the leader's packets
//!    ([`LearnerTurn::packet`]), a SNAP whose stream the driver read
//!    ([`LearnerTurn::snapshot_read`], installed inline by the driver, then
//!    [`LearnerTurn::snapshot_installed`]); a lost leader ends the role and
//!    drops the actions the turn's packets asked for
//!    ([`LearnerTurn::leader_lost`]);
//! 2. [`LearnerTurn::begin`]: the log's newly durable point goes to the
//!    core (its ACKs), then the core's tick (a silent leader);
//! 3. [`LearnerTurn::next`] yields the queued actions one by one, in order
//!    ([`LearnerStep::Act`]). `Log` actions are not yielded: their txns are
//!    gathered and handed to the log after the queue, in one write;
//! 4. [`LearnerStep::Publish`] once the queue is empty: what the actions
//!    applied and answered is published;
//! 5. [`LearnerStep::Log`] with the gathered txns (if any): to the log
//!    (group commit, not waiting for the disk), then into the in-memory
//!    log tail, then the snapshot policy. The ACKs follow in a later turn,
//!    once the log reports them durable;
//! 6. [`LearnerStep::Done`]: the turn is over; the next one starts with
//!    the next inputs.
//!
//! No executor, no clock, no I/O: the driver carries out each step (a
//! socket or a simulated connection, a real or simulated disk) and may stop
//! calling `next` while an action waits on its disk, resuming later.
//!
//! [`apply_commit`] is what both drivers do with each txn of an `Apply`
//! action (and with a logged tail caught up after the role): decode it,
//! find the local client waiting for it, apply it, check its digest.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AppliedTxn, LearnerPending, Sequencer, TxnWaiter};
use crate::storage::apache::digest::DigestCheck;
use crate::storage::txn::{LoggedTxn, Txn, TxnHeader};
use crate::zab::follower::{LearnerAction, LearnerCore};
use crate::zab::packets::ToLearner;

/// What the driver does next in a learner's turn.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnerStep {
    /// Carry out this action (never `LearnerAction::Log`: see `Log`).
    Act(LearnerAction),
    /// The action queue is carried out: publish what it applied and
    /// answered (production's batch of commits, replies and sync answers).
    Publish,
    /// Hand these txns to the log (they are the turn's `Log` actions, in
    /// order), remember them in the in-memory log tail, and let the
    /// snapshot policy count them.
    Log(Vec<(i64, Bytes)>),
    /// The turn is over: wait for the next inputs.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between turns: inputs go to the core, their actions are gathered.
    Inputs,
    /// Yielding the queued actions.
    Actions,
    /// The queue is empty; the log write comes next.
    ToLog,
}

/// One learner role's turn order. Made when the learner has connected to
/// its leader, with the core's first actions (FOLLOWERINFO / OBSERVERINFO).
pub struct LearnerTurn {
    stage: Stage,
    /// Actions the current turn's inputs asked for, queued at `begin`.
    arrived: Vec<LearnerAction>,
    /// Actions being carried out, in order.
    queue: VecDeque<LearnerAction>,
    /// The queue's `Log` txns, for the one log write after it.
    to_log: Vec<(i64, Bytes)>,
}

impl LearnerTurn {
    /// The first turn of a role: `first_actions` (from `LearnerCore::new`)
    /// are carried out before any input is read.
    pub fn connected(first_actions: Vec<LearnerAction>) -> LearnerTurn {
        LearnerTurn { stage: Stage::Actions, arrived: Vec::new(), queue: first_actions.into(), to_log: Vec::new() }
    }

    /// Whether the turn is over (`Done` was yielded): the driver may read
    /// the next inputs.
    pub fn is_between_turns(&self) -> bool {
        self.stage == Stage::Inputs
    }

    /// A packet from the leader.
    pub fn packet(&mut self, core: &mut LearnerCore, packet: ToLearner, now_ms: u64) {
        core.packet(packet, now_ms, &mut self.arrived);
    }

    /// The driver has read a SNAP packet and its whole stream: the core
    /// hears of the packet; the driver installs the snapshot next, inline,
    /// before any later input, and reports it with `snapshot_installed`.
    pub fn snapshot_read(&mut self, core: &mut LearnerCore, zxid: i64, now_ms: u64) {
        core.packet(ToLearner::Snap { zxid }, now_ms, &mut self.arrived);
    }

    /// The SNAP at `zxid` is installed and durable.
    pub fn snapshot_installed(&mut self, core: &mut LearnerCore, zxid: i64, now_ms: u64) {
        core.snapshot_installed(zxid, now_ms);
    }

    /// The connection to the leader is gone (or the SNAP could not be
    /// installed): the role ends, and what this turn's packets asked for
    /// is dropped, not carried out (the next role starts from the log).
    pub fn leader_lost(&mut self) {
        self.arrived.clear();
    }

    /// The turn's inputs are in: the log's newly durable point (if it
    /// moved) goes to the core, then the core's tick; everything the
    /// inputs, the durable report and the tick asked for is queued, in that
    /// order, for `next`.
    pub fn begin(&mut self, core: &mut LearnerCore, newly_durable: Option<i64>, now_ms: u64) {
        if let Some(zxid) = newly_durable {
            core.durable(zxid, &mut self.arrived);
        }
        core.tick(now_ms, &mut self.arrived);
        self.queue.extend(self.arrived.drain(..));
        self.stage = Stage::Actions;
    }

    /// An action the driver could not carry out yet goes back to the head
    /// of the queue (the simulator's TRUNC waiting for its log to drain).
    pub fn put_back(&mut self, action: LearnerAction) {
        self.queue.push_front(action);
        self.stage = Stage::Actions;
    }

    /// The next step of the turn. Named as the leader's turn names it; not
    /// an `Iterator`: a finished turn yields `Done` until the next `begin`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> LearnerStep {
        loop {
            match self.stage {
                Stage::Inputs => return LearnerStep::Done,
                Stage::Actions => match self.queue.pop_front() {
                    Some(LearnerAction::Log(txns)) => self.to_log.extend(txns),
                    Some(action) => return LearnerStep::Act(action),
                    None => {
                        self.stage = Stage::ToLog;
                        return LearnerStep::Publish;
                    }
                },
                Stage::ToLog => {
                    self.stage = Stage::Inputs;
                    if !self.to_log.is_empty() {
                        return LearnerStep::Log(std::mem::take(&mut self.to_log));
                    }
                }
            }
        }
    }
}

/// A txn the leader committed, as a learner applied it.
pub struct AppliedCommit<C, X, W> {
    pub header: TxnHeader,
    pub txn: Txn,
    /// This learner's client that sent it, if one waits for it.
    pub waiter: Option<TxnWaiter<C, X, W>>,
    pub applied: AppliedTxn,
    /// The tree's digest after the txn against the one the leader logged
    /// with it (a `Mismatch` is a replica that diverged).
    pub digest_check: DigestCheck,
}

/// Applies a committed txn on a learner with the same code as the leader
/// and recovery (`Sequencer::apply_committed`): a createSession's session
/// is attached to the local connection that asked for it (`connection_of`
/// its waiter), any other waiter is handed back for the driver's reply.
pub fn apply_commit<Owner: Copy + PartialEq, C, R, W, X, S>(
    seq: &mut Sequencer<Owner>,
    pending: &mut LearnerPending<C, R, W, X, S>,
    zxid: i64,
    payload: Bytes,
    connection_of: impl FnOnce(&C) -> Owner,
) -> Result<AppliedCommit<C, X, W>, String> {
    let logged = LoggedTxn::decode(payload).map_err(|e| format!("the leader's txn 0x{zxid:x} does not decode: {e}"))?;
    let header = logged.header;
    let waiter = pending.take_txn_waiter(&header, &logged.txn);
    let opener = match &waiter {
        Some(TxnWaiter::Connect(asked)) => Some(connection_of(asked)),
        _ => None,
    };
    let applied = seq.apply_committed(zxid, &header, &logged.txn, opener);
    let digest_check = seq.tree().check_txn_digest(logged.digest);
    Ok(AppliedCommit { header, txn: logged.txn, waiter, applied, digest_check })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::txn::{LoggedTxn, Txn, TxnHeader};
    use crate::zab::follower::LearnerSettings;
    use crate::zab::packets::{make_zxid, ToLeader};

    const TICK_MS: u64 = 100;

    fn settings() -> LearnerSettings {
        LearnerSettings { my_sid: 2, observer: false, tick_ms: TICK_MS, init_limit_ticks: 10, sync_limit_ticks: 5 }
    }

    /// A txn payload with a real header (the core checks its zxid).
    fn txn(zxid: i64) -> Bytes {
        LoggedTxn {
            header: TxnHeader { session_id: 1, cxid: 1, zxid, time_ms: 1, op: crate::proto::op::SET_DATA },
            txn: Txn::SetData { path: "/a".into(), data: Some(Bytes::from_static(b"x")), version: 1 },
            digest: None,
        }
        .to_bytes()
    }

    /// Every step of the turn until `Done`.
    fn steps(turn: &mut LearnerTurn) -> Vec<LearnerStep> {
        let mut out = Vec::new();
        loop {
            let step = turn.next();
            let done = step == LearnerStep::Done;
            out.push(step);
            if done {
                return out;
            }
        }
    }

    /// A core in the broadcast phase of epoch 1 with nothing logged, and
    /// its turn between turns.
    fn serving(now_ms: u64) -> (LearnerCore, LearnerTurn) {
        let mut first = Vec::new();
        let mut core = LearnerCore::new(settings(), 0, 0, 0, now_ms, &mut first);
        let mut turn = LearnerTurn::connected(first);
        steps(&mut turn);
        turn.packet(&mut core, ToLearner::LeaderInfo { new_epoch: 1, protocol_version: 0x10000 }, now_ms);
        turn.packet(&mut core, ToLearner::Diff { zxid: 0 }, now_ms);
        turn.packet(&mut core, ToLearner::NewLeader { zxid: make_zxid(1, 0), config: None }, now_ms);
        turn.packet(&mut core, ToLearner::UpToDate, now_ms);
        turn.begin(&mut core, None, now_ms);
        steps(&mut turn);
        assert!(core.is_serving());
        (core, turn)
    }

    /// The leader's side: what it logs, encoded as a learner receives it.
    #[derive(Default)]
    struct Encoded(Vec<(i64, Bytes)>);

    impl crate::commit::TxnSink for Encoded {
        fn log(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<crate::storage::txn::TxnDigest>, _: i64) {
            let mut buf = bytes::BytesMut::new();
            crate::storage::txn::encode_txn(&mut buf, header, txn, digest);
            self.0.push((header.zxid, buf.freeze()));
        }

        fn session_changed(&mut self, _: crate::session::SessionChange) {}
    }

    fn sequencer() -> Sequencer<u64> {
        Sequencer::new(
            crate::tree::DataTree::new(),
            0,
            [],
            VecDeque::new(),
            TICK_MS as i64,
            crate::session::SessionIdAllocator::starting_at(1),
            crate::commit::ExecSettings::default(),
            0,
        )
    }

    type Pending = LearnerPending<(u64, i32), (), (), (), ()>;

    #[test]
    fn a_committed_create_session_answers_its_waiter_and_is_held_by_its_connection() {
        let mut leader = sequencer();
        let mut sink = Encoded::default();
        let session = leader.next_session_id();
        leader.create_session(&mut sink, session, 0, 4000, None, crate::commit::SessionHolder::Learner(1), 0, 1);
        let mut replica = sequencer();
        let mut pending = Pending::default();
        pending.forwarded_connect(session, (77, 4000));
        let (zxid, payload) = sink.0.remove(0);
        let Ok(commit) = apply_commit(&mut replica, &mut pending, zxid, payload, |(conn, _)| *conn) else {
            panic!("the leader's createSession applies");
        };
        assert_eq!(commit.waiter, Some(TxnWaiter::Connect((77, 4000))));
        assert_eq!(commit.digest_check, DigestCheck::Match);
        assert_eq!(replica.session(session).and_then(|e| e.owner), Some(77));
        assert_eq!(replica.tree().digest(), leader.tree().digest());
    }

    #[test]
    fn a_txn_that_does_not_decode_is_an_error_and_a_wrong_digest_a_mismatch() {
        let mut replica = sequencer();
        let mut pending = Pending::default();
        let garbage = Bytes::from_static(b"\x01\x02");
        assert!(apply_commit(&mut replica, &mut pending, 1, garbage, |(conn, _)| *conn).is_err());
        let header = TxnHeader { session_id: 5, cxid: 0, zxid: 1, time_ms: 1, op: crate::proto::op::CREATE_SESSION };
        let wrong = crate::storage::txn::TxnDigest { version: 2, tree_digest: 12345 };
        let mut buf = bytes::BytesMut::new();
        crate::storage::txn::encode_txn(&mut buf, &header, &Txn::CreateSession { timeout_ms: 4000 }, Some(wrong));
        let Ok(commit) = apply_commit(&mut replica, &mut pending, 1, buf.freeze(), |(conn, _)| *conn) else {
            panic!("a well-formed txn applies");
        };
        assert!(commit.digest_check.is_mismatch());
        assert_eq!(commit.waiter, None, "nobody here asked for session 5");
    }

    #[test]
    fn the_first_turn_carries_out_the_connect_actions_before_any_input() {
        let mut first = Vec::new();
        let _core = LearnerCore::new(settings(), 0, 0, 0, 0, &mut first);
        let mut turn = LearnerTurn::connected(first);
        assert!(!turn.is_between_turns());
        let got = steps(&mut turn);
        assert!(matches!(&got[0], LearnerStep::Act(LearnerAction::Send(ToLeader::FollowerInfo { .. }))));
        assert_eq!(got[1..], [LearnerStep::Publish, LearnerStep::Done]);
        assert!(turn.is_between_turns());
        assert_eq!(turn.next(), LearnerStep::Done, "a finished turn stays finished");
    }

    #[test]
    fn logged_txns_go_to_the_log_after_the_queue_and_its_publish() {
        let (mut core, mut turn) = serving(0);
        let (z1, z2) = (make_zxid(1, 1), make_zxid(1, 2));
        turn.packet(&mut core, ToLearner::Proposal { zxid: z1, txn: txn(z1) }, 10);
        turn.packet(&mut core, ToLearner::Proposal { zxid: z2, txn: txn(z2) }, 10);
        turn.packet(&mut core, ToLearner::Commit { zxid: z1 }, 10);
        turn.begin(&mut core, None, 10);
        let got = steps(&mut turn);
        assert_eq!(
            got,
            [
                LearnerStep::Act(LearnerAction::Apply(vec![(z1, txn(z1))])),
                LearnerStep::Publish,
                LearnerStep::Log(vec![(z1, txn(z1)), (z2, txn(z2))]),
                LearnerStep::Done,
            ],
            "the two proposals make one log write, after the commit is applied and published"
        );
    }

    #[test]
    fn the_durable_report_acks_after_the_inputs_and_before_the_tick() {
        let (mut core, mut turn) = serving(0);
        let z1 = make_zxid(1, 1);
        turn.packet(&mut core, ToLearner::Proposal { zxid: z1, txn: txn(z1) }, 10);
        turn.begin(&mut core, None, 10);
        steps(&mut turn);
        // The leader is silent past syncLimit and the log reports z1 durable
        // in the same turn: the ACK is queued before the give-up.
        let late = 10 + TICK_MS * 5 + 1;
        turn.packet(&mut core, ToLearner::Commit { zxid: z1 }, 10);
        turn.begin(&mut core, Some(z1), late);
        let got = steps(&mut turn);
        assert_eq!(got[0], LearnerStep::Act(LearnerAction::Apply(vec![(z1, txn(z1))])));
        assert_eq!(got[1], LearnerStep::Act(LearnerAction::Send(ToLeader::Ack { zxid: z1 })));
        assert!(matches!(got[2], LearnerStep::Act(LearnerAction::GiveUp { .. })));
        assert_eq!(got[3..], [LearnerStep::Publish, LearnerStep::Done]);
    }

    #[test]
    fn a_lost_leader_drops_what_the_turns_packets_asked_for() {
        let (mut core, mut turn) = serving(0);
        let z1 = make_zxid(1, 1);
        turn.packet(&mut core, ToLearner::Proposal { zxid: z1, txn: txn(z1) }, 10);
        turn.leader_lost();
        // Were the driver to go on, nothing of the lost turn is left.
        turn.begin(&mut core, None, 10);
        assert_eq!(steps(&mut turn), [LearnerStep::Publish, LearnerStep::Done]);
    }

    #[test]
    fn an_action_put_back_comes_first_when_the_driver_resumes() {
        let mut first = Vec::new();
        let mut core = LearnerCore::new(settings(), 0, 0, 0, 0, &mut first);
        let mut turn = LearnerTurn::connected(first);
        steps(&mut turn);
        turn.packet(&mut core, ToLearner::LeaderInfo { new_epoch: 1, protocol_version: 0x10000 }, 0);
        turn.packet(&mut core, ToLearner::Trunc { zxid: 0 }, 0);
        turn.begin(&mut core, None, 0);
        let mut acts = Vec::new();
        let mut held_trunc = true;
        loop {
            match turn.next() {
                LearnerStep::Act(LearnerAction::Truncate { zxid }) if held_trunc => {
                    // Blocked (its log drains); later the driver resumes.
                    held_trunc = false;
                    turn.put_back(LearnerAction::Truncate { zxid });
                }
                LearnerStep::Act(a) => acts.push(a),
                LearnerStep::Done => break,
                _ => {}
            }
        }
        assert!(matches!(acts[0], LearnerAction::PersistAcceptedEpoch(1)));
        assert!(matches!(acts[1], LearnerAction::Send(ToLeader::AckEpoch { .. })));
        assert_eq!(acts[2], LearnerAction::Truncate { zxid: 0 });
        assert_eq!(acts.len(), 3);
    }
}
