//! Quorum SASL (`quorum.auth.*`, DIGEST-MD5) against the real binary: a
//! JAAS file with Apache's QuorumServer (`user_NAME="pw"`) and QuorumLearner
//! (`username`, `password`) sections, written here. Servers listen on
//! 127.0.0.1 ports the test picks and are stopped by PID.
//!
//! - zoocore alone: a 3-server ensemble with SASL required both ways elects,
//!   replicates a write and serves it everywhere; a member whose learner
//!   password is wrong cannot join (the others log its refusal naming it and
//!   keep serving); with `serverRequireSasl=false` a member that does not
//!   authenticate (the first step of Apache's rolling upgrade) is let through.
//! - With Apache ZooKeeper 3.8 (Debian's jar; skipped with a message when
//!   absent, unless CI is set), SASL required on every member: an Apache
//!   learner of a zoocore leader and a zoocore learner of an Apache leader,
//!   each replicating writes both ways; an Apache member with a wrong
//!   password is refused by zoocore servers, and Java is told ERROR.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::apache::{self, ServerProcess};
use common::ensemble::Ensemble;
use common::{four_letter, strip_ansi, wait_until};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

const TICK_MS: u32 = 500;
const SETTLE: Duration = Duration::from_secs(40);
const SESSION: Duration = Duration::from_secs(6);
const PASSWORD: &str = "quorum-secret";

/// Ensembles on a shared 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A directory for the JAAS files, removed when the test passes.
struct Jaas {
    dir: PathBuf,
}

