//! zoocore's ZAB codec (`zab::packets`) and sync decision (`zab::sync_plan`)
//! against a real Apache ZooKeeper 3.8 leader.
//!
//! Two Apache servers of a three-server ensemble elect a leader between
//! them; this test then plays server 3 over a plain `TcpStream` to the
//! leader's quorum port, three times:
//! 1. from a zxid inside the leader's committed window: DIFF + the missing
//!    PROPOSAL/COMMIT pairs, NEWLEADER, UPTODATE; then it answers PINGs and
//!    receives (and ACKs) the PROPOSAL and COMMIT of a new write;
//! 2. from a zxid past the leader's last one: TRUNC;
//! 3. from zxid 0: SNAP, whose stream must end with "BenWasHere".
//!
//! Each time the leader's first sync packet is checked against what
//! `plan_sync` predicts for the same history.
//!
//! Needs Debian's /usr/share/java/zookeeper.jar: skipped with a message when
//! it is absent, unless CI is set (then it fails).

#[path = "common/apache.rs"]
mod apache;
#[path = "common/ports.rs"]
mod ports;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};
use zoocore::zab::packets::{
    counter_of, epoch_of, make_zxid, LearnerInfo, PacketDecoder, QuorumPacket, SnapStreamScanner, ToLeader, ToLearner,
    ACKEPOCH_ALREADY_ACCEPTED, PROTOCOL_VERSION_ZAB_1_0,
};
use zoocore::zab::sync_plan::{lookup_sorted, plan_sync, LeaderHistory, Lookup, SyncPlan, SyncPolicy, ZxidWindow};

const TICK_MS: u64 = 500;
const OUR_SID: i64 = 3;
/// Apache's txn type for create (OpCode.create).
const TXN_TYPE_CREATE: i32 = 1;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Below the ephemeral range (see tests/common/ports.rs).
fn free_port() -> u16 {
    ports::unused_port()
}

/// The two Apache servers, killed by PID when dropped (also on panic).
struct Ensemble {
    children: Vec<apache::ServerProcess>,
    dir: PathBuf,
    client_ports: [u16; 2],
    quorum_ports: [u16; 3],
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for child in &mut self.children {
            child.kill9();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Apache logs kept in {}", self.dir.display());
        }
    }
}

impl Ensemble {
    fn start() -> Ensemble {
        let dir = std::env::temp_dir().join(format!("zoocore-learner-interop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let quorum_ports = [free_port(), free_port(), free_port()];
        let election_ports = [free_port(), free_port(), free_port()];
        let client_ports = [free_port(), free_port()];
        let servers: String =
            (0..3).map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, quorum_ports[i], election_ports[i])).collect();
        let mut ensemble = Ensemble { children: Vec::new(), dir: dir.clone(), client_ports, quorum_ports };
        for sid in 1..=2usize {
            let data = dir.join(format!("data{sid}"));
            apache::write_myid(&data, sid as u64);
            let cfg = dir.join(format!("zoo{sid}.cfg"));
            std::fs::write(
                &cfg,
                format!(
                    "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\n\
                     clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{servers}",
                    data.display(),
                    client_ports[sid - 1]
                ),
            )
            .unwrap();
            let log = dir.join(format!("server{sid}.log"));
            let child = apache::ServerProcess::apache(
                apache::QUORUM_MAIN,
                &cfg,
                &[apache::FOUR_LETTER_WORDS_ALL],
                Some(&dir),
                &log,
            );
            ensemble.children.push(child);
        }
        ensemble
    }

    /// Index (0 or 1) of the server whose `srvr` says `Mode: leader`.
    fn wait_for_leader(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            for (i, port) in self.client_ports.iter().enumerate() {
                if four_letter(*port, "srvr").is_some_and(|s| s.contains("Mode: leader")) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no Apache leader within {limit:?}; logs in {}", self.dir.display());
    }
}

fn four_letter(port: u16, cmd: &str) -> Option<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A learner's end of the quorum connection: reads in small chunks so the
/// decoder's "need more bytes" path is exercised on every packet.
struct Wire {
    stream: TcpStream,
    decoder: PacketDecoder,
}

impl Wire {
    fn connect(port: u16) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the leader's quorum port");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire { stream, decoder: PacketDecoder::new() }
    }

    fn read_more(&mut self) {
        let mut chunk = [0u8; 1000];
        let n = self.stream.read(&mut chunk).expect("read from the leader");
        assert!(n > 0, "the leader closed the quorum connection");
        self.decoder.feed(&chunk[..n]);
    }

    fn next_packet(&mut self) -> QuorumPacket {
        loop {
            if let Some(p) = self.decoder.next_packet().expect("a packet we can decode") {
                return p;
            }
            self.read_more();
        }
    }

