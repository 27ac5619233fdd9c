//! Session ownership in a zoocore ensemble, as Apache's SessionTracker
//! keeps it: once a session reconnects through another server, a write
//! still arriving through the server it left is refused with SESSIONMOVED
//! (a stale connection must not write over its own newer self).

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use zoocore::client::{Client, ClientError};
use zoocore::proto::types::{open_acl_unsafe, CreateMode};
use zoocore::proto::ErrorCode;

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(20);

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

/// The session's old connection (still open: nothing told its server)
/// writes after the session moved: refused with SESSIONMOVED.
fn assert_stale_write_refused(stale: &Client, path: &str, from: &str) {
    match stale.set_data(path, b"stale", -1) {
        Err(ClientError::Keeper(ErrorCode::SessionMoved)) => {}
        other => panic!("a write through {from}, which the session moved away from, gave {other:?}"),
    }
}

#[test]
fn writes_through_the_server_a_session_moved_away_from_get_session_moved() {
    let mut e = Ensemble::start(3, &[], TICK_MS, "");
    let leader = e.wait_for_quorum(SETTLE);
    let followers: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
    let (fa, fb) = (followers[0], followers[1]);
    connect(e.member(leader)).create("/moved", b"0", &open_acl_unsafe(), CreateMode::Persistent).expect("create");

    // Follower to follower.
    let on_a = connect(e.member(fa));
    on_a.set_data("/moved", b"a", -1).expect("write through the session's first server");
    let on_b = Client::reconnect(e.member(fb).client, on_a.session_id(), on_a.session_password(), SESSION)
        .expect("the session moves to another follower");
    on_b.set_data("/moved", b"b", -1).expect("write through the session's new server");
    assert_stale_write_refused(&on_a, "/moved", &format!("follower {fa}"));
    on_b.sync("/moved").expect("sync");
    assert_eq!(on_b.get_data("/moved", false).expect("get").0.as_deref(), Some(&b"b"[..]));
    on_b.set_data("/moved", b"b2", -1).expect("the session's current server still writes");

    // Leader to follower.
    let on_leader = connect(e.member(leader));
    on_leader.set_data("/moved", b"l", -1).expect("write through the leader");
    let moved = Client::reconnect(e.member(fa).client, on_leader.session_id(), on_leader.session_password(), SESSION)
        .expect("the session moves from the leader to a follower");
    moved.set_data("/moved", b"f", -1).expect("write through the follower it moved to");
    assert_stale_write_refused(&on_leader, "/moved", &format!("the leader {leader}"));

    // Follower back to the leader.
    let back = Client::reconnect(e.member(leader).client, moved.session_id(), moved.session_password(), SESSION)
        .expect("the session moves back to the leader");
    back.set_data("/moved", b"back", -1).expect("write through the leader again");
    assert_stale_write_refused(&moved, "/moved", &format!("follower {fa}"));
    back.sync("/moved").expect("sync");
    assert_eq!(back.get_data("/moved", false).expect("get").0.as_deref(), Some(&b"back"[..]));
}
