//! Every client opcode once, through the project's own client, against the
//! real `zoocore` binary; each answer checked against ZooKeeper's.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use zoocore::client::{first_error, Client, ClientError, RawConnection, WatchedEvent};
use zoocore::jute::Reader;
use zoocore::jute::Record;
use zoocore::proto::records::*;
use zoocore::proto::types::{
    add_watch_mode, op, open_acl_unsafe, perms, watcher_type, xid, Acl, CreateMode, ErrorCode, EventType, Id,
};

const T: Duration = Duration::from_secs(10);
const EV: Duration = Duration::from_secs(5);

fn connect(s: &TestServer) -> Client {
    Client::connect(s.addr, T).expect("connect")
}

fn code(e: ClientError) -> ErrorCode {
    e.code().unwrap_or_else(|| panic!("expected a server error, got {e}"))
}

fn next_event(rx: &Receiver<WatchedEvent>) -> WatchedEvent {
    rx.recv_timeout(EV).expect("a watch event")
}

fn expect_event(rx: &Receiver<WatchedEvent>, kind: EventType, path: &str) -> WatchedEvent {
    let ev = next_event(rx);
    assert_eq!((ev.kind(), ev.path.as_str()), (Some(kind), path), "{ev:?}");
    ev
}

fn no_event(rx: &Receiver<WatchedEvent>) {
    if let Ok(ev) = rx.recv_timeout(Duration::from_millis(150)) {
        panic!("unexpected event {ev:?}");
    }
}

fn open() -> Vec<Acl> {
    open_acl_unsafe()
}

#[test]
fn creates_of_every_kind() {
    let s = TestServer::start();
    let c = connect(&s);
    assert_eq!(c.create("/p", b"d", &open(), CreateMode::Persistent).unwrap(), "/p");
    assert_eq!(code(c.create("/p", b"", &open(), CreateMode::Persistent).unwrap_err()), ErrorCode::NodeExists);
    assert_eq!(code(c.create("/nope/x", b"", &open(), CreateMode::Persistent).unwrap_err()), ErrorCode::NoNode);

    let (path, stat) = c.create2("/p/seq-", b"abc", &open(), CreateMode::PersistentSequential).unwrap();
    assert_eq!(path, "/p/seq-0000000000");
    assert_eq!((stat.version, stat.data_length, stat.ephemeral_owner), (0, 3, 0));
    assert_eq!(stat.czxid, stat.mzxid);
    let (path2, _) = c.create2("/p/seq-", b"", &open(), CreateMode::PersistentSequential).unwrap();
    assert_eq!(path2, "/p/seq-0000000001");

    let (_, eph) = c.create2("/p/e", b"", &open(), CreateMode::Ephemeral).unwrap();
    assert_eq!(eph.ephemeral_owner, c.session_id());
    assert_eq!(
        code(c.create("/p/e/child", b"", &open(), CreateMode::Persistent).unwrap_err()),
        ErrorCode::NoChildrenForEphemerals
    );

    let (cpath, cstat) = c.create_container("/cont", b"", &open()).unwrap();
    assert_eq!(cpath, "/cont");
    // Like TTL nodes, containers show ephemeralOwner 0 to clients.
    assert_eq!(cstat.ephemeral_owner, 0);

    let (tpath, tstat) = c.create_ttl("/ttl", b"", &open(), CreateMode::PersistentWithTtl, 60_000).unwrap();
    assert_eq!(tpath, "/ttl");
    assert_eq!(tstat.ephemeral_owner, 0, "the TTL marker is not shown to clients");
    // ttl <= 0 is rejected.
    assert_eq!(
        code(c.create_ttl("/ttl2", b"", &open(), CreateMode::PersistentWithTtl, 0).unwrap_err()),
        ErrorCode::BadArguments
    );
    // An empty ACL is InvalidACL.
    assert_eq!(code(c.create("/noacl", b"", &[], CreateMode::Persistent).unwrap_err()), ErrorCode::InvalidAcl);
}

#[test]
fn delete_versions_not_empty_no_node() {
    let s = TestServer::start();
    let c = connect(&s);
    c.create("/d", b"", &open(), CreateMode::Persistent).unwrap();
    c.create("/d/k", b"", &open(), CreateMode::Persistent).unwrap();
    assert_eq!(code(c.delete("/d", -1).unwrap_err()), ErrorCode::NotEmpty);
    c.set_data("/d/k", b"x", -1).unwrap();
    assert_eq!(code(c.delete("/d/k", 0).unwrap_err()), ErrorCode::BadVersion);
    c.delete("/d/k", 1).unwrap();
    c.delete("/d", -1).unwrap();
    assert_eq!(code(c.delete("/d", -1).unwrap_err()), ErrorCode::NoNode);
}

