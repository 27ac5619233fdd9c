//! The election port on glommio (`zoocore::server::election_net`): zoocore
//! servers, each on its own glommio executor thread, elect over real TCP on
//! 127.0.0.1; the connection rules are checked against a hand-driven peer;
//! and a zoocore server elects with Apache ZooKeeper 3.8 QuorumPeerMain
//! processes (Debian's /usr/share/java/zookeeper.jar), as sid 3 (it leads)
//! and as sid 1 joining a running Apache pair (it follows 3).
//!
//! Every executor thread is stopped and joined and every Java process killed
//! by PID by Drop guards, also when an assertion fails.

#[path = "common/apache.rs"]
mod apache;
#[path = "common/ports.rs"]
mod ports;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use zoocore::server::election_net::{answer_while_settled, elect, ElectionNet, ElectionPeers};
use zoocore::zab::election::{Decision, Election, ElectionConfig, ProposalBasis, Role, Sid, Vote};
use zoocore::zab::election_wire::{
    decode_preamble, encode_preamble, quorum_config_text, split_frame, HostPort, LearnerType, Notification, PeerState,
    Preamble, PreambleVersion, QuorumServerSpec,
};

/// glommio's minimum: the election port needs no registered buffers, and
/// many executors share the test process's locked-memory limit.
const TEST_IO_MEMORY_BYTES: usize = 64 << 10;
/// How often an executor thread looks at the test's command channel.
const COMMAND_POLL_MS: u64 = 10;
const DECISION_TIMEOUT: Duration = Duration::from_secs(10);
const APACHE_DECISION_TIMEOUT: Duration = Duration::from_secs(20);

/// Below the ephemeral range (see tests/common/ports.rs).
fn free_port() -> u16 {
    ports::unused_port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Election and quorum ports for sids `1..=n`.
fn layout(n: Sid) -> BTreeMap<Sid, (u16, u16)> {
    (1..=n).map(|sid| (sid, (free_port(), free_port()))).collect()
}

fn specs(ports: &BTreeMap<Sid, (u16, u16)>) -> Vec<QuorumServerSpec> {
    ports
        .iter()
        .map(|(sid, (quorum, election))| QuorumServerSpec {
            sid: *sid,
            addresses: vec![("127.0.0.1".to_owned(), *quorum, *election)],
            learner_type: LearnerType::Participant,
            client_address: None,
        })
        .collect()
}

fn peers_of(my_sid: Sid, ports: &BTreeMap<Sid, (u16, u16)>) -> ElectionPeers {
    ElectionPeers {
        my_sid,
        listen: loopback(ports[&my_sid].1),
        peers: ports.iter().filter(|(s, _)| **s != my_sid).map(|(s, (_, e))| (*s, loopback(*e))).collect(),
    }
}

fn config_of(my_sid: Sid, ports: &BTreeMap<Sid, (u16, u16)>) -> ElectionConfig {
    ElectionConfig {
        my_sid,
        voters: ports.keys().map(|sid| (*sid, 1)).collect(),
        my_learner_type: LearnerType::Participant,
        quorum_config_text: Bytes::from(quorum_config_text(&specs(ports), 0)),
    }
}

fn start_executor<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    name: &str,
    body: impl FnOnce() -> F + Send + 'static,
) -> ExecutorJoinHandle<T> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(body)
        .unwrap_or_else(|e| panic!("cannot start executor {name}: {e}"))
}

/// Resolves with the next command from the test thread (a dropped sender counts as `Stop`).
async fn next_command<C: From<Stop>>(commands: &Receiver<C>) -> C {
    loop {
        match commands.try_recv() {
            Ok(c) => return c,
            Err(TryRecvError::Disconnected) => return C::from(Stop),
            Err(TryRecvError::Empty) => glommio::timer::sleep(Duration::from_millis(COMMAND_POLL_MS)).await,
        }
    }
}

struct Stop;

// ---------------------------------------------------------------------------
// A zoocore server that only elects: ElectionNet + elect + answer_while_settled
// ---------------------------------------------------------------------------

enum ServerCommand {
    /// Look again: logical clock + 1, holding the last decision's vote.
    NewRound,
    Stop,
}

impl From<Stop> for ServerCommand {
    fn from(_: Stop) -> Self {
        ServerCommand::Stop
    }
}

/// One server on its own executor thread; stopped and joined when dropped.
struct ElectingServer {
    sid: Sid,
    commands: Sender<ServerCommand>,
    handle: Option<ExecutorJoinHandle<Result<(), String>>>,
}

