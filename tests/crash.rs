//! Crash tests: writers record every acknowledged write, the server is
//! killed with SIGKILL at a random moment, and after restart every
//! acknowledged write must be there with (at least) the acknowledged
//! version, and no multi may be half applied.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};
use zoocore::client::Client;
use zoocore::proto::records::{CreateRequest, MultiOp};
use zoocore::proto::{open_acl_unsafe, CreateMode};

/// What the writers were told: key -> highest acknowledged version; and
/// the multis acknowledged (each created a pair of nodes).
#[derive(Default)]
struct Acked {
    versions: HashMap<String, i32>,
    /// key -> highest version ever sent (acknowledged or not).
    sent: HashMap<String, i32>,
    pairs: Vec<(String, String)>,
}

/// A small deterministic PRNG so a failing cycle can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn writer(addr: std::net::SocketAddr, id: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>, cycle: usize) {
    let Ok(client) = Client::connect(addr, Duration::from_secs(10)) else { return };
    let acl = open_acl_unsafe();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("/crash/c{cycle}-w{id}-k{}", n % 16);
        if n.is_multiple_of(7) {
            // A multi creating two nodes: both or neither may survive.
            let a = format!("/crash/c{cycle}-w{id}-m{n}-a");
            let b = format!("/crash/c{cycle}-w{id}-m{n}-b");
            let op = |p: &str| MultiOp::Create {
                op: zoocore::proto::op::CREATE,
                req: CreateRequest {
                    path: p.to_string(),
                    data: Some(bytes::Bytes::from_static(b"m")),
                    acl: acl.clone(),
                    flags: 0,
                    ttl: None,
                },
            };
            match client.multi(vec![op(&a), op(&b)]) {
                Ok(results) if zoocore::client::first_error(&results).is_none() => {
                    acked.lock().unwrap().pairs.push((a, b));
                }
                Ok(_) => {}
                Err(_) => return,
            }
            continue;
        }
        let exists = acked.lock().unwrap().versions.contains_key(&key);
        if !exists {
            acked.lock().unwrap().sent.entry(key.clone()).or_insert(0);
            match client.create(&key, b"v0", &acl, CreateMode::Persistent) {
                Ok(_) => {
                    acked.lock().unwrap().versions.insert(key, 0);
                }
                Err(e) if e.code() == Some(zoocore::proto::ErrorCode::NodeExists) => {
                    acked.lock().unwrap().versions.insert(key, 0);
                }
                Err(_) => return,
            }
        } else {
            let next = acked.lock().unwrap().versions[&key] + 1;
            {
                let mut a = acked.lock().unwrap();
                let s = a.sent.entry(key.clone()).or_insert(0);
                *s = (*s).max(next);
            }
            match client.set_data(&key, format!("v{next}").as_bytes(), -1) {
                Ok(stat) => {
                    let mut a = acked.lock().unwrap();
                    let v = a.versions.entry(key).or_insert(0);
                    *v = (*v).max(stat.version);
                }
                Err(_) => return,
            }
        }
    }
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let cycles: usize = std::env::var("ZOOCORE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let seed: u64 = std::env::var("ZOOCORE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_1234);
    let mut rng = Rng(seed);
    // A small snapCount so snapshots and log rolls happen during the test.
    let mut server = TestServer::start_with(ServerOptions {
        extra_config: "snapCount=300\npreAllocSize=1024\n".into(),
        ..Default::default()
    });
    {
        let c = Client::connect(server.addr, Duration::from_secs(10)).expect("connect");
        c.create("/crash", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /crash");
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|id| {
                let (stop, acked, addr) = (stop.clone(), acked.clone(), server.addr);
                std::thread::spawn(move || writer(addr, id, stop, acked, cycle))
            })
            .collect();
        // Kill at a random moment 100..700 ms into the writes.
        let delay = 100 + rng.next() % 600;
        std::thread::sleep(Duration::from_millis(delay));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        let started = Instant::now();
        server.restart();
        eprintln!("cycle {cycle}: killed after {delay} ms, restarted in {:?}", started.elapsed());

        let c = Client::connect(server.addr, Duration::from_secs(10)).expect("connect after restart");
        let a = acked.lock().unwrap();
        for (key, &version) in &a.versions {
            let (data, stat) = c.get_data(key, false).unwrap_or_else(|e| {
                panic!(
                    "cycle {cycle} (seed {seed}): acknowledged {key} v{version} is gone after restart: {e:?}\n{}",
                    server.log()
                )
            });
            let sent = a.sent.get(key).copied().unwrap_or(version);
            assert!(
                stat.version >= version && stat.version <= sent,
                "cycle {cycle} (seed {seed}): {key} has version {} but v{version} was acknowledged (v{sent} sent)",
                stat.version
            );
            assert_eq!(
                data.as_deref(),
                Some(format!("v{}", stat.version).as_bytes()),
                "{key}: data matches its version"
            );
        }
        for (x, y) in &a.pairs {
            assert!(
                c.exists(x, false).unwrap().is_some() && c.exists(y, false).unwrap().is_some(),
                "acknowledged multi {x},{y} lost"
            );
        }
        drop(a);
        // No half-applied multi anywhere, acknowledged or not.
        let children = c.get_children("/crash", false).expect("children");
        for name in children.iter().filter(|n| n.ends_with("-a")) {
            let twin = format!("/crash/{}b", &name[..name.len() - 1]);
            assert!(c.exists(&twin, false).unwrap().is_some(), "multi half applied: /crash/{name} without {twin}");
        }
        for name in children.iter().filter(|n| n.ends_with("-b")) {
            let twin = format!("/crash/{}a", &name[..name.len() - 1]);
            assert!(c.exists(&twin, false).unwrap().is_some(), "multi half applied: /crash/{name} without {twin}");
        }
    }
    let a = acked.lock().unwrap();
    assert!(a.versions.len() > 10, "the writers made too little progress to test anything: {}", a.versions.len());
}
