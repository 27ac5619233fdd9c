//! `server::quorum_net` on real glommio executors and sockets:
//! 1. a leader and a learner on two executors over loopback: thousands of
//!    pipelined PROPOSALs and their ACKs arrive in order and leave in few
//!    socket writes; a SNAP of a few thousand znodes arrives equal node for
//!    node, and the packets queued after it arrive after it;
//!    a snapshot to a learner that does not read holds up no other link;
//! 2. garbage into the leader's listener closes that link with an error
//!    naming the peer and the cause, and the listener keeps accepting; a
//!    broken SNAP stream does the same on the learner side; a send queue
//!    over its bound fails the link;
//! 3. a `LeaderLink` joins a real Apache ZooKeeper 3.8 leader as server 3
//!    and syncs from a SNAP: FOLLOWERINFO, LEADERINFO, ACKEPOCH, the
//!    snapshot (holding what a client wrote), NEWLEADER, ACK, UPTODATE,
//!    ACK, PINGs answered.
//!
//! Test 3 needs Debian's /usr/share/java/zookeeper.jar: skipped with a
//! message when it is absent, unless CI is set (then it fails).

#[path = "common/apache.rs"]
mod apache;
#[path = "common/ports.rs"]
mod ports;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{LocalExecutorBuilder, Placement};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, perms, read_acl_unsafe, Acl, CreateMode, Id};
use zoocore::server::quorum_net::{FromLeader, LeaderLink, LearnerListener, LinkFailure, SEND_QUEUE_MAX_BYTES};
use zoocore::storage::apache::ApacheFormatError;
use zoocore::tree::{DataTree, StoredStat};
use zoocore::zab::packets::{make_zxid, LearnerInfo, PacketError, ToLeader, ToLearner, PROTOCOL_VERSION_ZAB_1_0};

/// Socket buffers only: glommio's 10 MiB default is far more than needed.
const TEST_IO_MEMORY_BYTES: usize = 512 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Any single step of a test waiting longer than this is a failure.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `f` on a fresh glommio executor thread; returns its handle.
fn spawn_executor<T, F, Fut>(name: &str, f: F) -> glommio::ExecutorJoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(TEST_IO_MEMORY_BYTES)
        .spawn(f)
        .expect("start a glommio executor (io_uring needs a little locked memory)")
}

fn run_on_executor<T, F, Fut>(name: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    spawn_executor(name, f).join().expect("executor thread")
}

/// Awaits `fut`, failing the test after [`STEP_TIMEOUT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let timeout = async {
        glommio::timer::sleep(STEP_TIMEOUT).await;
        panic!("timed out after {STEP_TIMEOUT:?}: {what}");
    };
    futures_lite::future::or(fut, timeout).await
}

fn follower_info(sid: i64) -> ToLeader {
    ToLeader::FollowerInfo {
        accepted_epoch: 0,
        info: LearnerInfo { sid, protocol_version: PROTOCOL_VERSION_ZAB_1_0, config_version: Some(0) },
    }
}

// ---------------------------------------------------------------- 1. loopback

const PROPOSALS: i64 = 5000;
const EPOCH: i64 = 1;
/// Packets queued after the snapshot.
const AFTER_SNAPSHOT: i64 = 200;

/// A txn-shaped payload that names its zxid, so order is checkable.
fn txn_for(zxid: i64) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&zxid.to_be_bytes());
    b.extend_from_slice(&[0x5A; 56]);
    b.freeze()
}

