//! zoocore's Fast Leader Election against real Apache ZooKeeper 3.8 servers
//! (Debian's /usr/share/java/zookeeper.jar) on the election port: a 3-server
//! ensemble on 127.0.0.1 where zoocore's `Election`, run by a small blocking
//! driver in this file (std::net + threads), is one server and Apache
//! QuorumPeerMain processes are the others.
//!
//! Checked: Apache's preamble and notifications decode with our codec and
//! re-encode to the same bytes, its config text equals ours, Apache logs our
//! notifications as parsed (no errors about them); with everyone at zxid 0
//! the Apache servers vote for zoocore as sid 3 and it decides Leading; as
//! sid 1 joining a running Apache pair it decides Following 3.

#[path = "common/apache.rs"]
mod apache;
#[path = "common/ports.rs"]
mod ports;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use zoocore::zab::election::{Action, Decision, Election, ElectionConfig, ProposalBasis, Role};
use zoocore::zab::election_wire::{
    accepted_connection_verdict, decode_preamble, dialled_connection_verdict, encode_preamble, quorum_config_text,
    split_frame, ConnectionVerdict, HostPort, LearnerType, Notification, PeerState, Preamble, PreambleVersion,
    QuorumServerSpec,
};

use apache::ServerProcess;

const DIAL_TIMEOUT: Duration = Duration::from_millis(300);
const DECISION_TIMEOUT: Duration = Duration::from_secs(20);

/// Below the ephemeral range (see tests/common/ports.rs).
fn free_port() -> u16 {
    ports::unused_port()
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

// ---------------------------------------------------------------------------
// The ensemble layout and Apache processes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct ServerPorts {
    quorum: u16,
    election: u16,
    client: u16,
}

struct Ensemble {
    ports: BTreeMap<i64, ServerPorts>,
    root: PathBuf,
}

