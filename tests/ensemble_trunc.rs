//! A zoocore leader that logged a write no follower ever saw is truncated
//! when it comes back: the new leader sends TRUNC, the unacknowledged write
//! is gone on every server (and stays gone across a restart), every
//! acknowledged write is everywhere, and all servers end with one tree.
//!
//! The recipe: SIGSTOP both followers, write to the leader (it logs and
//! proposes the txn but cannot commit it; the client gets no answer), kill
//! -9 the leader, then kill -9 the two stopped followers and restart them.
//! Killing the stopped followers instead of continuing them is on purpose:
//! the leader's PROPOSAL already sits in their sockets' receive buffers, and
//! a continued follower would read and log it before it noticed the leader
//! was gone; the new leader would then hold the txn and rightly commit it,
//! and the old leader would have nothing to truncate. A killed process never
//! reads its buffer, so only the old leader has the txn.
//!
//! Apache's sync rule decides which packet the old leader gets: TRUNC while
//! the new epoch has no txns yet (the old leader is ahead of the new
//! leader's newest committed txn); once the new epoch has txns the
//! divergent txn sits before them, a TRUNC would cross an epoch boundary,
//! and the leader sends SNAP. Both are tested.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use common::{dir_holds_bytes, is_stopped, strip_ansi, tree_dump, wait_until, TreeDump};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
/// Longer than the test: the session that sent the unacknowledged write
/// must not expire (a closeSession txn in the new epoch) before the old
/// leader rejoins, or the rejoin would be a cross-epoch SNAP.
const SESSION: Duration = Duration::from_secs(40);
const EXTRA_CONFIG: &str = "maxSessionTimeout=60000\n";
const UNACKED: &str = "/t/unacked";

/// Ensembles on a shared 2-core machine: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Connects to a member, retrying while it is not serving.
fn connect(m: &Member) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(m.client, SESSION) {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cannot connect to server {}: {e}\n{}", m.sid, m.log_tail(30)),
        }
    }
}

fn zxids(e: &Ensemble) -> Vec<i64> {
    e.members.iter().map(|m| m.zxid()).collect()
}

/// Same tree and same `srvr` Zxid on every member; the unacknowledged
/// write nowhere; every acknowledged one everywhere.
fn assert_converged(e: &Ensemble, acked: &BTreeSet<String>) {
    assert!(
        wait_until(Duration::from_secs(10), || zxids(e).iter().collect::<BTreeSet<_>>().len() == 1),
        "one Zxid everywhere: {:?}",
        zxids(e)
    );
    let dumps: Vec<(u64, TreeDump)> = e.members.iter().map(|m| (m.sid, tree_dump(&connect(m)))).collect();
    for (sid, d) in &dumps {
        assert!(!d.contains_key(UNACKED), "server {sid} has the unacknowledged write");
        let have: BTreeSet<String> = d.keys().cloned().collect();
        let missing: Vec<&String> = acked.difference(&have).collect();
        assert!(missing.is_empty(), "server {sid} lost acknowledged writes: {missing:?}");
        assert_eq!(d, &dumps[0].1, "server {sid} has the same tree as server {}", dumps[0].0);
    }
}