#[test]
fn exists_get_set_data_and_watches() {
    let s = TestServer::start();
    let c = connect(&s);
    let rx = c.events().unwrap();
    // exists on an absent node: NoNode but the watch is set.
    assert_eq!(c.exists("/w", true).unwrap(), None);
    c.create("/w", b"one", &open(), CreateMode::Persistent).unwrap();
    let ev = expect_event(&rx, EventType::NodeCreated, "/w");
    assert!(ev.zxid > 0);
    assert_eq!(ev.state, 3);

    let (data, stat) = c.get_data("/w", true).unwrap();
    assert_eq!(data.as_deref(), Some(&b"one"[..]));
    assert_eq!(stat.version, 0);
    assert_eq!(code(c.set_data("/w", b"two", 5).unwrap_err()), ErrorCode::BadVersion);
    let st = c.set_data("/w", b"two", 0).unwrap();
    assert_eq!((st.version, st.data_length), (1, 3));
    expect_event(&rx, EventType::NodeDataChanged, "/w");
    // One-shot: a second change fires nothing.
    c.set_data("/w", b"three", -1).unwrap();
    no_event(&rx);
    assert_eq!(code(c.get_data("/absent", false).unwrap_err()), ErrorCode::NoNode);
    assert_eq!(code(c.set_data("/absent", b"", -1).unwrap_err()), ErrorCode::NoNode);

    // exists watch on a present node fires on delete.
    assert!(c.exists("/w", true).unwrap().is_some());
    c.delete("/w", -1).unwrap();
    expect_event(&rx, EventType::NodeDeleted, "/w");
}

#[test]
fn acl_ops_and_digest_auth() {
    let s = TestServer::start();
    let c = connect(&s);
    c.create("/a", b"", &open(), CreateMode::Persistent).unwrap();
    let (acl, stat) = c.get_acl("/a").unwrap();
    assert_eq!(acl, open());
    assert_eq!(stat.aversion, 0);
    let read_only = vec![Acl { perms: perms::READ, id: Id::anyone() }];
    assert_eq!(code(c.set_acl("/a", &read_only, 3).unwrap_err()), ErrorCode::BadVersion);
    let st = c.set_acl("/a", &read_only, 0).unwrap();
    assert_eq!(st.aversion, 1);
    assert_eq!(c.get_acl("/a").unwrap().0, read_only);
    assert_eq!(code(c.set_data("/a", b"x", -1).unwrap_err()), ErrorCode::NoAuth);

    // digest: an "auth" ACL becomes the caller's digest identity.
    c.add_auth("digest", b"alice:secret").unwrap();
    let who = c.who_am_i().unwrap();
    assert!(who.iter().any(|i| i.auth_scheme == "digest" && i.user == "alice"), "{who:?}");
    assert!(who.iter().any(|i| i.auth_scheme == "ip" && i.user == "127.0.0.1"), "{who:?}");
    let auth_acl = vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }];
    c.create("/secret", b"s", &auth_acl, CreateMode::Persistent).unwrap();
    let (stored, _) = c.get_acl("/secret").unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.scheme, "digest");
    assert!(stored[0].id.id.starts_with("alice:"), "{stored:?}");

    let other = connect(&s);
    assert_eq!(code(other.get_data("/secret", false).unwrap_err()), ErrorCode::NoAuth);
    // exists checks READ too (Apache 3.9.2+, ZOOKEEPER-2590), and a refused
    // request leaves no watch behind.
    assert_eq!(code(other.exists("/secret", true).unwrap_err()), ErrorCode::NoAuth);
    assert_eq!(code(other.get_data("/secret", true).unwrap_err()), ErrorCode::NoAuth);
    let wchs = s.four_letter("wchs");
    assert!(wchs.contains("Total watches:0"), "no watch left by refused requests: {wchs}");
    // A wrong password authenticates as a different digest.
    other.add_auth("digest", b"alice:wrong").unwrap();
    assert_eq!(code(other.get_data("/secret", false).unwrap_err()), ErrorCode::NoAuth);
    other.add_auth("digest", b"alice:secret").unwrap();
    assert_eq!(other.get_data("/secret", false).unwrap().0.as_deref(), Some(&b"s"[..]));

    // Unknown scheme: AuthFailed, then the server closes the connection.
    let bad = connect(&s);
    assert_eq!(code(bad.add_auth("nosuchscheme", b"x").unwrap_err()), ErrorCode::AuthFailed);
    let deadline = std::time::Instant::now() + EV;
    while !bad.is_closed() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(bad.is_closed(), "connection should close after AuthFailed");
    // The server is fine.
    assert!(connect(&s).exists("/a", false).unwrap().is_some());
}

