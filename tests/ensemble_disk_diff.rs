//! A zoocore follower that was down while more txns were committed than
//! the leader keeps in memory (`COMMITTED_WINDOW_TXNS`) catches up by a
//! DIFF the leader reads from its on-disk log (Apache's txnlog sync), not
//! by SNAP, and ends with the leader's tree.
//!
//! SNAP would be the right choice if the leader had a snapshot whose size
//! × snapshotSizeFactor (0.33) is smaller than the log to replay, so the
//! test keeps snapCount far above its write count and checks that no
//! snapshot file exists on the leader when the follower comes back.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{Ensemble, Member};
use common::{strip_ansi, tree_dump, wait_until};
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};
use zoocore::zab::leader::COMMITTED_WINDOW_TXNS;

const TICK_MS: u32 = 200;
const SETTLE: Duration = Duration::from_secs(30);
const SESSION: Duration = Duration::from_secs(20);
/// No snapshot while the test writes (the trigger is past snapCount / 2).
const EXTRA_CONFIG: &str = "snapCount=1000000\n";
/// Beyond the leader's in-memory window.
const WRITES_WHILE_DOWN: usize = COMMITTED_WINDOW_TXNS + 150;

/// Ensembles on a shared 2-core machine: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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

/// Pipelined creates (submit all, then wait), so hundreds take well under
/// a second.
fn create_many(c: &Client, prefix: &str, count: usize) {
    common::create_pipelined(c, (0..count).map(|k| (format!("{prefix}-{k}"), Some(format!("value {k}").into()))));
}

/// The leader's "syncing a learner" lines for `sid` (plan and reason).
fn sync_lines(leader: &Member, sid: u64) -> Vec<String> {
    strip_ansi(&leader.log())
        .lines()
        .filter(|l| l.contains("syncing a learner") && l.contains(&format!("sid={sid} ")))
        .map(str::to_owned)
        .collect()
}

fn snapshot_files(m: &Member) -> Vec<String> {
    std::fs::read_dir(m.dir.join("data").join("zoocore"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("snapshot."))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn follower_down_past_the_window_catches_up_by_diff_from_the_leaders_disk() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut e = Ensemble::start(3, &[], TICK_MS, EXTRA_CONFIG);
    let leader = e.wait_for_quorum(SETTLE);
    let down = (1..=3).find(|s| *s != leader).expect("a follower");
    let c = connect(e.member(leader));
    c.create("/d", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create /d");
    create_many(&c, "/d/before", 20);
    // Down only once it holds everything so far: its last zxid is then a
    // txn of the leader's log.
    assert!(
        wait_until(Duration::from_secs(10), || e.member(down).zxid() == e.member(leader).zxid()),
        "server {down} caught up before going down"
    );
    e.member(down).kill9();
    create_many(&c, "/d/while-down", WRITES_WHILE_DOWN);
    assert!(
        snapshot_files(e.member(leader)).is_empty(),
        "the leader took a snapshot ({:?}): SNAP could then be the right choice",
        snapshot_files(e.member(leader))
    );
    let syncs_before = sync_lines(e.member(leader), down).len();

    e.member(down).spawn();
    e.wait_for_quorum(SETTLE);
    let lines = sync_lines(e.member(leader), down);
    let plan = lines.get(syncs_before).unwrap_or_else(|| {
        panic!("no sync plan for server {down} in the leader's log\n{}", e.member(leader).log_tail(40))
    });
    assert!(plan.contains("reason=FromDiskLog") && plan.contains("DiskLogThenWindow"), "the plan: {plan}");
    assert!(
        strip_ansi(&e.member(leader).log()).contains("DIFF: sending logged txns from the on-disk log"),
        "the leader read its log\n{}",
        e.member(leader).log_tail(40)
    );
    let follower_log = e.member(down).log();
    assert!(
        !follower_log.contains("receiving a snapshot from the leader (SNAP)"),
        "server {down} got a SNAP\n{}",
        e.member(down).log_tail(40)
    );

    // The same tree everywhere (czxid, mzxid, version, data), and it keeps
    // following: one more write reaches it.
    c.create("/d/after", b"a", &open_acl_unsafe(), CreateMode::Persistent).expect("create after");
    let expected = tree_dump(&c);
    assert_eq!(expected.len(), 1 + 20 + WRITES_WHILE_DOWN + 1);
    for m in &e.members {
        assert_eq!(tree_dump(&connect(m)), expected, "server {} has the leader's tree", m.sid);
    }
    assert!(
        wait_until(Duration::from_secs(10), || e.members.iter().all(|m| m.zxid() == e.members[0].zxid())),
        "one zxid everywhere"
    );
}
