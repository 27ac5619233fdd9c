//! Write execution: validates a write in ZooKeeper's exact check order
//! (PrepRequestProcessor) and applies it (DataTree.processTxn) in one step,
//! returning the watch triggers in the order ZooKeeper fires them.

use std::sync::Arc;

use bytes::Bytes;

use super::path::{self, PathKey};
use super::{DataTree, Node, NodeKind, StoredStat, SPECIAL_PATHS};
use crate::acl::AuthContext;
use crate::proto::{
    op, perms, Acl, CreateMode, ErrorCode, EventType, Stat, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS, TTL_MASK,
};

/// Who is writing, and at which txn.
pub struct TxnContext<'a> {
    pub session_id: i64,
    pub zxid: i64,
    /// The txn header time (the leader's wall clock), ms since the epoch.
    pub time_ms: i64,
    pub auth: &'a dyn AuthContext,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes allowed.
    pub extended_types_enabled: bool,
}

/// One write, as decoded from a request (or made by the server itself).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    /// Ops 1, 15, 19 and 21. `flags` is the raw CreateMode value; `ttl` is
    /// None for ops other than 21 (ZooKeeper treats that as ttl -1).
    Create {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: Option<i64>,
        op: i32,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Only valid inside Multi; at top level it gives Unimplemented (-6).
    Check {
        path: String,
        version: i32,
    },
    /// Sub-ops may be Create, Delete, SetData and Check only; anything else
    /// gives MarshallingError (-5) for the whole request, as a decode would.
    Multi(Vec<WriteOp>),
    /// Op 20, issued by the container/TTL reaper.
    DeleteContainer {
        path: String,
    },
    /// Deletes every ephemeral of `ctx.session_id`.
    CloseSession,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    /// The actual path (with any sequence suffix) and the new node's stat.
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    /// setData / setACL: the node's stat afterwards.
    Stat(Stat),
    Checked,
    /// Also returned when the multi failed (then with Error results; the
    /// reply header's err stays 0).
    Multi(Vec<MultiOpResult>),
    SessionClosed {
        deleted_paths: Vec<String>,
    },
}

/// One result of a multi. For a create the caller picks resultType 1 or 15
/// from the sub-op's opcode.
#[derive(Debug, Clone, PartialEq)]
pub enum MultiOpResult {
    Created { path: String, stat: Stat },
    Deleted,
    SetData(Stat),
    Checked,
    Error(ErrorCode),
}

/// A watch event to deliver, with the ACL that decides who may see it: the
/// node's ACL, or for NodeChildrenChanged the parent's (CVE-2024-23944).
#[derive(Debug, Clone, PartialEq)]
pub struct WatchTrigger {
    pub event: EventType,
    pub path: Arc<str>,
    pub acl: Arc<[Acl]>,
}

type Triggers = Vec<WatchTrigger>;

/// `checkAndIncVersion`: -1 matches anything; the new version skips -1 on
/// wrap-around.
fn check_and_inc_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(match current.wrapping_add(1) {
        -1 => 0,
        next => next,
    })
}

/// The parent path of a write target, with the quick checks that precede
/// every lookup: a '/' somewhere and no NUL.
fn parent_for_write(path: &str) -> Result<&str, ErrorCode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    path::parent_of(path).ok_or(ErrorCode::BadArguments)
}

impl DataTree {
    /// Validates and applies one write at `ctx.zxid`. On failure the tree
    /// is unchanged (except that `last_zxid` advances: a failed write is
    /// still a txn) and no triggers are returned.
    pub fn execute(&mut self, ctx: &TxnContext, op: &WriteOp) -> (Result<WriteResult, ErrorCode>, Vec<WatchTrigger>) {
        let mut triggers = Vec::new();
        let result = match op {
            WriteOp::Multi(ops) => self.execute_multi(ctx, ops, &mut triggers),
            WriteOp::Check { .. } => Err(ErrorCode::Unimplemented),
            WriteOp::CloseSession => Ok(self.close_session(ctx, &mut triggers)),
            single => self.execute_single(ctx, single, &mut triggers),
        };
        if result.is_err() {
            triggers.clear();
        }
        self.last_zxid = self.last_zxid.max(ctx.zxid);
        (result, triggers)
    }

