use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::acl::AuthContext;
use crate::proto::{op, open_acl_unsafe, perms, Acl, ErrorCode, EventType, Id};
use crate::storage::txn::LoggedTxn;

/// Allows everything unless `deny` bits are set; fixup = identity, empty
/// list = InvalidAcl, scheme "bad" = InvalidAcl.
struct TestAuth {
    deny: i32,
}

impl AuthContext for TestAuth {
    fn allowed(&self, acl: &[Acl], perm: i32) -> bool {
        acl.is_empty() || perm & self.deny == 0
    }
    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        if acl.is_empty() || acl.iter().any(|a| a.id.scheme == "bad") {
            return Err(ErrorCode::InvalidAcl);
        }
        Ok(acl.to_vec())
    }
}

const ALLOW: TestAuth = TestAuth { deny: 0 };

/// Executes `op` as the leader does, and checks on every call that a
/// follower (or recovery) applying the same txn, from its encoded bytes,
/// to the same starting tree reaches the same tree, result and events.
fn execute_checked(
    tree: &mut DataTree,
    ctx: &TxnContext,
    op: &WriteOp,
) -> (Result<WriteResult, ErrorCode>, Vec<WatchTrigger>) {
    let mut follower = tree.clone();
    let executed = tree.execute(ctx, op);
    let logged = LoggedTxn { header: executed.header, txn: executed.txn.clone(), digest: None };
    let decoded = LoggedTxn::decode(logged.to_bytes()).expect("a prepared txn decodes");
    assert_eq!(decoded, logged);
    let (result, triggers) = follower.apply_txn(&decoded.header, &decoded.txn);
    assert_eq!(result, executed.result, "apply result differs for {op:?}");
    assert_eq!(triggers, executed.triggers, "apply triggers differ for {op:?}");
    assert_same_tree(&follower, tree);
    (executed.result, executed.triggers)
}

pub(super) fn assert_same_tree(a: &DataTree, b: &DataTree) {
    let dump = |t: &DataTree| -> Vec<(String, StoredStat, Option<Bytes>, Vec<Acl>, i32)> {
        t.iter()
            .map(|(p, n)| (p.to_owned(), n.stored_stat(), n.data().cloned(), n.acl().to_vec(), n.num_children()))
            .collect()
    };
    assert_eq!(dump(a), dump(b));
    assert_eq!(a.last_zxid(), b.last_zxid());
    assert_eq!(a.approximate_data_size(), b.approximate_data_size());
    assert_eq!(a.ephemerals_by_session(), b.ephemerals_by_session());
}
const SESSION: i64 = 0x1234;

fn ctx(auth: &TestAuth, zxid: i64) -> TxnContext<'_> {
    TxnContext { session_id: SESSION, cxid: 7, zxid, time_ms: 1000 + zxid, auth, extended_types_enabled: true }
}

fn create_op(path: &str, flags: i32) -> WriteOp {
    WriteOp::Create {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: open_acl_unsafe(),
        flags,
        ttl: None,
        op: op::CREATE2,
    }
}

fn create_with(path: &str, flags: i32, opcode: i32, ttl: Option<i64>) -> WriteOp {
    WriteOp::Create { path: path.into(), data: None, acl: open_acl_unsafe(), flags, ttl, op: opcode }
}

/// Runs `op` at `zxid` with allow-all auth; returns the result.
fn run(tree: &mut DataTree, zxid: i64, op: WriteOp) -> Result<WriteResult, ErrorCode> {
    execute_checked(&mut *tree, &ctx(&ALLOW, zxid), &op).0
}

