//! Read-only mode (`readonlymode.enabled`) in a zoocore ensemble on
//! loopback: a member cut off from its quorum serves read-only clients
//! from the data it has, answers writes NOTREADONLY, refuses other
//! clients, and goes back to read/write (closing its read-only clients)
//! when the quorum returns. Real processes, stopped by PID.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use common::{four_letter, wait_until};
use zoocore::client::{Client, ClientError};
use zoocore::proto::records::{MultiOp, PathVersion, ReadOp};
use zoocore::proto::types::{open_acl_unsafe, CreateMode, ErrorCode};

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(6);
/// Leader loss (syncLimit ticks) + Apache's 2 s grace + slack on a busy machine.
const READ_ONLY_WITHIN: Duration = Duration::from_secs(20);

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

fn isro(m: &Member) -> String {
    four_letter(m.client, "isro").unwrap_or_default()
}

fn not_read_only<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) {
    match r {
        Err(ClientError::Keeper(ErrorCode::NotReadOnly)) => {}
        other => panic!("{what} in read-only mode: expected NOTREADONLY, got {other:?}"),
    }
}

fn refused<T>(what: &str, r: Result<T, ClientError>) {
    match r {
        Err(ClientError::ConnectionClosed) | Err(ClientError::Io(_)) => {}
        Err(e) => panic!("{what}: expected the connection to be closed, got {e}"),
        Ok(_) => panic!("{what}: expected the connection to be closed, it was accepted"),
    }
}

