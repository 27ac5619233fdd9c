//! Hand-run memory measurement of the AdminServer's `watches` listing:
//! starts the given zoocore binary on free loopback ports, sets SESSIONS x
//! PATHS exists watches (setWatches on paths that do not exist, distinct
//! per session), then GETs `/commands/watches` to the end while sampling
//! the server's RSS every 10 ms, and prints the RSS before the listing and
//! its peak during it (VmHWM, reset first through clear_refs), and when a
//! `dirs` asked DIRS_AFTER_MS (default 100) ms into the listing was answered.
//!
//! cargo run --release --example listing_rss -- target/release/zoocore 100 10000

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zoocore::client::Client;
use zoocore::proto::records::SetWatches;

/// The server, ended by its PID when this program ends or panics.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A /proc/PID/status field in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(binary), Some(sessions), Some(paths)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: listing_rss ZOOCORE_BINARY SESSIONS PATHS_PER_SESSION");
        std::process::exit(2);
    };
    let sessions: usize = sessions.parse().expect("SESSIONS");
    let paths: usize = paths.parse().expect("PATHS_PER_SESSION");
    let dir = std::env::temp_dir().join(format!("listing-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (client_port, admin_port) = (free_port(), free_port());
    let cfg = format!(
        "tickTime=2000\ndataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n\
         admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\nadmin.idleTimeout=600000\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
    let log = std::fs::File::create(dir.join("server.log")).expect("log");
    let child = Command::new(binary)
        .args(["server", "--config"])
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn");
    let server = Server(child);
    let pid = server.0.id();
    let addr: SocketAddr = format!("127.0.0.1:{client_port}").parse().expect("addr");
    let started = Instant::now();
    let mut clients = Vec::new();
    while clients.is_empty() {
        match Client::connect(addr, Duration::from_secs(60)) {
            Ok(c) => clients.push(c),
            Err(_) if started.elapsed() < Duration::from_secs(30) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("connect: {e}"),
        }
    }
    while clients.len() < sessions {
        clients.push(Client::connect(addr, Duration::from_secs(60)).expect("connect"));
    }
    for (s, c) in clients.iter().enumerate() {
        let names: Vec<String> = (0..paths).map(|i| format!("/app/service-{s:04}/watched/node-{i:08}")).collect();
        for batch in names.chunks(10_000) {
            c.set_watches(SetWatches { relative_zxid: c.last_zxid(), exist: batch.to_vec(), ..Default::default() })
                .expect("setWatches");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let before_kib = status_kib(pid, "VmRSS:");
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let sampled_peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (sampled_peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(600))).build().into();
    let listed_at = Instant::now();
    let dirs_after_ms: u64 = std::env::var("DIRS_AFTER_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    // `dirs` asked DIRS_AFTER_MS (100) ms into the listing: answered at once, or only when
    // the listing is done (its wait held the blocking pool, before streaming).
    let dirs = std::thread::spawn({
        let agent = agent.clone();
        move || {
            std::thread::sleep(Duration::from_millis(dirs_after_ms));
            let asked = listed_at.elapsed();
            let ok = agent.get(&format!("http://127.0.0.1:{admin_port}/commands/dirs")).call().is_ok();
            (asked, listed_at.elapsed(), ok)
        }
    });
    let mut response = agent.get(&format!("http://127.0.0.1:{admin_port}/commands/watches")).call().expect("GET");
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut reader = response.body_mut().as_reader();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) => panic!("body: {e}"),
        }
    }
    let took = listed_at.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let hwm_kib = status_kib(pid, "VmHWM:");
    let (dirs_asked, dirs_answered, dirs_ok) = dirs.join().unwrap_or_default();
    println!(
        "watches={} answer_bytes={bytes} took_ms={} dirs_asked_ms={} dirs_answered_ms={} dirs_ok={dirs_ok} \
         rss_before_mib={:.0} peak_sampled_mib={:.0} vmhwm_mib={:.0} (hwm reset: {reset})",
        sessions * paths,
        took.as_millis(),
        dirs_asked.as_millis(),
        dirs_answered.as_millis(),
        before_kib as f64 / 1024.0,
        sampled_peak.load(Ordering::Relaxed) as f64 / 1024.0,
        hwm_kib as f64 / 1024.0
    );
    drop(clients);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