fn created_path(r: Result<WriteResult, ErrorCode>) -> String {
    match r {
        Ok(WriteResult::Created { path, .. }) => path,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn check_invariants(tree: &DataTree) {
    for (path, node) in tree.iter() {
        let kids = tree.children(path).unwrap();
        assert_eq!(kids.len() as i32, node.num_children(), "numChildren of {path}");
        if path != "/" {
            let parent = path::parent_of(path).unwrap();
            assert!(tree.get(parent).is_some(), "parent of {path}");
        }
    }
    let size: u64 = tree.iter().map(|(p, n)| (p.len() + n.data_len()) as u64).sum();
    assert_eq!(size, tree.approximate_data_size());
}

#[test]
fn node_layout_is_compact() {
    // The module doc's memory estimate relies on this.
    assert_eq!(std::mem::size_of::<Node>(), 112);
}

#[test]
fn fresh_tree_has_special_nodes() {
    let tree = DataTree::new();
    assert_eq!(tree.node_count(), 4);
    assert_eq!(tree.children("/").unwrap(), vec!["zookeeper"]);
    let mut kids = tree.children("/zookeeper").unwrap();
    kids.sort();
    assert_eq!(kids, vec!["config", "quota"]);
    assert_eq!(tree.get("/zookeeper/config").unwrap().acl().to_vec(), crate::proto::read_acl_unsafe());
    // Built-in children were added without a create: wire cversion -1.
    let root = tree.get("/").unwrap().stat();
    assert_eq!(root, Stat { cversion: -1, num_children: 1, ..Stat::default() });
    assert_eq!(tree.get("/zookeeper").unwrap().stat().cversion, -2);
    assert_eq!(tree.all_children_number("/"), Some(3));
    assert_eq!(tree.all_children_number("/zookeeper"), Some(2));
    assert_eq!(tree.all_children_number("/nope"), None);
    check_invariants(&tree);
}

#[test]
fn create_stats_and_triggers() {
    let mut tree = DataTree::new();
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 5), &create_op("/a", 0));
    let Ok(WriteResult::Created { path, stat }) = r else { panic!("{r:?}") };
    assert_eq!(path, "/a");
    assert_eq!(
        stat,
        Stat {
            czxid: 5,
            mzxid: 5,
            ctime: 1005,
            mtime: 1005,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 1,
            num_children: 0,
            pzxid: 5
        }
    );
    assert_eq!(triggers.len(), 2);
    assert_eq!((triggers[0].event, &*triggers[0].path), (EventType::NodeCreated, "/a"));
    assert_eq!((triggers[1].event, &*triggers[1].path), (EventType::NodeChildrenChanged, "/"));
    let root = tree.get("/").unwrap().stat();
    assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 5, 2));
    assert_eq!(tree.last_zxid(), 5);
    check_invariants(&tree);
}

#[test]
fn null_data_is_kept_distinct_from_empty() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_with("/n", 0, op::CREATE, None)).unwrap();
    assert!(tree.get("/n").unwrap().data().is_none());
    assert_eq!(tree.get("/n").unwrap().stat().data_length, 0);
    run(&mut tree, 2, WriteOp::SetData { path: "/n".into(), data: Some(Bytes::new()), version: -1 }).unwrap();
    assert_eq!(tree.get("/n").unwrap().data(), Some(&Bytes::new()));
}

#[test]
fn sequential_names_use_stored_cversion() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/q", 0)).unwrap();
    assert_eq!(created_path(run(&mut tree, 2, create_op("/q/", 2))), "/q/0000000000");
    assert_eq!(created_path(run(&mut tree, 3, create_op("/q/x-", 2))), "/q/x-0000000001");
    run(&mut tree, 4, WriteOp::Delete { path: "/q/0000000000".into(), version: -1 }).unwrap();
    // Deletes do not advance the stored counter.
    assert_eq!(created_path(run(&mut tree, 5, create_op("/q/", 2))), "/q/0000000002");
    // Wire cversion = creates + deletes = 3 + 1.
    let q = tree.get("/q").unwrap().stat();
    assert_eq!((q.cversion, q.num_children, q.pzxid), (4, 2, 5));
}

