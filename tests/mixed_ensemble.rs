//! Mixed ensembles: zoocore and Apache ZooKeeper 3.8 servers in one
//! ensemble on loopback, from the same zoo.cfg text (each member its own
//! dataDir + myid), every process killed by PID when the test ends.
//!
//! Scenarios: a zoocore leader with Apache followers, an Apache leader
//! with a zoocore follower (forwarded writes, a zoocore session's
//! ephemeral seen on Apache), two zoocore + one Apache, catch-up by SNAP
//! and DIFF in each direction, kill -9 of the leader in each direction,
//! idle sessions kept alive through a follower of the other kind.
//!
//! Needs Debian's /usr/share/java/zookeeper.jar: skipped with a message
//! when it is absent, unless CI is set (then it fails).

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::apache::{self, ServerProcess};
use common::{four_letter, wait_until};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

/// The top of the brief's range: syncLimit (5 ticks) must outlast the
/// multi-second fsyncs a shared CI disk sometimes has, since a zoocore
/// follower does not answer PINGs while its own fsync is in flight.
const TICK_MS: u32 = 500;
const SETTLE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(6);

/// Ensembles of JVMs on a shared 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static ENSEMBLE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when Apache is missing and the test may be skipped (outside CI).
fn skip_without_apache() -> bool {
    !apache::apache_available("mixed ensembles")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zoocore,
    Apache,
}

struct Member {
    sid: u64,
    kind: Kind,
    /// Extra `-D` properties for an Apache member's JVM.
    jvm_props: Vec<String>,
    client: SocketAddr,
    dir: PathBuf,
    process: Option<ServerProcess>,
}

struct Ensemble {
    members: Vec<Member>,
    dir: PathBuf,
}

/// Ports for (client, quorum, election) of every member, all distinct and
/// below the kernel's ephemeral range: a port from that range can be taken
/// at any moment as the local port of an outgoing connection, and a leader
/// binds its quorum port only once elected, long after the test picked it.
fn free_ports(n: usize) -> Vec<u16> {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768);
    let (low, high) = (10_000u32, u32::from(ephemeral_low).max(10_001) - 1);
    let mut state = (std::process::id() as u64) << 20 ^ ENSEMBLE_COUNTER.load(Ordering::Relaxed) as u64 ^ 0x51ED_2701;
    let mut held = Vec::new();
    while held.len() < n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let port = (low + ((state >> 33) as u32) % (high - low)) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        // Hold each until all are chosen, so no two coincide.
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push((port, l));
        }
    }
    held.into_iter().map(|(p, _)| p).collect()
}

impl Ensemble {
    /// `kinds[i]` is what server `i + 1` runs.
    fn start(kinds: &[Kind]) -> Ensemble {
        Ensemble::start_with(kinds, &[])
    }

    /// `jvm_props` go to every Apache member (e.g. `-Dzookeeper.x=y`).
    fn start_with(kinds: &[Kind], jvm_props: &[&str]) -> Ensemble {
        Ensemble::start_configured(kinds, jvm_props, "", Kind::Zoocore)
    }