impl Jaas {
    fn new(name: &str) -> Jaas {
        let dir = std::env::temp_dir().join(format!("zoocore-qsasl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Jaas { dir }
    }

    /// A JAAS file whose server knows user `zk` with [`PASSWORD`] and whose
    /// learner logs in as `zk` with `learner_password`.
    fn file(&self, learner_password: &str) -> PathBuf {
        let path = self.dir.join(format!("jaas-{learner_password}.conf"));
        let text = format!(
            "QuorumServer {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_zk=\"{PASSWORD}\";\n}};\n\
             QuorumLearner {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"zk\"\n  password=\"{learner_password}\";\n}};\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Jaas {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// zoo.cfg lines: quorum SASL with the two require flags, the JAAS file.
fn sasl_config(jaas: &Path, learner_require: bool, server_require: bool) -> String {
    format!(
        "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl={learner_require}\n\
         quorum.auth.serverRequireSasl={server_require}\nquorum.cnxn.threads.size=20\n\
         java.security.auth.login.config={}\n",
        jaas.display()
    )
}

fn connect(client: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(client, SESSION) {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("cannot connect to {client}: {e}"),
        }
    }
}

/// Writes `path` through `writer` and waits until every address in
/// `readers` serves it.
fn write_and_read_everywhere(
    writer: SocketAddr,
    readers: &[SocketAddr],
    path: &str,
    data: &[u8],
    logs: impl Fn() -> String,
) {
    let c = connect(writer);
    c.create(path, data, &open_acl_unsafe(), CreateMode::Persistent)
        .unwrap_or_else(|e| panic!("create {path} through {writer}: {e:?}\n{}", logs()));
    for &reader in readers {
        let r = connect(reader);
        let seen = wait_until(Duration::from_secs(15), || {
            let _ = r.sync(path);
            r.get_data(path, false).is_ok_and(|(d, _)| d.as_deref() == Some(data))
        });
        assert!(seen, "{path} written through {writer} is not served by {reader}\n{}", logs());
    }
}

fn ensemble_logs(e: &Ensemble) -> String {
    e.members.iter().map(|m| format!("--- s{} ---\n{}\n", m.sid, m.log_tail(40))).collect()
}

#[test]
fn a_zoocore_ensemble_on_quorum_sasl_elects_replicates_and_serves_everywhere() {
    let _serial = serial();
    let jaas = Jaas::new("three");
    let file = jaas.file(PASSWORD);
    let mut e = Ensemble::start(3, &[], TICK_MS, &sasl_config(&file, true, true));
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<SocketAddr> = e.members.iter().map(|m| m.client).collect();
    let follower = e.members.iter().find(|m| m.sid != leader).map(|m| m.client).unwrap();
    write_and_read_everywhere(follower, &clients, "/via-follower", b"one", || ensemble_logs(&e));
    let leader_client = e.member(leader).client;
    write_and_read_everywhere(leader_client, &clients, "/via-leader", b"two", || ensemble_logs(&e));
    for m in &e.members {
        let log = strip_ansi(&m.log());
        assert!(log.contains("quorum SASL (DIGEST-MD5) enabled"), "s{}\n{}", m.sid, m.log_tail(40));
        assert!(
            log.lines().any(|l| l.contains("quorum peer authenticated") && l.contains("user=zk")),
            "s{} authenticated no peer\n{}",
            m.sid,
            m.log_tail(40)
        );
        assert!(!log.contains("letting it through"), "s{} let a peer through\n{}", m.sid, m.log_tail(40));
    }
    // The election port takes no peer that does not authenticate: a
    // preamble followed by a notification-sized frame is dropped.
    let probe_at = election_addr(&e, leader);
    let mut probe = std::net::TcpStream::connect(&probe_at).unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    use std::io::{Read, Write};
    let mut preamble = Vec::new();
    preamble.extend_from_slice(&(-65536i64).to_be_bytes());
    preamble.extend_from_slice(&9i64.to_be_bytes());
    let addr = b"127.0.0.1:1";
    preamble.extend_from_slice(&(addr.len() as i32).to_be_bytes());
    preamble.extend_from_slice(addr);
    preamble.extend_from_slice(&[0, 0, 0, 40, 0, 0, 0, 0]);
    probe.write_all(&preamble).unwrap();
    let mut rest = Vec::new();
    let _ = probe.read_to_end(&mut rest);
    let leader_member = e.member(leader);
    let dropped = wait_until(Duration::from_secs(5), || {
        strip_ansi(&leader_member.log()).lines().any(|l| {
            l.contains("dropping election connection: quorum SASL") && l.contains("sid=9") && l.contains("did not try")
        })
    });
    assert!(dropped, "the unauthenticated election peer was not dropped\n{}", e.member(leader).log_tail(20));
}

#[test]
fn a_learner_with_a_wrong_password_is_refused_when_the_servers_require_sasl() {
    let _serial = serial();
    let jaas = Jaas::new("wrong");
    let (good, bad) = (jaas.file(PASSWORD), jaas.file("not-the-password"));
    let mut e = Ensemble::start_with(3, &[], TICK_MS, "", |sid| match sid {
        3 => sasl_config(&bad, true, true),
        _ => sasl_config(&good, true, true),
    });
    let settled = wait_until(SETTLE, || {
        let modes: Vec<String> = e.members[..2].iter().map(|m| m.mode()).collect();
        modes.iter().any(|m| m == "leader") && modes.iter().all(|m| m == "leader" || m == "follower")
    });
    assert!(settled, "s1 and s2 did not form a quorum\n{}", ensemble_logs(&e));
    let (s1, s2) = (e.members[0].client, e.members[1].client);
    write_and_read_everywhere(s1, &[s1, s2], "/without-s3", b"x", || ensemble_logs(&e));
    // Several election rounds for s3 to try in.
    std::thread::sleep(Duration::from_secs(5));
    assert!(e.member(3).is_running(), "s3 must keep running and retrying\n{}", e.member(3).log_tail(40));
    let mode = e.member(3).mode();
    assert!(mode != "follower" && mode != "leader", "s3 joined with a wrong password: {mode}\n{}", ensemble_logs(&e));
    // The servers log the refusal naming s3 (its sid from the preamble).
    let refused_somewhere = e.members[..2].iter().any(|m| {
        strip_ansi(&m.log()).lines().any(|l| {
            l.contains("dropping election connection: quorum SASL")
                && l.contains("sid=3")
                && l.contains("wrong password for user \"zk\"")
        })
    });
    assert!(refused_somewhere, "no refusal of s3 logged\n{}", ensemble_logs(&e));
    let s3_log = strip_ansi(&e.members[2].log());
    assert!(s3_log.contains("the server refused our quorum SASL credentials"), "{}", e.members[2].log_tail(40));
    write_and_read_everywhere(s2, &[s1, s2], "/still-serving", b"y", || ensemble_logs(&e));
}

#[test]
fn server_require_false_lets_a_member_that_does_not_authenticate_join() {
    let _serial = serial();
    let jaas = Jaas::new("rolling");
    let file = jaas.file(PASSWORD);
    // Apache's rolling upgrade between its first two steps: s1 and s2
    // authenticate as learners; s3 has SASL enabled but sends none. No
    // server requires it.
    let mut e = Ensemble::start_with(3, &[], TICK_MS, "", |sid| match sid {
        3 => sasl_config(&file, false, false),
        _ => sasl_config(&file, true, false),
    });
    e.wait_for_quorum(SETTLE);
    let clients: Vec<SocketAddr> = e.members.iter().map(|m| m.client).collect();
    for m in &e.members {
        write_and_read_everywhere(m.client, &clients, &format!("/from-s{}", m.sid), b"u", || ensemble_logs(&e));
    }
    let let_through = e.members[..2]
        .iter()
        .any(|m| strip_ansi(&m.log()).lines().any(|l| l.contains("letting it through") && l.contains("did not try")));
    assert!(let_through, "s3 was not let through unauthenticated\n{}", ensemble_logs(&e));
}

/// `127.0.0.1:<election port>` of member `sid`, from its zoo.cfg.
fn election_addr(e: &Ensemble, sid: u64) -> String {
    let cfg = std::fs::read_to_string(e.members[0].dir.join("zoo.cfg")).unwrap();
    let line = cfg.lines().find(|l| l.starts_with(&format!("server.{sid}="))).unwrap();
    let mut parts = line.split('=').nth(1).unwrap().split(':');
    let (host, _quorum, election) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    format!("{host}:{election}")
}

// ---------------------------------------------------------------- with Apache

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zoocore,
    Apache,
}

struct MixedMember {
    sid: u64,
    kind: Kind,
    client: SocketAddr,
    dir: PathBuf,
    jaas: PathBuf,
    process: Option<ServerProcess>,
}

impl MixedMember {
    fn spawn(&mut self) {
        let cfg = self.dir.join("zoo.cfg");
        let cmd = match self.kind {
            Kind::Zoocore => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_zoocore"));
                c.arg("server").arg("--config").arg(&cfg).env("ZOOCORE_LOG", "info,zoocore::server=debug");
                c
            }
            Kind::Apache => {
                let jaas = format!("-Djava.security.auth.login.config={}", self.jaas.display());
                let args = ["-XX:TieredStopAtLevel=1", "-Xshare:auto", apache::FOUR_LETTER_WORDS_ALL, apache::LOG_INFO];
                let mut c = Command::new(apache::java());
                c.args(apache::BASE_JVM_ARGS).args(args).arg(jaas).arg("-cp").arg(apache::classpath());
                c.arg(apache::QUORUM_MAIN).arg(&cfg).current_dir(&self.dir);
                c
            }
        };
        self.process = Some(ServerProcess::spawn(cmd, &self.dir.join("server.log")));
    }

    fn mode(&self) -> String {
        let out = four_letter(self.client, "srvr").unwrap_or_default();
        out.lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").trim().to_owned()
    }

    fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default())
    }