#[test]
fn sequence_counter_sticks_at_overflow_as_apaches() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/q", 0)).unwrap();
    let stored = StoredStat { cversion: i32::MAX, ..tree.get("/q").unwrap().stored_stat() };
    assert!(tree.restore_node("/q", None, &open_acl_unsafe(), stored));
    assert_eq!(created_path(run(&mut tree, 2, create_op("/q/", 2))), format!("/q/{}", i32::MAX));
    // Apache's createNode only ever raises the parent's cversion, so the
    // wrapped value (i32::MIN) is never stored: the counter sticks and the
    // next sequential create collides. zoocore must apply txns exactly as
    // an Apache peer in the same ensemble does, so it does the same.
    assert_eq!(tree.get("/q").unwrap().stored_stat().cversion, i32::MAX);
    assert_eq!(run(&mut tree, 3, create_op("/q/", 2)), Err(ErrorCode::NodeExists));
    let mut tree2 = DataTree::new();
    run(&mut tree2, 1, create_op("/q", 0)).unwrap();
    let stored = StoredStat { cversion: -1, ..tree2.get("/q").unwrap().stored_stat() };
    tree2.restore_node("/q", None, &open_acl_unsafe(), stored);
    assert_eq!(created_path(run(&mut tree2, 2, create_op("/q/", 2))), "/q/-000000001");
}

#[test]
fn delete_raises_pzxid_only() {
    let mut tree = DataTree::new();
    run(&mut tree, 10, create_op("/p", 0)).unwrap();
    run(&mut tree, 11, create_op("/p/c", 0)).unwrap();
    let (r, triggers) =
        execute_checked(&mut tree, &ctx(&ALLOW, 12), &WriteOp::Delete { path: "/p/c".into(), version: 0 });
    assert_eq!(r, Ok(WriteResult::Deleted));
    assert_eq!(
        triggers.iter().map(|t| (t.event, &*t.path)).collect::<Vec<_>>(),
        vec![(EventType::NodeDeleted, "/p/c"), (EventType::NodeChildrenChanged, "/p")]
    );
    let p = tree.get("/p").unwrap();
    assert_eq!((p.stored_stat().cversion, p.stat().cversion, p.pzxid(), p.num_children()), (1, 2, 12, 0));
    // A delete at an older zxid (replay) never lowers pzxid.
    run(&mut tree, 13, create_op("/p/d", 0)).unwrap();
    run(&mut tree, 9, WriteOp::Delete { path: "/p/d".into(), version: -1 }).unwrap();
    assert_eq!(tree.get("/p").unwrap().pzxid(), 13);
}

#[test]
fn version_wrap_skips_minus_one() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/v", 0)).unwrap();
    let stored = StoredStat { version: -2, aversion: i32::MAX, ..tree.get("/v").unwrap().stored_stat() };
    tree.restore_node("/v", None, &open_acl_unsafe(), stored);
    let set = WriteOp::SetData { path: "/v".into(), data: None, version: -2 };
    let Ok(WriteResult::Stat(stat)) = run(&mut tree, 2, set) else { panic!() };
    assert_eq!((stat.version, stat.mzxid, stat.mtime), (0, 2, 1002));
    let set_acl = WriteOp::SetAcl { path: "/v".into(), acl: open_acl_unsafe(), version: i32::MAX };
    let Ok(WriteResult::Stat(stat)) = run(&mut tree, 3, set_acl) else { panic!() };
    assert_eq!(stat.aversion, i32::MIN);
    assert_eq!(
        run(&mut tree, 4, WriteOp::SetData { path: "/v".into(), data: None, version: 5 }),
        Err(ErrorCode::BadVersion)
    );
}