    /// As `start_with`, with `extra_config` lines appended to every zoo.cfg;
    /// the members of kind `first` start (and settle) before the others.
    fn start_configured(kinds: &[Kind], jvm_props: &[&str], extra_config: &str, first: Kind) -> Ensemble {
        let n = kinds.len();
        let k = ENSEMBLE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zoocore-mixed-{}-{}", std::process::id(), k));
        let _ = std::fs::remove_dir_all(&dir);
        let ports = free_ports(3 * n);
        let servers: String =
            (0..n).map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[3 * i + 1], ports[3 * i + 2])).collect();
        let mut members = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let sid = i as u64 + 1;
            let mdir = dir.join(format!("s{sid}"));
            let data = mdir.join("data");
            std::fs::create_dir_all(&data).expect("member dir");
            std::fs::write(data.join("myid"), format!("{sid}\n")).expect("myid");
            // One text for both kinds: zoocore ignores admin.* and
            // Apache ignores zoocore.*.
            let cfg = format!(
                "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\nzoocore.shards=2\n{servers}{extra_config}",
                data.display(),
                ports[3 * i]
            );
            std::fs::write(mdir.join("zoo.cfg"), cfg).expect("zoo.cfg");
            let client: SocketAddr = format!("127.0.0.1:{}", ports[3 * i]).parse().expect("addr");
            let m = Member {
                sid,
                kind: *kind,
                jvm_props: jvm_props.iter().map(|p| p.to_string()).collect(),
                client,
                dir: mdir,
                process: None,
            };
            members.push(m);
        }
        // Usually zoocore first, each answering srvr before the Apache
        // servers start: a JVM starts faster than zoocore sometimes does,
        // and two Apache servers would elect one of themselves before the
        // zoocore member the scenario wants as leader is up. With Apache
        // first, the Apache servers (a quorum by themselves) elect their
        // highest sid before zoocore starts, else zoocore and the first JVM
        // up could elect each other first.
        let firsts: Vec<usize> = (0..n).filter(|i| members[*i].kind == first).collect();
        for &i in &firsts {
            members[i].spawn();
            if first == Kind::Zoocore {
                let m = &members[i];
                assert!(
                    wait_until(Duration::from_secs(20), || !m.srvr().is_empty()),
                    "zoocore server {} does not answer srvr\n{}",
                    m.sid,
                    m.log_tail(40)
                );
            }
        }
        let mut e = Ensemble { members, dir };
        if first == Kind::Apache {
            assert!(
                wait_until(SETTLE, || firsts.iter().any(|i| e.members[*i].mode() == "leader")),
                "the Apache servers elected a leader among themselves\n{}",
                e.logs()
            );
        }
        for m in e.members.iter_mut().filter(|m| m.kind != first) {
            m.spawn();
        }
        e
    }

    fn member(&self, sid: u64) -> &Member {
        &self.members[(sid - 1) as usize]
    }

    fn member_mut(&mut self, sid: u64) -> &mut Member {
        &mut self.members[(sid - 1) as usize]
    }

    fn logs(&self) -> String {
        self.members.iter().map(|m| apache::log_report(&format!("s{} ({:?})", m.sid, m.kind), &m.log())).collect()
    }

    /// Waits until one running member leads and every other running member
    /// follows; returns the leader's sid.
    fn wait_for_quorum(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let mut modes: Vec<(u64, String)> = Vec::new();
            for m in self.members.iter_mut() {
                if m.is_running() {
                    modes.push((m.sid, m.mode()));
                }
            }
            let leaders: Vec<u64> = modes.iter().filter(|(_, m)| m == "leader").map(|(s, _)| *s).collect();
            let all_settled = modes.iter().all(|(_, m)| m == "leader" || m == "follower");
            if leaders.len() == 1 && all_settled {
                return leaders[0];
            }
            if Instant::now() > deadline {
                panic!("no settled ensemble within {limit:?}: {modes:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Member {
    fn spawn(&mut self) {
        let cfg = self.dir.join("zoo.cfg");
        let cmd = match self.kind {
            Kind::Zoocore => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_zoocore"));
                c.arg("server").arg("--config").arg(&cfg).env("ZOOCORE_LOG", "info,zoocore::server=debug");
                c
            }
            Kind::Apache => {
                let mut args =
                    vec!["-XX:TieredStopAtLevel=1", "-Xshare:auto", apache::FOUR_LETTER_WORDS_ALL, apache::LOG_INFO];
                args.extend(self.jvm_props.iter().map(String::as_str));
                let mut c = apache::command(apache::QUORUM_MAIN, &cfg, &args);
                c.current_dir(&self.dir);
                c
            }
        };
        self.process = Some(ServerProcess::spawn(cmd, &self.dir.join("server.log")));
    }

    fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Sends `sig` (SIGSTOP, SIGCONT) by PID.
    fn signal(&self, sig: i32) {
        if let Some(p) = &self.process {
            p.signal(sig);
        }
    }

    fn srvr(&self) -> String {
        four_letter(self.client, "srvr").unwrap_or_default()
    }

    /// `Mode:` from srvr, or "" when it does not answer.
    fn mode(&self) -> String {
        self.srvr().lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").trim().to_owned()
    }

    fn zxid(&self) -> i64 {
        self.srvr()
            .lines()
            .find_map(|l| l.strip_prefix("Zxid: 0x"))
            .and_then(|h| i64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(-1)
    }

    fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill9();
        }
        if std::thread::panicking() {
            eprintln!("mixed ensemble logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Connects to a member, retrying while it is not serving (a member that
/// is electing or syncing closes client connections).
fn connect(m: &Member) -> Client {
    connect_with(m, SESSION)
}

/// `connect` asking for a session timeout of `timeout`.
fn connect_with(m: &Member, timeout: Duration) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(m.client, timeout) {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot connect to server {} ({:?}): {e}\n{}", m.sid, m.kind, m.log_tail(40)),
        }
    }
}

fn children(c: &Client, path: &str) -> BTreeSet<String> {
    c.sync(path).expect("sync");
    c.get_children(path, false).expect("children").into_iter().collect()
}

/// Runs `op`; if it takes longer than `SLOW_OP`, every member's `cons`
/// (each connection's queued / received / sent counts and last op) is
/// taken while it is still waiting, for the failure report: it tells a
/// request the server never read from one it read and forwarded.
fn watched_while_slow<T>(e: &Ensemble, op: impl FnOnce() -> T) -> (T, Option<String>) {
    const SLOW_OP: Duration = Duration::from_secs(2);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watchdog = scope.spawn(move || match done_rx.recv_timeout(SLOW_OP) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Some(
                e.members
                    .iter()
                    .map(|m| {
                        format!(
                            "--- s{} ({:?}) cons, {SLOW_OP:?} into the request ---\n{}",
                            m.sid,
                            m.kind,
                            four_letter(m.client, "cons").unwrap_or_default()
                        )
                    })
                    .collect::<String>(),
            ),
            _ => None,
        });
        let out = op();
        let _ = done_tx.send(());
        (out, watchdog.join().unwrap_or(None))
    })
}