impl Ensemble {
    fn new(name: &str) -> Ensemble {
        let root = std::env::temp_dir().join(format!("zoocore-election-interop-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create test dir");
        let ports = (1..=3)
            .map(|sid| (sid, ServerPorts { quorum: free_port(), election: free_port(), client: free_port() }))
            .collect();
        Ensemble { ports, root }
    }

    fn server_specs(&self) -> Vec<QuorumServerSpec> {
        self.ports
            .iter()
            .map(|(sid, p)| QuorumServerSpec {
                sid: *sid,
                addresses: vec![("127.0.0.1".to_owned(), p.quorum, p.election)],
                learner_type: LearnerType::Participant,
                client_address: None,
            })
            .collect()
    }

    fn election_addr(&self, sid: i64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[&sid].election))
    }

    fn log_path(&self, sid: i64) -> PathBuf {
        self.root.join(format!("server{sid}.log"))
    }

    fn start_apache(&self, sid: i64) -> ServerProcess {
        let dir = self.root.join(format!("server{sid}"));
        apache::write_myid(&dir, sid as u64);
        let mut cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n",
            dir.display(),
            self.ports[&sid].client
        );
        for (other, p) in &self.ports {
            cfg.push_str(&format!("server.{other}=127.0.0.1:{}:{}\n", p.quorum, p.election));
        }
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("zoo.cfg");
        let jvm_args = [apache::LOG_INFO];
        ServerProcess::apache(apache::QUORUM_MAIN, &cfg_path, &jvm_args, None, &self.log_path(sid))
    }

    fn log(&self, sid: i64) -> String {
        std::fs::read_to_string(self.log_path(sid)).unwrap_or_default()
    }

    fn wait_for_log(&self, sid: i64, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log(sid).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Things Apache logs when it cannot use what a peer sent it.
    /// `require_parsed`: the Apache server was LOOKING while we sent, so it
    /// must have logged one of our notifications. A server that had
    /// already settled answers a LOOKING peer without logging it (Apache's
    /// WorkerReceiver logs notifications only while looking), so for one
    /// joining a running ensemble only the absence of complaints is checked.
    fn assert_no_complaints_about(&self, apache_sid: i64, our_sid: i64, require_parsed: bool) {
        let log = self.log(apache_sid);
        for complaint in [
            "Initial message parsing error",
            "Skipping the processing of a partial / malformed response",
            "Something went wrong while processing config",
            "Invalid configLength",
            "Got a short response",
            "Backward compatibility mode",
            "restarting leader election",
            "Received packet with invalid packet",
        ] {
            assert!(!log.contains(complaint), "server {apache_sid} logged {complaint:?}:\n{}", tail(&log));
        }
        // It parsed at least one of our notifications.
        let parsed = format!("n.sid:{our_sid}, n.state:LOOKING");
        assert!(
            !require_parsed || log.contains(&parsed),
            "server {apache_sid} never logged a notification from {our_sid}:\n{}",
            tail(&log)
        );
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for sid in self.ports.keys() {
                eprintln!("--- server {sid} log ---\n{}", tail(&self.log(*sid)));
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

// ---------------------------------------------------------------------------
// The blocking driver
// ---------------------------------------------------------------------------

enum Event {
    /// A connection we keep (accepted from a higher sid).
    Connected {
        sid: i64,
        stream: TcpStream,
        preamble: Preamble,
    },
    /// A lower sid dialled us: dial it back.
    DialBack {
        sid: i64,
        preamble: Preamble,
    },
    Frame {
        sid: i64,
        payload: Bytes,
    },
}

/// What the driver saw, for the assertions.
#[derive(Default)]
struct Observed {
    preambles: Vec<Preamble>,
    /// Every notification received, with its raw payload.
    notifications: Vec<(i64, Notification, Bytes)>,
    decision: Option<Decision>,
}

struct Driver {
    my_sid: i64,
    ensemble_election_addrs: BTreeMap<i64, SocketAddr>,
    my_election_addr: SocketAddr,
    connections: BTreeMap<i64, TcpStream>,
    /// The newest notification for each peer, sent again when a connection
    /// comes up (Apache keeps its last message per peer the same way).
    pending: BTreeMap<i64, Notification>,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    start: Instant,
    observed: Observed,
}

fn read_frames(sid: i64, mut stream: TcpStream, mut buf: Vec<u8>, events: Sender<Event>) {
    let mut chunk = [0u8; 4096];
    loop {
        while let Ok(Some((payload, used))) = split_frame(&buf) {
            let payload = Bytes::copy_from_slice(payload);
            buf.drain(..used);
            if events.send(Event::Frame { sid, payload }).is_err() {
                return;
            }
        }
        if split_frame(&buf).is_err() {
            return; // a bad length: drop the connection, as Apache does
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn serve_accepted(my_sid: i64, mut stream: TcpStream, events: Sender<Event>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (preamble, used) = loop {
        match decode_preamble(&buf) {
            Ok(Some(done)) => break done,
            Ok(None) => {}
            Err(_) => return,
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    buf.drain(..used);
    let sid = preamble.sid;
    match accepted_connection_verdict(my_sid, sid) {
        ConnectionVerdict::Keep => {
            let Ok(writer) = stream.try_clone() else { return };
            if events.send(Event::Connected { sid, stream: writer, preamble }).is_ok() {
                read_frames(sid, stream, buf, events);
            }
        }
        ConnectionVerdict::DropAndDialBack => {
            drop(stream);
            let _ = events.send(Event::DialBack { sid, preamble });
        }
        ConnectionVerdict::Drop => {}
    }
}

impl Driver {
    fn new(my_sid: i64, ensemble: &Ensemble) -> Driver {
        let my_election_addr = ensemble.election_addr(my_sid);
        let listener = TcpListener::bind(my_election_addr).expect("bind our election port");
        let (events_tx, events) = mpsc::channel();
        let accept_tx = events_tx.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = accept_tx.clone();
                std::thread::spawn(move || serve_accepted(my_sid, stream, tx));
            }
        });
        Driver {
            my_sid,
            ensemble_election_addrs: (1..=3).filter(|s| *s != my_sid).map(|s| (s, ensemble.election_addr(s))).collect(),
            my_election_addr,
            connections: BTreeMap::new(),
            pending: BTreeMap::new(),
            events_tx,
            events,
            start: Instant::now(),
            observed: Observed::default(),
        }
    }

    fn dial(&mut self, sid: i64) {
        let Some(addr) = self.ensemble_election_addrs.get(&sid).copied() else { return };
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, DIAL_TIMEOUT) else { return };
        let mut out = BytesMut::new();
        let preamble = Preamble {
            version: PreambleVersion::V1,
            sid: self.my_sid,
            election_addresses: vec![HostPort::new("127.0.0.1", self.my_election_addr.port())],
        };
        encode_preamble(&preamble, &mut out).expect("our preamble encodes");
        if stream.write_all(&out).is_err() {
            return;
        }
        match dialled_connection_verdict(self.my_sid, sid) {
            ConnectionVerdict::Keep => {
                let Ok(reader) = stream.try_clone() else { return };
                let tx = self.events_tx.clone();
                std::thread::spawn(move || read_frames(sid, reader, Vec::new(), tx));
                self.connections.insert(sid, stream);
                self.flush(sid);
            }
            // The higher sid dials us back; our message waits in `pending`.
            ConnectionVerdict::Drop | ConnectionVerdict::DropAndDialBack => {}
        }
    }

    fn flush(&mut self, sid: i64) {
        let (Some(n), Some(stream)) = (self.pending.get(&sid), self.connections.get_mut(&sid)) else { return };
        let mut out = BytesMut::new();
        n.encode_frame(&mut out).expect("our notification encodes");
        if stream.write_all(&out).is_err() {
            self.connections.remove(&sid);
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, notification } => {
                    self.pending.insert(to, notification);
                    if self.connections.contains_key(&to) {
                        self.flush(to);
                    } else {
                        self.dial(to);
                    }
                }
                Action::Decided(decision) => self.observed.decision = Some(decision),
            }
        }
    }

    /// Runs `election` until it decides (or `timeout`), then keeps answering
    /// for `linger` so the Apache servers can act on what they heard.
    fn run(&mut self, election: &mut Election, actions: Vec<Action>, timeout: Duration) {
        self.apply(actions);
        let deadline = self.start.elapsed() + timeout;
        while self.observed.decision.is_none() && self.start.elapsed() < deadline {
            self.step(election);
        }
    }

    fn step(&mut self, election: &mut Election) {
        let now = now_ms(self.start);
        let wait_ms = election.next_deadline_ms().map_or(100, |d| d.saturating_sub(now).min(100));
        match self.events.recv_timeout(Duration::from_millis(wait_ms)) {
            Ok(Event::Connected { sid, stream, preamble }) => {
                self.observed.preambles.push(preamble);
                self.connections.insert(sid, stream);
                self.flush(sid);
            }
            Ok(Event::DialBack { sid, preamble }) => {
                self.observed.preambles.push(preamble);
                self.connections.remove(&sid);
                self.dial(sid);
            }
            Ok(Event::Frame { sid, payload }) => {
                let n = Notification::decode(payload.clone())
                    .unwrap_or_else(|e| panic!("notification from {sid} does not decode: {e}: {payload:02x?}"));
                self.observed.notifications.push((sid, n.clone(), payload));
                let actions = election.on_notification(sid, &n, now_ms(self.start));
                self.apply(actions);
            }
            Err(RecvTimeoutError::Timeout) => {
                let actions = election.on_tick(now_ms(self.start));
                self.apply(actions);
            }
            Err(RecvTimeoutError::Disconnected) => unreachable!("the driver holds a sender"),
        }
    }

    fn linger(&mut self, election: &mut Election, ms: u64) {
        let until = self.start.elapsed() + Duration::from_millis(ms);
        while self.start.elapsed() < until {
            self.step(election);
        }
    }
}

fn start_election(my_sid: i64, ensemble: &Ensemble, now_ms: u64) -> (Election, Vec<Action>) {
    let config = ElectionConfig {
        my_sid,
        voters: (1..=3).map(|sid| (sid, 1)).collect(),
        my_learner_type: LearnerType::Participant,
        quorum_config_text: Bytes::from(quorum_config_text(&ensemble.server_specs(), 0)),
    };
    let basis = ProposalBasis { last_logged_zxid: 0, current_epoch: 0, held_vote: None };
    Election::start(config, basis, 0, now_ms)
}

/// Every notification decodes, re-encodes to the bytes Apache sent, and
/// carries exactly the config text we send for the same zoo.cfg, except that
/// a settled server may already advertise its first leader's NEWLEADER zxid
/// (`settled_version`) as the version where a fresh one says 0.
fn assert_wire_agrees(observed: &Observed, ensemble: &Ensemble, settled_version: Option<u64>) {
    assert!(!observed.notifications.is_empty(), "no notification from Apache");
    let our_config = quorum_config_text(&ensemble.server_specs(), 0);
    for (sid, n, raw) in &observed.notifications {
        let mut again = BytesMut::new();
        n.encode(&mut again).expect("re-encode");
        assert_eq!(&again[..], &raw[..], "notification from {sid} re-encodes differently");
        assert_eq!(n.version, 2, "from {sid}");
        let config = n.config.as_deref().unwrap_or_default();
        let config = std::str::from_utf8(config).expect("config text is UTF-8");
        let settled = settled_version.map(|v| quorum_config_text(&ensemble.server_specs(), v));
        assert!(
            config == our_config || (n.state != PeerState::Looking && Some(config) == settled.as_deref()),
            "config text from {sid}: {config:?}, ours: {our_config:?}"
        );
    }
    for p in &observed.preambles {
        assert_eq!(p.version, PreambleVersion::V1);
        let expected = HostPort::new("127.0.0.1", ensemble.ports[&p.sid].election);
        assert_eq!(p.election_addresses, vec![expected], "preamble of {}", p.sid);
    }
}

#[test]
fn zoocore_elects_and_follows_with_apache_zookeeper() {
    if !apache::apache_available("the election interop test") {
        return;
    }

    // (b) zoocore is sid 3 of a fresh ensemble: the Apache servers vote for
    // it (highest sid, all at zxid 0) and it decides Leading.
    {
        let ensemble = Ensemble::new("lead");
        let mut driver = Driver::new(3, &ensemble);
        let (mut election, actions) = start_election(3, &ensemble, now_ms(driver.start));
        let _apache = [ensemble.start_apache(1), ensemble.start_apache(2)];
        driver.run(&mut election, actions, DECISION_TIMEOUT);
        let decision = driver.observed.decision.expect("zoocore decided");
        assert_eq!((decision.leader, decision.role), (3, Role::Leading));
        for sid in [1, 2] {
            // A quorum (us and one Apache server) may decide before the
            // other JVM is up: give it time to send its vote.
            let votes_for_us = |d: &Driver| {
                d.observed
                    .notifications
                    .iter()
                    .rev()
                    .find(|(from, _, _)| *from == sid)
                    .is_some_and(|(_, n, _)| n.leader == 3)
            };
            while !votes_for_us(&driver) && driver.start.elapsed() < DECISION_TIMEOUT * 2 {
                driver.linger(&mut election, 100);
            }
            let last_vote = driver.observed.notifications.iter().rev().find(|(from, _, _)| *from == sid);
            let Some((_, n, _)) = last_vote else { panic!("nothing from server {sid}") };
            assert_eq!(n.leader, 3, "server {sid}'s latest vote");
            let following = "Peer state changed: following";
            while !ensemble.log(sid).contains(following) && driver.start.elapsed() < DECISION_TIMEOUT * 2 {
                driver.linger(&mut election, 100);
            }
            assert!(ensemble.log(sid).contains(following), "server {sid} did not follow 3");
            ensemble.assert_no_complaints_about(sid, 3, true);
        }
        assert_wire_agrees(&driver.observed, &ensemble, None);
    }

    // (c) zoocore is sid 1 and joins Apache servers 2 and 3, which elect 3:
    // it decides Following 3.
    {
        let ensemble = Ensemble::new("follow");
        let _apache = [ensemble.start_apache(2), ensemble.start_apache(3)];
        assert!(
            ensemble.wait_for_log(3, "Peer state changed: leading", DECISION_TIMEOUT),
            "Apache 2 and 3 did not elect 3"
        );
        let mut driver = Driver::new(1, &ensemble);
        let (mut election, actions) = start_election(1, &ensemble, now_ms(driver.start));
        driver.run(&mut election, actions, DECISION_TIMEOUT);
        let decision = driver.observed.decision.expect("zoocore decided");
        assert_eq!((decision.leader, decision.role), (3, Role::Following));
        driver.linger(&mut election, 300);
        for sid in [2, 3] {
            ensemble.assert_no_complaints_about(sid, 1, false);
        }
        let settled_answers =
            driver.observed.notifications.iter().filter(|(_, n, _)| n.state != PeerState::Looking).count();
        assert!(settled_answers > 0, "the running servers answered with their settled votes");
        // We have the lowest sid: every connection we keep was dialled by
        // 2 or 3 after they dropped ours, so both preambles were decoded.
        let mut dialled_us: Vec<i64> = driver.observed.preambles.iter().map(|p| p.sid).collect();
        dialled_us.sort();
        dialled_us.dedup();
        assert_eq!(dialled_us, [2, 3]);
        assert_wire_agrees(&driver.observed, &ensemble, Some(1 << 32));
    }
}
