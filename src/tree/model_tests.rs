//! The tree against a model: a `BTreeMap<String, ModelNode>` with the same
//! semantics written the plain way (every check in Apache's order, no
//! packing, no sharing, no incremental digest). Random writes of every kind
//! (single and multi) go to both; after each one the results, the watch
//! events and the whole tree (every node's stat, data, ACL, children
//! listing, the digest, the ephemerals) must agree. Snapshots are written
//! and loaded back, and restarts replay the logged txns since the last
//! snapshot onto it, as recovery does; both must give the model's tree.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::path::{parent_of, split_last, validate_path};
use super::{DataTree, NodeKind, StoredStat, TxnContext, WriteOp, WriteResult, SPECIAL_PATHS};
use crate::acl::AuthContext;
use crate::proto::{
    op, open_acl_unsafe, read_acl_unsafe, Acl, CreateMode, ErrorCode, EventType, Stat, CONTAINER_EPHEMERAL_OWNER,
    MAX_TTL_MS, TTL_MASK,
};
use crate::storage::apache::digest::{digest_of, tree_digest, DigestCheck};
use crate::storage::txn::LoggedTxn;
use crate::tree::MultiOpResult;

struct AllowAll;

impl AuthContext for AllowAll {
    fn allowed(&self, _acl: &[Acl], _perm: i32) -> bool {
        true
    }
    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        if acl.is_empty() {
            return Err(ErrorCode::InvalidAcl);
        }
        Ok(acl.to_vec())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ModelNode {
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    stat: StoredStat,
    num_children: i32,
}

impl ModelNode {
    fn wire_stat(&self) -> Stat {
        let s = &self.stat;
        let ephemeral_owner = match NodeKind::from_owner(s.ephemeral_owner) {
            NodeKind::Ephemeral(session) => session,
            _ => 0,
        };
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(self.num_children),
            aversion: s.aversion,
            ephemeral_owner,
            data_length: self.data.as_ref().map_or(0, Vec::len) as i32,
            num_children: self.num_children,
            pzxid: s.pzxid,
        }
    }
}

type Events = Vec<(EventType, String)>;

#[derive(Debug, Clone, PartialEq)]
struct Model {
    nodes: BTreeMap<String, ModelNode>,
}

fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(if current.wrapping_add(1) == -1 { 0 } else { current.wrapping_add(1) })
}

