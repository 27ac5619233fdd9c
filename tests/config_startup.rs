//! `zoocore server --config` start-up and zoo.cfg behaviour: bad files,
//! unknown keys, connection limits, the 4lw whitelist, shard counts and a
//! clean SIGTERM stop.

mod common;

use common::wait_until;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

#[test]
fn malformed_line_fails_start_naming_file_and_line() {
    let dir = std::env::temp_dir().join(format!("zoocore-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!("# a comment\ndataDir={}\ntickTime=not-a-number\nclientPort=0\n", dir.join("data").display()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(exited, "zoocore should exit on a malformed zoo.cfg");
    assert!(!out.status.success(), "exit status {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("zoo.cfg:3"), "message should name the file and line: {stderr}");
    assert!(stderr.contains("tickTime"), "{stderr}");
}

#[test]
fn unknown_keys_start_with_a_warning() {
    let s = TestServer::start_with(ServerOptions {
        extra_config: "someFutureKnob=42\nanotherUnknown.key=x\n".into(),
        ..Default::default()
    });
    let c = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    c.ping().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || s.log().contains("someFutureKnob")),
        "a warning naming the key is logged: {}",
        s.log()
    );
}

#[test]
fn max_client_cnxns_per_address() {
    let s = TestServer::start_with(ServerOptions { extra_config: "maxClientCnxns=3\n".into(), ..Default::default() });
    // The harness' readiness probes must have been released first.
    let first: Vec<Client> = (0..3)
        .map(|_| {
            let mut last = None;
            for _ in 0..50 {
                match Client::connect(s.addr, Duration::from_secs(10)) {
                    Ok(c) => return c,
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("could not open one of the first 3 connections: {last:?}");
        })
        .collect();
    let fourth = Client::connect(s.addr, Duration::from_secs(10));
    assert!(fourth.is_err(), "the 4th connection from 127.0.0.1 must be closed");
    for c in &first {
        c.ping().unwrap();
    }
    // Freeing a slot lets a new connection in.
    let mut first = first;
    first.pop().unwrap().close().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || Client::connect(s.addr, Duration::from_secs(10)).is_ok()),
        "a slot should free up after a close"
    );
}

#[test]
fn whitelist_limits_four_letter_words() {
    let s = TestServer::start_with(ServerOptions {
        extra_config: "4lw.commands.whitelist=ruok\n".into(),
        ..Default::default()
    });
    assert_eq!(s.four_letter("ruok"), "imok");
    // srvr is always allowed.
    assert!(s.four_letter("srvr").contains("Zookeeper version"), "{}", s.four_letter("srvr"));
    assert_eq!(s.four_letter("mntr"), "mntr is not executed because it is not in the whitelist.\n");
    assert!(s.four_letter("cons").contains("not in the whitelist"));
}

fn serve_with_shards(shards: usize) {
    let s = TestServer::start_with(ServerOptions { shards, ..Default::default() });
    let clients: Vec<Client> = (0..8).map(|_| Client::connect(s.addr, Duration::from_secs(10)).unwrap()).collect();
    clients[0].create("/s", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for (i, c) in clients.iter().enumerate() {
        c.create(&format!("/s/{i}"), b"", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    }
    for c in &clients {
        assert_eq!(c.get_children("/s", false).unwrap().len(), clients.len());
    }
    assert!(s.four_letter("srvr").contains("Node count"));
}

#[test]
fn one_shard_serves() {
    serve_with_shards(1);
}

#[test]
fn five_shards_serve() {
    serve_with_shards(5);
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut s = TestServer::start();
    let c = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    c.create("/t", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let started = Instant::now();
    let status = s.terminate(Duration::from_secs(5)).expect("zoocore should exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}; log: {}", s.log());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!s.is_running());
}

/// Runs `zoocore server --config` on `cfg_text` (with `myid` written into
/// dataDir when given) and returns its exit status and stderr; the server
/// must exit by itself.
fn start_expecting_exit(name: &str, cfg_text: &str, myid: Option<&str>) -> (std::process::ExitStatus, String) {
    let dir = std::env::temp_dir().join(format!("zoocore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    if let Some(id) = myid {
        std::fs::write(data.join("myid"), id).unwrap();
    }
    let cfg = dir.join("zoo.cfg");
    std::fs::write(&cfg, cfg_text.replace("@DATA@", &data.display().to_string())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(exited, "zoocore must exit on this config, not serve");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ensemble_cfg(client_port: u16) -> String {
    format!(
        "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=@DATA@\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n\
         server.1=127.0.0.1:{}:{}\nserver.2=127.0.0.2:{}:{}\nserver.3=127.0.0.3:{}:{}\n",
        client_port + 1,
        client_port + 2,
        client_port + 1,
        client_port + 2,
        client_port + 1,
        client_port + 2
    )
}

/// The safety fix: an ensemble zoo.cfg must not start an independent
/// standalone server. One member alone is an ensemble member without a
/// quorum: it elects, serves no client, and says so.
#[test]
fn lone_ensemble_member_does_not_serve_standalone() {
    // Client, quorum and election ports, all free and distinct.
    let held: Vec<std::net::TcpListener> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = held.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(held);
    let port = ports[0];
    let dir = std::env::temp_dir().join(format!("zoocore-lone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "2\n").unwrap();
    let cfg = dir.join("zoo.cfg");
    let text = format!(
        "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         admin.enableServer=false\n4lw.commands.whitelist=*\nserver.1=127.0.0.1:{q}:{e}\nserver.2=127.0.0.2:{q}:{e}\nserver.3=127.0.0.3:{q}:{e}\n",
        data.display(),
        q = ports[1],
        e = ports[2]
    );
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let answered = wait_until(Duration::from_secs(10), || {
        common::four_letter(addr, "srvr").is_some_and(|s| s.contains("not currently serving requests"))
    });
    let client = Client::connect(addr, Duration::from_secs(5)).and_then(|c| c.ping().map(|_| c));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answered, "a lone member says it is not serving");
    assert!(client.is_err(), "a lone member accepts no client session");
}

#[test]
fn ensemble_config_without_myid_names_the_file() {
    let (status, stderr) = start_expecting_exit("nomyid", &ensemble_cfg(40000), None);
    assert!(!status.success());
    assert!(stderr.contains("data/myid: cannot read the myid file"), "{stderr}");
}

#[test]
fn ensemble_config_with_foreign_myid_names_the_file() {
    let (status, stderr) = start_expecting_exit("badmyid", &ensemble_cfg(40000), Some("9"));
    assert!(!status.success());
    assert!(stderr.contains("myid: myid is 9 but") && stderr.contains("has no server.9 line"), "{stderr}");
}

#[test]
fn bad_server_line_names_the_line() {
    let text = "dataDir=@DATA@\ninitLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2888\n";
    let (status, stderr) = start_expecting_exit("badserver", text, Some("1"));
    assert!(!status.success());
    assert!(stderr.contains("zoo.cfg:5: bad server.2 line") && stderr.contains("missing election port"), "{stderr}");
}

/// One server line with standaloneEnabled (the default) is standalone in
/// Apache ZooKeeper, and so it is here.
#[test]
fn single_server_line_runs_standalone() {
    let s = TestServer::start_with(ServerOptions {
        extra_config: "server.1=127.0.0.1:2888:3888\ninitLimit=5\nsyncLimit=2\n".into(),
        ..Default::default()
    });
    let c = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    c.ping().unwrap();
}

/// `zoocore check-config` validates without starting: a good file passes
/// with its warnings printed, a bad line fails naming the file and line.
#[test]
fn check_config_validates_without_starting() {
    let dir = std::env::temp_dir().join(format!("zoocore-checkcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |text: &str| {
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_zoocore"))
            .args(["check-config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data = dir.join("data");
    let (status, stdout, _) = run(&format!("dataDir={}\nclientPort=2181\nnoSuchKey=1\n", data.display()));
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("valid (standalone"), "{stdout}");
    assert!(stdout.contains("warning:") && stdout.contains("noSuchKey"), "unknown keys are warned about: {stdout}");
    assert!(!data.exists(), "nothing is created: it does not start");
    let (status, _, stderr) = run(&format!("dataDir={}\ntickTime=soon\n", data.display()));
    assert!(!status.success());
    assert!(stderr.contains("zoo.cfg:2") && stderr.contains("tickTime"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// globalOutstandingLimit is honoured without stalling: with a limit of 2
/// on one shard, six clients writing at once all finish (each shard stops
/// reading requests while its share is in flight, and resumes), and the
/// permits of a client that disconnects with requests in flight come back.
#[test]
fn global_outstanding_limit_throttles_without_stalling() {
    let s = TestServer::start_with(ServerOptions {
        shards: 1,
        extra_config: "globalOutstandingLimit=2\n".into(),
        ..Default::default()
    });
    let setup = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    setup.create("/g", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let addr = s.addr;
    // One client that vanishes mid-stream (its socket closes with requests queued).
    {
        let mut raw = std::net::TcpStream::connect(addr).unwrap();
        use std::io::Write;
        let _ = raw.write_all(&[0u8; 64]);
    }
    let writers: Vec<_> = (0..6)
        .map(|w| {
            std::thread::spawn(move || {
                let c = Client::connect(addr, Duration::from_secs(10)).unwrap();
                for i in 0..40 {
                    c.create(&format!("/g/w{w}-{i}"), b"x", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer finished");
    }
    assert_eq!(setup.get_children("/g", false).unwrap().len(), 240);
}