/// Three thousand znodes in a three-level hierarchy, every kind of data
/// (null, empty, small, 1 KiB), three ACL lists, ephemerals of two
/// sessions, distinct stats. Deterministic: both executors build it.
fn big_tree() -> (DataTree, BTreeMap<i64, i32>) {
    let mut tree = DataTree::new();
    let digest = vec![Acl { perms: perms::ALL, id: Id { scheme: "digest".into(), id: "bob:abc=".into() } }];
    let acls = [open_acl_unsafe(), read_acl_unsafe(), digest];
    let sessions = BTreeMap::from([(0x100_0000_0001i64, 4000i32), (0x100_0000_0002, 30_000)]);
    let stat = |n: i64, owner: i64| StoredStat {
        czxid: make_zxid(EPOCH, n),
        mzxid: make_zxid(EPOCH, n + 7),
        ctime: 1_700_000_000_000 + n,
        mtime: 1_700_000_000_500 + n,
        version: (n % 5) as i32,
        cversion: (n % 3) as i32,
        aversion: (n % 2) as i32,
        ephemeral_owner: owner,
        pzxid: make_zxid(EPOCH, n + 11),
    };
    let mut n = 0;
    for app in 0..10 {
        n += 1;
        assert!(tree.restore_node(&format!("/app{app}"), Some(Bytes::new()), &acls[0], stat(n, 0)));
        for group in 0..15 {
            n += 1;
            let group_path = format!("/app{app}/g{group:02}");
            assert!(tree.restore_node(&group_path, None, &acls[(group % 3) as usize], stat(n, 0)));
            for leaf in 0..20 {
                n += 1;
                let data = match leaf % 4 {
                    0 => None,
                    1 => Some(Bytes::new()),
                    2 => Some(Bytes::from(format!("leaf {n}"))),
                    _ => Some(Bytes::from(vec![(n % 251) as u8; 1024])),
                };
                let owner = if leaf == 19 { *sessions.keys().nth((n % 2) as usize).unwrap_or(&0) } else { 0 };
                let path = format!("{group_path}/leaf{leaf:02}");
                assert!(tree.restore_node(&path, data, &acls[(leaf % 3) as usize], stat(n, owner)));
            }
        }
    }
    tree.set_last_zxid(make_zxid(EPOCH, PROPOSALS));
    assert!(tree.node_count() > 3000);
    (tree, sessions)
}

fn assert_same_tree(got: &DataTree, want: &DataTree) {
    assert_eq!(got.node_count(), want.node_count(), "node count");
    assert_eq!(got.last_zxid(), want.last_zxid(), "last zxid");
    for (path, node) in want.iter() {
        let Some(g) = got.get(path) else { panic!("{path} missing from the received snapshot") };
        assert_eq!(g.data(), node.data(), "{path}: data");
        assert_eq!(&g.acl()[..], &node.acl()[..], "{path}: acl");
        assert_eq!(g.stored_stat(), node.stored_stat(), "{path}: stored stat");
        assert_eq!(g.stat(), node.stat(), "{path}: stat (with numChildren)");
    }
}