impl Model {
    fn new() -> Model {
        let node = |acl: Vec<Acl>, children| ModelNode {
            data: Some(Vec::new()),
            acl,
            stat: StoredStat::default(),
            num_children: children,
        };
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_owned(), node(open_acl_unsafe(), 1));
        nodes.insert("/zookeeper".to_owned(), node(open_acl_unsafe(), 2));
        nodes.insert("/zookeeper/quota".to_owned(), node(open_acl_unsafe(), 0));
        nodes.insert("/zookeeper/config".to_owned(), node(read_acl_unsafe(), 0));
        Model { nodes }
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| p.as_str() != "/" && parent_of(p) == Some(path))
            .filter_map(|p| split_last(p).map(|(_, name)| name.to_owned()))
            .collect()
    }

    /// One write as the leader runs it: Ok with the result and events, or
    /// the error (the model unchanged).
    fn write(&mut self, session: i64, zxid: i64, time: i64, w: &WriteOp) -> Result<(WriteResult, Events), ErrorCode> {
        match w {
            WriteOp::Multi(ops) => {
                let allowed = |w: &WriteOp| {
                    matches!(
                        w,
                        WriteOp::Create { .. }
                            | WriteOp::Delete { .. }
                            | WriteOp::SetData { .. }
                            | WriteOp::Check { .. }
                    )
                };
                if !ops.iter().all(allowed) {
                    return Err(ErrorCode::MarshallingError);
                }
                let mut scratch = self.clone();
                let mut results = Vec::new();
                let mut events = Vec::new();
                for (i, sub) in ops.iter().enumerate() {
                    match scratch.single(session, zxid, time, sub) {
                        Ok((result, mut fired)) => {
                            results.push(match result {
                                WriteResult::Created { path, stat } => MultiOpResult::Created { path, stat },
                                WriteResult::Deleted => MultiOpResult::Deleted,
                                WriteResult::Stat(stat) => MultiOpResult::SetData(stat),
                                _ => MultiOpResult::Checked,
                            });
                            events.append(&mut fired);
                        }
                        Err(code) => {
                            let mut failed = vec![MultiOpResult::Error(ErrorCode::Ok); i];
                            failed.push(MultiOpResult::Error(code));
                            failed.resize(ops.len(), MultiOpResult::Error(ErrorCode::RuntimeInconsistency));
                            return Ok((WriteResult::Multi(failed), Vec::new()));
                        }
                    }
                }
                *self = scratch;
                Ok((WriteResult::Multi(results), events))
            }
            WriteOp::Check { .. } => Err(ErrorCode::Unimplemented),
            WriteOp::CloseSession => {
                // In the tree's (parent, name) order.
                let mut mine: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.stat.ephemeral_owner == session)
                    .map(|(p, _)| p.clone())
                    .collect();
                mine.sort_by(|a, b| super::path::TreePath::new(a).cmp(super::path::TreePath::new(b)));
                let mut events = Vec::new();
                for path in &mine {
                    self.remove(zxid, path, &mut events);
                }
                Ok((WriteResult::SessionClosed { deleted_paths: mine }, events))
            }
            single => self.single(session, zxid, time, single),
        }
    }

    fn remove(&mut self, zxid: i64, path: &str, events: &mut Events) {
        self.nodes.remove(path);
        let parent = parent_of(path).unwrap_or("/").to_owned();
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.num_children -= 1;
            p.stat.pzxid = p.stat.pzxid.max(zxid);
        }
        events.push((EventType::NodeDeleted, path.to_owned()));
        events.push((EventType::NodeChildrenChanged, parent));
    }

    fn single(&mut self, session: i64, zxid: i64, time: i64, w: &WriteOp) -> Result<(WriteResult, Events), ErrorCode> {
        match w {
            WriteOp::Create { path, data, acl, flags, ttl, op: opcode } => {
                let mode = CreateMode::from_flags(*flags).ok_or(ErrorCode::BadArguments)?;
                let ttl = ttl.unwrap_or(-1);
                if mode.is_ttl() && (ttl <= 0 || ttl > MAX_TTL_MS) {
                    return Err(ErrorCode::BadArguments);
                }
                if !mode.is_ttl() && (ttl >= 0 || *opcode == op::CREATE_TTL) {
                    return Err(ErrorCode::BadArguments);
                }
                if path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?.to_owned();
                let acl = AllowAll.fixup_acl(acl)?;
                let parent = self.nodes.get(&parent_path).ok_or(ErrorCode::NoNode)?;
                let path =
                    if mode.is_sequential() { format!("{path}{:010}", parent.stat.cversion) } else { path.clone() };
                validate_path(&path)?;
                if self.nodes.contains_key(&path) {
                    return Err(ErrorCode::NodeExists);
                }
                if matches!(NodeKind::from_owner(parent.stat.ephemeral_owner), NodeKind::Ephemeral(_)) {
                    return Err(ErrorCode::NoChildrenForEphemerals);
                }
                let owner = match *opcode {
                    op::CREATE_CONTAINER => CONTAINER_EPHEMERAL_OWNER,
                    op::CREATE_TTL => TTL_MASK | ttl,
                    _ if mode.is_ephemeral() => session,
                    _ => 0,
                };
                let stat = StoredStat {
                    czxid: zxid,
                    mzxid: zxid,
                    ctime: time,
                    mtime: time,
                    ephemeral_owner: owner,
                    pzxid: zxid,
                    ..StoredStat::default()
                };
                let node = ModelNode { data: data.as_ref().map(|d| d.to_vec()), acl, stat, num_children: 0 };
                let wire = node.wire_stat();
                self.nodes.insert(path.clone(), node);
                let parent = self.nodes.get_mut(&parent_path).ok_or(ErrorCode::SystemError)?;
                parent.num_children += 1;
                let raised = parent.stat.cversion.wrapping_add(1);
                if raised > parent.stat.cversion {
                    parent.stat.cversion = raised;
                    parent.stat.pzxid = zxid;
                }
                let events =
                    vec![(EventType::NodeCreated, path.clone()), (EventType::NodeChildrenChanged, parent_path)];
                Ok((WriteResult::Created { path, stat: wire }, events))
            }
            WriteOp::Delete { path, version } => {
                if path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
                if SPECIAL_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                self.nodes.get(parent_path).ok_or(ErrorCode::NoNode)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                next_version(node.stat.version, *version)?;
                if node.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                let mut events = Vec::new();
                self.remove(zxid, path, &mut events);
                Ok((WriteResult::Deleted, events))
            }
            WriteOp::DeleteContainer { path } => {
                if path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
                if SPECIAL_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                if node.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                if matches!(NodeKind::from_owner(node.stat.ephemeral_owner), NodeKind::Ephemeral(_)) {
                    return Err(ErrorCode::BadVersion);
                }
                self.nodes.get(parent_path).ok_or(ErrorCode::NoNode)?;
                let mut events = Vec::new();
                self.remove(zxid, path, &mut events);
                Ok((WriteResult::Deleted, events))
            }
            WriteOp::SetData { path, data, version } => {
                validate_path(path)?;
                let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
                node.stat.version = next_version(node.stat.version, *version)?;
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                node.data = data.as_ref().map(|d| d.to_vec());
                Ok((WriteResult::Stat(node.wire_stat()), vec![(EventType::NodeDataChanged, path.clone())]))
            }
            WriteOp::SetAcl { path, acl, version } => {
                validate_path(path)?;
                let acl = AllowAll.fixup_acl(acl)?;
                let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
                node.stat.aversion = next_version(node.stat.aversion, *version)?;
                node.acl = acl;
                Ok((WriteResult::Stat(node.wire_stat()), Vec::new()))
            }
            WriteOp::Check { path, version } => {
                validate_path(path)?;
                let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
                next_version(node.stat.version, *version)?;
                Ok((WriteResult::Checked, Vec::new()))
            }
            WriteOp::Multi(_) | WriteOp::CloseSession => Err(ErrorCode::MarshallingError),
        }
    }
}

