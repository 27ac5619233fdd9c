//! Preparing a write (Apache's PrepRequestProcessor): validate a request in
//! ZooKeeper's exact check order against the current tree and turn it into
//! the txn that records its outcome; then apply that txn with the same code
//! a follower and recovery use (`apply.rs`). The leader runs `execute`;
//! everyone else only ever calls `apply_txn`.

use std::sync::Arc;

use bytes::Bytes;

use super::apply::ApplyAs;
use super::path;
use super::{DataTree, NodeKind, QuotaNote, SPECIAL_PATHS};
use crate::acl::AuthContext;
use crate::proto::{op, perms, Acl, CreateMode, ErrorCode, EventType, Stat, MAX_TTL_MS};
use crate::storage::txn::{Txn, TxnDigest, TxnHeader};

/// Who is writing, and at which txn.
pub struct TxnContext<'a> {
    pub session_id: i64,
    /// The request's xid (TxnHeader.cxid); 0 for server-made txns.
    pub cxid: i32,
    pub zxid: i64,
    /// The txn header time (the leader's wall clock), ms since the epoch.
    pub time_ms: i64,
    pub auth: &'a dyn AuthContext,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes allowed.
    pub extended_types_enabled: bool,
    /// `zookeeper.enforceQuota`: hard quota limits refuse creates and
    /// setData with QuotaExceeded (`quota.rs`).
    pub enforce_quota: bool,
}

impl TxnContext<'_> {
    fn header(&self, txn_op: i32) -> TxnHeader {
        TxnHeader { session_id: self.session_id, cxid: self.cxid, zxid: self.zxid, time_ms: self.time_ms, op: txn_op }
    }
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
    /// A createSession txn applied (the session table is the caller's).
    SessionCreated,
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

/// A prepared and applied write: the txn to log and replicate (with the
/// digest it carries), what the client is told, and the watch events it
/// fired.
#[derive(Debug)]
pub struct Executed {
    pub header: TxnHeader,
    pub txn: Txn,
    /// The tree digest after this txn, to log and propose with it. None
    /// for an error txn: Apache's leader sets the digest only once a
    /// request's prep succeeded, so its refused writes carry none (a failed
    /// multi is a multi txn and carries one).
    pub digest: Option<TxnDigest>,
    pub result: Result<WriteResult, ErrorCode>,
    pub triggers: Vec<WatchTrigger>,
    /// Quota limits this write went over while it was prepared (only with
    /// `enforce_quota`): the caller logs them and counts the hard ones.
    pub quota_notes: Vec<QuotaNote>,
}