/// Writes `per_server` children of `parent` through every member, then
/// checks each member has all of them (after sync), and the same zxid.
fn writes_everywhere_read_back_everywhere(e: &Ensemble, parent: &str, per_server: usize) {
    let started = Instant::now();
    let clients: Vec<Client> = e.members.iter().map(connect).collect();
    clients[0].create(parent, b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create parent");
    for (c, m) in clients.iter().zip(&e.members) {
        for k in 0..per_server {
            let path = format!("{parent}/s{}-{k}", m.sid);
            let (created, slow) =
                watched_while_slow(e, || c.create(&path, b"x", &open_acl_unsafe(), CreateMode::Persistent));
            created.unwrap_or_else(|err| {
                panic!(
                    "create {k} through server {} ({:?}, session 0x{:x}), {:?} after the first connect: {err}\n{}{}",
                    m.sid,
                    m.kind,
                    c.session_id(),
                    started.elapsed(),
                    slow.unwrap_or_default(),
                    e.logs()
                )
            });
        }
    }
    let expected: BTreeSet<String> =
        e.members.iter().flat_map(|m| (0..per_server).map(move |k| format!("s{}-{k}", m.sid))).collect();
    for (c, m) in clients.iter().zip(&e.members) {
        assert_eq!(children(c, parent), expected, "server {} ({:?}) has every write", m.sid, m.kind);
        let (data, _) = c.get_data(&format!("{parent}/s1-0"), false).expect("get");
        assert_eq!(data.as_deref(), Some(&b"x"[..]));
    }
    assert!(
        wait_until(Duration::from_secs(5), || e.members.iter().map(|m| m.zxid()).collect::<BTreeSet<_>>().len() == 1),
        "one zxid everywhere once quiet: {:?}",
        e.members.iter().map(|m| m.zxid()).collect::<Vec<_>>()
    );
}

/// Neither kind of server saw its tree differ from the leader's digest.
fn assert_no_divergence(e: &Ensemble) {
    for m in &e.members {
        let log = m.log();
        assert!(
            !log.contains("First digest mismatch") && !log.contains("diverged from the leader"),
            "server {} ({:?}) saw a digest mismatch\n{}",
            m.sid,
            m.kind,
            e.logs()
        );
    }
}

/// 1 zoocore + 2 Apache, zoocore with the highest sid: it is elected
/// leader (same zxid and epoch everywhere, highest sid wins) and the
/// Apache servers follow it.
#[test]
fn zoocore_leads_two_apache_followers() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut e = Ensemble::start(&[Kind::Apache, Kind::Apache, Kind::Zoocore]);
    let leader = e.wait_for_quorum(SETTLE);
    assert_eq!(leader, 3, "the zoocore server (highest sid) leads\n{}", e.logs());
    writes_everywhere_read_back_everywhere(&e, "/mixed", 10);
    assert_no_divergence(&e);
}

