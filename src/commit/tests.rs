use super::*;
use crate::storage::txn::LoggedTxn;

/// Collects what a sink is given, decoding nothing.
#[derive(Default)]
struct Collected {
    txns: Vec<(TxnHeader, Txn, Option<TxnDigest>, i64)>,
    changes: Vec<SessionChange>,
}

impl TxnSink for Collected {
    fn log(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<TxnDigest>, tree_digest: i64) {
        self.txns.push((*header, txn.clone(), digest, tree_digest));
    }

    fn session_changed(&mut self, change: SessionChange) {
        self.changes.push(change);
    }
}

const TICK_MS: i64 = 100;

fn empty() -> Sequencer<u64> {
    Sequencer::new(
        DataTree::new(),
        0,
        [],
        VecDeque::new(),
        TICK_MS,
        SessionIdAllocator::starting_at(1),
        ExecSettings::default(),
        0,
    )
}

fn ephemeral(path: &str) -> WriteOp {
    WriteOp::Create {
        path: path.to_owned(),
        data: None,
        acl: crate::proto::types::open_acl_unsafe(),
        flags: 1,
        ttl: None,
        op: op::CREATE,
    }
}

#[test]
fn a_session_moved_to_another_learner_refuses_the_old_ones_writes() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let id = seq.next_session_id();
    seq.create_session(&mut sink, id, 0, 3000, None, SessionHolder::Learner(1), 0, 7);
    assert_eq!(seq.admit_write(id, SessionHolder::Learner(1), 10), Ok(()));
    // The client reconnects through learner 2: learner 1's writes now bounce.
    assert!(seq.revalidate(id, 3000, None, SessionHolder::Learner(2), 20).valid);
    assert_eq!(seq.admit_write(id, SessionHolder::Learner(1), 30), Err(ErrorCode::SessionMoved));
    assert_eq!(seq.admit_write(id, SessionHolder::Here, 30), Err(ErrorCode::SessionMoved));
    assert_eq!(seq.admit_write(id, SessionHolder::Learner(2), 30), Ok(()));
    assert_eq!(seq.admit_write(id + 1, SessionHolder::Learner(2), 30), Err(ErrorCode::SessionExpired));
    assert_eq!(sink.changes, vec![SessionChange::Opened { id, timeout_ms: 3000 }]);
}

#[test]
fn a_released_session_is_claimed_by_the_first_writer() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let id = seq.next_session_id();
    seq.create_session(&mut sink, id, 0, 3000, Some(9), SessionHolder::Here, 0, 7);
    seq.release_sessions(50);
    assert!(seq.session(id).is_some_and(|e| e.owner.is_none() && e.holder == SessionHolder::Unclaimed));
    assert_eq!(seq.admit_write(id, SessionHolder::Learner(4), 60), Ok(()));
    assert_eq!(seq.admit_write(id, SessionHolder::Here, 60), Err(ErrorCode::SessionMoved));
}

#[test]
fn revalidation_hands_back_only_another_previous_owner() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let id = seq.next_session_id();
    seq.create_session(&mut sink, id, 0, 3000, Some(5), SessionHolder::Here, 0, 7);
    let same = seq.revalidate(id, 4000, Some(5), SessionHolder::Here, 10);
    assert_eq!(same, Revalidation { valid: true, previous_owner: None });
    let moved = seq.revalidate(id, 4000, Some(6), SessionHolder::Here, 10);
    assert_eq!(moved, Revalidation { valid: true, previous_owner: Some(5) });
    assert_eq!(seq.session(id).map(|e| e.timeout_ms), Some(4000));
    let unknown = seq.revalidate(id + 1, 4000, Some(6), SessionHolder::Here, 10);
    assert_eq!(unknown, Revalidation { valid: false, previous_owner: None });
    seq.disconnected(id, 5);
    assert_eq!(seq.session(id).and_then(|e| e.owner), Some(6));
    seq.disconnected(id, 6);
    assert_eq!(seq.session(id).and_then(|e| e.owner), None);
}

#[test]
fn an_expired_session_is_closed_once_and_its_ephemerals_go() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let id = seq.next_session_id();
    let created = seq.create_session(&mut sink, id, 0, 1000, None, SessionHolder::Here, 0, 7);
    let write = seq.execute(&mut sink, id, 1, &ephemeral("/e"), &ServerIdentity, 8);
    assert!(write.result.is_ok());
    assert_eq!((created, write.zxid), (1, 2));
    // Due at the first tick boundary strictly after 1000.
    assert!(seq.take_expired(1000).is_empty());
    assert_eq!(seq.take_expired(1100), vec![id]);
    let closed = seq.close_session(&mut sink, id, 9);
    assert_eq!(closed.zxid, 3);
    assert!(seq.tree().get("/e").is_none());
    assert!(!seq.holds_session(id));
    assert_eq!(seq.admit_write(id, SessionHolder::Here, 1200), Err(ErrorCode::SessionExpired));
    assert_eq!(sink.changes, vec![SessionChange::Opened { id, timeout_ms: 1000 }, SessionChange::Closed { id }]);
    // Every txn carries the tree digest after it.
    let last = sink.txns.last().map(|t| t.3);
    assert_eq!(last, Some(seq.tree().digest()));
}