    /// Create, Delete, SetData, SetAcl, Check, DeleteContainer. Each checks
    /// everything before its first change, so an error leaves no trace.
    fn execute_single(
        &mut self,
        ctx: &TxnContext,
        op: &WriteOp,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        match op {
            WriteOp::Create { path, data, acl, flags, ttl, op } => {
                self.create(ctx, path, data, acl, *flags, ttl.unwrap_or(-1), *op, triggers)
            }
            WriteOp::Delete { path, version } => self.delete(ctx, path, *version, triggers),
            WriteOp::SetData { path, data, version } => self.set_data(ctx, path, data, *version, triggers),
            WriteOp::SetAcl { path, acl, version } => self.set_acl(ctx, path, acl, *version),
            WriteOp::Check { path, version } => self.check(ctx, path, *version),
            WriteOp::DeleteContainer { path } => self.delete_container(ctx, path, triggers),
            WriteOp::Multi(_) | WriteOp::CloseSession => Err(ErrorCode::MarshallingError),
        }
    }

    fn execute_multi(
        &mut self,
        ctx: &TxnContext,
        ops: &[WriteOp],
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let allowed = |op: &WriteOp| {
            matches!(
                op,
                WriteOp::Create { .. } | WriteOp::Delete { .. } | WriteOp::SetData { .. } | WriteOp::Check { .. }
            )
        };
        if !ops.iter().all(allowed) {
            return Err(ErrorCode::MarshallingError);
        }
        // Rollback is a restore of this O(1) snapshot.
        let before = self.clone();
        let mut results = Vec::with_capacity(ops.len());
        let mut pending = Vec::new();
        for (index, sub) in ops.iter().enumerate() {
            match self.execute_single(ctx, sub, &mut pending) {
                Ok(result) => results.push(match result {
                    WriteResult::Created { path, stat } => MultiOpResult::Created { path, stat },
                    WriteResult::Deleted => MultiOpResult::Deleted,
                    WriteResult::Stat(stat) => MultiOpResult::SetData(stat),
                    _ => MultiOpResult::Checked,
                }),
                Err(code) => {
                    *self = before;
                    let mut failed = vec![MultiOpResult::Error(ErrorCode::Ok); index];
                    failed.push(MultiOpResult::Error(code));
                    failed.resize(ops.len(), MultiOpResult::Error(ErrorCode::RuntimeInconsistency));
                    return Ok(WriteResult::Multi(failed));
                }
            }
        }
        triggers.append(&mut pending);
        Ok(WriteResult::Multi(results))
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        ctx: &TxnContext,
        requested_path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        flags: i32,
        ttl: i64,
        opcode: i32,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let mode = CreateMode::from_flags(flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !ctx.extended_types_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl >= 0 || opcode == op::CREATE_TTL {
            // Java lets op 21 with a non-TTL mode and ttl -1 through prep and
            // then fails applying it; refuse it here instead.
            return Err(ErrorCode::BadArguments);
        }
        // (-120 for an ephemeral on a local session is the caller's check.)
        let parent_path = parent_for_write(requested_path)?;
        let acl = ctx.auth.fixup_acl(acl)?;
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(parent.acl(), perms::CREATE) {
            return Err(ErrorCode::NoAuth);
        }
        let path = if mode.is_sequential() {
            // Rust's `{:010}` pads after the sign exactly like `%010d`.
            format!("{requested_path}{:010}", parent.cversion)
        } else {
            requested_path.to_owned()
        };
        path::validate_path(&path)?;
        if self.get(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        // The opcode decides the node type when applied (CreateContainerTxn,
        // CreateTTLTxn); for ops 1 and 15 only the ephemeral flag matters.
        let ephemeral_owner = match opcode {
            op::CREATE_CONTAINER => CONTAINER_EPHEMERAL_OWNER,
            op::CREATE_TTL => TTL_MASK | ttl,
            _ if mode.is_ephemeral() => ctx.session_id,
            _ => 0,
        };

        let stat = StoredStat {
            czxid: ctx.zxid,
            mzxid: ctx.zxid,
            ctime: ctx.time_ms,
            mtime: ctx.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: ctx.zxid,
        };
        let acl = self.acl_cache.intern(&acl);
        let node = Node::new(data.clone(), acl.clone(), stat);
        let wire_stat = node.stat();
        let key = PathKey(Arc::from(path.as_str()));
        self.insert_node_entry(key.clone(), node);
        let parent = self
            .update_node(parent_path, |p| {
                p.cversion = p.cversion.wrapping_add(1);
                p.pzxid = ctx.zxid;
                p.num_children += 1;
            })
            .ok_or(ErrorCode::SystemError)?;
        triggers.push(WatchTrigger { event: EventType::NodeCreated, path: key.0, acl });
        triggers.push(WatchTrigger {
            event: EventType::NodeChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent.acl.clone(),
        });
        Ok(WriteResult::Created { path, stat: wire_stat })
    }

    fn delete(
        &mut self,
        ctx: &TxnContext,
        path: &str,
        version: i32,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let parent_path = parent_for_write(path)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(parent.acl(), perms::DELETE) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        check_and_inc_version(node.version, version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove_and_trigger(ctx.zxid, path, triggers)?;
        Ok(WriteResult::Deleted)
    }

    fn delete_container(
        &mut self,
        ctx: &TxnContext,
        path: &str,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let parent_path = parent_for_write(path)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(node.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::BadVersion);
        }
        self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        self.remove_and_trigger(ctx.zxid, path, triggers)?;
        Ok(WriteResult::Deleted)
    }

    fn close_session(&mut self, ctx: &TxnContext, triggers: &mut Triggers) -> WriteResult {
        let paths = self.ephemerals_of(ctx.session_id);
        let mut deleted_paths = Vec::with_capacity(paths.len());
        for path in paths {
            // Ephemerals have no children, so any order is safe.
            if self.remove_and_trigger(ctx.zxid, &path, triggers).is_ok() {
                deleted_paths.push(path);
            }
        }
        WriteResult::SessionClosed { deleted_paths }
    }

    /// Removes a checked, childless node: parent numChildren -1 and pzxid
    /// raised (never lowered); NodeDeleted then parent NodeChildrenChanged.
    fn remove_and_trigger(&mut self, zxid: i64, path: &str, triggers: &mut Triggers) -> Result<(), ErrorCode> {
        let parent_path = path::parent_of(path).ok_or(ErrorCode::BadArguments)?;
        let key = PathKey(Arc::from(path));
        let node = self.remove_node_entry(&key).ok_or(ErrorCode::NoNode)?;
        let parent = self
            .update_node(parent_path, |p| {
                p.num_children -= 1;
                p.pzxid = p.pzxid.max(zxid);
            })
            .ok_or(ErrorCode::SystemError)?;
        triggers.push(WatchTrigger { event: EventType::NodeDeleted, path: key.0, acl: node.acl.clone() });
        triggers.push(WatchTrigger {
            event: EventType::NodeChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent.acl.clone(),
        });
        Ok(())
    }

    fn set_data(
        &mut self,
        ctx: &TxnContext,
        path: &str,
        data: &Option<Bytes>,
        version: i32,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        path::validate_path(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::WRITE) {
            return Err(ErrorCode::NoAuth);
        }
        // (-125 quota is not enforced here.)
        let new_version = check_and_inc_version(node.version, version)?;
        let old_len = node.data_len() as u64;
        let new_len = data.as_ref().map_or(0, Bytes::len) as u64;
        let node = self
            .update_node(path, |n| {
                n.data = super::owned_data(data);
                n.version = new_version;
                n.mtime = ctx.time_ms;
                n.mzxid = ctx.zxid;
            })
            .ok_or(ErrorCode::NoNode)?;
        self.data_size = self.data_size.saturating_sub(old_len) + new_len;
        triggers.push(WatchTrigger { event: EventType::NodeDataChanged, path: Arc::from(path), acl: node.acl.clone() });
        Ok(WriteResult::Stat(node.stat()))
    }

    fn set_acl(&mut self, ctx: &TxnContext, path: &str, acl: &[Acl], version: i32) -> Result<WriteResult, ErrorCode> {
        path::validate_path(path)?;
        let acl = ctx.auth.fixup_acl(acl)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::ADMIN) {
            return Err(ErrorCode::NoAuth);
        }
        let new_version = check_and_inc_version(node.aversion, version)?;
        let acl = self.acl_cache.intern(&acl);
        let node = self
            .update_node(path, |n| {
                n.acl = acl;
                n.aversion = new_version;
            })
            .ok_or(ErrorCode::NoNode)?;
        Ok(WriteResult::Stat(node.stat()))
    }

    fn check(&mut self, ctx: &TxnContext, path: &str, version: i32) -> Result<WriteResult, ErrorCode> {
        path::validate_path(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        check_and_inc_version(node.version, version)?;
        Ok(WriteResult::Checked)
    }
}