impl ElectingServer {
    fn start(peers: ElectionPeers, config: ElectionConfig, decisions: Sender<(Sid, Decision)>) -> ElectingServer {
        let sid = peers.my_sid;
        let (commands, command_rx) = mpsc::channel();
        let handle = start_executor(&format!("election-{sid}"), move || async move {
            let net = ElectionNet::start(peers).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let now_ms = move || started.elapsed().as_millis() as u64;
            let (mut last_clock, mut held_vote) = (0, None);
            let outcome = loop {
                let basis = ProposalBasis { last_logged_zxid: 0, current_epoch: 0, held_vote };
                let (election, actions) = Election::start(config.clone(), basis, last_clock, now_ms());
                let elected =
                    futures_lite::future::or(async { Some(elect(&net, election, actions, &now_ms).await) }, async {
                        next_command(&command_rx).await;
                        None
                    })
                    .await;
                let Some(elected) = elected else { break Ok(()) };
                let (decision, mut election) = match elected {
                    Ok(done) => done,
                    Err(e) => break Err(e.to_string()),
                };
                let _ = decisions.send((sid, decision));
                last_clock = decision.vote.election_epoch;
                held_vote = election.settled().map(|s| s.held_vote());
                let command = std::cell::Cell::new(None);
                answer_while_settled(&net, &mut election, &now_ms, async {
                    command.set(Some(next_command(&command_rx).await));
                })
                .await;
                match command.take() {
                    Some(ServerCommand::NewRound) => continue,
                    Some(ServerCommand::Stop) | None => break Ok(()),
                }
            };
            net.shutdown();
            // Let the connection tasks see the shutdown and close their sockets.
            glommio::timer::sleep(Duration::from_millis(20)).await;
            outcome
        });
        ElectingServer { sid, commands, handle: Some(handle) }
    }

    fn new_round(&self) {
        let _ = self.commands.send(ServerCommand::NewRound);
    }

    /// Stops the executor and joins its thread.
    fn stop(&mut self) {
        let _ = self.commands.send(ServerCommand::Stop);
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("server {} failed: {e}", self.sid),
                Err(e) => panic!("server {} executor: {e:?}", self.sid),
            }
        }
    }
}

impl Drop for ElectingServer {
    fn drop(&mut self) {
        let _ = self.commands.send(ServerCommand::Stop);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Waits for a decision from each of `sids`.
fn wait_decisions(rx: &Receiver<(Sid, Decision)>, sids: &[Sid], timeout: Duration) -> BTreeMap<Sid, Decision> {
    let deadline = Instant::now() + timeout;
    let mut decided = BTreeMap::new();
    while !sids.iter().all(|s| decided.contains_key(s)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((sid, d)) => {
                decided.insert(sid, d);
            }
            Err(_) => panic!("only {decided:?} decided within {timeout:?}; waiting for {sids:?}"),
        }
    }
    decided
}

fn leader_and_roles(decided: &BTreeMap<Sid, Decision>) -> Vec<(Sid, Sid, Role)> {
    decided.iter().map(|(sid, d)| (*sid, d.leader, d.role)).collect()
}

#[test]
fn three_fresh_servers_elect_the_highest_sid_then_the_survivors_elect_two() {
    let ports = layout(3);
    let (tx, rx) = mpsc::channel();
    let mut servers: BTreeMap<Sid, ElectingServer> = (1..=3)
        .map(|sid| (sid, ElectingServer::start(peers_of(sid, &ports), config_of(sid, &ports), tx.clone())))
        .collect();

    let first = wait_decisions(&rx, &[1, 2, 3], DECISION_TIMEOUT);
    assert_eq!(leader_and_roles(&first), [(1, 3, Role::Following), (2, 3, Role::Following), (3, 3, Role::Leading)]);
    for d in first.values() {
        assert_eq!(d.vote, Vote { leader: 3, zxid: 0, election_epoch: 1, peer_epoch: 0 });
    }

    // Server 3 goes away; 1 and 2 look again and elect 2 in round 2.
    if let Some(mut three) = servers.remove(&3) {
        three.stop();
    }
    for sid in [1, 2] {
        servers[&sid].new_round();
    }
    let second = wait_decisions(&rx, &[1, 2], DECISION_TIMEOUT);
    assert_eq!(leader_and_roles(&second), [(1, 2, Role::Following), (2, 2, Role::Leading)]);
    for d in second.values() {
        assert_eq!(d.vote.election_epoch, 2, "the logical clock moved on by one");
    }
    for server in servers.values_mut() {
        server.stop();
    }
}

#[test]
fn five_servers_with_two_never_started_decide() {
    // 4 and 5 have addresses nobody listens on: dials to them fail and back off.
    let ports = layout(5);
    let (tx, rx) = mpsc::channel();
    let mut servers: Vec<ElectingServer> =
        (1..=3).map(|sid| ElectingServer::start(peers_of(sid, &ports), config_of(sid, &ports), tx.clone())).collect();
    let decided = wait_decisions(&rx, &[1, 2, 3], DECISION_TIMEOUT);
    assert_eq!(leader_and_roles(&decided), [(1, 3, Role::Following), (2, 3, Role::Following), (3, 3, Role::Leading)]);
    for server in &mut servers {
        server.stop();
    }
}

// ---------------------------------------------------------------------------
// One ElectionNet driven by hand, against a peer written with std::net
// ---------------------------------------------------------------------------

enum NetCommand {
    Send(Sid, Notification),
    Stop,
}

impl From<Stop> for NetCommand {
    fn from(_: Stop) -> Self {
        NetCommand::Stop
    }
}

/// An ElectionNet on its own executor: the test sends through `commands`
/// and sees what it receives on `received`.
struct NetOnThread {
    commands: Sender<NetCommand>,
    received: Receiver<(Sid, Notification)>,
    handle: Option<ExecutorJoinHandle<Result<(), String>>>,
}

impl NetOnThread {
    fn start(peers: ElectionPeers) -> NetOnThread {
        let (commands, command_rx) = mpsc::channel();
        let (received_tx, received) = mpsc::channel();
        let handle = start_executor(&format!("net-{}", peers.my_sid), move || async move {
            let net = ElectionNet::start(peers).map_err(|e| e.to_string())?;
            let forwarder = net.clone();
            glommio::spawn_local(async move {
                while let Ok(message) = forwarder.recv().await {
                    if received_tx.send(message).is_err() {
                        break;
                    }
                }
            })
            .detach();
            while let NetCommand::Send(to, n) = next_command(&command_rx).await {
                net.send(to, n);
            }
            net.shutdown();
            glommio::timer::sleep(Duration::from_millis(20)).await;
            Ok(())
        });
        NetOnThread { commands, received, handle: Some(handle) }
    }

