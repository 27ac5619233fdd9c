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
use std::sync::Mutex;
use std::time::Duration;

use common::apache;
use common::ensemble::Ensemble;
use common::mixed::{election_addr, ensemble_logs, write_and_read_everywhere, Kind, MemberSpec, Mixed};
use common::{strip_ansi, wait_until};

const TICK_MS: u32 = 500;
const SETTLE: Duration = Duration::from_secs(40);
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

// ---------------------------------------------------------------- with Apache

/// `kinds[i]` runs server `i + 1`, every member requiring quorum SASL with
/// the JAAS file of `PASSWORD`, but the last's learner logs in with
/// `last_password`. All but the last are settled (common::mixed).
fn start_mixed(jaas: &Jaas, kinds: &[Kind], last_password: &str) -> Mixed {
    let file = jaas.file(PASSWORD);
    let last_file = jaas.file(last_password);
    let specs = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let file = if i + 1 == kinds.len() { &last_file } else { &file };
            let lines = sasl_config(file, true, true);
            match kind {
                Kind::Zoocore => MemberSpec::zoocore(lines),
                Kind::Apache => {
                    let jaas_arg = format!("-Djava.security.auth.login.config={}", file.display());
                    MemberSpec::apache(lines, vec![jaas_arg], apache::classpath())
                }
            }
        })
        .collect();
    Mixed::start_all_but_the_last(&jaas.dir.join("ensemble"), TICK_MS, SETTLE, specs, "quorum SASL")
}

/// Both kinds write; every member serves both writes. Then every member
/// must show a quorum SASL exchange it passed, as either side.
fn replicates_both_ways_over_sasl(e: &Mixed) {
    e.replicates_both_ways();
    for m in &e.members {
        let log = m.log();
        let authenticated = match m.kind {
            Kind::Apache => log.contains("Successfully completed the authentication using SASL"),
            // The highest sid only dials (and authenticates to the others).
            Kind::Zoocore => {
                log.contains("quorum peer authenticated") || log.contains("authenticated to this server (quorum SASL)")
            }
        };
        assert!(authenticated, "s{} ({:?}) shows no quorum SASL exchange\n{}", m.sid, m.kind, m.log_tail(60));
    }
}

#[test]
fn an_apache_learner_follows_a_zoocore_leader_over_quorum_sasl() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("apache-learner");
    let e = start_mixed(&jaas, &[Kind::Zoocore, Kind::Zoocore, Kind::Apache], PASSWORD);
    e.wait_for_the_last_to_follow(SETTLE, "quorum SASL");
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Zoocore))), "a zoocore member leads: {leader:?}\n{}", e.logs());
    replicates_both_ways_over_sasl(&e);
}

#[test]
fn a_zoocore_learner_follows_an_apache_leader_over_quorum_sasl() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("zoocore-learner");
    let e = start_mixed(&jaas, &[Kind::Apache, Kind::Apache, Kind::Zoocore], PASSWORD);
    e.wait_for_the_last_to_follow(SETTLE, "quorum SASL");
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Apache))), "an Apache member leads: {leader:?}\n{}", e.logs());
    replicates_both_ways_over_sasl(&e);
}

#[test]
fn an_apache_learner_with_a_wrong_password_is_refused_by_zoocore_servers() {
    if !apache::apache_available("quorum SASL with Apache") {
        return;
    }
    let _serial = serial();
    let jaas = Jaas::new("apache-wrong");
    let e = start_mixed(&jaas, &[Kind::Zoocore, Kind::Zoocore, Kind::Apache], "not-the-password");
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