/// Whether a create's prepare looked for an existing node. `execute` lets
/// a create leave that to its apply, whose insert finds the node anyway
/// (then NodeExists and an error txn, the tree unchanged); a multi's
/// sub-ops and quota-checked creates check in prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExistsCheck {
    Checked,
    LeftToApply,
}

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
    /// The leader's step: prepares `write` at `ctx.zxid` and applies the
    /// resulting txn. A refused write becomes an error txn (type -1), which
    /// changes nothing but still consumes the zxid.
    pub fn execute(&mut self, ctx: &TxnContext, write: &WriteOp) -> Executed {
        let mut quota_notes = Vec::new();
        let mut exists = ExistsCheck::LeftToApply;
        let (header, txn) = match self.prepare(ctx, write, &mut quota_notes, &mut exists) {
            Ok((txn_op, txn)) => (ctx.header(txn_op), txn),
            Err(code) => (ctx.header(op::ERROR), Txn::Error { err: code.code() }),
        };
        let left_to_apply = exists == ExistsCheck::LeftToApply && header.op != op::ERROR;
        let how = ApplyAs { existing_create_moves_parent: !left_to_apply, keeps_large_values: true };
        let (result, triggers) = self.apply_txn_as(&header, &txn, how);
        if left_to_apply && result == Err(ErrorCode::NodeExists) {
            // The create prepare would have refused: its insert found the
            // node and changed nothing, so log the error txn instead.
            let header = ctx.header(op::ERROR);
            let txn = Txn::Error { err: ErrorCode::NodeExists.code() };
            return Executed { header, txn, digest: None, result, triggers, quota_notes };
        }
        let digest = (header.op != op::ERROR).then(|| self.txn_digest());
        Executed { header, txn, digest, result, triggers, quota_notes }
    }

    /// Validates `write` against this tree and returns (txn type, txn).
    /// `exists` is set to `Checked` unless the write is a create whose
    /// NodeExists check was left to its apply (see `ExistsCheck`).
    fn prepare(
        &self,
        ctx: &TxnContext,
        write: &WriteOp,
        notes: &mut Vec<QuotaNote>,
        exists: &mut ExistsCheck,
    ) -> Result<(i32, Txn), ErrorCode> {
        match write {
            WriteOp::Create { path, data, acl, flags, ttl, op } => {
                self.prepare_create(ctx, path, data, acl, *flags, ttl.unwrap_or(-1), *op, notes, exists)
            }
            _ => {
                *exists = ExistsCheck::Checked;
                match write {
                    WriteOp::Multi(ops) => Ok((op::MULTI, self.prepare_multi(ctx, ops, notes)?)),
                    WriteOp::Check { .. } => Err(ErrorCode::Unimplemented),
                    WriteOp::CloseSession => Ok((
                        op::CLOSE_SESSION,
                        Txn::CloseSession { paths_to_delete: Some(self.ephemerals_of(ctx.session_id)) },
                    )),
                    single => self.prepare_single(ctx, single, notes),
                }
            }
        }
    }

    /// Create, Delete, SetData, SetAcl, Check, DeleteContainer: every check
    /// before the txn is made, in ZooKeeper's order.
    fn prepare_single(
        &self,
        ctx: &TxnContext,
        write: &WriteOp,
        notes: &mut Vec<QuotaNote>,
    ) -> Result<(i32, Txn), ErrorCode> {
        match write {
            WriteOp::Create { path, data, acl, flags, ttl, op } => {
                let mut exists = ExistsCheck::Checked;
                self.prepare_create(ctx, path, data, acl, *flags, ttl.unwrap_or(-1), *op, notes, &mut exists)
            }
            WriteOp::Delete { path, version } => self.prepare_delete(ctx, path, *version).map(|txn| (op::DELETE, txn)),
            WriteOp::SetData { path, data, version } => {
                self.prepare_set_data(ctx, path, data, *version, notes).map(|txn| (op::SET_DATA, txn))
            }
            WriteOp::SetAcl { path, acl, version } => {
                self.prepare_set_acl(ctx, path, acl, *version).map(|txn| (op::SET_ACL, txn))
            }
            WriteOp::Check { path, version } => self.prepare_check(ctx, path, *version).map(|txn| (op::CHECK, txn)),
            WriteOp::DeleteContainer { path } => {
                self.prepare_delete_container(path).map(|txn| (op::DELETE_CONTAINER, txn))
            }
            WriteOp::Multi(_) | WriteOp::CloseSession => Err(ErrorCode::MarshallingError),
        }
    }

    /// Each sub-op is prepared against the tree as the sub-ops before it
    /// left it (a scratch O(1) clone). On the first failure the txn keeps
    /// the txns before it, then an ErrorTxn with the code, then ErrorTxns
    /// with RuntimeInconsistency, as Apache writes a failed multi.
    /// The quota check of each sub-op sees the sub-ops before it applied,
    /// so a multi cannot pass a hard limit in several steps.
    fn prepare_multi(&self, ctx: &TxnContext, ops: &[WriteOp], notes: &mut Vec<QuotaNote>) -> Result<Txn, ErrorCode> {
        let allowed = |op: &WriteOp| {
            matches!(
                op,
                WriteOp::Create { .. } | WriteOp::Delete { .. } | WriteOp::SetData { .. } | WriteOp::Check { .. }
            )
        };
        if !ops.iter().all(allowed) {
            return Err(ErrorCode::MarshallingError);
        }
        let mut scratch = self.clone();
        let mut subs = Vec::with_capacity(ops.len());
        let mut failed = false;
        for sub in ops {
            if failed {
                subs.push((op::ERROR, Txn::Error { err: ErrorCode::RuntimeInconsistency.code() }));
                continue;
            }
            match scratch.prepare_single(ctx, sub, notes) {
                Ok((sub_op, txn)) => {
                    let _ = scratch.apply_txn(&ctx.header(sub_op), &txn);
                    subs.push((sub_op, txn));
                }
                Err(code) => {
                    failed = true;
                    subs.push((op::ERROR, Txn::Error { err: code.code() }));
                }
            }
        }
        Ok(Txn::Multi(subs))
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_create(
        &self,
        ctx: &TxnContext,
        requested_path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        flags: i32,
        ttl: i64,
        opcode: i32,
        notes: &mut Vec<QuotaNote>,
        exists: &mut ExistsCheck,
    ) -> Result<(i32, Txn), ErrorCode> {
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
            format!("{requested_path}{:010}", parent.cversion())
        } else {
            requested_path.to_owned()
        };
        path::validate_path(&path)?;
        // Only the quota check would tell a refusal other than NodeExists
        // apart from an existing node (an ephemeral parent has no
        // children, so its refusal is the same whichever check runs
        // first): without it the check is left to the apply's insert, one
        // lookup fewer.
        let quota_applies = ctx.enforce_quota && self.quota_root_of(&path).is_some();
        if *exists == ExistsCheck::LeftToApply && quota_applies {
            *exists = ExistsCheck::Checked;
        }
        if *exists == ExistsCheck::Checked && self.get(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent_cversion = parent.cversion().wrapping_add(1);
        if quota_applies {
            let bytes = data.as_ref().map_or(0, |d| d.len() as i64);
            self.check_quota(&path, bytes, 1, notes)?;
        }
        let data = data.clone();
        // The opcode decides the node type (CreateContainerTxn,
        // CreateTTLTxn); for ops 1 and 15 only the ephemeral flag matters.
        let txn = match opcode {
            op::CREATE_CONTAINER => Txn::CreateContainer { path, data, acl, parent_cversion },
            op::CREATE_TTL => Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms: ttl },
            _ => Txn::Create { path, data, acl, ephemeral: mode.is_ephemeral(), parent_cversion },
        };
        Ok((opcode, txn))
    }

    fn prepare_delete(&self, ctx: &TxnContext, path: &str, version: i32) -> Result<Txn, ErrorCode> {
        let parent_path = parent_for_write(path)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(parent.acl(), perms::DELETE) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        check_and_inc_version(node.version(), version)?;
        if node.num_children() > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        Ok(Txn::Delete { path: path.to_owned() })
    }

    fn prepare_delete_container(&self, path: &str) -> Result<Txn, ErrorCode> {
        let parent_path = parent_for_write(path)?;
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if node.num_children() > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(node.kind(), NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::BadVersion);
        }
        self.get(parent_path).ok_or(ErrorCode::NoNode)?;
        Ok(Txn::Delete { path: path.to_owned() })
    }

    fn prepare_set_data(
        &self,
        ctx: &TxnContext,
        path: &str,
        data: &Option<Bytes>,
        version: i32,
        notes: &mut Vec<QuotaNote>,
    ) -> Result<Txn, ErrorCode> {
        path::validate_path(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::WRITE) {
            return Err(ErrorCode::NoAuth);
        }
        // Apache checks the quota before the version.
        if ctx.enforce_quota {
            let new_len = data.as_ref().map_or(0, |d| d.len() as i64);
            self.check_quota(path, new_len - node.data_len() as i64, 0, notes)?;
        }
        let new_version = check_and_inc_version(node.version(), version)?;
        Ok(Txn::SetData { path: path.to_owned(), data: data.clone(), version: new_version })
    }

    fn prepare_set_acl(&self, ctx: &TxnContext, path: &str, acl: &[Acl], version: i32) -> Result<Txn, ErrorCode> {
        path::validate_path(path)?;
        let acl = ctx.auth.fixup_acl(acl)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::ADMIN) {
            return Err(ErrorCode::NoAuth);
        }
        let new_version = check_and_inc_version(node.aversion(), version)?;
        Ok(Txn::SetAcl { path: path.to_owned(), acl, version: new_version })
    }

    fn prepare_check(&self, ctx: &TxnContext, path: &str, version: i32) -> Result<Txn, ErrorCode> {
        path::validate_path(path)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !ctx.auth.allowed(node.acl(), perms::READ) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(Txn::Check { path: path.to_owned(), version: check_and_inc_version(node.version(), version)? })
    }
}
