//! Ensembles of zoocore and Apache ZooKeeper members (quorum TLS and quorum
//! SASL interop): each member's own zoo.cfg, started from it by PID, all but
//! the last settled first so the last joins as a learner of the leader the
//! others elected. Plus the client-side helpers the quorum suites share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

use super::apache::{self, ServerProcess};
use super::ensemble::Ensemble;
use super::{four_letter, strip_ansi, wait_until};

/// Session timeout of the helpers' clients.
const CLIENT_SESSION: Duration = Duration::from_secs(6);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Zoocore,
    Apache,
}

/// What one member of a mixed ensemble runs with.
pub struct MemberSpec {
    pub kind: Kind,
    /// zoo.cfg lines after the common ones and the server list.
    pub quorum_lines: String,
    /// Apache only: JVM arguments beyond the harness's, and the class path.
    pub jvm_args: Vec<String>,
    pub classpath: String,
}

impl MemberSpec {
    pub fn zoocore(quorum_lines: String) -> MemberSpec {
        MemberSpec { kind: Kind::Zoocore, quorum_lines, jvm_args: Vec::new(), classpath: String::new() }
    }

    pub fn apache(quorum_lines: String, jvm_args: Vec<String>, classpath: String) -> MemberSpec {
        MemberSpec { kind: Kind::Apache, quorum_lines, jvm_args, classpath }
    }
}

pub struct MixedMember {
    pub sid: u64,
    pub kind: Kind,
    pub client: SocketAddr,
    pub dir: PathBuf,
    jvm_args: Vec<String>,
    classpath: String,
    process: Option<ServerProcess>,
}

impl MixedMember {
    pub fn spawn(&mut self) {
        let cfg = self.dir.join("zoo.cfg");
        let cmd = match self.kind {
            Kind::Zoocore => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_zoocore"));
                c.arg("server").arg("--config").arg(&cfg).env("ZOOCORE_LOG", "info,zoocore::server=debug");
                c
            }
            Kind::Apache => {
                let args = ["-XX:TieredStopAtLevel=1", "-Xshare:auto", apache::FOUR_LETTER_WORDS_ALL, apache::LOG_INFO];
                let mut c = Command::new(apache::java());
                c.args(apache::BASE_JVM_ARGS).args(args).args(&self.jvm_args).arg("-cp").arg(&self.classpath);
                c.arg(apache::QUORUM_MAIN).arg(&cfg).current_dir(&self.dir);
                c
            }
        };
        self.process = Some(ServerProcess::spawn(cmd, &self.dir.join("server.log")));
    }

    pub fn mode(&self) -> String {
        let out = four_letter(self.client, "srvr").unwrap_or_default();
        out.lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").trim().to_owned()
    }

    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        apache::tail(&self.log(), lines)
    }
}

pub struct Mixed {
    pub members: Vec<MixedMember>,
    /// Removed on drop unless a test is failing (its logs stay to read).
    dir: PathBuf,
}

impl Mixed {
    /// Member `i + 1` runs `specs[i]`, in `dir`. Starts and settles all but
    /// the last (one leader, the rest following, within `settle`), then
    /// starts the last. `what` names the quorum setting in failures.
    pub fn start_all_but_the_last(
        dir: &Path,
        tick_ms: u32,
        settle: Duration,
        specs: Vec<MemberSpec>,
        what: &str,
    ) -> Mixed {
        let n = specs.len();
        let ports: Vec<u16> = (0..3 * n).map(|_| super::ports::unused_port()).collect();
        let servers: String =
            (0..n).map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[3 * i + 1], ports[3 * i + 2])).collect();
        let mut members = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let sid = i as u64 + 1;
            let mdir = dir.join(format!("s{sid}"));
            let data = mdir.join("data");
            apache::write_myid(&data, sid);
            let cfg = format!(
                "tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmaxClientCnxns=0\nzoocore.shards=2\n{servers}{}",
                data.display(),
                ports[3 * i],
                spec.quorum_lines
            );
            std::fs::write(mdir.join("zoo.cfg"), cfg).unwrap();
            let client: SocketAddr = format!("127.0.0.1:{}", ports[3 * i]).parse().unwrap();
            members.push(MixedMember {
                sid,
                kind: spec.kind,
                client,
                dir: mdir,
                jvm_args: spec.jvm_args,
                classpath: spec.classpath,
                process: None,
            });
        }
        let mut e = Mixed { members, dir: dir.to_path_buf() };
        for m in &mut e.members[..n - 1] {
            m.spawn();
        }
        let settled = wait_until(settle, || {
            let modes: Vec<String> = e.members[..n - 1].iter().map(MixedMember::mode).collect();
            modes.iter().filter(|m| *m == "leader").count() == 1
                && modes.iter().all(|m| m == "leader" || m == "follower")
        });
        assert!(settled, "the first {} members did not elect over {what}\n{}", n - 1, e.logs());
        e.members[n - 1].spawn();
        e
    }

    /// Waits until the last member follows.
    pub fn wait_for_the_last_to_follow(&self, settle: Duration, what: &str) {
        let last = self.members.len() - 1;
        let settled = wait_until(settle, || self.members[last].mode() == "follower");
        assert!(settled, "the last member did not join over {what}\n{}", self.logs());
    }

    pub fn leader(&self) -> Option<&MixedMember> {
        self.members.iter().find(|m| m.mode() == "leader")
    }

    pub fn logs(&self) -> String {
        self.members.iter().map(|m| apache::log_report(&format!("s{} ({:?})", m.sid, m.kind), &m.log())).collect()
    }

    /// Every member writes; every member serves every write.
    pub fn replicates_both_ways(&self) {
        let all: Vec<SocketAddr> = self.members.iter().map(|m| m.client).collect();
        for m in &self.members {
            let path = format!("/written-on-s{}-{:?}", m.sid, m.kind);
            write_and_read_everywhere(m.client, &all, &path, path.as_bytes(), || self.logs());
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
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A session on `client`, retried for 20 s (a member may still be joining).
pub fn connect(client: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(client, CLIENT_SESSION) {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => panic!("cannot connect to {client}: {e}"),
        }
    }
}

/// Writes `path` through `writer` and waits until every address in
/// `readers` serves it.
pub fn write_and_read_everywhere(
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

/// The last 40 log lines of every member of a zoocore ensemble.
pub fn ensemble_logs(e: &Ensemble) -> String {
    e.members.iter().map(|m| format!("--- s{} ---\n{}\n", m.sid, m.log_tail(40))).collect()
}

/// `127.0.0.1:<election port>` of member `sid`, from its zoo.cfg.
pub fn election_addr(e: &Ensemble, sid: u64) -> String {
    let cfg = std::fs::read_to_string(e.members[0].dir.join("zoo.cfg")).unwrap();
    let line = cfg.lines().find(|l| l.starts_with(&format!("server.{sid}="))).unwrap();
    let mut parts = line.split('=').nth(1).unwrap().split(':');
    let (host, _quorum, election) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    format!("{host}:{election}")
}
