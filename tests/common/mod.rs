//! Starts the real `zoocore` binary on a loopback port the test picks, with
//! a fresh data directory, and stops it by PID when dropped.
#![allow(dead_code)]

pub mod apache;
pub mod ensemble;
pub mod mixed;
pub mod ports;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use zoocore::proto::types::Acl;

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct ServerOptions {
    pub tick_ms: u32,
    pub shards: usize,
    pub extra_config: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { tick_ms: 500, shards: 2, extra_config: String::new() }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> TestServer {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("zoocore-test-{}-{}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&dir);
        // The port can be taken between probing and binding; retry a few times.
        for _attempt in 0..5 {
            std::fs::create_dir_all(&dir).expect("create test dir");
            let port = free_port();
            let cfg = format!(
                "tickTime={}\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nzoocore.shards={}\nextendedTypesEnabled=true\nDigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=\nznode.container.checkIntervalMs=500\n{}\n",
                opts.tick_ms,
                dir.join("data").display(),
                port,
                opts.shards,
                opts.extra_config
            );
            let cfg_path = dir.join("zoo.cfg");
            std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
            let log = std::fs::File::create(dir.join("server.log")).expect("server log");
            let child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
                .arg("server")
                .arg("--config")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn zoocore");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut server = TestServer { addr, dir: dir.clone(), child };
            // A taken port makes the process exit at once; a slow start on a
            // loaded 2-core machine is given as long as a restart is.
            if server.wait_ready(Duration::from_secs(30)) {
                return server;
            }
            // End this attempt's process by its PID and keep the directory
            // for the next attempt: Drop would signal the reaped PID (which
            // may be reused by then) and remove the directory, so the next
            // attempt could not even write its zoo.cfg.
            let _ = server.child.kill();
            let _ = server.child.wait();
            std::mem::forget(server);
        }
        panic!("zoocore did not start; log: {}", std::fs::read_to_string(dir.join("server.log")).unwrap_or_default());
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if four_letter(self.addr, "ruok").as_deref() == Some("imok") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL, as a crash: nothing is flushed, no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.wait_port_closed();
    }

    /// The kernel tears a dead process's io_uring down asynchronously, and
    /// the listening socket a pending accept holds can answer connects for
    /// a moment after the process is reaped; a restart in that window
    /// would see "another server is listening". Wait until it refuses.
    fn wait_port_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.restart_with_args(&[]);
    }

    /// As `restart`, with extra command-line arguments (e.g. `--repair`).
    pub fn restart_with_args(&mut self, args: &[&str]) {
        if self.is_running() {
            self.kill9();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        self.child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
            .arg("server")
            .arg("--config")
            .arg(self.dir.join("zoo.cfg"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn zoocore");
        assert!(self.wait_ready(Duration::from_secs(30)), "zoocore did not restart; log:\n{}", self.log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn four_letter(&self, cmd: &str) -> String {
        four_letter(self.addr, cmd).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stop by PID: SIGTERM first (clean shutdown), SIGKILL if it lingers.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends a four-letter word and returns the whole answer.
pub fn four_letter(addr: SocketAddr, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// The whole tree below `/` (without `/zookeeper`) as one client sees it
/// after a sync: path -> (data, czxid, mzxid, version). Equal dumps from
/// two servers mean they applied the same history.
pub type TreeDump = std::collections::BTreeMap<String, (Vec<u8>, i64, i64, i32)>;

pub fn tree_dump(c: &zoocore::client::Client) -> TreeDump {
    c.sync("/").expect("sync");
    let mut out = TreeDump::new();
    let mut todo = vec!["/".to_owned()];
    while let Some(path) = todo.pop() {
        for child in c.get_children(&path, false).expect("children") {
            let full = if path == "/" { format!("/{child}") } else { format!("{path}/{child}") };
            if full == "/zookeeper" {
                continue;
            }
            let (data, stat) = c.get_data(&full, false).expect("get");
            out.insert(
                full.clone(),
                (data.map(|d| d.to_vec()).unwrap_or_default(), stat.czxid, stat.mzxid, stat.version),
            );
            todo.push(full);
        }
    }
    out
}

/// Whether any file under `dir` holds `needle` (a txn's path in a log).
pub fn dir_holds_bytes(dir: &std::path::Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            dir_holds_bytes(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// True once the kernel reports the process stopped (SIGSTOP: state `T`).
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('T')))
        .unwrap_or(false)
}

pub use apache::strip_ansi;

/// The part of the Apache-format workloads both tests/apache_formats.rs and
/// tests/import_export.rs write: a multi (create, setData, check, delete)
/// under /multi, then `bulk_nodes` nodes under /bulk with every third one
/// ACL'd to `restricted`, every fourth one rewritten and every tenth deleted.
pub fn write_multi_and_bulk(c: &zoocore::client::Client, restricted: &[Acl], open: &[Acl], bulk_nodes: usize) {
    use bytes::Bytes;
    use zoocore::proto::records::{CreateRequest, MultiOp, PathVersion, SetDataRequest};
    use zoocore::proto::types::CreateMode;
    c.create("/multi", b"", open, CreateMode::Persistent).unwrap();
    c.create("/multi/old", b"", open, CreateMode::Persistent).unwrap();
    let results = c
        .multi(vec![
            MultiOp::Create {
                op: zoocore::proto::op::CREATE,
                req: CreateRequest {
                    path: "/multi/a".into(),
                    data: Some(Bytes::from_static(b"ma")),
                    acl: restricted.to_vec(),
                    flags: 0,
                    ttl: None,
                },
            },
            MultiOp::SetData(SetDataRequest {
                path: "/multi".into(),
                data: Some(Bytes::from_static(b"m")),
                version: 0,
            }),
            MultiOp::Check(PathVersion { path: "/multi".into(), version: 1 }),
            MultiOp::Delete(PathVersion { path: "/multi/old".into(), version: -1 }),
        ])
        .unwrap();
    assert_eq!(zoocore::client::first_error(&results), None, "{results:?}");
    c.create("/bulk", b"", open, CreateMode::Persistent).unwrap();
    for i in 0..bulk_nodes {
        let path = format!("/bulk/n{i:02}");
        let node_acl = if i % 3 == 0 { restricted } else { open };
        c.create(&path, format!("value {i}").as_bytes(), node_acl, CreateMode::Persistent).unwrap();
        if i % 4 == 0 {
            c.set_data(&path, &[i as u8; 7], 0).unwrap();
        }
        if i % 10 == 9 {
            c.delete(&path, -1).unwrap();
        }
    }
}

/// A multi op creating a persistent, world-open node.
pub fn create_op(path: &str, data: &'static [u8]) -> zoocore::proto::MultiOp {
    zoocore::proto::MultiOp::Create {
        op: zoocore::proto::op::CREATE,
        req: zoocore::proto::CreateRequest {
            path: path.into(),
            data: Some(bytes::Bytes::from_static(data)),
            acl: zoocore::proto::open_acl_unsafe(),
            flags: 0,
            ttl: None,
        },
    }
}

/// Creates every (path, data) node with open ACLs, pipelined: all
/// submitted, then all awaited, so hundreds take well under a second.
/// Panics on any failed create.
pub fn create_pipelined(c: &zoocore::client::Client, nodes: impl IntoIterator<Item = (String, Option<bytes::Bytes>)>) {
    let pending: Vec<_> = nodes
        .into_iter()
        .map(|(path, data)| {
            c.submit(zoocore::proto::records::Request::Create {
                op: zoocore::proto::op::CREATE,
                req: zoocore::proto::records::CreateRequest {
                    path,
                    data,
                    acl: zoocore::proto::open_acl_unsafe(),
                    flags: 0,
                    ttl: None,
                },
            })
            .expect("submit")
        })
        .collect();
    for p in pending {
        let (header, _) = p.wait().expect("create");
        assert_eq!(header.err, 0, "create failed");
    }
}