#[test]
fn children_counts_and_ephemerals() {
    let s = TestServer::start();
    let c = connect(&s);
    let rx = c.events().unwrap();
    c.create("/c", b"", &open(), CreateMode::Persistent).unwrap();
    for n in ["b", "a", "c"] {
        c.create(&format!("/c/{n}"), b"", &open(), CreateMode::Persistent).unwrap();
    }
    c.create("/c/a/deep", b"", &open(), CreateMode::Persistent).unwrap();
    let mut kids = c.get_children("/c", true).unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "b", "c"]);
    let (mut kids2, stat) = c.get_children2("/c", false).unwrap();
    kids2.sort();
    assert_eq!(kids2, kids);
    assert_eq!((stat.num_children, stat.cversion), (3, 3));
    assert_eq!(c.get_all_children_number("/c").unwrap(), 4);
    assert_eq!(code(c.get_children("/none", false).unwrap_err()), ErrorCode::NoNode);
    assert_eq!(code(c.get_all_children_number("/none").unwrap_err()), ErrorCode::NoNode);

    c.create("/c/d", b"", &open(), CreateMode::Persistent).unwrap();
    expect_event(&rx, EventType::NodeChildrenChanged, "/c");

    c.create("/c/e1", b"", &open(), CreateMode::Ephemeral).unwrap();
    c.create("/c/a/e2", b"", &open(), CreateMode::Ephemeral).unwrap();
    c.create("/other-e", b"", &open(), CreateMode::Ephemeral).unwrap();
    let mut all = c.get_ephemerals("/").unwrap();
    all.sort();
    assert_eq!(all, ["/c/a/e2", "/c/e1", "/other-e"]);
    let mut under = c.get_ephemerals("/c").unwrap();
    under.sort();
    assert_eq!(under, ["/c/a/e2", "/c/e1"]);
    assert_eq!(c.get_ephemerals("/c/a").unwrap(), ["/c/a/e2"]);
    // Another session owns none.
    assert!(connect(&s).get_ephemerals("/").unwrap().is_empty());
}

#[test]
fn multi_check_success_and_atomic_failure() {
    let s = TestServer::start();
    let c = connect(&s);
    c.create("/m", b"", &open(), CreateMode::Persistent).unwrap();
    let create = |path: &str| MultiOp::Create {
        op: op::CREATE,
        req: CreateRequest { path: path.into(), data: None, acl: open(), flags: 0, ttl: None },
    };
    let ok = c
        .multi(vec![
            MultiOp::Check(PathVersion { path: "/m".into(), version: 0 }),
            create("/m/1"),
            MultiOp::SetData(SetDataRequest { path: "/m".into(), data: Some(Bytes::from_static(b"v")), version: 0 }),
            MultiOp::Delete(PathVersion { path: "/m/1".into(), version: 0 }),
        ])
        .unwrap();
    assert_eq!(first_error(&ok), None, "{ok:?}");
    assert_eq!(ok.len(), 4);
    assert!(matches!(ok[0], MultiResult::Check));
    assert!(matches!(&ok[1], MultiResult::Create { path } if path == "/m/1"));
    assert!(matches!(&ok[2], MultiResult::SetData { stat } if stat.version == 1));
    assert!(matches!(ok[3], MultiResult::Delete));

    // The check fails: nothing is applied, earlier ops report 0, later -2.
    let failed = c
        .multi(vec![create("/m/2"), MultiOp::Check(PathVersion { path: "/m".into(), version: 0 }), create("/m/3")])
        .unwrap();
    assert_eq!(
        failed,
        vec![
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::BadVersion.code()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.code())
        ]
    );
    assert_eq!(c.exists("/m/2", false).unwrap(), None);
    assert_eq!(c.get_data("/m", false).unwrap().1.version, 1);
    // An empty multi is fine.
    assert!(c.multi(vec![]).unwrap().is_empty());
}