    fn log_tail(&self, lines: usize) -> String {
        apache::tail(&self.log(), lines)
    }
}

struct Mixed {
    members: Vec<MixedMember>,
}

impl Mixed {
    /// `kinds[i]` runs server `i + 1`, every member requiring quorum SASL.
    /// All but the last start and settle first, so the last joins as a
    /// learner of the leader they elected.
    fn start(jaas: &Jaas, kinds: &[Kind]) -> Mixed {
        let e = Mixed::start_all_but_the_last(jaas, kinds, PASSWORD);
        let n = e.members.len();
        let settled = wait_until(SETTLE, || matches!(e.members[n - 1].mode().as_str(), "follower"));
        assert!(settled, "the last member did not join over quorum SASL\n{}", e.logs());
        e
    }

    /// Starts and settles all but the last member, then starts the last,
    /// whose learner logs in with `last_password`.
    fn start_all_but_the_last(jaas: &Jaas, kinds: &[Kind], last_password: &str) -> Mixed {
        let file = jaas.file(PASSWORD);
        let last_file = jaas.file(last_password);
        let dir = jaas.dir.join("ensemble");
        let ports: Vec<u16> = (0..3 * kinds.len()).map(|_| common::ports::unused_port()).collect();
        let servers: String = (0..kinds.len())
            .map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[3 * i + 1], ports[3 * i + 2]))
            .collect();
        let mut members = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let sid = i as u64 + 1;
            let mdir = dir.join(format!("s{sid}"));
            let data = mdir.join("data");
            apache::write_myid(&data, sid);
            let file = if i + 1 == kinds.len() { &last_file } else { &file };
            let cfg = format!(
                "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nzoocore.shards=2\n{servers}{}",
                data.display(),
                ports[3 * i],
                sasl_config(file, true, true)
            );
            std::fs::write(mdir.join("zoo.cfg"), cfg).unwrap();
            let client: SocketAddr = format!("127.0.0.1:{}", ports[3 * i]).parse().unwrap();
            members.push(MixedMember { sid, kind: *kind, client, dir: mdir, jaas: file.to_path_buf(), process: None });
        }
        let mut e = Mixed { members };
        let n = e.members.len();
        for m in &mut e.members[..n - 1] {
            m.spawn();
        }
        let settled = wait_until(SETTLE, || {
            let modes: Vec<String> = e.members[..n - 1].iter().map(MixedMember::mode).collect();
            modes.iter().filter(|m| *m == "leader").count() == 1
                && modes.iter().all(|m| m == "leader" || m == "follower")
        });
        assert!(settled, "the first {} members did not elect over quorum SASL\n{}", n - 1, e.logs());
        e.members[n - 1].spawn();
        e
    }

    fn leader(&self) -> Option<&MixedMember> {
        self.members.iter().find(|m| m.mode() == "leader")
    }

    fn logs(&self) -> String {
        self.members.iter().map(|m| format!("--- s{} ({:?}) ---\n{}\n", m.sid, m.kind, m.log_tail(60))).collect()
    }

    /// Both kinds write; every member serves both writes. Then every
    /// member must show a quorum SASL exchange it passed, as either side.
    fn replicates_both_ways(&self) {
        let all: Vec<SocketAddr> = self.members.iter().map(|m| m.client).collect();
        for m in &self.members {
            let path = format!("/written-on-s{}-{:?}", m.sid, m.kind);
            write_and_read_everywhere(m.client, &all, &path, path.as_bytes(), || self.logs());
        }
        for m in &self.members {
            let log = m.log();
            let authenticated = match m.kind {
                Kind::Apache => log.contains("Successfully completed the authentication using SASL"),
                // The highest sid only dials (and authenticates to the others).
                Kind::Zoocore => {
                    log.contains("quorum peer authenticated")
                        || log.contains("authenticated to this server (quorum SASL)")
                }
            };
            assert!(authenticated, "s{} ({:?}) shows no quorum SASL exchange\n{}", m.sid, m.kind, m.log_tail(60));
        }
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.process.take() {
                p.terminate(Duration::from_secs(5));
            }
        }
    }
}

