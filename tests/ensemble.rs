//! zoocore ensembles on loopback: election, replication, failover, catch-up
//! and sessions across servers, with real processes killed by PID.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use common::wait_until;
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(6);

/// Connects to a member, retrying while it is not serving (a member that
/// is electing or syncing closes client connections, as Apache does).
fn connect(m: &Member) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(m.client, SESSION) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot connect to server {}: {e}\n{}", m.sid, m.log_tail(30)),
        }
    }
}

fn children(c: &Client, path: &str) -> BTreeSet<String> {
    c.sync(path).expect("sync");
    c.get_children(path, false).expect("children").into_iter().collect()
}

#[test]
fn three_servers_elect_replicate_and_serve_everywhere() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<Client> = e.members.iter().map(connect).collect();
    clients[0].create("/r", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /r");
    for (i, c) in clients.iter().enumerate() {
        for k in 0..20 {
            c.create(&format!("/r/s{}-{k}", i + 1), b"x", &open_acl_unsafe(), CreateMode::Persistent)
                .unwrap_or_else(|err| panic!("create through server {}: {err}", i + 1));
        }
    }
    let expected: BTreeSet<String> = (1..=3).flat_map(|s| (0..20).map(move |k| format!("s{s}-{k}"))).collect();
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(children(c, "/r"), expected, "server {} has every write", i + 1);
        let (data, stat) = c.get_data("/r/s2-7", false).expect("get");
        assert_eq!(data.as_deref(), Some(&b"x"[..]));
        assert_eq!(stat.czxid >> 32, clients[0].get_data("/r/s2-7", false).expect("get").1.czxid >> 32);
    }
    // Same zxid everywhere once quiet, in the leader's epoch.
    assert!(wait_until(Duration::from_secs(5), || {
        let z: BTreeSet<i64> = e.members.iter().map(|m| m.zxid()).collect();
        z.len() == 1
    }));
    assert!(e.member(leader).zxid() >> 32 >= 1);
    let srvr = common::four_letter(e.member(leader).client, "srvr").unwrap_or_default();
    assert!(srvr.contains("Mode: leader"), "{srvr}");
    let mntr = common::four_letter(e.member(leader).client, "mntr").unwrap_or_default();
    for line in
        ["zk_server_state\tleader", "zk_synced_followers\t2", "zk_quorum_size\t3", "zk_digest_mismatches_count\t0"]
    {
        assert!(mntr.contains(line), "mntr has {line:?}:\n{mntr}");
    }
}

/// The leader expires a session whose server died (its touches stopped),
/// and every remaining server drops the session's ephemeral: the failover
/// that ephemeral-based locks and leader election rely on.
#[test]
fn session_on_a_dead_follower_expires_everywhere() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let follower = if leader == 1 { 2 } else { 1 };
    let other = (1..=3).find(|s| *s != leader && *s != follower).unwrap_or(leader);
    let c = Client::connect(e.member(follower).client, Duration::from_secs(2)).expect("connect");
    c.create("/lock", b"", &open_acl_unsafe(), CreateMode::Ephemeral).expect("ephemeral");
    let watcher = connect(&e.members[(other - 1) as usize]);
    watcher.sync("/lock").expect("sync");
    assert!(watcher.exists("/lock", false).expect("exists").is_some());
    let killed = Instant::now();
    e.member(follower).kill9();
    assert!(
        wait_until(Duration::from_secs(15), || watcher.exists("/lock", false).ok().flatten().is_none()),
        "the dead follower's session expired"
    );
    let took = killed.elapsed();
    assert!(took >= Duration::from_millis(1500), "not before its timeout: {took:?}");
}

