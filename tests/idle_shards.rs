//! Worker shards that a batch does not concern are not sent it (issue #9,
//! `server::view_slot`): they take the newest tree from their slot when a
//! read needs it. These tests would fail if such a shard answered a read
//! with a tree older than an acknowledged write, stalled a read, or lost a
//! watch event (a watch registered while its shard was being left out).
//!
//! More shards than the machine has cores, and one writer, so that most
//! shards have no reply and no watch in most batches. SO_REUSEPORT spreads
//! the many reader connections over the shards.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ServerOptions, TestServer};
use zoocore::client::{Client, Pending};
use zoocore::proto::records::{PathWatch, Request, Response, SetDataRequest};
use zoocore::proto::types::{open_acl_unsafe, CreateMode, EventType};
use zoocore::proto::{ErrorCode, Stat};

const SHARDS: usize = 6;
const READERS: usize = 12;
/// How long a read may take before the test calls it stalled.
const READ_LIMIT: Duration = Duration::from_secs(5);

fn start() -> TestServer {
    TestServer::start_with(ServerOptions { shards: SHARDS, ..ServerOptions::default() })
}

fn connect(s: &TestServer) -> Client {
    Client::connect(s.addr, Duration::from_secs(10)).expect("connect")
}

/// exists, failing (not hanging) when the answer does not come in time.
fn exists(client: &Client, path: &str, watch: bool) -> Option<Stat> {
    let request = Request::Exists(PathWatch { path: path.into(), watch });
    exists_answer(client.submit(request).unwrap(), path)
}

/// exists pipelined behind a setData of `own` on the same connection: the
/// read runs when the write's batch is applied, on that batch's view.
fn exists_behind_a_write(client: &Client, own: &str, path: &str) -> Option<Stat> {
    let write = SetDataRequest { path: own.into(), data: Some(Bytes::from_static(b"w")), version: -1 };
    let write = client.submit(Request::SetData(write)).unwrap();
    let read = client.submit(Request::Exists(PathWatch { path: path.into(), watch: true })).unwrap();
    let (header, _) = write.wait_timeout(READ_LIMIT).expect("a stalled write");
    assert_eq!(header.err, 0, "setData {own}");
    exists_answer(read, path)
}

fn exists_answer(pending: Pending, path: &str) -> Option<Stat> {
    let (header, response) = pending.wait_timeout(READ_LIMIT).expect("a stalled read");
    match response {
        Response::Stat(stat) => Some(stat),
        _ if header.err == ErrorCode::NoNode.code() => None,
        other => panic!("exists {path}: error {} {other:?}", header.err),
    }
}

