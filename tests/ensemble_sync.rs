//! sync + read is linearizable in a zoocore ensemble, even across a leader
//! that was paused (SIGSTOP), replaced, and resumed still believing it
//! leads: a read after a sync never returns a value older than a write
//! acknowledged before the sync was sent. Apache ZooKeeper does not promise
//! this (ZOOKEEPER-1675): its leader answers a sync without checking that
//! it still leads.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use common::wait_until;
use zoocore::client::{Client, ClientError};
use zoocore::proto::records::{PathWatch, Request, Response};
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
/// Long enough that the paused leader's clients keep their sessions: the
/// test is about stale reads, not expiry.
const SESSION: Duration = Duration::from_secs(30);

fn connect(m: &Member) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(m.client, SESSION) {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cannot connect to server {}: {e}\n{}", m.sid, m.log_tail(30)),
        }
    }
}

/// Each round: a client of the leader queues sync + get while the leader is
/// paused and a new leader commits a newer value; the leader is resumed.
/// The get must return the newer value or fail (connection lost, session
/// moved): never the older one.
#[test]
fn sync_then_read_never_returns_a_value_older_than_an_acknowledged_write_across_a_paused_leader() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let mut leader = e.wait_for_quorum(SETTLE);
    connect(e.member(leader)).create("/reg", b"0", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    let mut refused = 0;
    for round in 1..=3u32 {
        let reader = connect(e.member(leader));
        reader.sync("/reg").expect("sync before the pause");
        let before = reader.get_data("/reg", false).expect("read before the pause").0;
        assert_eq!(before.as_deref(), Some(format!("{}", round - 1).as_bytes()));

        e.member(leader).signal(libc::SIGSTOP);
        let others: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
        assert!(
            wait_until(SETTLE, || others.iter().any(|s| e.members[(*s - 1) as usize].mode() == "leader")),
            "round {round}: no new leader while {leader} is paused\n{}",
            others
                .iter()
                .map(|s| format!("--- s{s} ---\n{}\n", e.members[(*s - 1) as usize].log_tail(40)))
                .collect::<String>()
        );
        let new_leader = *others.iter().find(|s| e.members[(**s - 1) as usize].mode() == "leader").expect("leader");
        let writer = connect(e.member(new_leader));
        writer.set_data("/reg", round.to_string().as_bytes(), -1).expect("write acknowledged by the new leader");

        // Queued in the paused leader's socket: it reads them on waking.
        let sync = reader.submit(Request::Sync { path: "/reg".into() }).expect("submit sync");
        let get = reader.submit(Request::GetData(PathWatch { path: "/reg".into(), watch: false })).expect("submit get");
        e.member(leader).signal(libc::SIGCONT);

        let sync = sync.wait_timeout(Duration::from_secs(20));
        match get.wait_timeout(Duration::from_secs(20)) {
            Ok((header, Response::GetData { data, .. })) => {
                assert_eq!(header.err, 0, "round {round}: get failed with {}", header.err);
                assert!(sync.is_ok(), "round {round}: get answered after a failed sync");
                assert_eq!(
                    data.as_deref(),
                    Some(round.to_string().as_bytes()),
                    "round {round}: sync + read on the resumed old leader {leader} returned a value older than a \
                     write acknowledged by the new leader {new_leader}\n{}",
                    e.member(leader).log_tail(40)
                );
            }
            Ok((header, other)) => {
                assert_ne!(header.err, 0, "round {round}: unexpected reply {other:?}");
                refused += 1;
            }
            Err(ClientError::ConnectionClosed) | Err(ClientError::Io(_)) => refused += 1,
            Err(err) => panic!("round {round}: {err}\n{}", e.member(leader).log_tail(40)),
        }
        leader = e.wait_for_quorum(SETTLE);
    }
    eprintln!("the resumed leader refused {refused} of 3 sync + read pairs; the others read the new value");
}

/// The sync barrier on followers: a write acknowledged through one server is
/// seen by sync + read on every other server.
#[test]
fn sync_then_read_sees_a_write_acknowledged_on_another_server() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let clients: Vec<Client> = e.members.iter().map(connect).collect();
    clients[0].create("/seen", b"0", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    for i in 1..=30u32 {
        let w = (i % 3) as usize;
        clients[w].set_data("/seen", i.to_string().as_bytes(), -1).expect("set");
        for (r, c) in clients.iter().enumerate() {
            c.sync("/seen").expect("sync");
            let (data, _) = c.get_data("/seen", false).expect("get");
            assert_eq!(
                data.as_deref(),
                Some(i.to_string().as_bytes()),
                "server {} after write {i} via {}",
                r + 1,
                w + 1
            );
        }
    }
    // The operator sees the quorum's latencies under Apache's mntr names.
    let value = |sid: u64, key: &str| -> u64 {
        let mntr = common::four_letter(e.members[(sid - 1) as usize].client, "mntr").unwrap_or_default();
        mntr.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("server {sid}'s mntr lacks {key}:\n{mntr}")) as u64
    };
    assert!(value(leader, "zk_cnt_quorum_ack_latency") >= 30, "the leader times its proposals' commits");
    assert_eq!(value(leader, "zk_pending_syncs"), 0, "every sync was answered");
    for sid in (1..=3).filter(|s| *s != leader) {
        let acks = value(leader, &format!("zk_cnt_{sid}_ack_latency"));
        assert!(acks >= 30, "the leader times follower {sid}'s acks: {acks}");
        assert!(value(sid, "zk_cnt_proposal_latency") >= 30, "follower {sid} times the proposals it receives");
        assert!(value(sid, "zk_cnt_election_time") >= 1, "follower {sid} timed its election");
    }
}