/// kill -9 of the leader under writes from several clients: every
/// acknowledged write is on every server afterwards, the old leader too.
#[test]
fn leader_kill9_loses_no_acknowledged_write() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    connect(e.member(leader)).create("/w", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /w");
    let followers: Vec<std::net::SocketAddr> = e.members.iter().filter(|m| m.sid != leader).map(|m| m.client).collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let (acked, targets) = (acked.clone(), followers.clone());
            std::thread::spawn(move || {
                let mut target = t % targets.len();
                let mut client: Option<Client> = None;
                for i in 0..150 {
                    let path = format!("/w/t{t}-{i:04}");
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        if client.as_ref().is_none_or(|c| c.is_closed()) {
                            client = Client::connect(targets[target], SESSION).ok();
                            target = (target + 1) % targets.len();
                        }
                        let result =
                            client.as_ref().map(|c| c.create(&path, b"v", &open_acl_unsafe(), CreateMode::Persistent));
                        match result {
                            Some(Ok(_)) => {
                                acked.lock().unwrap().insert(path.clone());
                                break;
                            }
                            // An earlier attempt that lost its reply did land.
                            Some(Err(err)) if err.code() == Some(zoocore::proto::ErrorCode::NodeExists) => break,
                            _ => {
                                client = None;
                                assert!(Instant::now() < deadline, "writes stalled for 30 s at {path}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(20), || acked.lock().unwrap().len() >= 60), "writes are flowing");
    e.member(leader).kill9();
    for w in writers {
        w.join().expect("writer");
    }
    let new_leader = e.wait_for_quorum(SETTLE);
    assert_ne!(new_leader, leader);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150, "most writes were acknowledged: {}", acked.len());
    let check = |m: &Member| {
        let c = connect(m);
        let have: BTreeSet<String> = children(&c, "/w").into_iter().map(|n| format!("/w/{n}")).collect();
        let missing: Vec<&String> = acked.difference(&have).collect();
        assert!(missing.is_empty(), "server {} lost acknowledged writes: {missing:?}", m.sid);
    };
    for m in e.members.iter().filter(|m| m.sid != leader) {
        check(m);
    }
    // The old leader comes back as a follower and catches up.
    e.member(leader).spawn();
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(leader).mode(), "follower");
    check(&e.members[(leader - 1) as usize]);
}

/// A follower that was down catches up: by DIFF when it missed a few txns,
/// by SNAP when it missed more than the leader keeps in memory.
#[test]
fn restarted_follower_catches_up_by_diff_and_by_snap() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let down = if leader == 1 { 2 } else { 1 };
    let c = connect(e.member(leader));
    c.create("/d", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    for (round, count) in [(0, 20), (1, 700)] {
        e.member(down).kill9();
        for k in 0..count {
            c.create(&format!("/d/r{round}-{k}"), b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
        }
        e.member(down).spawn();
        e.wait_for_quorum(SETTLE);
        let m = &e.members[(down - 1) as usize];
        let have = children(&connect(m), "/d");
        assert_eq!(have.len(), 20 + if round == 1 { 700 } else { 0 }, "server {down} caught up in round {round}");
    }
    let log = e.member(leader).log();
    assert!(log.contains("syncing a learner by SNAP"), "the second catch-up is a SNAP");
}

/// A client's session lives in the ensemble, not on one server: it moves
/// to another server with its ephemerals, across a leader change too.
#[test]
fn session_and_ephemerals_survive_a_leader_change() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let followers: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
    let c = connect(e.member(followers[0]));
    c.create("/eph", b"mine", &open_acl_unsafe(), CreateMode::Ephemeral).expect("ephemeral");
    let (sid, passwd) = (c.session_id(), c.session_password());
    e.member(leader).kill9();
    e.wait_for_quorum(SETTLE);
    let other = &e.members[(followers[1] - 1) as usize];
    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        match Client::reconnect(other.client, sid, passwd.clone(), SESSION) {
            Ok(m) => break m,
            Err(err) => {
                assert!(Instant::now() < deadline, "cannot move the session: {err}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(moved.session_id(), sid, "the same session, on another server");
    let (_, stat) = moved.get_data("/eph", false).expect("the ephemeral survived");
    assert_eq!(stat.ephemeral_owner, sid);
    drop(c);
    moved.close().ok();
    let watcher = connect(other);
    assert!(wait_until(Duration::from_secs(10), || watcher.exists("/eph", false).ok().flatten().is_none()));
}

/// SIGSTOP of the leader (a long pause): the others elect a new leader and
/// serve writes; the old one, resumed, steps down and follows.
#[test]
fn paused_leader_is_replaced_and_rejoins_as_follower() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    e.member(leader).signal(libc::SIGSTOP);
    let others: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
    assert!(
        wait_until(SETTLE, || others.iter().any(|s| e.members[(*s - 1) as usize].mode() == "leader")),
        "a new leader while the old one is paused"
    );
    let c = connect(&e.members[(others[0] - 1) as usize]);
    c.create("/after-pause", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("write with a new leader");
    e.member(leader).signal(libc::SIGCONT);
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(leader).mode(), "follower");
    let back = connect(e.member(leader));
    back.sync("/").expect("sync");
    assert!(back.exists("/after-pause", false).expect("exists").is_some());
}

#[test]
fn observer_serves_reads_and_forwards_writes() {
    let mut e = Ensemble::start(4, &[4], TICK_MS, "");
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(4).mode(), "observer");
    let c = connect(e.member(4));
    c.create("/obs", b"o", &open_acl_unsafe(), CreateMode::Persistent).expect("write through the observer");
    let v = connect(e.member(1));
    v.sync("/obs").expect("sync");
    assert_eq!(v.get_data("/obs", false).expect("get").0.as_deref(), Some(&b"o"[..]));
}
