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
        // The survivors lost their leader cleanly: they keep their state
        // for the election (applying their logged tail) instead of
        // replaying snapshot + log; the checks here are what makes that safe.
        assert!(
            common::strip_ansi(&m.log()).contains("kept the learner's state for the election"),
            "server {} reloaded from disk after losing its leader:\n{}",
            m.sid,
            m.log_tail(30)
        );
    }
    let survivors: Vec<&Member> = e.members.iter().filter(|m| m.sid != leader).collect();
    let dumps: Vec<_> = survivors.iter().map(|m| common::tree_dump(&connect(m))).collect();
    assert!(dumps.windows(2).all(|w| w[0] == w[1]), "the survivors' trees differ");
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
    // Snapshots while the follower is down: 0.33 x the newest one's size is
    // far less than the 700 txns a DIFF from the leader's disk would replay,
    // so the leader sends SNAP (a DIFF from disk: tests/ensemble_disk_diff.rs).
    let mut e = Ensemble::start(3, &[], TICK_MS, "snapCount=100\n");
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

/// Pipelined writers for the 5-server test: each keeps up to
/// `WRITE_WINDOW` creates in flight, submits every id exactly once (a lost
/// answer is never retried, so an id found twice was applied twice by the
/// ensemble), and moves to the next live server when its connection fails.
const WRITE_WINDOW: usize = 8;

#[derive(Default)]
struct WriteLog {
    acked: BTreeSet<String>,
    /// Submitted, answer lost (the connection failed first): may or may not
    /// have been applied, at most once.
    unknown: BTreeSet<String>,
}

fn pipelined_writer(
    t: usize,
    live: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    log: Arc<Mutex<WriteLog>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut next = 0usize;
    let mut target = t;
    let mut last_progress = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let addr = {
            let live = live.lock().unwrap();
            target = (target + 1) % live.len();
            live[target]
        };
        let Ok(client) = Client::connect(addr, SESSION) else {
            assert!(last_progress.elapsed() < Duration::from_secs(20), "writer {t}: no server took writes for 20 s");
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let mut in_flight: std::collections::VecDeque<(String, zoocore::client::Pending)> = Default::default();
        loop {
            while in_flight.len() < WRITE_WINDOW && !stop.load(Ordering::Relaxed) {
                let id = format!("t{t}-{next:05}");
                next += 1;
                let req = zoocore::proto::records::Request::Create {
                    op: zoocore::proto::op::CREATE,
                    req: zoocore::proto::records::CreateRequest {
                        path: "/w5/n-".to_owned(),
                        data: Some(bytes::Bytes::from(id.clone().into_bytes())),
                        acl: open_acl_unsafe(),
                        flags: CreateMode::PersistentSequential.flags(),
                        ttl: None,
                    },
                };
                match client.submit(req) {
                    Ok(p) => in_flight.push_back((id, p)),
                    Err(_) => {
                        let mut log = log.lock().unwrap();
                        log.unknown.insert(id);
                        log.unknown.extend(in_flight.drain(..).map(|(id, _)| id));
                        break;
                    }
                }
            }
            let Some((id, pending)) = in_flight.pop_front() else { break };
            match pending.wait_timeout(Duration::from_secs(10)) {
                Ok((header, _)) if header.err == 0 => {
                    log.lock().unwrap().acked.insert(id);
                    last_progress = Instant::now();
                }
                Ok((header, _)) => panic!("writer {t}: create {id} failed with {}", header.err),
                Err(_) => {
                    let mut log = log.lock().unwrap();
                    log.unknown.insert(id);
                    log.unknown.extend(in_flight.drain(..).map(|(id, _)| id));
                    break;
                }
            }
        }
        if stop.load(Ordering::Relaxed) && in_flight.is_empty() {
            break;
        }
    }
}

/// On every running member: every acknowledged id exactly once, no id
/// twice, the same tree everywhere.
fn check_five(e: &Ensemble, log: &WriteLog) {
    let mut first: Option<(u64, common::TreeDump)> = None;
    for m in e.members.iter().filter(|m| m.pid().is_some()) {
        let dump = common::tree_dump(&connect(m));
        let mut count: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
        for (path, (data, ..)) in &dump {
            if path.starts_with("/w5/") {
                *count.entry(data.clone()).or_default() += 1;
            }
        }
        let twice: Vec<String> =
            count.iter().filter(|(_, n)| **n > 1).map(|(d, _)| String::from_utf8_lossy(d).into_owned()).collect();
        assert!(twice.is_empty(), "server {} applied a write twice: {twice:?}", m.sid);
        let missing: Vec<&String> = log.acked.iter().filter(|id| !count.contains_key(id.as_bytes())).collect();
        assert!(missing.is_empty(), "server {} lost acknowledged writes: {missing:?}", m.sid);
        let strangers: Vec<String> = count
            .keys()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .filter(|id| !log.acked.contains(id) && !log.unknown.contains(id))
            .collect();
        assert!(strangers.is_empty(), "server {} has writes nobody submitted: {strangers:?}", m.sid);
        match &first {
            None => first = Some((m.sid, dump)),
            Some((sid, d)) => assert!(d == &dump, "server {} and server {sid} have different trees", m.sid),
        }
    }
}