/// 2 Apache + 1 zoocore with the lowest sid: an Apache server leads and
/// zoocore follows it; zoocore forwards its clients' writes and sessions.
#[test]
fn zoocore_follows_an_apache_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut e = Ensemble::start(&[Kind::Zoocore, Kind::Apache, Kind::Apache]);
    let leader = e.wait_for_quorum(SETTLE);
    assert_ne!(leader, 1, "an Apache server leads\n{}", e.logs());
    writes_everywhere_read_back_everywhere(&e, "/mixed", 10);
    // A zoocore session's ephemeral is the ensemble's: Apache sees it with
    // the same owner, and it goes when the session closes.
    let ours = connect(e.member(1));
    ours.create("/eph", b"mine", &open_acl_unsafe(), CreateMode::Ephemeral).expect("ephemeral through zoocore");
    let session = ours.session_id();
    for sid in [2, 3] {
        let c = connect(e.member(sid));
        c.sync("/eph").expect("sync");
        let (data, stat) = c.get_data("/eph", false).expect("the ephemeral is on Apache");
        assert_eq!(data.as_deref(), Some(&b"mine"[..]));
        assert_eq!(stat.ephemeral_owner, session, "owned by the zoocore session");
    }
    ours.close().expect("close the zoocore session");
    let apache = connect(e.member(2));
    assert!(
        wait_until(Duration::from_secs(10), || apache.exists("/eph", false).ok().flatten().is_none()),
        "the ephemeral goes with its session\n{}",
        e.logs()
    );
    assert_no_divergence(&e);
}

/// A session that only pings stays alive on whichever member holds it:
/// the follower reports it in its PING replies and the leader of the other
/// kind touches it (a zoocore leader from an Apache follower's touch table,
/// an Apache leader from a zoocore follower's). Each member holds one idle
/// session with an ephemeral, for three session timeouts.
fn idle_sessions_survive(kinds: &[Kind], leader_kind: Kind) {
    const IDLE_SESSION: Duration = Duration::from_secs(2);
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut e = Ensemble::start(kinds);
    let leader = e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(leader).kind, leader_kind, "the expected kind leads\n{}", e.logs());
    let idle: Vec<(u64, Client)> = e
        .members
        .iter()
        .map(|m| {
            let c = connect_with(m, IDLE_SESSION);
            assert!(c.negotiated_timeout() <= IDLE_SESSION, "server {} negotiated {:?}", m.sid, c.negotiated_timeout());
            c.create(&format!("/idle-{}", m.sid), b"", &open_acl_unsafe(), CreateMode::Ephemeral).expect("ephemeral");
            (m.sid, c)
        })
        .collect();
    std::thread::sleep(IDLE_SESSION * 3);
    let reader = connect(e.member(leader));
    reader.sync("/").expect("sync");
    for (sid, c) in &idle {
        let kind = e.member(*sid).kind;
        let owner = reader.exists(&format!("/idle-{sid}"), false).expect("exists").map(|st| st.ephemeral_owner);
        assert_eq!(
            owner,
            Some(c.session_id()),
            "the idle session held by server {sid} ({kind:?}) is alive after {:?}\n{}",
            IDLE_SESSION * 3,
            e.logs()
        );
        c.create(&format!("/after-idle-{sid}"), b"", &open_acl_unsafe(), CreateMode::Persistent)
            .unwrap_or_else(|err| panic!("write after idling through server {sid} ({kind:?}): {err}\n{}", e.logs()));
    }
    assert_no_divergence(&e);
}

#[test]
fn idle_sessions_survive_under_a_zoocore_leader() {
    if skip_without_apache() {
        return;
    }
    idle_sessions_survive(&[Kind::Apache, Kind::Apache, Kind::Zoocore], Kind::Zoocore);
}