#[test]
fn node_kinds_and_owner_values() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/e", 1)).unwrap();
    run(&mut tree, 2, create_with("/c", 4, op::CREATE_CONTAINER, None)).unwrap();
    run(&mut tree, 3, create_with("/t", 5, op::CREATE_TTL, Some(500))).unwrap();
    let e = tree.get("/e").unwrap();
    assert_eq!((e.kind(), e.stat().ephemeral_owner), (NodeKind::Ephemeral(SESSION), SESSION));
    let c = tree.get("/c").unwrap();
    assert_eq!(c.stored_stat().ephemeral_owner, i64::MIN);
    assert_eq!((c.kind(), c.stat().ephemeral_owner), (NodeKind::Container, 0));
    let t = tree.get("/t").unwrap();
    assert_eq!(t.stored_stat().ephemeral_owner, 0xFF00_0000_0000_01F4u64 as i64);
    assert_eq!((t.kind(), t.stat().ephemeral_owner), (NodeKind::Ttl(500), 0));
    // Containers and TTL nodes may have children; session ephemerals not.
    run(&mut tree, 4, create_op("/c/x", 0)).unwrap();
    run(&mut tree, 5, create_op("/t/x", 0)).unwrap();
    assert_eq!(run(&mut tree, 6, create_op("/e/x", 0)), Err(ErrorCode::NoChildrenForEphemerals));
    // op 1 with container flags makes a plain persistent node (as Java applies it).
    run(&mut tree, 7, create_with("/pc", 4, op::CREATE, None)).unwrap();
    assert_eq!(tree.get("/pc").unwrap().kind(), NodeKind::Persistent);
    assert_eq!(tree.ephemerals_of(SESSION), vec!["/e"]);
}

#[test]
fn create_validation_order() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/e", 1)).unwrap();
    run(&mut tree, 2, create_op("/x", 0)).unwrap();
    let bad_acl = vec![Acl { perms: perms::ALL, id: Id::new("bad", "x") }];
    let c = |path: &str, flags, opcode, ttl, acl: Vec<Acl>| WriteOp::Create {
        path: path.into(),
        data: None,
        acl,
        flags,
        ttl,
        op: opcode,
    };
    let open = open_acl_unsafe;
    // flags first, even with everything else wrong.
    assert_eq!(run(&mut tree, 3, c("bad", 7, op::CREATE, Some(5), vec![])), Err(ErrorCode::BadArguments));
    // TTL disabled: -6 before the ttl range check and the path.
    let no_ext = TxnContext { extended_types_enabled: false, ..ctx(&ALLOW, 3) };
    assert_eq!(
        no_ext_run(&mut tree, &no_ext, c("bad", 5, op::CREATE_TTL, Some(0), vec![])),
        Err(ErrorCode::Unimplemented)
    );
    // TTL range / ttl with non-TTL mode / TTL mode without ttl.
    assert_eq!(run(&mut tree, 3, c("bad", 5, op::CREATE_TTL, Some(0), vec![])), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 3, c("/t", 5, op::CREATE_TTL, Some(1 << 40), open())), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 3, c("/t", 0, op::CREATE_TTL, Some(10), open())), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 3, c("/t", 5, op::CREATE2, None, open())), Err(ErrorCode::BadArguments));
    run(&mut tree, 3, c("/t", 5, op::CREATE_TTL, Some((1 << 40) - 1), open())).unwrap();
    // path without '/' or with NUL before the ACL.
    assert_eq!(run(&mut tree, 4, c("abc", 0, op::CREATE, None, vec![])), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 4, c("/a\0", 0, op::CREATE, None, vec![])), Err(ErrorCode::BadArguments));
    // ACL fixup before parent existence.
    assert_eq!(run(&mut tree, 4, c("/no/a", 0, op::CREATE, None, bad_acl.clone())), Err(ErrorCode::InvalidAcl));
    assert_eq!(run(&mut tree, 4, c("/no/a", 0, op::CREATE, None, vec![])), Err(ErrorCode::InvalidAcl));
    // parent before CREATE permission.
    let deny_create = TestAuth { deny: perms::CREATE };
    assert_eq!(
        execute_checked(&mut tree, &ctx(&deny_create, 4), &c("/no/a", 0, op::CREATE, None, open())).0,
        Err(ErrorCode::NoNode)
    );
    // CREATE permission before the full path validation.
    assert_eq!(
        execute_checked(&mut tree, &ctx(&deny_create, 4), &c("/x/", 0, op::CREATE, None, open())).0,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(run(&mut tree, 4, c("/x/.", 0, op::CREATE, None, open())), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 4, c("/x/", 0, op::CREATE, None, open())), Err(ErrorCode::BadArguments));
    // validation before existence; existence before the ephemeral parent.
    assert_eq!(run(&mut tree, 4, c("/x", 0, op::CREATE, None, open())), Err(ErrorCode::NodeExists));
    assert_eq!(run(&mut tree, 4, c("/", 0, op::CREATE, None, open())), Err(ErrorCode::NodeExists));
    run(&mut tree, 4, c("/e2", 3, op::CREATE, None, open())).unwrap();
    assert!(tree.get("/e20000000003").is_some());
    assert_eq!(run(&mut tree, 5, c("/e/", 0, op::CREATE, None, open())), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 5, c("/e/k", 0, op::CREATE, None, open())), Err(ErrorCode::NoChildrenForEphemerals));
    check_invariants(&tree);
}