#[test]
fn leader_and_learner_over_loopback_pipeline_in_order_batched_and_snapshot_in_order() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();

    let leader = spawn_executor("test-leader", move || async move {
        let listener = LearnerListener::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        addr_tx.send(listener.local_addr().expect("local addr")).expect("hand over the address");
        let link = within("accept", listener.accept()).await.expect("accept a learner");
        assert_eq!(within("FOLLOWERINFO", link.recv()).await.unwrap(), follower_info(3));

        // Pipelined proposals: queued without yielding, so they go out in
        // as few writes as the writer needs.
        let before = link.stats();
        for counter in 1..=PROPOSALS {
            let zxid = make_zxid(EPOCH, counter);
            link.send(ToLearner::Proposal { zxid, txn: txn_for(zxid) }).unwrap();
        }
        // Every ACK comes back, in order.
        for counter in 1..=PROPOSALS {
            let zxid = make_zxid(EPOCH, counter);
            assert_eq!(within("ACK", link.recv()).await.unwrap(), ToLeader::Ack { zxid });
        }
        let after = link.stats();
        let writes = after.socket_writes - before.socket_writes;
        let bytes = after.bytes_written - before.bytes_written;
        eprintln!("leader: {PROPOSALS} proposals ({bytes} bytes) in {writes} socket writes");
        assert!(writes <= 2, "{PROPOSALS} queued proposals took {writes} writes");
        assert_eq!(after.packets_queued - before.packets_queued, PROPOSALS as u64);

        // SNAP between packets: what is queued before it arrives before it,
        // what is queued after it arrives after it.
        link.send(ToLearner::Commit { zxid: make_zxid(EPOCH, PROPOSALS) }).unwrap();
        let (tree, sessions) = big_tree();
        link.send_snapshot(make_zxid(EPOCH, PROPOSALS), tree, sessions).unwrap();
        for counter in 1..=AFTER_SNAPSHOT {
            link.send(ToLearner::Ping { zxid: counter }).unwrap();
        }
        link.send(ToLearner::NewLeader { zxid: make_zxid(EPOCH + 1, 0), config: Some(Bytes::from_static(b"v=0")) })
            .unwrap();
        link.send(ToLearner::UpToDate).unwrap();
        assert_eq!(
            within("NEWLEADER ACK", link.recv()).await.unwrap(),
            ToLeader::Ack { zxid: make_zxid(EPOCH + 1, 0) }
        );
        // The learner hangs up: the link reports it, naming the peer.
        let err = within("the learner's close", link.recv()).await.unwrap_err();
        assert_eq!(err.peer, link.peer());
        assert!(matches!(err.failure, LinkFailure::PeerClosed | LinkFailure::Io { .. }), "{err}");
        // A failed link refuses sends.
        assert!(link.send(ToLearner::Ping { zxid: 1 }).is_err());
    });

    let addr = addr_rx.recv_timeout(STEP_TIMEOUT).expect("the leader's address");
    let learner = spawn_executor("test-learner", move || async move {
        let link = LeaderLink::connect(addr, CONNECT_TIMEOUT).await.expect("connect to the leader");
        assert_eq!(link.peer(), addr);
        link.send(follower_info(3)).unwrap();
        for counter in 1..=PROPOSALS {
            let want = make_zxid(EPOCH, counter);
            match within("PROPOSAL", link.recv()).await.unwrap() {
                FromLeader::Packet(ToLearner::Proposal { zxid, txn }) => {
                    assert_eq!(zxid, want, "proposals in zxid order");
                    assert_eq!(txn, txn_for(want));
                    link.send(ToLeader::Ack { zxid }).unwrap();
                }
                other => panic!("expected PROPOSAL {want:#x}, got {other:?}"),
            }
        }
        let acks = link.stats();
        eprintln!("learner: {PROPOSALS} acks in {} socket writes", acks.socket_writes);
        assert!(
            acks.socket_writes <= (PROPOSALS / 10) as u64,
            "acks are batched per write: {} writes for {PROPOSALS}",
            acks.socket_writes
        );

        let mut got = Vec::new();
        let expected_count = 1 + 1 + AFTER_SNAPSHOT + 2;
        while (got.len() as i64) < expected_count {
            got.push(within("sync packets", link.recv()).await.unwrap());
        }
        let mut got = got.into_iter();
        assert!(
            matches!(got.next(), Some(FromLeader::Packet(ToLearner::Commit { zxid })) if zxid == make_zxid(EPOCH, PROPOSALS))
        );
        match got.next() {
            Some(FromLeader::Snapshot { zxid, tree, sessions }) => {
                assert_eq!(zxid, make_zxid(EPOCH, PROPOSALS));
                let (want_tree, want_sessions) = big_tree();
                assert_same_tree(&tree, &want_tree);
                assert_eq!(sessions, want_sessions);
            }
            other => panic!("expected the snapshot after the COMMIT, got {other:?}"),
        }
        for counter in 1..=AFTER_SNAPSHOT {
            match got.next() {
                Some(FromLeader::Packet(ToLearner::Ping { zxid })) => assert_eq!(zxid, counter),
                other => panic!("expected PING {counter} after the snapshot, got {other:?}"),
            }
        }
        assert!(matches!(got.next(), Some(FromLeader::Packet(ToLearner::NewLeader { .. }))));
        assert!(matches!(got.next(), Some(FromLeader::Packet(ToLearner::UpToDate))));
        link.send(ToLeader::Ack { zxid: make_zxid(EPOCH + 1, 0) }).unwrap();
        // Wait for the writer to flush everything (close() discards what
        // is still queued), then hang up.
        let mut sent = BytesMut::new();
        follower_info(3).encode(&mut sent);
        for counter in 1..=PROPOSALS {
            ToLeader::Ack { zxid: make_zxid(EPOCH, counter) }.encode(&mut sent);
        }
        ToLeader::Ack { zxid: make_zxid(EPOCH + 1, 0) }.encode(&mut sent);
        while link.stats().bytes_written < sent.len() as u64 {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        link.close();
        let err = link.recv().await.unwrap_err();
        assert_eq!(err.failure, LinkFailure::ClosedLocally);
    });

    learner.join().expect("learner executor");
    leader.join().expect("leader executor");
}

