//! Quorum TLS (`sslQuorum=true`, `ssl.quorum.*`) against the real binary:
//! every certificate is made here with rcgen (a quorum CA, one certificate
//! per member naming 127.0.0.1, and one from a CA the ensemble does not
//! trust), written as Apache's PEM key store (key + chain in one file) and
//! PEM trust store. Servers listen on 127.0.0.1 ports the test picks and
//! are stopped by PID.
//!
//! - zoocore alone: a 3-server ensemble elects over TLS, replicates a write
//!   and serves it on every member; a member with a certificate from
//!   another CA, or one that does not name its address, cannot join while
//!   the others keep serving, and the refusal is logged naming the peer.
//! - With Apache ZooKeeper 3.8 (Debian's jar; skipped with a message when
//!   absent, unless CI is set): an Apache learner of a zoocore leader and a
//!   zoocore learner of an Apache leader, all members on quorum TLS, each
//!   replicating writes both ways.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::apache;
use common::ensemble::Ensemble;
use common::mixed::{connect, election_addr, ensemble_logs, write_and_read_everywhere, Kind, MemberSpec, Mixed};
use common::{strip_ansi, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

const TICK_MS: u32 = 500;
const SETTLE: Duration = Duration::from_secs(40);

/// Ensembles on a shared 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A quorum CA and the directory the stores are written to.
struct QuorumPki {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

impl QuorumPki {
    fn new(name: &str) -> QuorumPki {
        let dir = std::env::temp_dir().join(format!("zoocore-qtls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, issuer) = new_ca("zoocore quorum CA");
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        QuorumPki { dir, ca_pem, issuer }
    }

    fn trust_store(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A PEM key store (PKCS#8 key, certificate, its CA) for a server
    /// certificate with subject alternative names `sans`, signed by `issuer`.
    fn key_store(&self, name: &str, issuer: &Issuer<'static, KeyPair>, issuer_pem: &str, sans: &[&str]) -> PathBuf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "zoocore-test");
        params.distinguished_name.push(DnType::CommonName, name);
        // A quorum certificate is shown by dialler and acceptor alike.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&key, issuer).unwrap();
        let path = self.dir.join(format!("{name}.pem"));
        std::fs::write(&path, format!("{}{}{}", key.serialize_pem(), cert.pem(), issuer_pem)).unwrap();
        path
    }

    /// A member certificate from the quorum CA naming 127.0.0.1.
    fn member_store(&self, sid: u64) -> PathBuf {
        self.key_store(&format!("server{sid}"), &self.issuer, &self.ca_pem, &["127.0.0.1", "localhost"])
    }

    /// The zoo.cfg lines of a member on quorum TLS with `key_store`.
    fn config(&self, key_store: &Path) -> String {
        format!(
            "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.keyStore.type=PEM\n\
             ssl.quorum.trustStore.location={}\nssl.quorum.trustStore.type=PEM\n",
            key_store.display(),
            self.trust_store().display()
        )
    }
}

impl Drop for QuorumPki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn a_zoocore_ensemble_on_quorum_tls_elects_replicates_and_serves_everywhere() {
    let _serial = serial();
    let pki = QuorumPki::new("three");
    let stores: Vec<PathBuf> = (1..=3).map(|sid| pki.member_store(sid)).collect();
    // A negative snapshotSizeFactor: a learner beyond the leader's 500-txn
    // window gets a SNAP (the snapshot stream over TLS too).
    let mut e =
        Ensemble::start_with(3, &[], TICK_MS, "snapshotSizeFactor=-1\n", |sid| pki.config(&stores[(sid - 1) as usize]));
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<SocketAddr> = e.members.iter().map(|m| m.client).collect();
    for m in &e.members {
        let log = m.log();
        assert!(log.contains("quorum TLS configured"), "s{} did not set up quorum TLS\n{}", m.sid, m.log_tail(40));
    }
    // Through a follower (forwarded to the leader over the TLS quorum port)
    // and through the leader.
    let follower = e.members.iter().find(|m| m.sid != leader).map(|m| m.client).unwrap();
    write_and_read_everywhere(follower, &clients, "/via-follower", b"one", || ensemble_logs(&e));
    let leader_client = e.member(leader).client;
    write_and_read_everywhere(leader_client, &clients, "/via-leader", b"two", || ensemble_logs(&e));
    // The election port speaks nothing but TLS: a plaintext peer is dropped.
    let probe_at = election_addr(&e, leader);
    let mut probe = std::net::TcpStream::connect(&probe_at).unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    use std::io::{Read, Write};
    probe.write_all(b"\xff\xff\x00\x00\x00\x00\x00\x01 a plaintext preamble").unwrap();
    let mut rest = Vec::new();
    // Closed, after at most a TLS alert record (content type 21).
    let closed = probe.read_to_end(&mut rest).is_ok() && (rest.is_empty() || rest[0] == 21);
    assert!(closed, "a plaintext election connection was not closed with a TLS alert: {rest:?}");
    let leader_member = e.member(leader);
    let dropped = wait_until(Duration::from_secs(5), || {
        strip_ansi(&leader_member.log())
            .lines()
            .any(|l| l.contains("dropping election connection") && l.contains("TLS handshake failed"))
    });
    assert!(dropped, "no log of the plaintext election connection\n{}", e.member(leader).log_tail(20));
    // A restarted follower rejoins over TLS and catches up by SNAP.
    let restarted = e.members.iter().find(|m| m.sid != leader).map(|m| m.sid).unwrap();
    e.member(restarted).kill9();
    write_and_read_everywhere(leader_client, &[leader_client], "/while-down", b"three", || ensemble_logs(&e));
    let c = connect(leader_client);
    common::create_pipelined(&c, (0..600).map(|k| (format!("/while-down-{k}"), None)));
    const SNAP_LINE: &str = "receiving a snapshot from the leader (SNAP)";
    let snaps_before = e.member(restarted).log().matches(SNAP_LINE).count();
    e.member(restarted).spawn();
    e.wait_for_quorum(SETTLE);
    let back = e.member(restarted).client;
    write_and_read_everywhere(leader_client, &[back], "/after-rejoin", b"four", || ensemble_logs(&e));
    let r = connect(back);
    let caught_up = r.get_data("/while-down", false).ok().and_then(|(d, _)| d);
    assert_eq!(caught_up.as_deref(), Some(&b"three"[..]), "the write made while s{restarted} was down");
    assert!(r.exists("/while-down-599", false).is_ok_and(|s| s.is_some()), "the last of the 600 writes");
    let snaps = e.member(restarted).log().matches(SNAP_LINE).count();
    assert_eq!(
        snaps,
        snaps_before + 1,
        "s{restarted} caught up by SNAP over TLS\n{}",
        e.member(restarted).log_tail(40)
    );
}

#[test]
fn quorum_sasl_runs_inside_quorum_tls() {
    let _serial = serial();
    let pki = QuorumPki::new("with-sasl");
    let stores: Vec<PathBuf> = (1..=3).map(|sid| pki.member_store(sid)).collect();
    let jaas = pki.dir.join("jaas.conf");
    std::fs::write(
        &jaas,
        "QuorumServer {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_zk=\"pw\";\n};\n\
         QuorumLearner {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n username=\"zk\"\n password=\"pw\";\n};\n",
    )
    .unwrap();
    let sasl = format!(
        "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\nquorum.auth.serverRequireSasl=true\n\
         java.security.auth.login.config={}\n",
        jaas.display()
    );
    let mut e = Ensemble::start_with(3, &[], TICK_MS, &sasl, |sid| pki.config(&stores[(sid - 1) as usize]));
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<SocketAddr> = e.members.iter().map(|m| m.client).collect();
    let follower = e.members.iter().find(|m| m.sid != leader).map(|m| m.client).unwrap();
    write_and_read_everywhere(follower, &clients, "/tls-and-sasl", b"both", || ensemble_logs(&e));
    let leader_log = strip_ansi(&e.member(leader).log());
    assert!(leader_log.contains("quorum TLS configured"), "{}", e.member(leader).log_tail(40));
    // serverRequireSasl=true: the followers synced, so they passed SASL on
    // the quorum port (inside TLS); the leader logs each exchange it ran.
    assert!(leader_log.contains("quorum peer authenticated"), "{}", e.member(leader).log_tail(40));
    assert!(!leader_log.contains("refused a learner connection"), "{}", e.member(leader).log_tail(40));
}

/// s1 and s2 have quorum certificates; s3 gets `bad_store`. s3 must not
/// join, s1 and s2 serve; returns the ensemble for the log checks.
fn a_member_that_cannot_join(pki: &QuorumPki, bad_store: &Path) -> Ensemble {
    let stores: Vec<PathBuf> = (1..=2).map(|sid| pki.member_store(sid)).collect();
    let mut e = Ensemble::start_with(3, &[], TICK_MS, "", |sid| match sid {
        3 => pki.config(bad_store),
        _ => pki.config(&stores[(sid - 1) as usize]),
    });
    // wait_for_quorum wants every running member settled: wait on s1, s2.
    let settled = wait_until(SETTLE, || {
        let modes: Vec<String> = e.members[..2].iter().map(|m| m.mode()).collect();
        modes.iter().any(|m| m == "leader") && modes.iter().all(|m| m == "leader" || m == "follower")
    });
    assert!(settled, "s1 and s2 did not form a quorum\n{}", ensemble_logs(&e));
    let (s1, s2) = (e.members[0].client, e.members[1].client);
    write_and_read_everywhere(s1, &[s1, s2], "/without-s3", b"x", || ensemble_logs(&e));
    // Give s3 every chance to join: several election rounds.
    std::thread::sleep(Duration::from_secs(5));
    assert!(e.member(3).is_running(), "s3 must keep running (and retrying), not exit\n{}", e.member(3).log_tail(40));
    let mode = e.member(3).mode();
    assert!(
        mode != "follower" && mode != "leader",
        "s3 joined without a good certificate: {mode}\n{}",
        ensemble_logs(&e)
    );
    let (s1_mode, s2_mode) = (e.members[0].mode(), e.members[1].mode());
    assert!(
        [&s1_mode, &s2_mode].iter().all(|m| *m == "leader" || *m == "follower"),
        "s1/s2 stopped serving: {s1_mode} {s2_mode}\n{}",
        ensemble_logs(&e)
    );
    write_and_read_everywhere(s2, &[s1, s2], "/still-serving", b"y", || ensemble_logs(&e));
    e
}

#[test]
fn a_member_whose_certificate_another_ca_signed_cannot_join() {
    let _serial = serial();
    let pki = QuorumPki::new("foreign-ca");
    let (other_ca_pem, other_ca) = new_ca("someone else's CA");
    let bad = pki.key_store("intruder", &other_ca, &other_ca_pem, &["127.0.0.1", "localhost"]);
    let e = a_member_that_cannot_join(&pki, &bad);
    // The good members refuse its certificate, naming where it came from;
    // it is told (the alert) and logs the servers it cannot talk to.
    let s3_election = election_addr(&e, 3);
    for m in &e.members[..2] {
        let log = strip_ansi(&m.log());
        let refused = log.lines().any(|l| {
            (l.contains("dropping election connection")
                && l.contains("peer=")
                && l.contains("invalid peer certificate"))
                || (l.contains(&s3_election) && l.contains("invalid peer certificate"))
        });
        assert!(refused, "s{} logs no refusal of s3's certificate\n{}", m.sid, m.log_tail(60));
    }
    let s3_log = strip_ansi(&e.members[2].log());
    let told = s3_log.lines().any(|l| {
        (l.contains("sid=1") || l.contains("sid=2")) && (l.contains("alert") || l.contains("invalid peer certificate"))
    });
    assert!(told, "s3 logs no TLS failure naming s1 or s2\n{}", e.members[2].log_tail(60));
}

#[test]
fn a_member_whose_certificate_names_another_address_cannot_join() {
    let _serial = serial();
    let pki = QuorumPki::new("wrong-name");
    // Signed by the quorum CA, but for 127.0.0.9 and a name 127.0.0.1 is not.
    let bad = pki.key_store("elsewhere", &pki.issuer, &pki.ca_pem, &["127.0.0.9", "zk-elsewhere.invalid"]);
    let e = a_member_that_cannot_join(&pki, &bad);
    for m in &e.members[..2] {
        let log = strip_ansi(&m.log());
        let refused = log.lines().any(|l| l.contains("does not name its address 127.0.0.1"));
        assert!(refused, "s{} logs no refusal of s3's certificate name\n{}", m.sid, m.log_tail(60));
    }
}

// ---------------------------------------------------------------- with Apache

/// Debian's zookeeper.jar lists netty-handler in its manifest's
/// Class-Path but not netty-codec, which netty's SslHandler extends: an
/// Apache election listener on `sslQuorum=true` sniffs the first bytes with
/// SslHandler.isEncrypted, gets NoClassDefFoundError and silently stops
/// listening. So the Apache members get netty-codec on their class path.
const NETTY_CODEC_JAR: &str = "/usr/share/java/netty-codec.jar";

fn apache_tls_classpath() -> String {
    let mut cp = apache::classpath();
    if Path::new(NETTY_CODEC_JAR).exists() {
        cp.push(':');
        cp.push_str(NETTY_CODEC_JAR);
    }
    cp
}

/// `kinds[i]` runs server `i + 1`, every member on quorum TLS with its own
/// certificate; all but the last settled, then the last follows
/// (common::mixed).
fn start_mixed(pki: &QuorumPki, kinds: &[Kind]) -> Mixed {
    let specs = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let lines = pki.config(&pki.member_store(i as u64 + 1));
            match kind {
                Kind::Zoocore => MemberSpec::zoocore(lines),
                Kind::Apache => MemberSpec::apache(lines, Vec::new(), apache_tls_classpath()),
            }
        })
        .collect();
    let e = Mixed::start_all_but_the_last(&pki.dir.join("ensemble"), TICK_MS, SETTLE, specs, "quorum TLS");
    e.wait_for_the_last_to_follow(SETTLE, "quorum TLS");
    e
}

#[test]
fn an_apache_learner_follows_a_zoocore_leader_over_quorum_tls() {
    if !apache::apache_available("quorum TLS with Apache") {
        return;
    }
    let _serial = serial();
    let pki = QuorumPki::new("apache-learner");
    let e = start_mixed(&pki, &[Kind::Zoocore, Kind::Zoocore, Kind::Apache]);
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Zoocore))), "a zoocore member leads: {leader:?}\n{}", e.logs());
    e.replicates_both_ways();
}