fn no_ext_run(tree: &mut DataTree, ctx: &TxnContext, op: WriteOp) -> Result<WriteResult, ErrorCode> {
    execute_checked(&mut *tree, ctx, &op).0
}

#[test]
fn delete_validation_order() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/p", 0)).unwrap();
    run(&mut tree, 2, create_op("/p/c", 0)).unwrap();
    let d = |path: &str, version| WriteOp::Delete { path: path.into(), version };
    for special in SPECIAL_PATHS {
        assert_eq!(run(&mut tree, 3, d(special, -1)), Err(ErrorCode::BadArguments), "{special}");
    }
    assert_eq!(run(&mut tree, 3, d("p", -1)), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 3, d("/p\0", -1)), Err(ErrorCode::BadArguments));
    let deny_delete = TestAuth { deny: perms::DELETE };
    // parent missing before permission; permission before node missing.
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_delete, 3), &d("/no/x", -1)).0, Err(ErrorCode::NoNode));
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_delete, 3), &d("/p/none", -1)).0, Err(ErrorCode::NoAuth));
    assert_eq!(run(&mut tree, 3, d("/p/none", -1)), Err(ErrorCode::NoNode));
    // version before children.
    assert_eq!(run(&mut tree, 3, d("/p", 7)), Err(ErrorCode::BadVersion));
    assert_eq!(run(&mut tree, 3, d("/p", 0)), Err(ErrorCode::NotEmpty));
    assert_eq!(run(&mut tree, 3, d("/p/c", 0)), Ok(WriteResult::Deleted));
    assert_eq!(run(&mut tree, 4, d("/p", -1)), Ok(WriteResult::Deleted));
    check_invariants(&tree);
}

#[test]
fn set_data_set_acl_check_validation_order() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/n", 0)).unwrap();
    let deny_all = TestAuth { deny: perms::ALL };
    let set = |path: &str, version| WriteOp::SetData { path: path.into(), data: None, version };
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_all, 2), &set("/n/", 9)).0, Err(ErrorCode::BadArguments));
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_all, 2), &set("/none", 9)).0, Err(ErrorCode::NoNode));
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_all, 2), &set("/n", 9)).0, Err(ErrorCode::NoAuth));
    assert_eq!(run(&mut tree, 2, set("/n", 9)), Err(ErrorCode::BadVersion));
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 2), &set("/n", 0));
    assert!(matches!(r, Ok(WriteResult::Stat(s)) if s.version == 1));
    assert_eq!((triggers.len(), triggers[0].event), (1, EventType::NodeDataChanged));

    let sa = |path: &str, acl: Vec<Acl>, version| WriteOp::SetAcl { path: path.into(), acl, version };
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_all, 3), &sa("//", vec![], 9)).0, Err(ErrorCode::BadArguments));
    assert_eq!(execute_checked(&mut tree, &ctx(&deny_all, 3), &sa("/none", vec![], 9)).0, Err(ErrorCode::InvalidAcl));
    assert_eq!(
        execute_checked(&mut tree, &ctx(&deny_all, 3), &sa("/none", open_acl_unsafe(), 9)).0,
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        execute_checked(&mut tree, &ctx(&deny_all, 3), &sa("/n", open_acl_unsafe(), 9)).0,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(run(&mut tree, 3, sa("/n", open_acl_unsafe(), 9)), Err(ErrorCode::BadVersion));
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 3), &sa("/n", crate::proto::read_acl_unsafe(), 0));
    assert!(matches!(r, Ok(WriteResult::Stat(s)) if s.aversion == 1));
    assert!(triggers.is_empty());
    // Identical ACLs are interned.
    assert!(Arc::ptr_eq(tree.get("/n").unwrap().acl(), tree.get("/zookeeper/config").unwrap().acl()));

    let chk = |path: &str, version| WriteOp::Multi(vec![WriteOp::Check { path: path.into(), version }]);
    let err_of = |r: Result<WriteResult, ErrorCode>| match r {
        Ok(WriteResult::Multi(results)) => results[0].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        err_of(execute_checked(&mut tree, &ctx(&deny_all, 4), &chk("/n/", 9)).0),
        MultiOpResult::Error(ErrorCode::BadArguments)
    );
    assert_eq!(
        err_of(execute_checked(&mut tree, &ctx(&deny_all, 4), &chk("/none", 9)).0),
        MultiOpResult::Error(ErrorCode::NoNode)
    );
    assert_eq!(
        err_of(execute_checked(&mut tree, &ctx(&deny_all, 4), &chk("/n", 9)).0),
        MultiOpResult::Error(ErrorCode::NoAuth)
    );
    assert_eq!(err_of(run(&mut tree, 4, chk("/n", 9))), MultiOpResult::Error(ErrorCode::BadVersion));
    assert_eq!(err_of(run(&mut tree, 4, chk("/n", 1))), MultiOpResult::Checked);
    // Check at top level is not allowed.
    assert_eq!(run(&mut tree, 4, WriteOp::Check { path: "/n".into(), version: -1 }), Err(ErrorCode::Unimplemented));
}