/// Every node, children listing, stat, the digest and the indexes.
fn assert_matches(tree: &DataTree, model: &Model) {
    let got: BTreeMap<String, ModelNode> = tree
        .iter()
        .map(|(p, n)| {
            let node = ModelNode {
                data: n.data().map(<[u8]>::to_vec),
                acl: n.acl().to_vec(),
                stat: n.stored_stat(),
                num_children: n.num_children(),
            };
            (p.to_owned(), node)
        })
        .collect();
    assert_eq!(got, model.nodes);
    let order: Vec<&str> = tree.iter().map(|(p, _)| p).collect();
    assert!(order.windows(2).all(|w| super::path::TreePath::new(w[0]) < super::path::TreePath::new(w[1])));
    assert_eq!(tree.node_count(), model.nodes.len());
    let mut digest = 0i64;
    let mut size = 0u64;
    for (path, node) in &model.nodes {
        assert_eq!(tree.children(path), Some(model.children(path)), "children of {path}");
        let got = tree.get(path).expect("listed node");
        assert_eq!(got.stat(), node.wire_stat(), "stat of {path}");
        assert_eq!(got.data_bytes().as_deref(), node.data.as_deref(), "data of {path}");
        digest = digest.wrapping_add(digest_of(path, node.data.as_deref(), &node.stat));
        size += (path.len() + node.data.as_ref().map_or(0, Vec::len)) as u64;
    }
    assert_eq!(tree.digest(), digest);
    assert_eq!(tree_digest(tree), digest);
    assert_eq!(tree.approximate_data_size(), size);
    for session in SESSIONS {
        let mut got = tree.ephemerals_of(session);
        got.sort();
        let want: Vec<String> =
            model.nodes.iter().filter(|(_, n)| n.stat.ephemeral_owner == session).map(|(p, _)| p.clone()).collect();
        assert_eq!(got, want, "ephemerals of {session:#x}");
    }
    for absent in ["/nope", "/a/nope/x"] {
        if !model.nodes.contains_key(absent) {
            assert_eq!(tree.children(absent), None);
            assert!(tree.get(absent).is_none());
        }
    }
}