/// Runs the recipe; `writes_before_rejoin`: the new leader commits writes
/// before the old leader comes back. Returns (ensemble, old leader, new
/// leader, acknowledged paths).
fn diverge_and_rejoin(writes_before_rejoin: bool) -> (Ensemble, u64, u64, BTreeSet<String>) {
    let mut e = Ensemble::start(3, &[], TICK_MS, EXTRA_CONFIG);
    let old = e.wait_for_quorum(SETTLE);
    let followers: Vec<u64> = (1..=3).filter(|s| *s != old).collect();
    let c = connect(e.member(old));
    let mut acked = BTreeSet::new();
    for path in ["/t".to_owned()].into_iter().chain((0..10).map(|k| format!("/t/before-{k}"))) {
        c.create(&path, b"b", &open_acl_unsafe(), CreateMode::Persistent).expect("acknowledged write");
        acked.insert(path);
    }
    // Everyone holds the acknowledged writes before the followers stop.
    assert!(wait_until(Duration::from_secs(5), || zxids(&e).iter().collect::<BTreeSet<_>>().len() == 1));
    let committed_zxid = e.member(old).zxid();

    for &f in &followers {
        e.member(f).signal(libc::SIGSTOP);
    }
    for &f in &followers {
        let pid = e.member(f).pid().expect("pid");
        assert!(wait_until(Duration::from_secs(2), || is_stopped(pid)), "follower {f} stopped");
    }
    let unacked = c
        .submit(zoocore::proto::records::Request::Create {
            op: zoocore::proto::op::CREATE,
            req: zoocore::proto::records::CreateRequest {
                path: UNACKED.to_owned(),
                data: Some(bytes::Bytes::from_static(b"never acknowledged")),
                acl: open_acl_unsafe(),
                flags: 0,
                ttl: None,
            },
        })
        .expect("submit the write");
    // The leader logs within milliseconds; it steps down only after
    // syncLimit (5 ticks = 1 s), and killing it after that is fine too.
    std::thread::sleep(Duration::from_millis(400));
    e.member(old).kill9();
    assert!(unacked.wait_timeout(Duration::from_secs(5)).is_err(), "the client got no answer");
    let old_data = e.member(old).dir.join("data");
    assert!(
        dir_holds_bytes(&old_data, UNACKED.as_bytes()),
        "the write reached the old leader's log (else this test proves nothing)\n{}",
        e.member(old).log_tail(30)
    );

    for &f in &followers {
        e.member(f).kill9();
        let data = e.member(f).dir.join("data");
        assert!(!dir_holds_bytes(&data, UNACKED.as_bytes()), "follower {f} never logged the write");
    }
    for &f in &followers {
        e.member(f).spawn();
    }
    let new = e.wait_for_quorum(SETTLE);
    assert_ne!(new, old);
    // No client session yet: a createSession is a txn of the new epoch.
    assert!(e.member(new).zxid() >> 32 > committed_zxid >> 32, "a new epoch");
    if writes_before_rejoin {
        let nc = connect(e.member(new));
        for k in 0..5 {
            let path = format!("/t/new-epoch-{k}");
            nc.create(&path, b"n", &open_acl_unsafe(), CreateMode::Persistent).expect("write in the new epoch");
            acked.insert(path);
        }
    }

    e.member(old).spawn();
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(old).mode(), "follower", "the old leader follows");
    let nc = connect(e.member(new));
    let served: BTreeSet<String> = tree_dump(&nc).into_keys().collect();
    assert_eq!(served, acked, "the new leader serves exactly the committed history");
    (e, old, new, acked)
}

/// After the rejoin: writes through every server, convergence, then the
/// old leader is killed and restarted and still lacks the truncated txn.
/// `truncated`: the old leader got TRUNC, so its log no longer holds the
/// txn's bytes at all. (After SNAP the txn stays in an old log file below
/// the snapshot, which a restart never replays, as with Apache.)
fn write_converge_restart(mut e: Ensemble, old: u64, mut acked: BTreeSet<String>, truncated: bool) {
    for m in &e.members {
        let c = connect(m);
        for k in 0..5 {
            let path = format!("/t/after-s{}-{k}", m.sid);
            c.create(&path, b"a", &open_acl_unsafe(), CreateMode::Persistent).expect("write after the rejoin");
            acked.insert(path);
        }
    }
    assert_converged(&e, &acked);

    e.member(old).kill9();
    assert!(
        !truncated || !dir_holds_bytes(&e.member(old).dir.join("data"), UNACKED.as_bytes()),
        "the truncated txn is gone from the old leader's disk"
    );
    e.member(old).spawn();
    e.wait_for_quorum(SETTLE);
    assert_converged(&e, &acked);
    for m in &e.members {
        let log = m.log();
        assert!(!log.contains("diverged from the leader"), "server {} saw a digest mismatch", m.sid);
    }
}

#[test]
fn old_leader_with_an_unacknowledged_write_is_truncated_on_rejoin() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (e, old, new, acked) = diverge_and_rejoin(false);
    let leader_log = strip_ansi(&e.members[(new - 1) as usize].log());
    let sync_line = leader_log
        .lines()
        .find(|l| l.contains("syncing a learner") && l.contains(&format!("sid={old}")))
        .unwrap_or_else(|| panic!("the new leader logged its sync plan for server {old}:\n{leader_log}"));
    assert!(
        sync_line.contains("plan=Trunc {") && sync_line.contains("reason=LearnerAhead"),
        "the new leader TRUNCs the old one: {sync_line}"
    );
    let old_log = strip_ansi(&e.members[(old - 1) as usize].log());
    assert!(old_log.contains("the leader truncates this server's log (TRUNC)"), "the old leader truncated");
    write_converge_restart(e, old, acked, true);
}

#[test]
fn old_leader_is_sent_a_snapshot_when_the_new_epoch_already_has_writes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (e, old, new, acked) = diverge_and_rejoin(true);
    let leader_log = strip_ansi(&e.members[(new - 1) as usize].log());
    let sync_line = leader_log
        .lines()
        .find(|l| l.contains("syncing a learner") && l.contains(&format!("sid={old}")))
        .unwrap_or_else(|| panic!("the new leader logged its sync plan for server {old}:\n{leader_log}"));
    assert!(
        sync_line.contains("plan=Snap") && sync_line.contains("reason=DivergentAcrossEpochs"),
        "a TRUNC may not cross an epoch: {sync_line}"
    );
    write_converge_restart(e, old, acked, false);
}