    fn next(&mut self) -> ToLearner {
        let p = self.next_packet();
        ToLearner::from_packet(&p).unwrap_or_else(|e| panic!("{e}: {p:?}"))
    }

    fn send(&mut self, m: ToLeader) {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        self.stream.write_all(&out).expect("write to the leader");
    }

    /// Reads the snapshot stream after SNAP up to and including its signature.
    fn skip_snapshot(&mut self) -> zoocore::zab::packets::SnapStreamSummary {
        let mut scanner = SnapStreamScanner::new();
        loop {
            let step = scanner.scan(self.decoder.buffered()).expect("a well-formed snapshot stream");
            self.decoder.consume(step.consumed);
            if step.finished {
                return scanner.summary();
            }
            self.read_more();
        }
    }
}

/// FOLLOWERINFO -> LEADERINFO -> ACKEPOCH. Returns the new epoch.
fn discover(wire: &mut Wire, accepted_epoch: i64, current_epoch: i32, last_zxid: i64) -> i64 {
    wire.send(ToLeader::FollowerInfo {
        accepted_epoch,
        info: LearnerInfo { sid: OUR_SID, protocol_version: PROTOCOL_VERSION_ZAB_1_0, config_version: Some(0) },
    });
    let ToLearner::LeaderInfo { new_epoch, protocol_version } = wire.next() else {
        panic!("expected LEADERINFO");
    };
    assert_eq!(protocol_version, PROTOCOL_VERSION_ZAB_1_0);
    wire.send(ToLeader::AckEpoch { last_logged_zxid: last_zxid, current_epoch });
    new_epoch
}

/// The TxnHeader at the front of a PROPOSAL's data: (zxid, type).
fn txn_header(txn: &[u8]) -> (i64, i32) {
    assert!(txn.len() >= 32, "txn shorter than a TxnHeader");
    let zxid = i64::from_be_bytes(txn[12..20].try_into().unwrap());
    let txn_type = i32::from_be_bytes(txn[28..32].try_into().unwrap());
    (zxid, txn_type)
}

/// The Apache leader's history as far as this test knows it: one epoch,
/// every txn from counter 1 to `last` committed and in memory.
struct ApacheLeaderHistory {
    last: i64,
}

impl ApacheLeaderHistory {
    fn zxids(&self) -> Vec<i64> {
        (1..=counter_of(self.last)).map(|c| make_zxid(epoch_of(self.last), c)).collect()
    }
}

impl LeaderHistory for ApacheLeaderHistory {
    fn last_processed_zxid(&self) -> i64 {
        self.last
    }
    fn committed_window(&self) -> Option<ZxidWindow> {
        Some(ZxidWindow { min: make_zxid(epoch_of(self.last), 1), max: self.last })
    }
    fn window_lookup(&self, zxid: i64) -> Lookup {
        lookup_sorted(&self.zxids(), zxid)
    }
    fn disk_log_contains(&self, zxid: i64) -> bool {
        self.zxids().contains(&zxid)
    }
    fn disk_log_bytes_from(&self, _zxid: i64) -> u64 {
        0
    }
}

fn czxid(client: &Client, path: &str) -> i64 {
    client.exists(path, false).unwrap().expect("node exists").czxid
}

