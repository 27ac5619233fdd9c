//! A zoocore ensemble on loopback for tests: N `zoocore` processes, each
//! with its own data directory, myid and zoo.cfg (client, quorum and
//! election ports picked by the test on 127.0.0.1), each stopped by PID.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::four_letter;

static ENSEMBLE_COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Member {
    pub sid: u64,
    pub client: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
}

pub struct Ensemble {
    pub members: Vec<Member>,
    pub dir: PathBuf,
}

/// Ports for (client, quorum, election) of every member: distinct, and
/// below the ephemeral range (see `ports`).
fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| super::ports::unused_port()).collect()
}

impl Ensemble {
    /// `observers` are sids (1-based) that join as observers.
    pub fn start(n: usize, observers: &[u64], tick_ms: u32, extra_config: &str) -> Ensemble {
        Ensemble::start_with(n, observers, tick_ms, extra_config, |_| String::new())
    }

    /// As `start`, with `member_config(sid)` appended to that member's zoo.cfg
    /// (after `extra_config`, so its keys win).
    pub fn start_with(
        n: usize,
        observers: &[u64],
        tick_ms: u32,
        extra_config: &str,
        member_config: impl Fn(u64) -> String,
    ) -> Ensemble {
        let k = ENSEMBLE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zoocore-ensemble-{}-{}", std::process::id(), k));
        let _ = std::fs::remove_dir_all(&dir);
        let ports = free_ports(3 * n);
        let servers: String = (0..n)
            .map(|i| {
                let role = if observers.contains(&(i as u64 + 1)) { ":observer" } else { "" };
                format!("server.{}=127.0.0.1:{}:{}{role}\n", i + 1, ports[3 * i + 1], ports[3 * i + 2])
            })
            .collect();
        let mut members = Vec::new();
        for i in 0..n {
            let sid = i as u64 + 1;
            let mdir = dir.join(format!("s{sid}"));
            let data = mdir.join("data");
            std::fs::create_dir_all(&data).expect("member dir");
            std::fs::write(data.join("myid"), format!("{sid}\n")).expect("myid");
            let peer_type = if observers.contains(&sid) { "peerType=observer\n" } else { "" };
            let cfg = format!(
                "tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nzoocore.shards=2\nmaxClientCnxns=0\n{peer_type}{servers}{extra_config}\n{}\n",
                data.display(),
                ports[3 * i],
                member_config(sid)
            );
            std::fs::write(mdir.join("zoo.cfg"), cfg).expect("zoo.cfg");
            let client: SocketAddr = format!("127.0.0.1:{}", ports[3 * i]).parse().expect("addr");
            let mut m = Member { sid, client, dir: mdir, child: None };
            m.spawn();
            members.push(m);
        }
        Ensemble { members, dir }
    }

    pub fn member(&mut self, sid: u64) -> &mut Member {
        &mut self.members[(sid - 1) as usize]
    }

    /// Waits until one running member leads and every other running member
    /// follows or observes; returns the leader's sid.
    pub fn wait_for_quorum(&mut self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let mut modes: Vec<(u64, String)> = Vec::new();
            for m in self.members.iter_mut() {
                if m.is_running() {
                    modes.push((m.sid, m.mode()));
                }
            }
            let leaders: Vec<u64> = modes.iter().filter(|(_, m)| m == "leader").map(|(s, _)| *s).collect();
            let all_settled = modes.iter().all(|(_, m)| m == "leader" || m == "follower" || m == "observer");
            if leaders.len() == 1 && all_settled {
                return leaders[0];
            }
            if Instant::now() > deadline {
                let logs: String =
                    self.members.iter().map(|m| format!("--- s{} ---\n{}\n", m.sid, m.log_tail(40))).collect();
                panic!("no settled ensemble within {limit:?}: {modes:?}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Member {
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
            .arg("server")
            .arg("--config")
            .arg(self.dir.join("zoo.cfg"))
            .env("ZOOCORE_LOG", "info,zoocore::server=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn zoocore");
        self.child = Some(child);
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `Mode:` from srvr (leader, follower, observer, looking) or "" if it
    /// does not answer.
    pub fn mode(&self) -> String {
        let out = four_letter(self.client, "srvr").unwrap_or_default();
        out.lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").trim().to_owned()
    }

    pub fn zxid(&self) -> i64 {
        let out = four_letter(self.client, "srvr").unwrap_or_default();
        out.lines()
            .find_map(|l| l.strip_prefix("Zxid: 0x"))
            .and_then(|h| i64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(-1)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(c) = m.child.as_mut() {
                // A stopped (SIGSTOP) process must be continued to die of SIGTERM.
                unsafe {
                    libc::kill(c.id() as i32, libc::SIGCONT);
                    libc::kill(c.id() as i32, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs one two-server ensemble member (sid 1) in `dir` on `lines` added
/// to its zoo.cfg and returns its stderr: it must exit by itself,
/// unsuccessfully, before serving (a start-up refusal; `what` names the
/// settings in the failure message).
pub fn start_refused_member(dir: &std::path::Path, tick_ms: u32, lines: &str, what: &str) -> String {
    let data = dir.join("data");
    super::apache::write_myid(&data, 1);
    let ports: Vec<u16> = (0..5).map(|_| super::ports::unused_port()).collect();
    let cfg = format!(
        "tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
         server.1=127.0.0.1:{}:{}\nserver.2=127.0.0.1:{}:{}\n{lines}",
        data.display(),
        ports[0],
        ports[1],
        ports[2],
        ports[3],
        ports[4]
    );
    std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config"])
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = super::wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(exited, "zoocore must refuse to start on these {what} settings, not run");
    assert!(!out.status.success(), "a refused start exits non-zero");
    let _ = std::fs::remove_dir_all(dir);
    super::strip_ansi(&String::from_utf8_lossy(&out.stderr))
}