const SESSIONS: [i64; 2] = [0x11, 0x22];
const PATHS: [&str; 10] =
    ["/a", "/a/b", "/a/b/c", "/a-", "/a/", "/b", "/b/a", "/a/b/", "/zookeeper", "/zookeeper/quota/z"];

#[derive(Debug, Clone)]
enum Step {
    Write(ModelWrite, usize),
    Multi(Vec<ModelWrite>, usize),
    CloseSession(usize),
    /// Write a snapshot, load it back, go on from the loaded tree.
    Snapshot,
    /// Replay the txns logged since the last snapshot onto it.
    Restart,
}

#[derive(Debug, Clone)]
enum ModelWrite {
    /// path, CreateMode flags, data choice
    Create(usize, i32, usize),
    Container(usize),
    Ttl(usize, i64),
    Delete(usize, i32),
    DeleteContainer(usize),
    SetData(usize, usize, i32),
    SetAcl(usize, i32),
    Check(usize, i32),
}

/// None, empty, small, 100 bytes, and one past the inline limit.
fn data_of(choice: usize, step: usize) -> Option<Bytes> {
    let len = [0, 0, 3, 100, super::node::INLINE_DATA_MAX_BYTES + 1][choice % 5];
    (!choice.is_multiple_of(5)).then(|| Bytes::from(vec![step as u8; len]))
}

fn to_write(w: &ModelWrite, step: usize) -> WriteOp {
    let path = |p: &usize| PATHS[p % PATHS.len()].to_owned();
    match w {
        ModelWrite::Create(p, flags, d) => WriteOp::Create {
            path: path(p),
            data: data_of(*d, step),
            acl: open_acl_unsafe(),
            flags: *flags,
            ttl: None,
            op: op::CREATE2,
        },
        ModelWrite::Container(p) => WriteOp::Create {
            path: path(p),
            data: None,
            acl: open_acl_unsafe(),
            flags: 4,
            ttl: None,
            op: op::CREATE_CONTAINER,
        },
        ModelWrite::Ttl(p, ttl) => WriteOp::Create {
            path: path(p),
            data: Some(Bytes::from_static(b"t")),
            acl: open_acl_unsafe(),
            flags: 5,
            ttl: Some(*ttl),
            op: op::CREATE_TTL,
        },
        ModelWrite::Delete(p, v) => WriteOp::Delete { path: path(p), version: *v },
        ModelWrite::DeleteContainer(p) => WriteOp::DeleteContainer { path: path(p) },
        ModelWrite::SetData(p, d, v) => WriteOp::SetData { path: path(p), data: data_of(*d, step), version: *v },
        ModelWrite::SetAcl(p, v) => {
            let acl = if step.is_multiple_of(2) { open_acl_unsafe() } else { read_acl_unsafe() };
            WriteOp::SetAcl { path: path(p), acl, version: *v }
        }
        ModelWrite::Check(p, v) => WriteOp::Check { path: path(p), version: *v },
    }
}