/// After each acknowledged create, a reader on some other connection (most
/// likely another shard, which the create's batch did not concern) must
/// see the node, at once.
#[test]
fn reads_on_idle_shards_see_every_acknowledged_write() {
    let s = start();
    let writer = connect(&s);
    let readers: Vec<Client> = (0..READERS).map(|_| connect(&s)).collect();
    writer.create("/raw", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for i in 0..600 {
        let path = format!("/raw/n{i}");
        writer.create(&path, format!("{i}").as_bytes(), &open_acl_unsafe(), CreateMode::Persistent).unwrap();
        let reader = &readers[i % READERS];
        let started = Instant::now();
        let stat = exists(reader, &path, false);
        assert!(stat.is_some(), "iteration {i}: a reader did not see an acknowledged create");
        let (data, _) = reader.get_data(&path, false).unwrap();
        assert_eq!(data.as_deref(), Some(format!("{i}").as_bytes()));
        assert!(started.elapsed() < READ_LIMIT, "iteration {i}: reads took {:?}", started.elapsed());
    }
    // Readers that did nothing for a while still read the newest state.
    std::thread::sleep(Duration::from_millis(300));
    for (r, reader) in readers.iter().enumerate() {
        let children = reader.get_children("/raw", false).unwrap();
        assert_eq!(children.len(), 600, "reader {r}");
    }
}

/// Readers register exists-watches on quiet shards (the first watch of a
/// shard, again and again: each fires and leaves the shard with none) while
/// a writer creates and then deletes the watched nodes and another writer
/// keeps batches with triggers flowing. An exists that answered NoNode
/// must be followed by NodeCreated, one that answered a Stat by
/// NodeDeleted: every watch fires, exactly once.
#[test]
fn every_watch_registered_on_an_idle_shard_fires() {
    const NODES: usize = 300;
    let s = start();
    let setup = connect(&s);
    setup.create("/w", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    setup.create("/noise", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for r in 0..READERS {
        setup.create(&format!("/w/r{r}"), b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    }

    let stop_noise = Arc::new(AtomicBool::new(false));
    let noise = {
        let (client, stop) = (connect(&s), stop_noise.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Triggers (NodeDataChanged) no one watches.
                client.set_data("/noise", &n.to_le_bytes(), -1).unwrap();
                n += 1;
            }
            n
        })
    };

    let created = Arc::new(AtomicUsize::new(0));
    let start_line = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (client, created, start_line) = (connect(&s), created.clone(), start_line.clone());
            std::thread::spawn(move || {
                let events = client.events().expect("events");
                start_line.wait();
                // path -> the event its watch must fire.
                let mut expected: HashMap<String, EventType> = HashMap::new();
                // Each reader walks the nodes from its own offset, chasing
                // the writer: some exists land just before a create, some
                // just after.
                let mut i = r * 7 % NODES;
                for _ in 0..NODES {
                    let path = format!("/w/n{i}");
                    let near = created.load(Ordering::Relaxed);
                    let path = if i.is_multiple_of(3) { format!("/w/n{}", near.min(NODES - 1)) } else { path };
                    if !expected.contains_key(&path) {
                        // Half of them queued behind the reader's own write.
                        let stat = if expected.len().is_multiple_of(2) {
                            exists(&client, &path, true)
                        } else {
                            exists_behind_a_write(&client, &format!("/w/r{r}"), &path)
                        };
                        let event = if stat.is_some() { EventType::NodeDeleted } else { EventType::NodeCreated };
                        expected.insert(path, event);
                    }
                    i = (i + 1) % NODES;
                }
                (client, events, expected)
            })
        })
        .collect();

    start_line.wait();
    let writer = connect(&s);
    for i in 0..NODES {
        writer.create(&format!("/w/n{i}"), b"x", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
        created.store(i + 1, Ordering::Relaxed);
    }
    let results: Vec<_> = readers.into_iter().map(|t| t.join().expect("reader thread")).collect();
    for i in 0..NODES {
        writer.delete(&format!("/w/n{i}"), -1).unwrap();
    }
    stop_noise.store(true, Ordering::Relaxed);
    let noise_writes = noise.join().expect("noise thread");
    assert!(noise_writes > 0);

    let deadline = Instant::now() + Duration::from_secs(10);
    for (r, (client, events, mut expected)) in results.into_iter().enumerate() {
        // A sync makes sure every event sent before it has been read.
        client.sync("/w").unwrap();
        while !expected.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(ev) = events.recv_timeout(left) else {
                let mut missing: Vec<_> = expected.iter().collect();
                missing.sort();
                panic!(
                    "reader {r}: {} watches never fired, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(5)]
                );
            };
            let Some(want) = expected.remove(&ev.path) else {
                panic!("reader {r}: an event no watch asked for, or twice: {ev:?}");
            };
            assert_eq!(ev.kind(), Some(want), "reader {r}: {ev:?}");
        }
        assert!(events.recv_timeout(Duration::from_millis(50)).is_err(), "reader {r}: an extra event");
    }
}

/// The first watch of a shard, registered by a read queued behind the
/// reader's own write: it runs on that write's view, while the next create
/// of a busy writer may already be published and left out of the shard
/// (the shard had no watch then). Whatever the exists answered, the watch
/// must fire: NodeCreated after a NoNode, NodeDataChanged after a Stat (the
/// reader then changes the node itself). Each watch fires before the next
/// is set, so the reader's shard is often left with none again.
#[test]
fn a_first_watch_behind_a_write_sees_the_changes_after_its_view() {
    const ROUNDS: usize = 250;
    const WATCHERS: usize = 4;
    let s = TestServer::start_with(ServerOptions { shards: 8, ..ServerOptions::default() });
    let setup = connect(&s);
    setup.create("/t", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for r in 0..WATCHERS {
        setup.create(&format!("/t/r{r}"), b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    }
    let progress = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, progress, stop) = (connect(&s), progress.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut j = 0;
            while !stop.load(Ordering::Relaxed) {
                client.create(&format!("/t/c{j}"), b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
                j += 1;
                progress.store(j, Ordering::Relaxed);
            }
        })
    };
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|r| {
            let (client, progress) = (connect(&s), progress.clone());
            std::thread::spawn(move || {
                let events = client.events().expect("events");
                let (mut created, mut changed) = (0, 0);
                for round in 0..ROUNDS {
                    let path = format!("/t/c{}", progress.load(Ordering::Relaxed) + 1);
                    let want = match exists_behind_a_write(&client, &format!("/t/r{r}"), &path) {
                        None => {
                            created += 1;
                            EventType::NodeCreated
                        }
                        Some(_) => {
                            changed += 1;
                            client.set_data(&path, b"seen", -1).unwrap();
                            EventType::NodeDataChanged
                        }
                    };
                    let ev = events
                        .recv_timeout(READ_LIMIT)
                        .unwrap_or_else(|_| panic!("watcher {r} round {round}: no {want:?} for {path}"));
                    assert_eq!((ev.path.as_str(), ev.kind()), (path.as_str(), Some(want)), "watcher {r} round {round}");
                }
                (created, changed)
            })
        })
        .collect();
    let counts: Vec<_> = watchers.into_iter().map(|t| t.join().expect("watcher thread")).collect();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    // Both outcomes happened, or the test did not test the race.
    assert!(counts.iter().any(|(created, _)| *created > 0), "{counts:?}");
}