#[test]
fn multi_read_reports_per_op_errors() {
    let s = TestServer::start();
    let c = connect(&s);
    c.create("/r", b"rd", &open(), CreateMode::Persistent).unwrap();
    c.create("/r/k", b"", &open(), CreateMode::Persistent).unwrap();
    let pw = |p: &str| PathWatch { path: p.into(), watch: false };
    let res = c
        .multi_read(vec![
            ReadOp::GetData(pw("/r")),
            ReadOp::GetChildren(pw("/missing")),
            ReadOp::GetChildren(pw("/r")),
            ReadOp::GetData(pw("/missing")),
        ])
        .unwrap();
    assert_eq!(res.len(), 4);
    assert!(matches!(&res[0], MultiResult::GetData { data: Some(d), .. } if &d[..] == b"rd"), "{res:?}");
    assert_eq!(res[1], MultiResult::Error(ErrorCode::NoNode.code()));
    assert_eq!(res[2], MultiResult::GetChildren { children: vec!["k".into()] });
    assert_eq!(res[3], MultiResult::Error(ErrorCode::NoNode.code()));
}

#[test]
fn sync_ping_whoami_reconfig() {
    let s = TestServer::start();
    let c = connect(&s);
    assert_eq!(c.sync("/").unwrap(), "/");
    assert_eq!(c.sync("/anything").unwrap(), "/anything");
    c.ping().unwrap();
    let who = c.who_am_i().unwrap();
    assert_eq!(who.len(), 1);
    assert_eq!((who[0].auth_scheme.as_str(), who[0].user.as_str()), ("ip", "127.0.0.1"));
    let req = Request::Reconfig(ReconfigRequest {
        joining_servers: None,
        leaving_servers: None,
        new_members: Some("server.1=127.0.0.1:2888:3888".into()),
        cur_config_id: -1,
    });
    assert_eq!(code(c.call(req).unwrap_err()), ErrorCode::ReconfigDisabled);
    assert_eq!(ErrorCode::ReconfigDisabled.code(), -123);
    // Still usable afterwards.
    c.ping().unwrap();
}

#[test]
fn set_watches_catch_up_events() {
    let s = TestServer::start();
    let w = connect(&s);
    for v2 in [false, true] {
        let base = if v2 { "/sw2" } else { "/sw1" };
        let p = |leaf: &str| format!("{base}{leaf}");
        w.create(base, b"", &open(), CreateMode::Persistent).unwrap();
        w.create(&p("/gone"), b"", &open(), CreateMode::Persistent).unwrap();
        w.create(&p("/steady"), b"", &open(), CreateMode::Persistent).unwrap();
        let relative = w.last_zxid();
        // Changes the watcher "missed" while disconnected.
        w.set_data(base, b"new", -1).unwrap();
        w.delete(&p("/gone"), -1).unwrap();
        w.create(&p("/born"), b"", &open(), CreateMode::Persistent).unwrap();

        let c = connect(&s);
        let rx = c.events().unwrap();
        c.set_watches(SetWatches {
            v2,
            relative_zxid: relative,
            data: vec![base.into(), p("/gone"), p("/steady")],
            exist: vec![p("/born"), p("/never")],
            child: vec![base.into()],
            persistent: vec![],
            persistent_recursive: vec![],
        })
        .unwrap();
        let mut got: Vec<(EventType, String, i64)> = (0..4)
            .map(|_| {
                let e = next_event(&rx);
                (e.kind().unwrap(), e.path, e.zxid)
            })
            .collect();
        got.sort();
        let mut want = vec![
            (EventType::NodeCreated, p("/born"), -1),
            (EventType::NodeDeleted, p("/gone"), -1),
            (EventType::NodeDataChanged, base.to_string(), -1),
            (EventType::NodeChildrenChanged, base.to_string(), -1),
        ];
        want.sort();
        assert_eq!(got, want, "v2={v2}");
        no_event(&rx);
        // The watches that did not fire are registered.
        w.set_data(&p("/steady"), b"x", -1).unwrap();
        expect_event(&rx, EventType::NodeDataChanged, &p("/steady"));
        w.create(&p("/never"), b"", &open(), CreateMode::Persistent).unwrap();
        expect_event(&rx, EventType::NodeCreated, &p("/never"));
    }
    // Wire check: setWatches uses xid -8 and its reply is matched by xid.
    assert_eq!(Request::SetWatches(SetWatches::default()).fixed_xid(), Some(xid::SET_WATCHES));
}