/// Bytes of the snapshot a learner below never reads: well past what
/// loopback socket buffers and the snapshot pipe can hold.
const STALLED_SNAPSHOT_NODES: usize = 40_000;
const STALLED_SNAPSHOT_DATA_BYTES: usize = 1024;

#[test]
fn a_snapshot_to_a_learner_that_does_not_read_stalls_only_its_own_link() {
    run_on_executor("test-stalled-snapshot", || async {
        let listener = LearnerListener::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = listener.local_addr().unwrap();
        let mut tree = DataTree::new();
        for i in 0..STALLED_SNAPSHOT_NODES {
            let data = Some(Bytes::from(vec![(i % 251) as u8; STALLED_SNAPSHOT_DATA_BYTES]));
            assert!(tree.restore_node(&format!("/n{i:06}"), data, &open_acl_unsafe(), StoredStat::default()));
        }
        let zxid = make_zxid(EPOCH, 77);
        tree.set_last_zxid(zxid);
        let sessions = BTreeMap::from([(5i64, 4000i32)]);
        // What the slow learner must eventually read, byte for byte.
        let mut expected = BytesMut::new();
        ToLearner::Snap { zxid }.encode(&mut expected);
        let mut stream_bytes = Vec::new();
        zoocore::storage::apache::write_snap_stream(&mut stream_bytes, &tree, &sessions).unwrap();
        expected.extend_from_slice(&stream_bytes);
        ToLearner::UpToDate.encode(&mut expected);

        let mut slow = glommio::net::TcpStream::connect(addr).await.unwrap();
        let slow_link = within("accept the slow learner", listener.accept()).await.unwrap();
        slow_link.send_snapshot(zxid, tree, sessions).unwrap();
        slow_link.send(ToLearner::UpToDate).unwrap();

        // Meanwhile another learner's traffic flows, round trip after round trip.
        let fast = glommio::spawn_local(async move {
            let link = LeaderLink::connect(addr, CONNECT_TIMEOUT).await.unwrap();
            for zxid in 1..=500 {
                match within("PING on the fast link", link.recv()).await.unwrap() {
                    FromLeader::Packet(ToLearner::Ping { zxid: got }) => assert_eq!(got, zxid),
                    other => panic!("expected PING, got {other:?}"),
                }
                link.send(ToLeader::Ping { zxid, sessions: vec![] }).unwrap();
            }
            // Kept alive until the leader has read the last reply: dropping
            // a link discards what it has not written yet.
            link
        });
        let fast_link = within("accept the fast learner", listener.accept()).await.unwrap();
        for zxid in 1..=500 {
            fast_link.send(ToLearner::Ping { zxid }).unwrap();
            assert_eq!(
                within("PING reply on the fast link", fast_link.recv()).await.unwrap(),
                ToLeader::Ping { zxid, sessions: vec![] }
            );
        }
        drop(within("the fast learner", fast).await);
        let stalled_at = slow_link.stats().bytes_written;
        eprintln!("snapshot stalled at {stalled_at} of {} bytes while 500 round trips ran", expected.len());
        assert!(stalled_at < expected.len() as u64, "the slow learner's socket absorbed the whole snapshot");

        // The slow learner reads at last: the stream resumes, intact and in order.
        let mut got = vec![0u8; expected.len()];
        within("the slow learner's bytes", slow.read_exact(&mut got)).await.unwrap();
        assert!(got == expected[..], "the stalled snapshot arrived altered");
        assert_eq!(slow_link.stats().bytes_written, expected.len() as u64);
    });
}