#[test]
fn idle_sessions_survive_under_an_apache_leader() {
    if skip_without_apache() {
        return;
    }
    idle_sessions_survive(&[Kind::Zoocore, Kind::Apache, Kind::Apache], Kind::Apache);
}

/// 2 zoocore + 1 Apache, leadership both ways: first a zoocore server
/// leads (sid 3), then it is killed and the Apache server (sid 2, now the
/// highest) leads with zoocore sid 1 following; sid 3 rejoins.
#[test]
fn two_zoocore_one_apache_both_leaderships() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut e = Ensemble::start(&[Kind::Zoocore, Kind::Apache, Kind::Zoocore]);
    let leader = e.wait_for_quorum(SETTLE);
    assert_eq!(leader, 3, "zoocore sid 3 leads\n{}", e.logs());
    writes_everywhere_read_back_everywhere(&e, "/a", 5);
    e.member_mut(3).kill9();
    let leader = e.wait_for_quorum(SETTLE);
    assert_eq!(leader, 2, "the Apache server leads once sid 3 is gone\n{}", e.logs());
    let z = connect(e.member(1));
    for k in 0..20 {
        z.create(&format!("/a/after-{k}"), b"", &open_acl_unsafe(), CreateMode::Persistent)
            .unwrap_or_else(|err| panic!("write through zoocore to the Apache leader: {err}\n{}", e.logs()));
    }
    e.member_mut(3).spawn();
    e.wait_for_quorum(SETTLE);
    let back = connect(e.member(3));
    assert_eq!(children(&back, "/a").len(), 15 + 20, "the rejoined zoocore server caught up");
    assert_no_divergence(&e);
}

/// A follower down while 650 writes happen catches up (by SNAP when
/// `expect_snap`: beyond the leader's 500-txn window and its on-disk log
/// sync disabled; otherwise by a DIFF the leader, of either kind, reads
/// from its log), then after 20 more by DIFF from the in-memory window.
/// Returns the ensemble, still running, for more checks.
fn catch_up(kinds: &[Kind], down: u64, jvm_props: &[&str], expect_snap: bool) -> Ensemble {
    catch_up_configured(kinds, down, jvm_props, "", expect_snap)
}

/// As `catch_up`, with `extra_config` in every member's zoo.cfg.
fn catch_up_configured(
    kinds: &[Kind],
    down: u64,
    jvm_props: &[&str],
    extra_config: &str,
    expect_snap: bool,
) -> Ensemble {
    let mut e = Ensemble::start_configured(kinds, jvm_props, extra_config, Kind::Zoocore);
    let leader = e.wait_for_quorum(SETTLE);
    assert_ne!(leader, down);
    let c = connect(e.member(leader));
    c.create("/d", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    let mut expected = 0;
    let snap_line = match e.member(down).kind {
        Kind::Apache => "Getting a snapshot from leader",
        Kind::Zoocore => "receiving a snapshot from the leader (SNAP)",
    };
    let snaps = |e: &Ensemble| e.member(down).log().matches(snap_line).count();
    for (round, count) in [(0, 650), (1, 20)] {
        let snaps_before = snaps(&e);
        // Down only once it holds everything so far: how it catches up then
        // depends on what it missed alone (an Apache leader SNAPs a learner
        // whose last zxid is not in its log, e.g. one killed before its
        // fsync of the first txn of the epoch).
        assert!(
            wait_until(Duration::from_secs(10), || e.member(down).zxid() == e.member(leader).zxid()),
            "server {down} caught up before going down"
        );
        e.member_mut(down).kill9();
        common::create_pipelined(&c, (0..count).map(|k| (format!("/d/r{round}-{k}"), None)));
        expected += count;
        e.member_mut(down).spawn();
        e.wait_for_quorum(SETTLE);
        let have = children(&connect(e.member(down)), "/d");
        assert_eq!(have.len(), expected, "server {down} caught up in round {round}\n{}", e.logs());
        let expect_snaps = snaps_before + usize::from(round == 0 && expect_snap);
        assert_eq!(snaps(&e), expect_snaps, "round {round}: SNAP only when beyond the window\n{}", e.logs());
    }
    assert!(
        wait_until(Duration::from_secs(5), || e.members.iter().map(|m| m.zxid()).collect::<BTreeSet<_>>().len() == 1),
        "one zxid everywhere"
    );
    assert_no_divergence(&e);
    e
}

/// zoocore's leader DIFFs the 650 txns from its on-disk log (beyond its
/// 500-txn window; it has no snapshot, so the size rule allows any log),
/// then 20 from the window: Apache never gets a SNAP.
#[test]
fn apache_follower_catches_up_from_zoocore_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let e = catch_up(&[Kind::Apache, Kind::Apache, Kind::Zoocore], 1, &[], false);
    let diffs = e.member(1).log().matches("Getting a diff from the leader").count();
    // The first sync, then one per round.
    assert!(diffs >= 3, "server 1 synced by DIFF each time ({diffs})\n{}", e.logs());
    let leader_log = common::strip_ansi(&e.member(3).log());
    assert!(
        leader_log
            .lines()
            .any(|l| l.contains("syncing a learner") && l.contains("sid=1 ") && l.contains("reason=FromDiskLog")),
        "zoocore's leader chose a DIFF from its disk for server 1\n{}",
        e.logs()
    );
}

