//! A port zoocore served is free for the next server the moment zoocore
//! stops, whichever server that is.
//!
//! When zoocore stops it closes its connections first, so their remains
//! sit in TIME-WAIT on its port for up to 60 s. A socket that binds with
//! SO_REUSEADDR (as Apache ZooKeeper's do, and most servers') may bind over
//! TIME-WAIT remains only if those had SO_REUSEADDR too, and accepted
//! connections inherit it from the listener. So: serve four-letter words
//! (the server closes each of those connections first), stop zoocore with
//! SIGTERM, check that TIME-WAIT remains exist (else the test proves
//! nothing), and bind the port at once:
//! 1. with SO_REUSEADDR alone (Apache's and std's way), on the client port;
//! 2. with a real Apache ZooKeeper 3.8 standalone server on that port
//!    (needs Debian's /usr/share/java/zookeeper.jar: skipped with a message
//!    when it is absent, unless CI is set, then it fails);
//! 3. with zoocore itself, several stop/start rounds in a row;
//! 4. the same for the quorum port a leader listens on (`LearnerListener`).
//!
//! Everything binds 127.0.0.1; every process is stopped by PID (the guards
//! in tests/common do so when dropped, also on a panic).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::apache::{self, ServerProcess};
use common::TestServer;
use zoocore::client::Client;

const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Four-letter words served before the stop: each leaves one TIME-WAIT
/// remain on the server's side.
const FOUR_LETTER_ROUNDS: usize = 5;
/// TCP state 06 in /proc/net/tcp{,6}.
const TCP_STATE_TIME_WAIT: &str = "06";

/// How many sockets in TIME-WAIT have `port` as their local port.
fn time_wait_on_local_port(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { continue };
            let local_port = local.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state == TCP_STATE_TIME_WAIT {
                count += 1;
            }
        }
    }
    count
}

/// Binds and listens on `addr` with SO_REUSEADDR and without SO_REUSEPORT,
/// as Apache ZooKeeper (Java's ServerSocket) and Rust's std do.
fn bind_like_apache(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(16)?;
    Ok(socket)
}

/// Serves four-letter words and one session, then stops with SIGTERM and
/// checks the exit was clean and TIME-WAIT remains were left.
fn serve_then_stop(s: &mut TestServer) {
    for _ in 0..FOUR_LETTER_ROUNDS {
        let answer = s.four_letter("srvr");
        assert!(answer.contains("Zxid:"), "srvr answers: {answer:?}");
    }
    // A session too: the server closes it at stop.
    let c = Client::connect(s.addr, Duration::from_secs(10)).expect("connect");
    c.ping().expect("ping");
    let status = s.terminate(STOP_TIMEOUT).expect("zoocore exits after SIGTERM");
    assert!(status.success(), "clean exit after SIGTERM: {status:?}\n{}", s.log());
    drop(c);
    let remains = time_wait_on_local_port(s.addr.port());
    assert!(remains > 0, "serving and stopping left no TIME-WAIT on port {}: the test proves nothing", s.addr.port());
}

#[test]
fn client_port_binds_with_reuseaddr_right_after_a_stop() {
    let mut s = TestServer::start();
    serve_then_stop(&mut s);
    let bound = bind_like_apache(s.addr);
    assert!(
        bound.is_ok(),
        "a SO_REUSEADDR bind right after the stop ({} TIME-WAIT remains): {:?}",
        time_wait_on_local_port(s.addr.port()),
        bound.err()
    );
}

#[test]
fn zoocore_restarts_on_its_port_right_after_a_stop() {
    let mut s = TestServer::start();
    for round in 0..3 {
        serve_then_stop(&mut s);
        // `restart` asserts that the new process serves (ruok) in time.
        s.restart();
        assert!(s.four_letter("srvr").contains("Zxid:"), "round {round}: srvr after the restart");
    }
}

#[test]
fn apache_binds_the_client_port_right_after_zoocore_stops() {
    if !apache::apache_available("apache_binds_the_client_port_right_after_zoocore_stops") {
        return;
    }
    let mut s = TestServer::start();
    serve_then_stop(&mut s);
    let dir = s.dir.join("apache");
    std::fs::create_dir_all(dir.join("data")).expect("apache dir");
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n",
            dir.join("data").display(),
            s.addr.port()
        ),
    )
    .expect("apache zoo.cfg");
    let log = dir.join("apache.log");
    let mut zk = ServerProcess::apache(
        apache::STANDALONE_MAIN,
        &cfg,
        &[apache::LOG_INFO, apache::FOUR_LETTER_WORDS_ALL],
        Some(&dir),
        &log,
    );
    let serving = zk.wait_serving(s.addr, Duration::from_secs(60));
    let text = zk.log();
    assert!(!text.contains("Address already in use"), "Apache could not bind:\n{}", apache::tail(&text, 40));
    assert!(serving, "Apache serves on zoocore's port right after zoocore stopped:\n{}", apache::tail(&text, 40));
    assert!(zk.terminate(STOP_TIMEOUT), "Apache stops");
}

#[test]
fn quorum_port_binds_with_reuseaddr_right_after_the_leader_closes() {
    use zoocore::server::quorum_net::LearnerListener;
    let port = common::ports::unused_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let leader = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("test-leader")
        .io_memory(512 * 1024)
        .spawn(move || async move {
            let listener = LearnerListener::bind(addr).expect("bind the quorum port");
            let link = listener.accept().await.expect("accept");
            // The leader closes first, so the TIME-WAIT remain is its own.
            link.close();
            drop(listener);
        })
        .expect("start a glommio executor");
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut learner = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("connect to the quorum listener: {e}"),
        }
    };
    learner.set_read_timeout(Some(STOP_TIMEOUT)).expect("timeout");
    // Wait for the leader's FIN, then answer it.
    let mut sink = Vec::new();
    let _ = learner.read_to_end(&mut sink);
    let _ = learner.write_all(b"");
    drop(learner);
    leader.join().expect("leader executor");
    assert!(
        common::wait_until(Duration::from_secs(2), || time_wait_on_local_port(port) > 0),
        "the leader's close left no TIME-WAIT on port {port}: the test proves nothing"
    );
    let bound = bind_like_apache(addr);
    assert!(bound.is_ok(), "a SO_REUSEADDR bind on the quorum port right after the leader closed: {:?}", bound.err());
}