fn model_write() -> impl Strategy<Value = ModelWrite> {
    let p = 0..PATHS.len();
    let v = prop_oneof![3 => Just(-1), 1 => 0..3i32];
    prop_oneof![
        6 => (p.clone(), 0..4i32, 0..5usize).prop_map(|(p, f, d)| ModelWrite::Create(p, f, d)),
        1 => p.clone().prop_map(ModelWrite::Container),
        1 => (p.clone(), 1..100i64).prop_map(|(p, t)| ModelWrite::Ttl(p, t)),
        3 => (p.clone(), v.clone()).prop_map(|(p, v)| ModelWrite::Delete(p, v)),
        1 => p.clone().prop_map(ModelWrite::DeleteContainer),
        3 => (p.clone(), 0..5usize, v.clone()).prop_map(|(p, d, v)| ModelWrite::SetData(p, d, v)),
        1 => (p.clone(), v.clone()).prop_map(|(p, v)| ModelWrite::SetAcl(p, v)),
        1 => (p, v).prop_map(|(p, v)| ModelWrite::Check(p, v)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let s = 0..SESSIONS.len();
    prop_oneof![
        10 => (model_write(), s.clone()).prop_map(|(w, s)| Step::Write(w, s)),
        3 => (proptest::collection::vec(model_write(), 1..5), s.clone()).prop_map(|(w, s)| Step::Multi(w, s)),
        1 => s.prop_map(Step::CloseSession),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Restart),
    ]
}

fn snapshot_bytes(tree: &DataTree) -> Vec<u8> {
    let mut out = Vec::new();
    crate::storage::snapshot_format::write_snapshot(&mut out, tree.last_zxid(), &[], tree).expect("snapshot written");
    out
}

fn load(bytes: &[u8]) -> DataTree {
    crate::storage::snapshot_format::read_snapshot(bytes).expect("snapshot loads").tree
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_matches_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let mut tree = DataTree::new();
        let mut model = Model::new();
        // The newest snapshot (None: a fresh tree) and the txns logged since.
        let mut snapshot: Option<Vec<u8>> = None;
        let mut log: Vec<Bytes> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let zxid = i as i64 + 1;
            let time = 5_000 + 3 * zxid;
            let (session, write) = match step {
                Step::Write(w, s) => (SESSIONS[*s], to_write(w, i)),
                Step::Multi(ws, s) => (SESSIONS[*s], WriteOp::Multi(ws.iter().map(|w| to_write(w, i)).collect())),
                Step::CloseSession(s) => (SESSIONS[*s], WriteOp::CloseSession),
                Step::Snapshot => {
                    tree.set_last_zxid(zxid);
                    let bytes = snapshot_bytes(&tree);
                    let loaded = load(&bytes);
                    assert_matches(&loaded, &model);
                    prop_assert_eq!(loaded.digest(), tree.digest());
                    prop_assert_eq!(loaded.last_zxid(), zxid);
                    tree = loaded;
                    snapshot = Some(bytes);
                    log.clear();
                    continue;
                }
                Step::Restart => {
                    let mut restored = snapshot.as_deref().map_or_else(DataTree::new, load);
                    let mut sessions = BTreeMap::new();
                    for bytes in &log {
                        let logged = LoggedTxn::decode(bytes.clone()).expect("logged txn decodes");
                        crate::server::recovery::apply(&mut restored, &mut sessions, &logged);
                        let check = restored.check_txn_digest(logged.digest);
                        prop_assert!(!matches!(check, DigestCheck::Mismatch { .. }), "{:?}", check);
                    }
                    assert_matches(&restored, &model);
                    super::tests::assert_same_tree(&restored, &tree);
                    tree = restored;
                    continue;
                }
            };
            let auth = AllowAll;
            let ctx = TxnContext { session_id: session, cxid: 1, zxid, time_ms: time, auth: &auth, extended_types_enabled: true, enforce_quota: false };
            let executed = tree.execute(&ctx, &write);
            log.push(LoggedTxn { header: executed.header, txn: executed.txn.clone(), digest: executed.digest }.to_bytes());
            let expected = model.write(session, zxid, time, &write);
            let events: Events = executed.triggers.iter().map(|t| (t.event, t.path.to_string())).collect();
            match expected {
                Ok((result, want_events)) => {
                    prop_assert_eq!(executed.result, Ok(result), "{:?}", write);
                    prop_assert_eq!(events, want_events, "{:?}", write);
                }
                Err(code) => {
                    prop_assert_eq!(executed.result, Err(code), "{:?}", write);
                    prop_assert!(events.is_empty());
                }
            }
            assert_matches(&tree, &model);
        }
    }
}