#[test]
fn apache_follower_gets_a_snap_from_zoocore_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // A negative snapshotSizeFactor (read from zoo.cfg by zoocore, and by
    // Apache as the zookeeper. property) turns DIFF from disk off: beyond
    // the 500-txn window the zoocore leader sends its tree as SNAP.
    let e = catch_up_configured(&[Kind::Apache, Kind::Apache, Kind::Zoocore], 1, &[], "snapshotSizeFactor=-1\n", true);
    let leader_log = common::strip_ansi(&e.member(3).log());
    assert!(
        leader_log.lines().any(|l| l.contains("syncing a learner") && l.contains("sid=1 ") && l.contains("plan=Snap")),
        "zoocore's leader chose SNAP for server 1\n{}",
        e.logs()
    );
}

#[test]
fn zoocore_follower_catches_up_from_apache_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Apache's leader DIFFs 650 txns from its on-disk log.
    catch_up(&[Kind::Zoocore, Kind::Apache, Kind::Apache], 1, &[], false);
}

#[test]
fn zoocore_follower_gets_a_snap_from_apache_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // A negative factor turns Apache's on-disk log sync off: SNAP beyond
    // the 500-txn committed window.
    catch_up(&[Kind::Zoocore, Kind::Apache, Kind::Apache], 1, &["-Dzookeeper.snapshotSizeFactor=-1"], true);
}

/// kill -9 of the leader under acknowledged writes: a new leader, every
/// acknowledged write on every server, the old leader rejoins.
fn leader_kill9(kinds: &[Kind], expect_leader: u64) {
    // The expected leader's kind starts (and, for Apache, settles) first:
    // with zoocore first, [Apache, zoocore, Apache] elected 2 whenever
    // Apache 1's JVM came up before Apache 3's (seen once in a full run).
    let mut e = Ensemble::start_configured(kinds, &[], "", kind_of(kinds, expect_leader));
    let leader = e.wait_for_quorum(SETTLE);
    assert_eq!(leader, expect_leader, "\n{}", e.logs());
    let followers: Vec<u64> = (1..=kinds.len() as u64).filter(|s| *s != leader).collect();
    let c = connect(e.member(followers[0]));
    c.create("/w", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /w");
    let mut acked = BTreeSet::new();
    for k in 0..100 {
        let path = format!("/w/n{k:03}");
        c.create(&path, b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
        acked.insert(format!("n{k:03}"));
    }
    e.member_mut(leader).kill9();
    let new_leader = e.wait_for_quorum(SETTLE);
    assert_ne!(new_leader, leader);
    // Same history on both survivors: the higher sid wins.
    assert_eq!(new_leader, *followers.last().unwrap_or(&0), "\n{}", e.logs());
    assert_ne!(e.member(new_leader).kind, e.member(leader).kind, "leadership changed kind");
    for &sid in &followers {
        let have = children(&connect(e.member(sid)), "/w");
        assert!(acked.is_subset(&have), "server {sid} kept every acknowledged write\n{}", e.logs());
    }
    let c = connect(e.member(new_leader));
    c.create("/w/after", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("write with the new leader");
    acked.insert("after".to_owned());
    e.member_mut(leader).spawn();
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(leader).mode(), "follower");
    let have = children(&connect(e.member(leader)), "/w");
    assert_eq!(have, acked, "the old leader rejoined with everything");
    assert_no_divergence(&e);
}

#[test]
fn zoocore_leader_killed_apache_takes_over() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    leader_kill9(&[Kind::Apache, Kind::Apache, Kind::Zoocore], 3);
}

#[test]
fn apache_leader_killed_zoocore_takes_over() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    leader_kill9(&[Kind::Apache, Kind::Zoocore, Kind::Apache], 3);
}