#[test]
fn an_apache_learner_follows_a_zoocore_leader_over_quorum_sasl() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("apache-learner");
    let e = Mixed::start(&jaas, &[Kind::Zoocore, Kind::Zoocore, Kind::Apache]);
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Zoocore))), "a zoocore member leads: {leader:?}\n{}", e.logs());
    e.replicates_both_ways();
}

#[test]
fn a_zoocore_learner_follows_an_apache_leader_over_quorum_sasl() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("zoocore-learner");
    let e = Mixed::start(&jaas, &[Kind::Apache, Kind::Apache, Kind::Zoocore]);
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Apache))), "an Apache member leads: {leader:?}\n{}", e.logs());
    e.replicates_both_ways();
}

#[test]
fn an_apache_learner_with_a_wrong_password_is_refused_by_zoocore_servers() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("apache-wrong");
    let e = Mixed::start_all_but_the_last(&jaas, &[Kind::Zoocore, Kind::Zoocore, Kind::Apache], "not-the-password");
    // Give the Apache member time to start its JVM and try both servers.
    let refused = wait_until(SETTLE, || {
        e.members[..2].iter().any(|m| {
            m.log().lines().any(|l| {
                l.contains("dropping election connection: quorum SASL")
                    && l.contains("sid=3")
                    && l.contains("wrong password for user \"zk\"")
            })
        })
    });
    assert!(refused, "no zoocore server logged refusing the Apache member\n{}", e.logs());
    let told =
        wait_until(Duration::from_secs(10), || e.members[2].log().contains("Authentication failed against server"));
    assert!(told, "the Apache member was not told ERROR\n{}", e.logs());
    let mode = e.members[2].mode();
    assert!(mode != "follower" && mode != "leader", "the Apache member joined: {mode}\n{}", e.logs());
    let all: Vec<SocketAddr> = e.members[..2].iter().map(|m| m.client).collect();
    write_and_read_everywhere(all[0], &all, "/without-s3", b"z", || e.logs());
}

/// One ensemble member on `lines`: its stderr once it refused to start.
fn start_refused(jaas: &Jaas, lines: &str) -> String {
    common::ensemble::start_refused_member(&jaas.dir.join("refused"), TICK_MS, lines, "quorum SASL")
}

#[test]
fn bad_quorum_sasl_settings_stop_start_up_with_a_clear_error() {
    let jaas = Jaas::new("refused");
    let err = start_refused(&jaas, "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n");
    assert!(err.contains("no JAAS file is set"), "{err}");
    let file = jaas.file(PASSWORD);
    let other_section = format!("{}quorum.auth.learner.saslLoginContext=Elsewhere\n", sasl_config(&file, true, true));
    let err = start_refused(&jaas, &other_section);
    assert!(err.contains("no JAAS section named \"Elsewhere\""), "{err}");
    let krb = jaas.dir.join("krb.conf");
    std::fs::write(
        &krb,
        "QuorumServer {\n com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};\n\
         QuorumLearner {\n com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};\n",
    )
    .unwrap();
    let err = start_refused(&jaas, &sasl_config(&krb, true, true));
    assert!(err.contains("GSSAPI") && err.contains("not supported"), "{err}");
}