#[test]
fn multi_success_sees_earlier_ops_and_fires_in_order() {
    let mut tree = DataTree::new();
    let ops = WriteOp::Multi(vec![
        create_op("/m", 0),
        create_op("/m/c", 0),
        WriteOp::SetData { path: "/m/c".into(), data: None, version: 0 },
        WriteOp::Check { path: "/m/c".into(), version: 1 },
        WriteOp::Delete { path: "/m/c".into(), version: 1 },
    ]);
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 7), &ops);
    let Ok(WriteResult::Multi(results)) = r else { panic!("{r:?}") };
    assert!(matches!(&results[0], MultiOpResult::Created { path, .. } if path == "/m"));
    assert!(matches!(&results[2], MultiOpResult::SetData(s) if s.version == 1 && s.mzxid == 7));
    assert_eq!(results[3], MultiOpResult::Checked);
    assert_eq!(results[4], MultiOpResult::Deleted);
    let events: Vec<_> = triggers.iter().map(|t| (t.event, t.path.to_string())).collect();
    use EventType::*;
    assert_eq!(
        events,
        vec![
            (NodeCreated, "/m".into()),
            (NodeChildrenChanged, "/".into()),
            (NodeCreated, "/m/c".into()),
            (NodeChildrenChanged, "/m".into()),
            (NodeDataChanged, "/m/c".into()),
            (NodeDeleted, "/m/c".into()),
            (NodeChildrenChanged, "/m".into()),
        ]
    );
    check_invariants(&tree);
}

#[test]
fn multi_failure_rolls_back() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/keep", 0)).unwrap();
    let before: Vec<(String, Stat)> = tree.iter().map(|(p, n)| (p.to_owned(), n.stat())).collect();
    let ops = WriteOp::Multi(vec![
        create_op("/m", 0),
        WriteOp::SetData { path: "/keep".into(), data: None, version: -1 },
        WriteOp::Delete { path: "/missing".into(), version: -1 },
        create_op("/m2", 0),
    ]);
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 2), &ops);
    assert_eq!(
        r,
        Ok(WriteResult::Multi(vec![
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::Ok),
            MultiOpResult::Error(ErrorCode::NoNode),
            MultiOpResult::Error(ErrorCode::RuntimeInconsistency),
        ]))
    );
    assert!(triggers.is_empty());
    let after: Vec<(String, Stat)> = tree.iter().map(|(p, n)| (p.to_owned(), n.stat())).collect();
    assert_eq!(before, after);
    assert_eq!(tree.last_zxid(), 2);
    // A sequential create after a rolled-back one reuses the counter.
    assert_eq!(created_path(run(&mut tree, 3, create_op("/s", 2))), "/s0000000001");
    // Non-write sub-ops are a decode error for the whole request.
    assert_eq!(run(&mut tree, 4, WriteOp::Multi(vec![WriteOp::CloseSession])), Err(ErrorCode::MarshallingError));
}