#[test]
fn a_zoocore_learner_follows_an_apache_leader_over_quorum_tls() {
    if !apache::apache_available("quorum TLS with Apache") {
        return;
    }
    let _serial = serial();
    let pki = QuorumPki::new("zoocore-learner");
    let e = start_mixed(&pki, &[Kind::Apache, Kind::Apache, Kind::Zoocore]);
    let leader = e.leader().map(|m| (m.sid, m.kind));
    assert!(matches!(leader, Some((_, Kind::Apache))), "an Apache member leads: {leader:?}\n{}", e.logs());
    e.replicates_both_ways();
}

#[test]
fn mid_rolling_upgrade_tls_and_plaintext_members_form_one_ensemble_through_port_unification() {
    let _serial = serial();
    let pki = QuorumPki::new("rolling");
    let stores: Vec<PathBuf> = (1..=3).map(|sid| pki.member_store(sid)).collect();
    // Apache's rolling upgrade, half-way: every listener takes both; s1 and
    // s2 already dial with TLS, s3 still dials in plaintext.
    let mut e = Ensemble::start_with(3, &[], TICK_MS, "portUnification=true\n", |sid| {
        let tls = pki.config(&stores[(sid - 1) as usize]);
        if sid == 3 {
            tls.replace("sslQuorum=true", "sslQuorum=false")
        } else {
            tls
        }
    });
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<SocketAddr> = e.members.iter().map(|m| m.client).collect();
    for m in &e.members {
        write_and_read_everywhere(m.client, &clients, &format!("/from-s{}", m.sid), b"u", || ensemble_logs(&e));
    }
    // Whichever leads, its learners reached its unified quorum port: s3 in
    // plaintext, s1 and s2 over TLS; and none of the listeners refused anyone.
    assert!(e.member(leader).is_running());
    for m in &e.members[..2] {
        let log = strip_ansi(&m.log());
        assert!(!log.contains("TLS handshake failed"), "s{} refused a peer\n{}", m.sid, m.log_tail(40));
    }
}

/// One ensemble member on `quorum_lines`: its stderr once it refused to start.
fn start_refused(pki: &QuorumPki, quorum_lines: &str) -> String {
    common::ensemble::start_refused_member(&pki.dir.join("refused"), TICK_MS, quorum_lines, "quorum TLS")
}

#[test]
fn unreadable_quorum_stores_stop_start_up_naming_the_key() {
    let pki = QuorumPki::new("refused");
    let missing = pki.dir.join("missing.pem");
    let err = start_refused(&pki, &pki.config(&missing));
    let expected = format!("ssl.quorum.keyStore.location {}: cannot open", missing.display());
    assert!(err.contains(&expected), "{err}");
    let store = pki.member_store(1);
    let no_trust = format!("sslQuorum=true\nssl.quorum.keyStore.location={}\n", store.display());
    let err = start_refused(&pki, &no_trust);
    assert!(err.contains("ssl.quorum.trustStore.location is not set"), "{err}");
    let p12 = format!("{}ssl.quorum.trustStore.type=PKCS12\n", pki.config(&store));
    let err = start_refused(&pki, &p12);
    assert!(err.contains("ssl.quorum.trustStore.location") && err.contains("PKCS12"), "{err}");
}
