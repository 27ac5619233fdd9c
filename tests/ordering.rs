//! ZooKeeper's ordering guarantees across worker shards: an event reaches a
//! watcher before any reply that reveals the change, a writer's own watch
//! event precedes its write's reply, and every client sees one order.
//!
//! SO_REUSEPORT picks the shard, so the tests open 8 connections and run
//! many iterations: connections on different shards are certainly paired.

mod common;

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};
use zoocore::client::{Client, WatchedEvent};
use zoocore::proto::types::{add_watch_mode, open_acl_unsafe, CreateMode, EventType};

const CLIENTS: usize = 8;
const ITERATIONS: usize = 300;

fn start(shards: usize) -> TestServer {
    TestServer::start_with(ServerOptions { shards, ..ServerOptions::default() })
}

/// Counts the NodeDataChanged events for `path` already delivered.
fn drain_changes(rx: &Receiver<WatchedEvent>, path: &str) -> usize {
    let mut n = 0;
    while let Ok(ev) = rx.try_recv() {
        assert_eq!(ev.path, path, "{ev:?}");
        assert_eq!(ev.kind(), Some(EventType::NodeDataChanged), "{ev:?}");
        n += 1;
    }
    n
}

fn event_before_data(shards: usize) {
    let s = start(shards);
    let clients: Vec<Client> =
        (0..CLIENTS).map(|_| Client::connect(s.addr, Duration::from_secs(10)).unwrap()).collect();
    let events: Vec<_> = clients.iter().map(|c| c.events().unwrap()).collect();
    clients[0].create("/x", b"0", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    // Every client reads with a watch; last_seen is the version it read.
    let mut last_seen: Vec<i32> = clients.iter().map(|c| c.get_data("/x", true).unwrap().1.version).collect();
    // Whether the client's one-shot watch was armed by its last read (a
    // client's own write fires it without re-arming).
    let mut armed = [true; CLIENTS];
    let mut checked = 0;

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    for i in 0..ITERATIONS {
        let b = next(CLIENTS);
        let a = (b + 1 + next(CLIENTS - 1)) % CLIENTS;
        assert_ne!(a, b);

        // B re-arms its watch, then writes: the reply must come after the
        // event its own write fired on its own watch.
        drain_changes(&events[b], "/x");
        last_seen[b] = clients[b].get_data("/x", true).unwrap().1.version;
        let stat = clients[b].set_data("/x", format!("{i}").as_bytes(), -1).unwrap();
        assert!(stat.version > last_seen[b]);
        assert!(
            drain_changes(&events[b], "/x") >= 1,
            "iteration {i}: writer's setData reply arrived before its own watch event"
        );
        last_seen[b] = stat.version;
        armed[b] = false;

        // A (another connection, maybe another shard) reads: it must see
        // B's write (read-after-reply), and since its watch was armed when it
        // last read, the event must already be in its channel.
        let had_events = drain_changes(&events[a], "/x");
        let (_, astat) = clients[a].get_data("/x", true).unwrap();
        assert!(
            astat.version >= stat.version,
            "iteration {i}: read on another connection missed an acknowledged write"
        );
        let after = drain_changes(&events[a], "/x");
        if armed[a] && astat.version > last_seen[a] {
            checked += 1;
            assert!(
                had_events + after >= 1,
                "iteration {i}: read revealed version {} (last seen {}) before the NodeDataChanged event",
                astat.version,
                last_seen[a]
            );
        }
        last_seen[a] = astat.version;
        armed[a] = true;
    }
    assert!(checked > ITERATIONS / 4, "only {checked} reads exercised the event-before-data check");
}

fn one_order_for_all(shards: usize) {
    const WRITES_PER_WRITER: usize = 100;
    const WATCHERS: usize = 4;
    let s = start(shards);
    let setup = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    setup.create("/y", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let watchers: Vec<Client> =
        (0..WATCHERS).map(|_| Client::connect(s.addr, Duration::from_secs(10)).unwrap()).collect();
    let rxs: Vec<_> = watchers
        .iter()
        .map(|w| {
            w.add_watch("/y", add_watch_mode::PERSISTENT).unwrap();
            w.events().unwrap()
        })
        .collect();

    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|k| {
            let addr = s.addr;
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let c = Client::connect(addr, Duration::from_secs(10)).unwrap();
                barrier.wait();
                let mut zxids = Vec::new();
                // Pipelined, so the two writers really interleave.
                let pending: Vec<_> = (0..WRITES_PER_WRITER)
                    .map(|i| {
                        let req = zoocore::proto::records::Request::SetData(zoocore::proto::records::SetDataRequest {
                            path: "/y".into(),
                            data: Some(bytes::Bytes::from(format!("{k}-{i}"))),
                            version: -1,
                        });
                        c.submit(req).unwrap()
                    })
                    .collect();
                for p in pending {
                    let (hdr, _) = p.wait_timeout(Duration::from_secs(10)).unwrap();
                    assert_eq!(hdr.err, 0);
                    zxids.push(hdr.zxid);
                }
                zxids
            })
        })
        .collect();
    let mut write_zxids: Vec<i64> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    write_zxids.sort();

    let total = 2 * WRITES_PER_WRITER;
    let mut sequences = Vec::new();
    for rx in &rxs {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seq = Vec::with_capacity(total);
        while seq.len() < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = rx.recv_timeout(left).expect("all events of the writes");
            assert_eq!((ev.kind(), ev.path.as_str()), (Some(EventType::NodeDataChanged), "/y"));
            seq.push(ev.zxid);
        }
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "event zxids must increase: {seq:?}");
        sequences.push(seq);
    }
    for seq in &sequences[1..] {
        assert_eq!(seq, &sequences[0], "every watcher must see the same order");
    }
    assert_eq!(sequences[0], write_zxids, "events carry the zxids of the writes, all of them");
    let final_version = setup.get_data("/y", false).unwrap().1.version;
    assert_eq!(final_version as usize, total);
}

#[test]
fn event_before_data_two_shards() {
    event_before_data(2);
}

#[test]
fn event_before_data_four_shards() {
    event_before_data(4);
}

#[test]
fn one_order_for_all_two_shards() {
    one_order_for_all(2);
}

#[test]
fn one_order_for_all_four_shards() {
    one_order_for_all(4);
}
