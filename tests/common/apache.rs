//! Apache ZooKeeper 3.8 processes for the interop tests (Debian's jar): the
//! house rule for skipping, the `java` command line every test uses, the
//! member files (myid), and a process guard that appends the server's
//! stdout and stderr to a log file and kills it by PID when dropped (also
//! when the test panics).
//!
//! Self-contained (no sibling modules), so a test file can take it alone
//! with `#[path = "common/apache.rs"] mod apache;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const APACHE_JAR: &str = "/usr/share/java/zookeeper.jar";
/// slf4j binding so the servers log to stderr (Debian's classpath has
/// none); optional.
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
pub const QUORUM_MAIN: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";
pub const STANDALONE_MAIN: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
/// Every Apache JVM the tests start: a small heap and serial GC for a
/// shared 2-core machine, no admin HTTP server, and log lines stamped to
/// the millisecond (UTC on the test machines, as zoocore's), so a failed
/// interop test's logs can be read side by side.
pub const BASE_JVM_ARGS: [&str; 5] = [
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-Dzookeeper.admin.enableServer=false",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
];
/// slf4j-simple's level for every logger.
pub const LOG_INFO: &str = "-Dorg.slf4j.simpleLogger.defaultLogLevel=info";
pub const FOUR_LETTER_WORDS_ALL: &str = "-Dzookeeper.4lw.commands.whitelist=*";

/// CI is set (to anything): Apache tests must run, not skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The house rule: true when Apache is installed; otherwise, outside CI,
/// prints why the test is skipped and returns false; in CI it panics.
/// `what` names the test for the messages.
pub fn apache_available(what: &str) -> bool {
    if Path::new(APACHE_JAR).exists() {
        return true;
    }
    assert!(!in_ci(), "{APACHE_JAR} is missing and CI is set: {what} must run in CI");
    println!("skipped {what}: {APACHE_JAR} not found (install Debian's zookeeper package)");
    false
}

/// The JVM to run: `ZK_JAVA` if set, else `java` from PATH.
pub fn java() -> String {
    std::env::var("ZK_JAVA").unwrap_or_else(|_| "java".to_owned())
}

/// The jar, plus slf4j-simple when it is installed.
pub fn classpath() -> String {
    let mut cp = APACHE_JAR.to_owned();
    if Path::new(SLF4J_SIMPLE_JAR).exists() {
        cp.push(':');
        cp.push_str(SLF4J_SIMPLE_JAR);
    }
    cp
}

/// `java BASE_JVM_ARGS jvm_args -cp <classpath> main cfg`.
pub fn command(main: &str, cfg: &Path, jvm_args: &[&str]) -> Command {
    let mut c = Command::new(java());
    c.args(BASE_JVM_ARGS).args(jvm_args).arg("-cp").arg(classpath()).arg(main).arg(cfg);
    c
}

/// Creates `data_dir` and writes its `myid` as Apache reads it.
pub fn write_myid(data_dir: &Path, sid: u64) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    std::fs::write(data_dir.join("myid"), format!("{sid}\n")).expect("myid");
}

/// `server.N=127.0.0.1:quorum:election` lines for `(sid, quorum, election)`.
pub fn server_lines(servers: &[(u64, u16, u16)]) -> String {
    servers.iter().map(|(sid, q, e)| format!("server.{sid}=127.0.0.1:{q}:{e}\n")).collect()
}

/// A server process (Apache's JVM, or anything else a test spawns), its
/// stdout and stderr appended to `log`; killed by PID when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ServerProcess {
    pub fn spawn(mut cmd: Command, log: &Path) -> ServerProcess {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("server log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("server log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        ServerProcess { child: Some(child), log: log.to_owned() }
    }

    /// Starts an Apache server: `command(main, cfg, jvm_args)`, run in `dir`.
    pub fn apache(main: &str, cfg: &Path, jvm_args: &[&str], dir: Option<&Path>, log: &Path) -> ServerProcess {
        let mut cmd = command(main, cfg, jvm_args);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        ServerProcess::spawn(cmd, log)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Still running (not exited, not killed).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Exited on its own (as opposed to running, or killed by us).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits until the server at `addr` serves clients, false if it exits
    /// first or `limit` passes. `ruok` answers before the database is
    /// loaded; `srvr` reports a zxid only once clients are served.
    pub fn wait_serving(&mut self, addr: std::net::SocketAddr, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.has_exited() {
                return false;
            }
            if srvr(addr).is_some_and(|s| s.contains("Zxid:")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGKILL and reap; nothing runs after it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then up to `limit` for it to exit; SIGKILL if it does not.
    /// True when it exited by itself.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Sends `sig` (e.g. SIGSTOP, SIGCONT) to the process, by PID.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `lines` lines of `log`, colour codes and stack frames left out.
pub fn tail(log: &str, lines: usize) -> String {
    let log = strip_ansi(log);
    let all: Vec<&str> = log.lines().filter(|l| !l.trim_start().starts_with("at ")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `log` without terminal colour codes (zoocore's log wraps field names in
/// them), so `field=value` can be matched.
pub fn strip_ansi(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `lines` lines of a server log (Apache's or zoocore's) that say
/// what happened: warnings and errors, role and phase changes, sessions
/// opened and expired, learners synced and dropped. Stack frames and the
/// settings a JVM prints at start are left out, so a failed test's report
/// fits beside the other members' (a plain tail is mostly start-up noise).
pub fn digest(log: &str, lines: usize) -> String {
    const TELLING: [&str; 14] = [
        " WARN ",
        " ERROR ",
        "Peer state changed",
        "ELECTION TOOK",
        "Learner received",
        "Getting a ",
        "session",
        "Session",
        "learner",
        "leading",
        "election decided",
        "fsync",
        "role",
        "Exception",
    ];
    let log = strip_ansi(log);
    let telling: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") && !l.contains("DEBUG"))
        // A JVM's start-up settings ("minSessionTimeout set to ...").
        .filter(|l| !l.contains(" [main] ") && !l.contains(" set to ") && !l.contains("zookeeper.learner."))
        .filter(|l| TELLING.iter().any(|t| l.contains(t)))
        .collect();
    telling[telling.len().saturating_sub(lines)..].join("\n")
}

/// A member's part of a failed test's report: what its log says happened
/// (`digest`), then its last lines.
pub fn log_report(name: &str, log: &str) -> String {
    format!("--- {name}: what happened ---\n{}\n--- {name}: last lines ---\n{}\n", digest(log, 30), tail(log, 10))
}

/// The `srvr` answer of the server at `addr` (this file is included on its
/// own by some tests, without tests/common/mod.rs).
fn srvr(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"srvr").ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}