#[test]
fn add_watch_persistent_and_recursive() {
    let s = TestServer::start();
    let c = connect(&s);
    let rx = c.events().unwrap();
    c.create("/pw", b"", &open(), CreateMode::Persistent).unwrap();
    c.add_watch("/pw", add_watch_mode::PERSISTENT).unwrap();
    c.set_data("/pw", b"1", -1).unwrap();
    expect_event(&rx, EventType::NodeDataChanged, "/pw");
    c.set_data("/pw", b"2", -1).unwrap();
    expect_event(&rx, EventType::NodeDataChanged, "/pw");
    c.create("/pw/k", b"", &open(), CreateMode::Persistent).unwrap();
    expect_event(&rx, EventType::NodeChildrenChanged, "/pw");
    // Not recursive: a grandchild change is silent.
    c.create("/pw/k/g", b"", &open(), CreateMode::Persistent).unwrap();
    no_event(&rx);

    c.add_watch("/rw", add_watch_mode::PERSISTENT_RECURSIVE).unwrap();
    c.create("/rw", b"", &open(), CreateMode::Persistent).unwrap();
    expect_event(&rx, EventType::NodeCreated, "/rw");
    c.create("/rw/a", b"", &open(), CreateMode::Persistent).unwrap();
    expect_event(&rx, EventType::NodeCreated, "/rw/a");
    c.create("/rw/a/b", b"", &open(), CreateMode::Persistent).unwrap();
    expect_event(&rx, EventType::NodeCreated, "/rw/a/b");
    c.set_data("/rw/a/b", b"x", -1).unwrap();
    expect_event(&rx, EventType::NodeDataChanged, "/rw/a/b");
    c.delete("/rw/a/b", -1).unwrap();
    // Recursive watches get no NodeChildrenChanged.
    expect_event(&rx, EventType::NodeDeleted, "/rw/a/b");
    no_event(&rx);

    c.check_watches("/pw", watcher_type::PERSISTENT).unwrap();
    c.remove_watches("/pw", watcher_type::PERSISTENT).unwrap();
    c.set_data("/pw", b"3", -1).unwrap();
    no_event(&rx);
    c.remove_watches("/rw", watcher_type::PERSISTENT_RECURSIVE).unwrap();
    c.create("/rw/z", b"", &open(), CreateMode::Persistent).unwrap();
    no_event(&rx);
}

#[test]
fn remove_and_check_watches() {
    let s = TestServer::start();
    let c = connect(&s);
    let rx = c.events().unwrap();
    c.create("/rm", b"", &open(), CreateMode::Persistent).unwrap();
    assert_eq!(code(c.check_watches("/rm", watcher_type::ANY).unwrap_err()), ErrorCode::NoWatcher);
    assert_eq!(code(c.remove_watches("/rm", watcher_type::DATA).unwrap_err()), ErrorCode::NoWatcher);
    c.get_data("/rm", true).unwrap();
    c.get_children("/rm", true).unwrap();
    c.check_watches("/rm", watcher_type::DATA).unwrap();
    c.check_watches("/rm", watcher_type::CHILDREN).unwrap();
    c.remove_watches("/rm", watcher_type::DATA).unwrap();
    assert_eq!(code(c.check_watches("/rm", watcher_type::DATA).unwrap_err()), ErrorCode::NoWatcher);
    c.check_watches("/rm", watcher_type::ANY).unwrap();
    c.set_data("/rm", b"x", -1).unwrap();
    no_event(&rx);
    c.remove_watches("/rm", watcher_type::ANY).unwrap();
    c.create("/rm/k", b"", &open(), CreateMode::Persistent).unwrap();
    no_event(&rx);
    // Watches of another session are not ours to check.
    c.get_data("/rm", true).unwrap();
    let other = connect(&s);
    assert_eq!(code(other.check_watches("/rm", watcher_type::DATA).unwrap_err()), ErrorCode::NoWatcher);
}