#[test]
fn learner_handshake_against_an_apache_leader() {
    if !apache::apache_available("the learner interop test") {
        return;
    }
    let started = Instant::now();
    let ensemble = Ensemble::start();
    let leader = ensemble.wait_for_leader(Duration::from_secs(25));
    let leader_client_addr: SocketAddr = ([127, 0, 0, 1], ensemble.client_ports[leader]).into();
    let quorum_port = ensemble.quorum_ports[leader];

    let client = Client::connect(leader_client_addr, Duration::from_secs(10)).expect("connect to the Apache leader");
    for (path, data) in [("/a", &b"1"[..]), ("/b", b"22"), ("/c", b"333")] {
        client.create(path, data, &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    }
    let a_zxid = czxid(&client, "/a");
    let last = czxid(&client, "/c");
    assert_eq!(epoch_of(last), epoch_of(a_zxid));
    let history = ApacheLeaderHistory { last };
    let policy = SyncPolicy::with_snapshot_bytes(0);

    // --- 1. DIFF from inside the window, then broadcast.
    let mut wire = Wire::connect(quorum_port);
    let new_epoch = discover(&mut wire, 0, 0, a_zxid);
    assert_eq!(new_epoch, epoch_of(last), "a fresh ensemble's leader runs epoch 1");
    let plan = plan_sync(a_zxid, &history, &policy);
    let SyncPlan::Diff { from, through, packet_zxid, .. } = plan.plan else { panic!("plan {plan:?}") };
    assert_eq!(wire.next(), ToLearner::Diff { zxid: packet_zxid }, "Apache's DIFF matches plan_sync");
    let mut proposed = Vec::new();
    let mut committed = Vec::new();
    let new_leader_zxid = loop {
        match wire.next() {
            ToLearner::Proposal { zxid, txn } => {
                assert_eq!(txn_header(&txn).0, zxid, "TxnHeader zxid = PROPOSAL zxid");
                proposed.push(zxid);
            }
            ToLearner::Commit { zxid } => committed.push(zxid),
            ToLearner::NewLeader { zxid, config } => {
                let config = String::from_utf8_lossy(config.as_deref().unwrap_or_default()).into_owned();
                assert!(config.contains("server.3=127.0.0.1"), "NEWLEADER carries the config: {config}");
                break zxid;
            }
            other => panic!("unexpected during DIFF sync: {other:?}"),
        }
    };
    let expected: Vec<i64> = (counter_of(from) + 1..=counter_of(through)).map(|c| make_zxid(new_epoch, c)).collect();
    assert_eq!(expected.len(), 2, "/b and /c come after /a");
    assert_eq!(proposed, expected, "the proposals after the learner's zxid");
    assert_eq!(committed, expected, "each proposal followed by its commit");
    assert_eq!(new_leader_zxid, make_zxid(new_epoch, 0));
    wire.send(ToLeader::Ack { zxid: new_leader_zxid });
    loop {
        match wire.next() {
            ToLearner::UpToDate => break,
            ToLearner::Ping { zxid } => wire.send(ToLeader::Ping { zxid, sessions: vec![] }),
            other => panic!("expected UPTODATE, got {other:?}"),
        }
    }
    wire.send(ToLeader::Ack { zxid: make_zxid(new_epoch, 0) });

    // Stay a follower for a while: the leader pings every tick / 2.
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        match wire.next() {
            ToLearner::Ping { zxid } => {
                pings += 1;
                wire.send(ToLeader::Ping { zxid, sessions: vec![] });
            }
            other => panic!("expected only PINGs while idle, got {other:?}"),
        }
    }
    assert!(pings >= 3, "only {pings} pings in 2.5 s with tickTime {TICK_MS} ms");

    // A new write reaches us as PROPOSAL then COMMIT.
    client.create("/d", b"4444", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let d_zxid = czxid(&client, "/d");
    assert_eq!(d_zxid, make_zxid(new_epoch, counter_of(last) + 1));
    let mut got_proposal = false;
    loop {
        match wire.next() {
            ToLearner::Ping { zxid } => wire.send(ToLeader::Ping { zxid, sessions: vec![] }),
            ToLearner::Proposal { zxid, txn } => {
                assert_eq!(zxid, d_zxid);
                assert_eq!(txn_header(&txn), (d_zxid, TXN_TYPE_CREATE));
                wire.send(ToLeader::Ack { zxid });
                got_proposal = true;
            }
            ToLearner::Commit { zxid } => {
                assert!(got_proposal, "COMMIT before PROPOSAL");
                assert_eq!(zxid, d_zxid);
                break;
            }
            other => panic!("expected PROPOSAL/COMMIT for /d, got {other:?}"),
        }
    }
    drop(wire);
    let history = ApacheLeaderHistory { last: d_zxid };

    // --- 2. A learner ahead of the leader in the same epoch is truncated.
    let ahead = d_zxid + 5;
    let mut wire = Wire::connect(quorum_port);
    discover(&mut wire, new_epoch, ACKEPOCH_ALREADY_ACCEPTED, ahead);
    let SyncPlan::Trunc { to } = plan_sync(ahead, &history, &policy).plan else { panic!("plan_sync should TRUNC") };
    assert_eq!(wire.next(), ToLearner::Trunc { zxid: to });
    assert_eq!(to, d_zxid);
    drop(wire);

    // --- 3. A learner far behind (zxid 0) gets a snapshot.
    let mut wire = Wire::connect(quorum_port);
    discover(&mut wire, new_epoch, ACKEPOCH_ALREADY_ACCEPTED, 0);
    let SyncPlan::Snap { zxid: snap_zxid } = plan_sync(0, &history, &policy).plan else {
        panic!("plan_sync should SNAP")
    };
    assert_eq!(wire.next(), ToLearner::Snap { zxid: snap_zxid });
    let summary = wire.skip_snapshot();
    // "", /zookeeper, /zookeeper/quota, /zookeeper/config, /a, /b, /c, /d.
    assert!(summary.nodes >= 8, "snapshot nodes: {summary:?}");
    assert!(summary.sessions >= 1, "our client's session is in the snapshot: {summary:?}");
    match wire.next() {
        ToLearner::NewLeader { zxid, .. } => assert_eq!(zxid, make_zxid(new_epoch, 0)),
        other => panic!("expected NEWLEADER after the snapshot, got {other:?}"),
    }
    drop(wire);
    drop(client);
    drop(ensemble);
    eprintln!("learner interop finished in {:?}", started.elapsed());
}