    fn send(&self, to: Sid, n: Notification) {
        let _ = self.commands.send(NetCommand::Send(to, n));
    }
}

impl Drop for NetOnThread {
    fn drop(&mut self) {
        let _ = self.commands.send(NetCommand::Stop);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn notification(leader: Sid, election_epoch: i64) -> Notification {
    Notification {
        state: PeerState::Looking,
        leader,
        zxid: 0,
        election_epoch,
        peer_epoch: 0,
        version: 2,
        config: Some(Bytes::from_static(b"version=0")),
    }
}

fn preamble_bytes(sid: Sid, election_port: u16) -> BytesMut {
    let mut out = BytesMut::new();
    let p = Preamble {
        version: PreambleVersion::V1,
        sid,
        election_addresses: vec![HostPort::new("127.0.0.1", election_port)],
    };
    encode_preamble(&p, &mut out).expect("preamble encodes");
    out
}

fn frame_bytes(n: &Notification) -> BytesMut {
    let mut out = BytesMut::new();
    n.encode_frame(&mut out).expect("notification encodes");
    out
}

/// Reads from `stream` until `parse` finds something in what arrived.
fn read_until<T>(stream: &mut TcpStream, buf: &mut Vec<u8>, mut parse: impl FnMut(&mut Vec<u8>) -> Option<T>) -> T {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(found) = parse(buf) {
            return found;
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!("connection closed; had {buf:02x?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read: {e}; had {buf:02x?}"),
        }
    }
}

fn read_preamble(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Preamble {
    read_until(stream, buf, |buf| {
        let (p, used) = decode_preamble(buf).expect("a valid preamble")?;
        buf.drain(..used);
        Some(p)
    })
}

fn read_notification(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Notification {
    read_until(stream, buf, |buf| {
        let (payload, used) = split_frame(buf).expect("a valid frame")?;
        let n = Notification::decode(Bytes::copy_from_slice(payload)).expect("a notification");
        buf.drain(..used);
        Some(n)
    })
}

/// True once the other side has closed `stream` (within 5 s).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut chunk = [0u8; 256];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// The next connection to `listener`, within 5 s.
fn accept_within(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking listener");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no connection to {:?}: {e}", listener.local_addr()),
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("connect {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn bad_input_drops_only_that_connection() {
    let our_port = free_port();
    let peer_port = free_port();
    let net = NetOnThread::start(ElectionPeers {
        my_sid: 1,
        listen: loopback(our_port),
        peers: BTreeMap::from([(2, loopback(peer_port))]),
    });

    // Garbage instead of a preamble.
    let mut garbage = connect(loopback(our_port));
    garbage.write_all(&[0xff; 24]).expect("write");
    assert!(closed_by_peer(&mut garbage), "a bad preamble closes the connection");

    // A frame length beyond the limit after a good preamble (2 > 1: kept).
    let mut oversize = connect(loopback(our_port));
    oversize.write_all(&preamble_bytes(2, peer_port)).expect("write");
    oversize.write_all(&[0x7f, 0xff, 0xff, 0xff]).expect("write");
    assert!(closed_by_peer(&mut oversize), "an oversize frame closes the connection");

    // A well-framed payload that is no notification (unknown state 9).
    let mut bad_state = connect(loopback(our_port));
    bad_state.write_all(&preamble_bytes(2, peer_port)).expect("write");
    let mut frame = frame_bytes(&notification(2, 1));
    frame[7] = 9;
    bad_state.write_all(&frame).expect("write");
    assert!(closed_by_peer(&mut bad_state), "a malformed notification closes the connection");

    // The server is fine: a good connection is heard.
    let mut good = connect(loopback(our_port));
    good.write_all(&preamble_bytes(2, peer_port)).expect("write");
    good.write_all(&frame_bytes(&notification(2, 7))).expect("write");
    let (from, n) = net.received.recv_timeout(Duration::from_secs(5)).expect("the good notification arrives");
    assert_eq!((from, n), (2, notification(2, 7)));
}

#[test]
fn newest_message_only_dial_back_and_resend_on_a_new_connection() {
    let our_port = free_port();
    let peer_port = free_port();
    let net = NetOnThread::start(ElectionPeers {
        my_sid: 3,
        listen: loopback(our_port),
        peers: BTreeMap::from([(1, loopback(peer_port))]),
    });
    // Peer 1 is not up: three votes queue, only the newest is kept.
    for round in 1..=3 {
        net.send(1, notification(3, round));
    }
    std::thread::sleep(Duration::from_millis(300));
    let listener = TcpListener::bind(loopback(peer_port)).expect("bind the peer's election port");

    // We have the higher sid, so we dial, announce ourselves, and keep it.
    let mut dialled = accept_within(&listener);
    let mut buf = Vec::new();
    let preamble = read_preamble(&mut dialled, &mut buf);
    assert_eq!(
        preamble,
        Preamble {
            version: PreambleVersion::V1,
            sid: 3,
            election_addresses: vec![HostPort::new("127.0.0.1", our_port)]
        }
    );
    assert_eq!(read_notification(&mut dialled, &mut buf), notification(3, 3), "only the newest waited");
    dialled.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut extra = [0u8; 64];
    assert!(
        matches!(dialled.read(&mut extra), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing else was sent"
    );

    // Peer 1 (lower sid) dials 3: 3 closes it and dials back; the new
    // connection replaces the old and re-sends the last notification.
    let mut lower = connect(loopback(our_port));
    lower.write_all(&preamble_bytes(1, peer_port)).expect("write");
    assert!(closed_by_peer(&mut lower), "the higher sid drops a lower sid's connection");
    let mut dialled_back = accept_within(&listener);
    let mut buf = Vec::new();
    assert_eq!(read_preamble(&mut dialled_back, &mut buf).sid, 3);
    assert_eq!(read_notification(&mut dialled_back, &mut buf), notification(3, 3), "the last one is sent again");
    assert!(closed_by_peer(&mut dialled), "one connection per pair: the older one is closed");

    // What peer 1 sends arrives tagged with its sid.
    dialled_back.write_all(&frame_bytes(&notification(1, 4))).expect("write");
    let (from, n) = net.received.recv_timeout(Duration::from_secs(5)).expect("delivered");
    assert_eq!((from, n.election_epoch), (1, 4));
}

#[test]
fn a_busy_election_port_is_a_clear_start_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let handle = start_executor("net-busy", move || async move {
        ElectionNet::start(ElectionPeers { my_sid: 1, listen: addr, peers: BTreeMap::new() })
            .err()
            .map(|e| e.to_string())
    });
    let error = handle.join().expect("executor").expect("binding a taken port fails");
    assert!(error.contains(&addr.to_string()), "{error}");
}

// ---------------------------------------------------------------------------
// With Apache ZooKeeper 3.8
// ---------------------------------------------------------------------------

/// Apache servers of a 3-server ensemble; each killed by PID when dropped.
struct ApacheEnsemble {
    ports: BTreeMap<Sid, (u16, u16)>,
    root: PathBuf,
    children: Vec<apache::ServerProcess>,
}

impl ApacheEnsemble {
    fn new(name: &str) -> ApacheEnsemble {
        let root = std::env::temp_dir().join(format!("zoocore-election-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create test dir");
        ApacheEnsemble { ports: layout(3), root, children: Vec::new() }
    }

    fn log_path(&self, sid: Sid) -> PathBuf {
        self.root.join(format!("server{sid}.log"))
    }

    fn log(&self, sid: Sid) -> String {
        std::fs::read_to_string(self.log_path(sid)).unwrap_or_default()
    }

    fn start(&mut self, sid: Sid) {
        let dir = self.root.join(format!("server{sid}"));
        apache::write_myid(&dir, sid as u64);
        let mut cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n",
            dir.display(),
            free_port()
        );
        for (other, (quorum, election)) in &self.ports {
            cfg.push_str(&format!("server.{other}=127.0.0.1:{quorum}:{election}\n"));
        }
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("zoo.cfg");
        let child = apache::ServerProcess::apache(
            apache::QUORUM_MAIN,
            &cfg_path,
            &[apache::LOG_INFO],
            None,
            &self.log_path(sid),
        );
        self.children.push(child);
    }

    fn wait_for_log(&self, sid: Sid, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log(sid).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for ApacheEnsemble {
    fn drop(&mut self) {
        for child in &mut self.children {
            child.kill9();
        }
        if std::thread::panicking() {
            for sid in self.ports.keys() {
                let log = self.log(*sid);
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("--- server {sid} log ---\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn zoocore_leads_and_follows_apache_zookeeper_over_election_net() {
    if !apache::apache_available("the election interop test") {
        return;
    }
    // zoocore is sid 3 of a fresh ensemble: Apache 1 and 2 vote for it.
    {
        let mut apache = ApacheEnsemble::new("lead");
        let (tx, rx) = mpsc::channel();
        let mut zoocore = ElectingServer::start(peers_of(3, &apache.ports), config_of(3, &apache.ports), tx);
        apache.start(1);
        apache.start(2);
        let decided = wait_decisions(&rx, &[3], APACHE_DECISION_TIMEOUT);
        assert_eq!((decided[&3].leader, decided[&3].role), (3, Role::Leading));
        for sid in [1, 2] {
            assert!(
                apache.wait_for_log(sid, "Peer state changed: following", APACHE_DECISION_TIMEOUT),
                "Apache server {sid} did not follow"
            );
            assert!(
                apache.wait_for_log(sid, &format!("connecting to /127.0.0.1:{}", apache.ports[&3].0), DECISION_TIMEOUT),
                "Apache server {sid} did not try zoocore's quorum port as its leader's"
            );
            let log = apache.log(sid);
            assert!(log.contains("n.sid:3, n.state:LOOKING"), "server {sid} parsed zoocore's notifications");
            assert!(!log.contains("malformed"), "server {sid} complained about our messages");
        }
        zoocore.stop();
    }

    // zoocore is sid 1 and joins Apache 2 and 3, which have elected 3.
    {
        let mut apache = ApacheEnsemble::new("follow");
        apache.start(2);
        apache.start(3);
        assert!(
            apache.wait_for_log(3, "Peer state changed: leading", APACHE_DECISION_TIMEOUT),
            "Apache 2 and 3 did not elect 3"
        );
        let (tx, rx) = mpsc::channel();
        let mut zoocore = ElectingServer::start(peers_of(1, &apache.ports), config_of(1, &apache.ports), tx);
        let decided = wait_decisions(&rx, &[1], APACHE_DECISION_TIMEOUT);
        assert_eq!((decided[&1].leader, decided[&1].role), (3, Role::Following));
        // The decision above came from their answers; at least one of them
        // logged our notification (a peer whose dial-back to us is still in
        // its retry may not have yet, so both are not required).
        let deadline = Instant::now() + Duration::from_secs(5);
        let parsed = loop {
            let who: Vec<i64> =
                [2, 3].into_iter().filter(|sid| apache.log(*sid).contains("n.sid:1, n.state:LOOKING")).collect();
            if !who.is_empty() || Instant::now() > deadline {
                break who;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!parsed.is_empty(), "an Apache server parsed zoocore's notifications");
        zoocore.stop();
    }
}