// ---------------------------------------------------------------- 2. bad input

/// Connects, writes `bytes`, waits for the server to close the connection
/// and returns our address (the peer address the server's error must name).
async fn send_garbage(addr: SocketAddr, bytes: Vec<u8>) -> SocketAddr {
    let mut stream = glommio::net::TcpStream::connect(addr).await.expect("connect");
    let me = stream.local_addr().expect("local addr");
    stream.write_all(&bytes).await.expect("write garbage");
    stream.flush().await.expect("flush");
    let mut sink = [0u8; 64];
    let closed = within("the server closing the garbage connection", async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed);
    me
}

#[test]
fn garbage_closes_only_its_own_link_with_a_clear_error() {
    run_on_executor("test-garbage", || async {
        let listener = LearnerListener::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = listener.local_addr().unwrap();

        // 40 bytes of 0xFF: a whole packet of type -1 (null data, null ids).
        let client = glommio::spawn_local(send_garbage(addr, vec![0xFF; 40]));
        let link = within("accept", listener.accept()).await.unwrap();
        let err = within("recv garbage", link.recv()).await.unwrap_err();
        let me = client.await;
        assert_eq!(err.peer, me);
        assert_eq!(
            err.failure,
            LinkFailure::Malformed(PacketError::UnexpectedType { packet_type: -1, direction: "from a learner" })
        );
        let text = err.to_string();
        assert!(text.contains(&me.to_string()) && text.contains("unexpected UNKNOWN (-1) from a learner"), "{text}");

        // A data length far past the limit is refused from the header alone.
        let mut huge = Vec::new();
        huge.extend_from_slice(&2i32.to_be_bytes());
        huge.extend_from_slice(&1i64.to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        let client = glommio::spawn_local(send_garbage(addr, huge));
        let link = within("accept", listener.accept()).await.unwrap();
        let err = within("recv oversized", link.recv()).await.unwrap_err();
        assert_eq!(err.peer, client.await);
        assert_eq!(err.failure, LinkFailure::Malformed(PacketError::BadDataLength(i32::MAX)));
        assert!(err.to_string().contains("data length 2147483647"), "{err}");

        // A packet a leader sends, from a learner: refused too.
        let mut wrong_way = BytesMut::new();
        ToLearner::UpToDate.encode(&mut wrong_way);
        let client = glommio::spawn_local(send_garbage(addr, wrong_way.to_vec()));
        let link = within("accept", listener.accept()).await.unwrap();
        let err = within("recv UPTODATE from a learner", link.recv()).await.unwrap_err();
        assert_eq!(err.peer, client.await);
        assert!(matches!(err.failure, LinkFailure::Malformed(PacketError::UnexpectedType { packet_type: 12, .. })));

        // The listener still accepts, and a proper learner talks both ways.
        let learner = glommio::spawn_local(async move {
            let link = LeaderLink::connect(addr, CONNECT_TIMEOUT).await.expect("connect");
            link.send(follower_info(7)).unwrap();
            match within("LEADERINFO", link.recv()).await.unwrap() {
                FromLeader::Packet(ToLearner::LeaderInfo { new_epoch: 4, .. }) => {}
                other => panic!("expected LEADERINFO, got {other:?}"),
            }
        });
        let link = within("accept a good learner", listener.accept()).await.unwrap();
        assert_eq!(within("FOLLOWERINFO", link.recv()).await.unwrap(), follower_info(7));
        link.send(ToLearner::LeaderInfo { new_epoch: 4, protocol_version: PROTOCOL_VERSION_ZAB_1_0 }).unwrap();
        learner.await;
    });
}

#[test]
fn a_broken_snap_stream_closes_the_learners_link() {
    run_on_executor("test-bad-snap", || async {
        let fake_leader = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = fake_leader.local_addr().unwrap();
        let leader = glommio::spawn_local(async move {
            let mut stream = fake_leader.accept().await.expect("accept");
            let mut wire = BytesMut::new();
            ToLearner::Ping { zxid: 9 }.encode(&mut wire);
            ToLearner::Snap { zxid: 9 }.encode(&mut wire);
            // A negative session count: not a snapshot stream.
            wire.extend_from_slice(&(-5i32).to_be_bytes());
            stream.write_all(&wire).await.unwrap();
            // Hold the connection until the learner drops it.
            let mut sink = [0u8; 16];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        });
        let link = LeaderLink::connect(addr, CONNECT_TIMEOUT).await.unwrap();
        // What came before the bad stream is still delivered, then the error.
        assert!(matches!(within("PING", link.recv()).await.unwrap(), FromLeader::Packet(ToLearner::Ping { zxid: 9 })));
        let err = within("the snapshot error", link.recv()).await.unwrap_err();
        assert_eq!(err.peer, addr);
        assert!(
            matches!(&err.failure, LinkFailure::BadSnapshot(ApacheFormatError::Malformed { offset: 0, .. })),
            "{err}"
        );
        assert!(err.to_string().contains("session count -5"), "{err}");
        within("the fake leader sees the close", leader).await;
    });
}

#[test]
fn a_send_queue_past_its_bound_fails_the_link() {
    run_on_executor("test-queue-full", || async {
        let listener = LearnerListener::bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = listener.local_addr().unwrap();
        // A learner that connects and never reads.
        let silent = glommio::spawn_local(async move {
            let link = LeaderLink::connect(addr, CONNECT_TIMEOUT).await.unwrap();
            let _ = link.recv().await;
            link
        });
        let link = within("accept", listener.accept()).await.unwrap();
        let txn = Bytes::from(vec![0u8; 1 << 20]);
        let mut refused = None;
        // No await in between: the writer cannot drain anything.
        for counter in 1..=(SEND_QUEUE_MAX_BYTES >> 20) as i64 + 2 {
            if let Err(e) = link.send(ToLearner::Proposal { zxid: counter, txn: txn.clone() }) {
                refused = Some((counter, e));
                break;
            }
        }
        let Some((at, err)) = refused else { panic!("the queue took more than SEND_QUEUE_MAX_BYTES") };
        assert_eq!(at, (SEND_QUEUE_MAX_BYTES >> 20) as i64, "refused at the packet that crossed the bound");
        assert!(
            matches!(err.failure, LinkFailure::SendQueueFull { queued_bytes } if queued_bytes > SEND_QUEUE_MAX_BYTES)
        );
        // recv reports it at once, and the learner sees its connection end.
        assert_eq!(within("recv after the failure", link.recv()).await.unwrap_err(), err);
        drop(within("the learner's link ends", silent).await);
    });
}

// ---------------------------------------------------------------- 3. Apache interop

const TICK_MS: u64 = 500;
const OUR_SID: i64 = 3;

/// Below the ephemeral range (see tests/common/ports.rs).
fn free_port() -> u16 {
    ports::unused_port()
}

/// Two Apache servers of a three-server ensemble, killed by PID when
/// dropped (also on panic).
struct ApacheEnsemble {
    children: Vec<apache::ServerProcess>,
    dir: PathBuf,
    client_ports: [u16; 2],
    quorum_ports: [u16; 3],
}

impl Drop for ApacheEnsemble {
    fn drop(&mut self) {
        for child in &mut self.children {
            child.kill9();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Apache logs kept in {}", self.dir.display());
        }
    }
}

impl ApacheEnsemble {
    fn start() -> ApacheEnsemble {
        let dir = std::env::temp_dir().join(format!("zoocore-quorum-net-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let quorum_ports = [free_port(), free_port(), free_port()];
        let election_ports = [free_port(), free_port(), free_port()];
        let client_ports = [free_port(), free_port()];
        let servers: String =
            (0..3).map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, quorum_ports[i], election_ports[i])).collect();
        let mut ensemble = ApacheEnsemble { children: Vec::new(), dir: dir.clone(), client_ports, quorum_ports };
        for sid in 1..=2usize {
            let data = dir.join(format!("data{sid}"));
            apache::write_myid(&data, sid as u64);
            let cfg = dir.join(format!("zoo{sid}.cfg"));
            std::fs::write(
                &cfg,
                format!(
                    "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\n\
                     clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{servers}",
                    data.display(),
                    client_ports[sid - 1]
                ),
            )
            .unwrap();
            let log = dir.join(format!("server{sid}.log"));
            let child = apache::ServerProcess::apache(
                apache::QUORUM_MAIN,
                &cfg,
                &[apache::FOUR_LETTER_WORDS_ALL],
                Some(&dir),
                &log,
            );
            ensemble.children.push(child);
        }
        ensemble
    }

    /// Index (0 or 1) of the server whose `srvr` says `Mode: leader`.
    fn wait_for_leader(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            for (i, port) in self.client_ports.iter().enumerate() {
                if four_letter(*port, "srvr").is_some_and(|s| s.contains("Mode: leader")) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no Apache leader within {limit:?}; logs in {}", self.dir.display());
    }
}

fn four_letter(port: u16, cmd: &str) -> Option<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = StdStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// What the client wrote, as Apache reports it: path -> (data, czxid, mzxid, version).
type Written = Vec<(String, Vec<u8>, i64, i64, i32)>;

#[test]
fn a_leader_link_syncs_from_an_apache_leader_by_snapshot() {
    if !apache::apache_available("the Apache quorum test") {
        return;
    }
    let started = Instant::now();
    let ensemble = ApacheEnsemble::start();
    let leader = ensemble.wait_for_leader(Duration::from_secs(25));
    let client_addr: SocketAddr = ([127, 0, 0, 1], ensemble.client_ports[leader]).into();
    let quorum_addr: SocketAddr = ([127, 0, 0, 1], ensemble.quorum_ports[leader]).into();

    let client = Client::connect(client_addr, Duration::from_secs(10)).expect("connect to the Apache leader");
    client.create("/app", b"root", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for i in 0..20 {
        client
            .create(
                &format!("/app/n{i:02}"),
                format!("value {i}").as_bytes(),
                &open_acl_unsafe(),
                CreateMode::Persistent,
            )
            .unwrap();
    }
    client.set_data("/app/n03", b"changed", 0).unwrap();
    client.create("/ro", b"read only", &read_acl_unsafe(), CreateMode::Persistent).unwrap();
    client.create("/eph", b"", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    let session_id = client.session_id();
    let mut written: Written = Vec::new();
    for path in ["/app".to_string()]
        .into_iter()
        .chain((0..20).map(|i| format!("/app/n{i:02}")))
        .chain(["/ro".to_string(), "/eph".to_string()])
    {
        let (data, stat) = client.get_data(&path, false).unwrap();
        written.push((path, data.map(|d| d.to_vec()).unwrap_or_default(), stat.czxid, stat.mzxid, stat.version));
    }
    let last_zxid = written.iter().map(|w| w.3).max().unwrap_or(0);

    let leader_client_port = ensemble.client_ports[leader];
    run_on_executor("test-apache-learner", move || async move {
        let link = LeaderLink::connect(quorum_addr, CONNECT_TIMEOUT).await.expect("connect to the quorum port");
        link.send(ToLeader::FollowerInfo {
            accepted_epoch: 0,
            info: LearnerInfo { sid: OUR_SID, protocol_version: PROTOCOL_VERSION_ZAB_1_0, config_version: Some(0) },
        })
        .unwrap();
        let new_epoch = match within("LEADERINFO", link.recv()).await.unwrap() {
            FromLeader::Packet(ToLearner::LeaderInfo { new_epoch, protocol_version }) => {
                assert_eq!(protocol_version, PROTOCOL_VERSION_ZAB_1_0);
                new_epoch
            }
            other => panic!("expected LEADERINFO, got {other:?}"),
        };
        // zxid 0: far behind every txn, so Apache sends a snapshot.
        link.send(ToLeader::AckEpoch { last_logged_zxid: 0, current_epoch: 0 }).unwrap();
        let (zxid, tree, sessions) = match within("SNAP", link.recv()).await.unwrap() {
            FromLeader::Snapshot { zxid, tree, sessions } => (zxid, tree, sessions),
            other => panic!("expected SNAP and its stream, got {other:?}"),
        };
        assert_eq!(zxid, last_zxid, "the snapshot is at the leader's last zxid");
        assert_eq!(tree.last_zxid(), zxid);
        for (path, data, czxid, mzxid, version) in &written {
            let Some(node) = tree.get(path) else { panic!("{path} missing from Apache's snapshot") };
            assert_eq!(node.data().map(|d| d.to_vec()).unwrap_or_default(), *data, "{path}: data");
            let stat = node.stored_stat();
            assert_eq!((stat.czxid, stat.mzxid, stat.version), (*czxid, *mzxid, *version), "{path}: stat");
        }
        assert_eq!(tree.children("/app").map(|c| c.len()), Some(20));
        assert_eq!(&tree.get("/ro").unwrap().acl()[..], &read_acl_unsafe()[..], "/ro keeps its READ-only ACL");
        assert_eq!(tree.get("/eph").unwrap().stored_stat().ephemeral_owner, session_id);
        assert!(sessions.contains_key(&session_id), "our client's session is in the snapshot: {sessions:?}");
        assert!(tree.get("/zookeeper/config").is_some());

        let newleader_zxid = loop {
            match within("NEWLEADER", link.recv()).await.unwrap() {
                FromLeader::Packet(ToLearner::NewLeader { zxid, config }) => {
                    let config = String::from_utf8_lossy(config.as_deref().unwrap_or_default()).into_owned();
                    assert!(config.contains("server.3=127.0.0.1"), "NEWLEADER carries the config: {config}");
                    break zxid;
                }
                FromLeader::Packet(ToLearner::Ping { zxid }) => {
                    link.send(ToLeader::Ping { zxid, sessions: vec![] }).unwrap()
                }
                other => panic!("expected NEWLEADER after the snapshot, got {other:?}"),
            }
        };
        assert_eq!(newleader_zxid, make_zxid(new_epoch, 0));
        link.send(ToLeader::Ack { zxid: newleader_zxid }).unwrap();
        loop {
            match within("UPTODATE", link.recv()).await.unwrap() {
                FromLeader::Packet(ToLearner::UpToDate) => break,
                FromLeader::Packet(ToLearner::Ping { zxid }) => {
                    link.send(ToLeader::Ping { zxid, sessions: vec![] }).unwrap()
                }
                other => panic!("expected UPTODATE, got {other:?}"),
            }
        }
        link.send(ToLeader::Ack { zxid: make_zxid(new_epoch, 0) }).unwrap();
        // The leader pings every tick/2; answering keeps us in the ensemble.
        let mut pings = 0;
        while pings < 3 {
            match within("PING", link.recv()).await.unwrap() {
                FromLeader::Packet(ToLearner::Ping { zxid }) => {
                    pings += 1;
                    link.send(ToLeader::Ping { zxid, sessions: vec![] }).unwrap();
                }
                other => panic!("expected only PINGs once synced, got {other:?}"),
            }
        }
        // The Apache leader counts us as a synced follower (its other
        // follower and us). The 4lw call blocks, so it runs off the executor.
        let mntr = glommio::executor().spawn_blocking(move || four_letter(leader_client_port, "mntr")).await;
        let mntr = mntr.unwrap_or_default();
        let synced: Vec<&str> = mntr.lines().filter(|l| l.starts_with("zk_synced_followers")).collect();
        assert_eq!(synced, ["zk_synced_followers\t2"], "mntr: {mntr}");
        match within("PING after mntr", link.recv()).await.unwrap() {
            FromLeader::Packet(ToLearner::Ping { zxid }) => {
                link.send(ToLeader::Ping { zxid, sessions: vec![] }).unwrap()
            }
            other => panic!("expected only PINGs once synced, got {other:?}"),
        }
        link.close();
    });
    drop(client);
    drop(ensemble);
    eprintln!("quorum_net interop finished in {:?}", started.elapsed());
}