#[test]
fn a_member_without_its_quorum_serves_read_only_clients_until_it_rejoins() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "readonlymode.enabled=true\n");
    let leader = e.wait_for_quorum(SETTLE);
    let survivor = (1..=3).find(|s| *s != leader).expect("a follower");
    let others: Vec<u64> = (1..=3).filter(|s| *s != survivor).collect();

    // In a quorum: read/write, and a read-only-capable client gets a normal session.
    for m in &e.members {
        assert_eq!(isro(m), "rw", "server {} in a quorum", m.sid);
    }
    let writer = connect(e.member(leader));
    writer.create("/ro", b"before", &open_acl_unsafe(), CreateMode::Persistent).expect("create /ro");
    writer.create("/ro/child", b"c", &open_acl_unsafe(), CreateMode::Persistent).expect("create /ro/child");
    let rw_capable = Client::connect_read_only(e.member(survivor).client, SESSION).expect("connect");
    assert_eq!(rw_capable.read_only(), Some(false));
    rw_capable.sync("/ro").expect("sync");
    let global = connect(e.member(survivor));
    let (global_id, global_pw) = (global.session_id(), global.session_password());
    global.disconnect();
    writer.disconnect();

    // Cut the survivor off: the two others stop.
    for sid in &others {
        e.member(*sid).kill9();
    }
    let s = e.member(survivor);
    assert!(
        wait_until(READ_ONLY_WITHIN, || s.mode() == "read-only"),
        "server {survivor} never went read-only: mode {:?}\n{}",
        s.mode(),
        s.log_tail(30)
    );
    assert!(rw_capable.is_closed() || rw_capable.get_data("/ro", false).is_err(), "role change dropped it");
    assert_eq!(isro(s), "ro");
    let srvr = four_letter(s.client, "srvr").unwrap_or_default();
    assert!(srvr.contains("READ-ONLY mode; serving only read-only clients\n"), "{srvr}");
    assert!(srvr.contains("Mode: read-only\n"), "{srvr}");
    let mntr = four_letter(s.client, "mntr").unwrap_or_default();
    assert!(mntr.contains("zk_server_state\tread-only\n"), "{mntr}");

    // Only clients that accept a read-only server get in; not a global session.
    refused("a client without the readOnly flag", Client::connect(s.client, SESSION));
    refused(
        "a global session's reconnect",
        Client::handshake_with(s.client, global_id, global_pw.clone(), SESSION, 0, true),
    );
    let ro = Client::connect_read_only(s.client, SESSION).expect("read-only connect");
    assert_eq!(ro.read_only(), Some(true), "the ConnectResponse says read-only");
    assert_eq!(ro.session_id() >> 56, survivor as i64, "a session id of this server");

    // Reads see what was written before the partition.
    let (data, stat) = ro.get_data("/ro", false).expect("getData");
    assert_eq!(data.as_deref(), Some(&b"before"[..]));
    assert_eq!(stat.num_children, 1);
    assert_eq!(ro.get_children("/ro", true).expect("getChildren"), vec!["child".to_owned()]);
    assert!(ro.exists("/ro/child", true).expect("exists").is_some());
    let multi_read = ro.multi_read(vec![ReadOp::GetData(zoocore::proto::records::PathWatch {
        path: "/ro/child".into(),
        watch: false,
    })]);
    assert!(multi_read.is_ok(), "multiRead is a read: {multi_read:?}");

    // Whatever needs the quorum is NOTREADONLY; the session stays usable.
    not_read_only("create", ro.create("/ro/new", b"", &open_acl_unsafe(), CreateMode::Persistent));
    not_read_only("setData", ro.set_data("/ro", b"no way", -1));
    not_read_only("delete", ro.delete("/ro/child", -1));
    not_read_only("setACL", ro.set_acl("/ro", &open_acl_unsafe(), -1));
    not_read_only("sync", ro.sync("/ro"));
    not_read_only("multi", ro.multi(vec![MultiOp::Check(PathVersion { path: "/ro".into(), version: 0 })]));
    assert_eq!(ro.get_data("/ro", false).expect("still serving").0.as_deref(), Some(&b"before"[..]));

    // The read-only session moves to a new connection of the same server.
    let (ro_id, ro_pw) = (ro.session_id(), ro.session_password());
    let moved = Client::handshake_with(s.client, ro_id, ro_pw.clone(), SESSION, 0, true).expect("reconnect");
    assert_eq!((moved.session_id(), moved.read_only()), (ro_id, Some(true)));
    assert!(wait_until(Duration::from_secs(5), || ro.is_closed()), "the old connection was dropped");
    assert!(moved.exists("/ro", false).expect("exists").is_some());

    // The quorum comes back: read-only clients are closed, writes work again.
    for sid in &others {
        e.member(*sid).spawn();
    }
    e.wait_for_quorum(SETTLE);
    assert!(wait_until(Duration::from_secs(10), || moved.is_closed()), "read-only connection closed on rejoin");
    let s = e.member(survivor);
    assert_eq!(isro(s), "rw");
    let back = connect(s);
    back.create("/ro/after", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("write after rejoin");
    let capable = Client::connect_read_only(s.client, SESSION).expect("read-only-capable connect");
    assert_eq!(capable.read_only(), Some(false), "a read/write server says so");
    capable.set_data("/ro", b"after", -1).expect("setData through a read-only-capable client");
    // The read-only session was never the quorum's.
    match Client::reconnect(s.client, ro_id, ro_pw, SESSION) {
        Err(ClientError::SessionExpired) => {}
        other => panic!("a read-only session on a read/write server: {:?}", other.map(|c| c.session_id())),
    }
    // And the global session from before the partition is still alive.
    let again = Client::reconnect(s.client, global_id, global_pw, SESSION).expect("global session reconnects");
    assert_eq!(again.session_id(), global_id);
}

#[test]
fn without_read_only_mode_a_member_without_its_quorum_serves_no_one() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let survivor = (1..=3).find(|s| *s != leader).expect("a follower");
    for sid in (1..=3).filter(|s| *s != survivor) {
        e.member(sid).kill9();
    }
    let s = e.member(survivor);
    assert!(wait_until(Duration::from_secs(10), || isro(s) == "null"), "isro while looking: {:?}", isro(s));
    // Well past the read-only grace period it still serves no one.
    std::thread::sleep(Duration::from_millis(3000));
    let srvr = four_letter(s.client, "srvr").unwrap_or_default();
    assert!(srvr.contains("not currently serving requests"), "{srvr}");
    assert_eq!(isro(s), "null");
    refused("a read-only client", Client::connect_read_only(s.client, SESSION));
    refused("a client", Client::connect(s.client, SESSION));
    // Refused connections are gone from the workers (only mntr's own is left).
    assert!(
        wait_until(Duration::from_secs(5), || four_letter(s.client, "mntr")
            .unwrap_or_default()
            .contains("zk_num_alive_connections\t1\n")),
        "{}",
        four_letter(s.client, "mntr").unwrap_or_default()
    );
}