#[test]
fn close_session_removes_ephemerals_and_closes_socket() {
    let s = TestServer::start();
    let observer = connect(&s);
    let rx = observer.events().unwrap();

    let mut raw = RawConnection::connect(s.addr).unwrap();
    let resp = raw.handshake(10_000).unwrap();
    assert!(resp.timeout_ms > 0 && resp.session_id != 0);
    let create = Request::Create {
        op: op::CREATE,
        req: CreateRequest { path: "/eph".into(), data: None, acl: open(), flags: 1, ttl: None },
    };
    raw.send_request(1, &create).unwrap();
    let hdr = ReplyHeader::decode(&mut Reader::new(raw.read_frame().unwrap().unwrap())).unwrap();
    assert_eq!((hdr.xid, hdr.err), (1, 0));
    assert!(observer.exists("/eph", true).unwrap().is_some());

    raw.send_request(2, &Request::CloseSession).unwrap();
    let hdr = ReplyHeader::decode(&mut Reader::new(raw.read_frame().unwrap().unwrap())).unwrap();
    assert_eq!((hdr.xid, hdr.err), (2, 0));
    assert!(hdr.zxid > 0, "closeSession is a txn");
    // Then the server closes the socket.
    assert!(raw.read_frame().unwrap().is_none(), "socket should be closed after the closeSession reply");

    let ev = expect_event(&rx, EventType::NodeDeleted, "/eph");
    assert!(ev.zxid <= hdr.zxid);
    assert_eq!(observer.exists("/eph", false).unwrap(), None);

    // And through the own client: close() returns Ok and ephemerals go.
    let c = connect(&s);
    c.create("/eph2", b"", &open(), CreateMode::Ephemeral).unwrap();
    c.close().unwrap();
    assert_eq!(observer.exists("/eph2", false).unwrap(), None);
}

#[test]
fn wchc_and_wchp_answers_of_megabytes_are_whole() {
    // Sessions on both worker shards, each watching paths of its own plus
    // one shared path; the dumps (several MiB) are sent in pieces and must
    // arrive whole and in shape.
    let s = TestServer::start();
    let long = "x".repeat(150);
    let clients: Vec<Client> = (0..4).map(|_| connect(&s)).collect();
    let mut expected: std::collections::BTreeSet<(String, i64)> = Default::default();
    for (n, c) in clients.iter().enumerate() {
        let mut pending = Vec::new();
        for i in 0..4_000 {
            let path = format!("/dump/{n}/{long}/{i}");
            expected.insert((path.clone(), c.session_id()));
            pending.push(c.submit(Request::Exists(PathWatch { path, watch: true })).unwrap());
        }
        for p in pending {
            let _ = p.wait();
        }
        assert!(c.exists("/dump/shared", true).unwrap().is_none());
        expected.insert(("/dump/shared".to_owned(), c.session_id()));
    }
    let wchs = s.four_letter("wchs");
    assert!(wchs.contains(&format!("Total watches:{}", expected.len())), "{wchs}");

    let wchp = s.four_letter("wchp");
    assert!(wchp.len() > 2 << 20, "a {}-byte wchp is too small to span pieces", wchp.len());
    let mut seen = std::collections::BTreeSet::new();
    let mut path = None;
    for line in wchp.lines().filter(|l| !l.is_empty()) {
        match line.strip_prefix("\t0x") {
            Some(sid) => {
                let sid = i64::from_str_radix(sid, 16).unwrap_or_else(|_| panic!("bad session line {line:?}"));
                let path: &String = path.as_ref().expect("a session line before any path");
                assert!(seen.insert((path.clone(), sid)), "{path} 0x{sid:x} twice");
            }
            None => path = Some(line.to_owned()),
        }
    }
    assert_eq!(seen, expected, "wchp lists every (path, session) once");

    let wchc = s.four_letter("wchc");
    let mut seen = std::collections::BTreeSet::new();
    let mut session = None;
    for line in wchc.lines().filter(|l| !l.is_empty()) {
        match line.strip_prefix('\t') {
            Some(path) => {
                let sid = session.expect("a path line before any session");
                assert!(seen.insert((path.to_owned(), sid)), "{path} 0x{sid:x} twice");
            }
            None => {
                let hex = line.strip_prefix("0x").unwrap_or_else(|| panic!("bad session line {line:?}"));
                session = Some(i64::from_str_radix(hex, 16).unwrap());
            }
        }
    }
    assert_eq!(seen, expected, "wchc lists every (session, path) once");
}