#[test]
fn close_session_deletes_its_ephemerals() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/p", 0)).unwrap();
    run(&mut tree, 2, create_op("/p/e1", 1)).unwrap();
    run(&mut tree, 3, create_op("/e2", 3)).unwrap();
    let other = TxnContext { session_id: 99, ..ctx(&ALLOW, 4) };
    execute_checked(&mut tree, &other, &create_op("/o", 1)).0.unwrap();
    assert_eq!(
        tree.ephemerals_by_session(),
        vec![(99, vec!["/o".to_owned()]), (SESSION, vec!["/e20000000001".to_owned(), "/p/e1".to_owned()]),]
    );
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 5), &WriteOp::CloseSession);
    let Ok(WriteResult::SessionClosed { mut deleted_paths }) = r else { panic!("{r:?}") };
    deleted_paths.sort();
    assert_eq!(deleted_paths, vec!["/e20000000001", "/p/e1"]);
    assert_eq!(triggers.len(), 4);
    assert!(triggers.iter().any(|t| t.event == EventType::NodeDeleted && &*t.path == "/p/e1"));
    assert!(triggers.iter().any(|t| t.event == EventType::NodeChildrenChanged && &*t.path == "/p"));
    assert!(tree.get("/p/e1").is_none());
    assert!(tree.get("/o").is_some());
    assert_eq!(tree.get("/p").unwrap().pzxid(), 5);
    assert!(tree.ephemerals_of(SESSION).is_empty());
    check_invariants(&tree);
}

#[test]
fn delete_container_rules_and_reapable() {
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_with("/used", 4, op::CREATE_CONTAINER, None)).unwrap();
    run(&mut tree, 2, create_with("/fresh", 4, op::CREATE_CONTAINER, None)).unwrap();
    run(&mut tree, 3, create_with("/t", 5, op::CREATE_TTL, Some(100))).unwrap();
    run(&mut tree, 4, create_op("/used/c", 0)).unwrap();
    run(&mut tree, 5, create_op("/e", 1)).unwrap();
    // A container with a child is not reapable; TTL is alive until mtime+ttl.
    assert!(tree.reapable(1003 + 100, 0, 10).is_empty());
    assert_eq!(tree.reapable(1003 + 101, 0, 10), vec!["/t"]);
    run(&mut tree, 6, WriteOp::Delete { path: "/used/c".into(), version: -1 }).unwrap();
    assert_eq!(tree.reapable(0, 0, 10), vec!["/used"]);
    // never-used containers past the interval (mtime 1002).
    assert_eq!(tree.reapable(1002 + 51, 50, 10), vec!["/fresh", "/used"]);
    assert_eq!(tree.reapable(1002 + 51, 50, 1).len(), 1);

    let dc = |path: &str| WriteOp::DeleteContainer { path: path.into() };
    assert_eq!(run(&mut tree, 7, dc("/zookeeper")), Err(ErrorCode::BadArguments));
    assert_eq!(run(&mut tree, 7, dc("/none")), Err(ErrorCode::NoNode));
    assert_eq!(run(&mut tree, 7, dc("/e")), Err(ErrorCode::BadVersion));
    run(&mut tree, 7, create_op("/used/d", 0)).unwrap();
    assert_eq!(run(&mut tree, 8, dc("/used")), Err(ErrorCode::NotEmpty));
    let (r, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, 9), &dc("/used/d"));
    assert_eq!(r, Ok(WriteResult::Deleted)); // not checked to be a container
    assert_eq!(triggers.len(), 2);
    assert_eq!(run(&mut tree, 10, dc("/used")), Ok(WriteResult::Deleted));
    assert_eq!(run(&mut tree, 11, dc("/t")), Ok(WriteResult::Deleted));
    assert_eq!(tree.reapable(i64::MAX, 1, 10), vec!["/fresh"]);
    check_invariants(&tree);
}