#[test]
fn a_closed_session_is_not_handed_out_by_expiry() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let id = seq.next_session_id();
    seq.create_session(&mut sink, id, 0, 1000, None, SessionHolder::Here, 0, 7);
    seq.close_session(&mut sink, id, 8);
    assert!(seq.take_expired(10_000).is_empty());
}

#[test]
fn an_error_txn_carries_no_digest_and_changes_nothing() {
    let mut seq = empty();
    let mut sink = Collected::default();
    let before = seq.tree().digest();
    let zxid = seq.execute_error(&mut sink, 42, 3, ErrorCode::SessionMoved, 5);
    assert_eq!(zxid, 1);
    assert_eq!(seq.last_zxid(), 1);
    let (header, txn, digest, tree_digest) = &sink.txns[0];
    assert_eq!((header.op, header.cxid, header.session_id), (op::ERROR, 3, 42));
    assert_eq!(txn, &Txn::Error { err: ErrorCode::SessionMoved.code() });
    assert_eq!((*digest, *tree_digest), (None, before));
}

#[test]
fn a_replica_applying_the_leaders_txns_ends_with_the_same_tree_and_table() {
    let mut leader = empty();
    let mut sink = Collected::default();
    let a = leader.next_session_id();
    let b = leader.next_session_id();
    leader.create_session(&mut sink, a, 0, 2000, None, SessionHolder::Here, 0, 1);
    leader.create_session(&mut sink, b, 0, 3000, None, SessionHolder::Learner(3), 0, 1);
    leader.execute(&mut sink, b, 1, &ephemeral("/b"), &ServerIdentity, 2);
    leader.close_session(&mut sink, a, 3);
    let mut replica = empty();
    let mut changes = Vec::new();
    for (header, txn, digest, _) in &sink.txns {
        // Through the log encoding, as a learner receives them.
        let mut buf = bytes::BytesMut::new();
        crate::storage::txn::encode_txn(&mut buf, header, txn, *digest);
        let Ok(logged) = LoggedTxn::decode(buf.freeze()) else { panic!("txn 0x{:x} does not decode", header.zxid) };
        let opener = (logged.header.session_id == b).then_some(77);
        let applied = replica.apply_committed(header.zxid, &logged.header, &logged.txn, opener);
        changes.extend(applied.session_change);
        assert!(!replica.tree().check_txn_digest(logged.digest).is_mismatch());
    }
    assert_eq!(changes, sink.changes);
    assert_eq!(replica.tree().digest(), leader.tree().digest());
    assert_eq!(replica.last_zxid(), leader.last_zxid());
    assert_eq!(replica.session_timeouts(), leader.session_timeouts());
    assert_eq!(replica.session(b).and_then(|e| e.owner), Some(77));
    // A learner told a reconnect is valid keeps the newest connection.
    assert_eq!(replica.learner_revalidated(b, 3000, 78), Some(77));
    assert_eq!(replica.learner_revalidated(b, 3000, 78), None);
}

#[test]
fn the_recent_window_keeps_the_newest() {
    let mut seq = empty();
    let logged: Vec<(i64, Bytes)> = (1..=5).map(|z| (z, Bytes::from_static(b"t"))).collect();
    seq.remember_recent(&logged, 3);
    let kept: Vec<i64> = seq.recent_txns().iter().map(|(z, _)| *z).collect();
    assert_eq!(kept, vec![3, 4, 5]);
    seq.forget_recent();
    assert!(seq.recent_txns().is_empty());
}

#[test]
fn a_reset_rearms_every_restored_session() {
    let mut seq = empty();
    seq.reset(DataTree::new(), 40, [(7, 1000), (8, 2000)], VecDeque::new(), 500);
    assert_eq!(seq.last_zxid(), 40);
    assert_eq!(seq.deadline_of(7), Some(1600));
    assert_eq!(seq.deadline_of(8), Some(2600));
    assert_eq!(seq.take_expired(1600), vec![7]);
}

#[test]
fn a_learner_keeps_its_state_only_when_the_tail_covers_applied_to_the_log_end() {
    let tail = |zxids: std::ops::RangeInclusive<i64>| -> VecDeque<(i64, Bytes)> {
        zxids.map(|z| (z, Bytes::from_static(b"t"))).collect()
    };
    let at = |last_zxid: i64, recent: VecDeque<(i64, Bytes)>| {
        Sequencer::<u64>::new(
            DataTree::new(),
            last_zxid,
            [],
            recent,
            TICK_MS,
            SessionIdAllocator::starting_at(1),
            ExecSettings::default(),
            0,
        )
    };
    let zxids = |kept: Option<Vec<(i64, Bytes)>>| kept.map(|t| t.iter().map(|(z, _)| *z).collect::<Vec<_>>());
    // Applied through 3, logged through 5: apply 4 and 5.
    assert_eq!(zxids(at(3, tail(1..=5)).logged_tail_to_keep(5)), Some(vec![4, 5]));
    // The log holds more than the window: reload.
    assert_eq!(zxids(at(3, tail(1..=5)).logged_tail_to_keep(6)), None);
    // The window starts above what was applied: a gap, reload.
    assert_eq!(zxids(at(3, tail(5..=6)).logged_tail_to_keep(6)), None);
    // Nothing in the window, nothing logged past the applied state: keep.
    assert_eq!(zxids(at(3, VecDeque::new()).logged_tail_to_keep(3)), Some(vec![]));
}