/// The old leader's kind starts first, so that it is elected.
fn kind_of(kinds: &[Kind], old: u64) -> Kind {
    kinds[(old - 1) as usize]
}

/// The unacknowledged write of the TRUNC scenarios.
const UNACKED: &str = "/t/unacked";

/// A leader that logged a write no follower saw is truncated by the new
/// leader of the other kind when it rejoins (the recipe and why the stopped
/// followers are killed rather than continued: tests/ensemble_trunc.rs).
/// The old leader rejoins before the new epoch has a txn, so the new
/// leader's rule is "learner ahead of my newest committed txn: TRUNC".
fn old_leader_truncated(kinds: &[Kind], expect_old: u64, expect_new: u64) {
    // Apache's leader logs the TRUNC it queues at debug level only.
    let learner_handler_debug = "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.server.quorum.LearnerHandler=debug";
    // The session that sends the unacknowledged write must not expire (a
    // txn of the new epoch) before the old leader is back.
    let first = kind_of(kinds, expect_old);
    let mut e = Ensemble::start_configured(kinds, &[learner_handler_debug], "maxSessionTimeout=60000\n", first);
    let old = e.wait_for_quorum(SETTLE);
    assert_eq!(old, expect_old, "\n{}", e.logs());
    let followers: Vec<u64> = (1..=kinds.len() as u64).filter(|s| *s != old).collect();
    let c = Client::connect(e.member(old).client, Duration::from_secs(40)).expect("connect to the leader");
    let mut acked = BTreeSet::new();
    for path in ["/t".to_owned()].into_iter().chain((0..10).map(|k| format!("/t/before-{k}"))) {
        c.create(&path, b"b", &open_acl_unsafe(), CreateMode::Persistent).expect("acknowledged write");
        acked.insert(path);
    }
    assert!(
        wait_until(Duration::from_secs(10), || e.members.iter().map(|m| m.zxid()).collect::<BTreeSet<_>>().len() == 1),
        "every server holds the acknowledged writes"
    );
    let committed = e.member(old).zxid();

    for &f in &followers {
        e.member(f).signal(libc::SIGSTOP);
    }
    for &f in &followers {
        let pid = e.member(f).pid().expect("pid");
        assert!(wait_until(Duration::from_secs(2), || common::is_stopped(pid)), "follower {f} stopped");
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
    // Logged within milliseconds; the leader steps down only after
    // syncLimit (2.5 s).
    std::thread::sleep(Duration::from_millis(500));
    e.member_mut(old).kill9();
    assert!(unacked.wait_timeout(Duration::from_secs(5)).is_err(), "the client got no answer");
    assert!(
        common::dir_holds_bytes(&e.member(old).dir.join("data"), UNACKED.as_bytes()),
        "the write reached the old leader's log (else this test proves nothing)\n{}",
        e.logs()
    );
    for &f in &followers {
        e.member_mut(f).kill9();
        assert!(!common::dir_holds_bytes(&e.member(f).dir.join("data"), UNACKED.as_bytes()), "{f} never logged it");
    }
    for &f in &followers {
        e.member_mut(f).spawn();
    }
    let new = e.wait_for_quorum(SETTLE);
    assert_eq!(new, expect_new, "\n{}", e.logs());
    assert_ne!(e.member(new).kind, e.member(old).kind, "the new leader is of the other kind");
    e.member_mut(old).spawn();
    e.wait_for_quorum(SETTLE);
    assert_eq!(e.member(old).mode(), "follower", "\n{}", e.logs());

    // The new leader chose TRUNC to the last committed zxid, and the old
    // leader truncated.
    let new_log = common::strip_ansi(&e.member(new).log());
    let old_log = e.member(old).log();
    match e.member(new).kind {
        Kind::Zoocore => {
            let line = new_log
                .lines()
                .find(|l| l.contains("syncing a learner") && l.contains(&format!("sid={old}")))
                .unwrap_or_else(|| panic!("zoocore logged its sync plan for {old}\n{}", e.logs()));
            assert!(line.contains(&format!("plan=Trunc {{ to: {committed} }}")), "TRUNC to 0x{committed:x}: {line}");
            assert!(line.contains("reason=LearnerAhead"), "{line}");
        }
        Kind::Apache => {
            let peer = format!("Synchronizing with Learner sid: {old} maxCommittedLog=0x{committed:x}");
            assert!(new_log.contains(&peer), "Apache's leader saw the old leader's zxid\n{}", e.logs());
            let peer_zxid = format!("peerLastZxid=0x{:x}", committed + 1);
            assert!(new_log.contains(&peer_zxid), "the old leader reported the unacknowledged zxid\n{}", e.logs());
            let trunc = format!("Sending TRUNC to follower zxidToSend=0x{committed:x} for peer sid:{old}");
            assert!(new_log.contains(&trunc), "Apache's leader sent TRUNC\n{}", e.logs());
        }
    }
    match e.member(old).kind {
        Kind::Zoocore => assert!(
            common::strip_ansi(&old_log)
                .contains(&format!("the leader truncates this server's log (TRUNC) zxid=0x{committed:x}")),
            "zoocore truncated\n{}",
            e.logs()
        ),
        Kind::Apache => assert!(
            old_log.contains(&format!("Truncating log to get in sync with the leader 0x{committed:x}")),
            "Apache truncated\n{}",
            e.logs()
        ),
    }

    // Writes through every server, then one history everywhere; again
    // after a kill -9 and restart of the old leader.
    for m in &e.members {
        let w = connect(m);
        for k in 0..5 {
            let path = format!("/t/after-s{}-{k}", m.sid);
            w.create(&path, b"a", &open_acl_unsafe(), CreateMode::Persistent)
                .unwrap_or_else(|err| panic!("write through {} after the rejoin: {err}\n{}", m.sid, e.logs()));
            acked.insert(path);
        }
    }
    let converged = |e: &Ensemble| {
        assert!(
            wait_until(Duration::from_secs(10), || e.members.iter().map(|m| m.zxid()).collect::<BTreeSet<_>>().len()
                == 1),
            "one Zxid everywhere: {:?}",
            e.members.iter().map(|m| m.zxid()).collect::<Vec<_>>()
        );
        let dumps: Vec<(u64, common::TreeDump)> =
            e.members.iter().map(|m| (m.sid, common::tree_dump(&connect(m)))).collect();
        for (sid, d) in &dumps {
            assert!(!d.contains_key(UNACKED), "server {sid} has the unacknowledged write\n{}", e.logs());
            let have: BTreeSet<String> = d.keys().cloned().collect();
            assert_eq!(have, acked, "server {sid} has exactly the acknowledged writes");
            assert_eq!(d, &dumps[0].1, "server {sid} has server {}'s tree", dumps[0].0);
        }
    };
    converged(&e);
    e.member_mut(old).kill9();
    assert!(
        !common::dir_holds_bytes(&e.member(old).dir.join("data"), UNACKED.as_bytes()),
        "the truncated txn is gone from the old leader's disk"
    );
    e.member_mut(old).spawn();
    e.wait_for_quorum(SETTLE);
    converged(&e);
    assert_no_divergence(&e);
}

#[test]
fn zoocore_old_leader_truncated_by_apache_new_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    old_leader_truncated(&[Kind::Apache, Kind::Apache, Kind::Zoocore], 3, 2);
}

#[test]
fn apache_old_leader_truncated_by_zoocore_new_leader() {
    if skip_without_apache() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    old_leader_truncated(&[Kind::Apache, Kind::Zoocore, Kind::Apache], 3, 2);
}