#[test]
fn snapshot_is_isolated_and_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DataTree>();
    let mut tree = DataTree::new();
    run(&mut tree, 1, create_op("/a", 0)).unwrap();
    let old = tree.clone();
    run(&mut tree, 2, WriteOp::SetData { path: "/a".into(), data: None, version: -1 }).unwrap();
    run(&mut tree, 3, create_op("/a/b", 0)).unwrap();
    assert_eq!(old.get("/a").unwrap().version(), 0);
    assert_eq!(old.get("/a").unwrap().num_children(), 0);
    assert!(old.get("/a/b").is_none());
    assert_eq!(old.last_zxid(), 1);
}

#[test]
fn all_children_number_counts_descendants() {
    let mut tree = DataTree::new();
    for (i, p) in ["/a", "/a/b", "/a/b/c", "/a/d", "/ab"].iter().enumerate() {
        run(&mut tree, i as i64 + 1, create_op(p, 0)).unwrap();
    }
    assert_eq!(tree.all_children_number("/a"), Some(3));
    assert_eq!(tree.all_children_number("/a/b/c"), Some(0));
    assert_eq!(tree.all_children_number("/"), Some(8));
    assert_eq!(tree.children("/a").unwrap(), vec!["b", "d"]);
}

type DumpEntry = (String, Stat, Option<Bytes>);

#[derive(Debug, Clone)]
enum RandomOp {
    Create(usize, i32),
    Delete(usize),
    SetData(usize),
    Snapshot,
}

const PATHS: [&str; 7] = ["/a", "/a/b", "/a/b/c", "/a/d", "/e", "/e/f", "/a/"];

fn random_op() -> impl Strategy<Value = RandomOp> {
    prop_oneof![
        (0..PATHS.len(), 0..4i32).prop_map(|(p, f)| RandomOp::Create(p, f)),
        (0..PATHS.len()).prop_map(RandomOp::Delete),
        (0..PATHS.len()).prop_map(RandomOp::SetData),
        Just(RandomOp::Snapshot),
    ]
}

proptest! {
    #[test]
    fn random_writes_keep_invariants(ops in proptest::collection::vec(random_op(), 1..60)) {
        let mut tree = DataTree::new();
        let mut snapshots: Vec<(DataTree, Vec<DumpEntry>)> = Vec::new();
        let dump = |t: &DataTree| t.iter().map(|(p, n)| (p.to_owned(), n.stat(), n.data().cloned())).collect::<Vec<_>>();
        for (i, op) in ops.into_iter().enumerate() {
            let zxid = i as i64 + 1;
            let write = match op {
                RandomOp::Create(p, flags) => create_op(PATHS[p], flags),
                RandomOp::Delete(p) => WriteOp::Delete { path: PATHS[p].into(), version: -1 },
                RandomOp::SetData(p) => WriteOp::SetData { path: PATHS[p].into(), data: Some(Bytes::from(vec![i as u8; i])), version: -1 },
                RandomOp::Snapshot => {
                    snapshots.push((tree.clone(), dump(&tree)));
                    continue;
                }
            };
            let before = dump(&tree);
            let (result, triggers) = execute_checked(&mut tree, &ctx(&ALLOW, zxid), &write);
            if result.is_err() {
                prop_assert_eq!(before, dump(&tree));
                prop_assert!(triggers.is_empty());
            }
            check_invariants(&tree);
        }
        for (snapshot, contents) in snapshots {
            prop_assert_eq!(dump(&snapshot), contents);
            check_invariants(&snapshot);
        }
        let closed = execute_checked(&mut tree, &ctx(&ALLOW, 1000), &WriteOp::CloseSession);
        prop_assert!(closed.0.is_ok());
        prop_assert!(tree.iter().all(|(_, n)| !matches!(n.kind(), NodeKind::Ephemeral(_))));
        check_invariants(&tree);
    }
}