/// Five servers, kill -9 of the leader under pipelined writes from four
/// clients, then kill -9 of the new leader (3 of 5 left: still a quorum),
/// writes continuing throughout.
#[test]
fn five_servers_survive_two_leader_kills_under_pipelined_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let started = Instant::now();
    let mut e = Ensemble::start(5, &[], TICK_MS, "zoocore.shards=1\n");
    let leader = e.wait_for_quorum(SETTLE);
    connect(e.member(leader)).create("/w5", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /w5");
    let live = Arc::new(Mutex::new(e.members.iter().filter(|m| m.sid != leader).map(|m| m.client).collect::<Vec<_>>()));
    let log = Arc::new(Mutex::new(WriteLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (live, log, stop) = (live.clone(), log.clone(), stop.clone());
            std::thread::spawn(move || pipelined_writer(t, live, log, stop))
        })
        .collect();
    let acked = |log: &Arc<Mutex<WriteLog>>| log.lock().unwrap().acked.len();
    let grows_by = |log: &Arc<Mutex<WriteLog>>, n: usize, why: &str| {
        let from = acked(log);
        assert!(wait_until(Duration::from_secs(15), || acked(log) >= from + n), "{why}: {} acked", acked(log));
    };

    grows_by(&log, 200, "writes flow with five servers");
    e.member(leader).kill9();
    grows_by(&log, 200, "writes flow again after the first leader died");
    let second = e.wait_for_quorum(SETTLE);
    assert_ne!(second, leader);
    let second_addr = e.member(second).client;
    live.lock().unwrap().retain(|a| *a != second_addr);
    e.member(second).kill9();
    grows_by(&log, 200, "writes flow with three of five servers");
    let third = e.wait_for_quorum(SETTLE);
    assert!(third != leader && third != second);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    check_five(&e, &log);
    let mntr = common::four_letter(e.member(third).client, "mntr").unwrap_or_default();
    assert!(mntr.contains("zk_synced_followers\t2"), "the two other survivors follow:\n{mntr}");
    eprintln!("five servers: {} acked, {} unknown, {:?} in all", log.acked.len(), log.unknown.len(), started.elapsed());
}

/// Values the leader keeps without copying (from 256 KiB) arrive whole on
/// every member, written through the leader and forwarded by a follower,
/// and after the leader is replaced (the new leader replayed or applied
/// them as a follower).
#[test]
fn large_values_through_leader_and_follower_reach_every_member() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "jute.maxbuffer=4194304\n");
    let leader = e.wait_for_quorum(SETTLE);
    let follower = if leader == 1 { 2 } else { 1 };
    let value = |seed: u8, len: usize| (0..len).map(|i| (i / 4096) as u8 ^ (i as u8) ^ seed).collect::<Vec<u8>>();
    let through_leader = value(1, 1 << 20);
    let through_follower = value(2, 300 << 10);
    let lc = connect(e.member(leader));
    let fc = connect(e.member(follower));
    lc.create("/big-l", &through_leader, &open_acl_unsafe(), CreateMode::Persistent).expect("create via leader");
    fc.create("/big-f", &through_follower, &open_acl_unsafe(), CreateMode::Persistent).expect("create via follower");
    fc.set_data("/big-l", &through_follower, 0).expect("setData via follower");
    lc.set_data("/big-f", &through_leader, 0).expect("setData via leader");
    let check = |e: &mut Ensemble, running: &[u64]| {
        for &sid in running {
            let c = connect(e.member(sid));
            c.sync("/").expect("sync");
            let (l, _) = c.get_data("/big-l", false).expect("get /big-l");
            let (f, _) = c.get_data("/big-f", false).expect("get /big-f");
            assert!(l.as_deref() == Some(&through_follower[..]), "server {sid}: /big-l changed");
            assert!(f.as_deref() == Some(&through_leader[..]), "server {sid}: /big-f changed");
        }
    };
    check(&mut e, &[1, 2, 3]);
    drop((lc, fc));
    e.member(leader).kill9();
    let others: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
    let deadline = Instant::now() + SETTLE;
    while !others.iter().any(|s| e.member(*s).mode() == "leader") {
        assert!(Instant::now() < deadline, "no new leader");
        std::thread::sleep(Duration::from_millis(50));
    }
    check(&mut e, &others);
}
