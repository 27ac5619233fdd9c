//! Applying a committed txn to the tree (Apache's DataTree.processTxn).
//!
//! This is the one code path by which the tree changes: the leader applies
//! the txn it just prepared, a follower the txn the leader proposed, and
//! recovery the txns it replays. A txn carries the outcome the leader
//! decided (see `storage::txn`), so applying it checks no ACL and needs no
//! auth; it only refuses what cannot be applied (a missing parent, an
//! existing node), which a consistent txn stream never contains.

use std::sync::Arc;

use bytes::Bytes;

use super::node::{NewData, NodeStat};
use super::path;
use super::{DataTree, MultiOpResult, StoredStat, WatchTrigger, WriteResult};
use crate::proto::{op, Acl, ErrorCode, EventType, CONTAINER_EPHEMERAL_OWNER, TTL_MASK};
use crate::storage::txn::{Txn, TxnHeader};

type Triggers = Vec<WatchTrigger>;

/// An error txn's code; one this server does not know (a newer peer's)
/// reads as SystemError rather than being dropped.
fn error_code(err: i32) -> ErrorCode {
    ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError)
}

/// How a txn is applied.
#[derive(Clone, Copy, Debug)]
pub(super) struct ApplyAs {
    /// A create (op 1) of a node that exists still moves the parent's
    /// cversion and pzxid on (replay over a fuzzy snapshot, as Apache);
    /// false where that create would have been refused (`execute`).
    pub existing_create_moves_parent: bool,
    /// A large value (`node::KEPT_VALUE_MIN_BYTES`) is kept as the txn's
    /// own bytes instead of copied: only where those bytes are a request's
    /// frame (the leader's `execute`), never where they slice a log file
    /// read whole (replay) or a learner's packet buffer.
    pub keeps_large_values: bool,
}

impl ApplyAs {
    /// Replay, a learner's commit, a loaded DIFF: values copied.
    pub const REPLAYED: ApplyAs = ApplyAs { existing_create_moves_parent: true, keeps_large_values: false };
}

impl DataTree {
    /// Applies one txn at `header.zxid`. The result is what the client that
    /// sent the request is told (Err for an error txn); the triggers are the
    /// watch events it fires, in ZooKeeper's order. `last_zxid` advances
    /// whatever the outcome: every txn consumes its zxid.
    pub fn apply_txn(&mut self, header: &TxnHeader, txn: &Txn) -> (Result<WriteResult, ErrorCode>, Vec<WatchTrigger>) {
        self.apply_txn_as(header, txn, ApplyAs::REPLAYED)
    }

    /// `apply_txn`, as `how` says (`ApplyAs`).
    pub(super) fn apply_txn_as(
        &mut self,
        header: &TxnHeader,
        txn: &Txn,
        how: ApplyAs,
    ) -> (Result<WriteResult, ErrorCode>, Vec<WatchTrigger>) {
        let mut triggers = Vec::new();
        let result = self.apply_one(header, header.op, txn, &mut triggers, how);
        if result.is_err() {
            triggers.clear();
        }
        self.last_zxid = self.last_zxid.max(header.zxid);
        (result, triggers)
    }

    fn apply_one(
        &mut self,
        header: &TxnHeader,
        txn_op: i32,
        txn: &Txn,
        triggers: &mut Triggers,
        how: ApplyAs,
    ) -> Result<WriteResult, ErrorCode> {
        let keep = how.keeps_large_values;
        match txn {
            Txn::Create { path, data, acl, ephemeral, parent_cversion } => {
                let owner = if *ephemeral { header.session_id } else { 0 };
                let result = self.create_node(header, path, data, keep, acl, owner, *parent_cversion, triggers);
                if txn_op == op::CREATE && result == Err(ErrorCode::NodeExists) && how.existing_create_moves_parent {
                    // As Apache: replaying a create over a fuzzy snapshot
                    // that already holds the node still moves the parent's
                    // cversion and pzxid on.
                    if let Some(parent) = path::parent_of(path) {
                        self.raise_parent_cversion(parent, *parent_cversion, header.zxid);
                    }
                }
                result
            }
            Txn::CreateContainer { path, data, acl, parent_cversion } => {
                self.create_node(header, path, data, keep, acl, CONTAINER_EPHEMERAL_OWNER, *parent_cversion, triggers)
            }
            Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms } => {
                self.create_node(header, path, data, keep, acl, TTL_MASK | ttl_ms, *parent_cversion, triggers)
            }
            Txn::Delete { path } => {
                self.delete_node(header.zxid, path, triggers)?;
                Ok(WriteResult::Deleted)
            }
            Txn::SetData { path, data, version } => self.apply_set_data(header, path, data, keep, *version, triggers),
            Txn::SetAcl { path, acl, version } => {
                let acl = self.acl_cache.intern(acl);
                let node = self
                    .update_node(path, |n| {
                        n.acl = Some(acl);
                        n.stat.aversion = *version;
                    })
                    .ok_or(ErrorCode::NoNode)?;
                Ok(WriteResult::Stat(node.stat()))
            }
            Txn::Check { .. } => Ok(WriteResult::Checked),
            Txn::Multi(subs) => Ok(self.apply_multi(header, subs, triggers, how)),
            Txn::CreateSession { .. } => Ok(WriteResult::SessionCreated),
            Txn::CloseSession { paths_to_delete } => {
                let paths = match paths_to_delete {
                    Some(paths) => paths.clone(),
                    None => self.ephemerals_of(header.session_id),
                };
                let mut deleted_paths = Vec::with_capacity(paths.len());
                for path in paths {
                    // Ephemerals have no children, so any order is safe.
                    if self.delete_node(header.zxid, &path, triggers).is_ok() {
                        deleted_paths.push(path);
                    }
                }
                Ok(WriteResult::SessionClosed { deleted_paths })
            }
            Txn::Error { err } => Err(error_code(*err)),
        }
    }

    /// A multi applies all of its sub-txns or, if any is an error, none:
    /// the results are then Ok (0) up to the failing op, its error, and
    /// RuntimeInconsistency after it, as Apache reports them.
    fn apply_multi(
        &mut self,
        header: &TxnHeader,
        subs: &[(i32, Txn)],
        triggers: &mut Triggers,
        how: ApplyAs,
    ) -> WriteResult {
        if let Some(failed_at) = subs.iter().position(|(t, _)| *t == op::ERROR) {
            let results = subs
                .iter()
                .enumerate()
                .map(|(i, (_, sub))| match (i.cmp(&failed_at), sub) {
                    (std::cmp::Ordering::Less, _) => MultiOpResult::Error(ErrorCode::Ok),
                    (std::cmp::Ordering::Equal, Txn::Error { err }) => MultiOpResult::Error(error_code(*err)),
                    _ => MultiOpResult::Error(ErrorCode::RuntimeInconsistency),
                })
                .collect();
            return WriteResult::Multi(results);
        }
        // Rollback (a sub-txn that cannot apply) restores this O(1) clone.
        let before = self.clone();
        let mut pending = Vec::new();
        let mut results = Vec::with_capacity(subs.len());
        for (index, (sub_op, sub)) in subs.iter().enumerate() {
            match self.apply_one(
                header,
                *sub_op,
                sub,
                &mut pending,
                ApplyAs { existing_create_moves_parent: true, ..how },
            ) {
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
                    failed.resize(subs.len(), MultiOpResult::Error(ErrorCode::RuntimeInconsistency));
                    return WriteResult::Multi(failed);
                }
            }
        }
        triggers.append(&mut pending);
        WriteResult::Multi(results)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        header: &TxnHeader,
        path: &str,
        data: &Option<Bytes>,
        keep_large_value: bool,
        acl: &[Acl],
        ephemeral_owner: i64,
        parent_cversion: i32,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let parent_path = path::parent_of(path).ok_or(ErrorCode::BadArguments)?;
        let stat = StoredStat {
            czxid: header.zxid,
            mzxid: header.zxid,
            ctime: header.time_ms,
            mtime: header.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: header.zxid,
        };
        let acl = self.acl_cache.intern(acl);
        let new_data = NewData::of(data, keep_large_value);
        // Two descents of the node set: the insert, then the parent's
        // update. An existing node implies its parent, so NodeExists is
        // decided as if the parent had been looked up first.
        let node = self
            .insert_node_entry(path, new_data, &acl, NodeStat { stat, num_children: 0 })
            .ok_or(ErrorCode::NodeExists)?;
        let zxid = header.zxid;
        let updated_parent = self.update_node(parent_path, |p| {
            p.num_children += 1;
            // -1 (a pre-3.3 txn) means "one more than now".
            let parent_cversion = if parent_cversion == -1 { p.stat.cversion.wrapping_add(1) } else { parent_cversion };
            // Only ever raised: replay over a newer snapshot must not
            // move it back (Apache's createNode rule).
            if parent_cversion > p.stat.cversion {
                p.stat.cversion = parent_cversion;
                p.stat.pzxid = zxid;
            }
        });
        let Some(parent) = updated_parent else {
            // A txn a consistent stream never holds: undo the insert.
            self.remove_node_entry(path);
            return Err(ErrorCode::NoNode);
        };
        let wire_stat = node.stat();
        self.quota_created(path, node.data_len());
        triggers.push(WatchTrigger { event: EventType::NodeCreated, path: Arc::from(path), acl: node.acl().clone() });
        triggers.push(WatchTrigger {
            event: EventType::NodeChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent.acl().clone(),
        });
        Ok(WriteResult::Created { path: path.to_owned(), stat: wire_stat })
    }

    fn raise_parent_cversion(&mut self, parent_path: &str, parent_cversion: i32, zxid: i64) {
        self.update_node(parent_path, |p| {
            if parent_cversion > p.stat.cversion {
                p.stat.cversion = parent_cversion;
                p.stat.pzxid = zxid;
            }
        });
    }

    /// Removes a childless node: parent numChildren -1 and pzxid raised
    /// (never lowered); NodeDeleted then the parent's NodeChildrenChanged.
    pub(super) fn delete_node(&mut self, zxid: i64, path: &str, triggers: &mut Triggers) -> Result<(), ErrorCode> {
        let parent_path = path::parent_of(path).ok_or(ErrorCode::BadArguments)?;
        // Two descents of the node set: the removal, then the parent's update.
        let node = self.remove_node_entry(path).ok_or(ErrorCode::NoNode)?;
        if node.num_children() > 0 {
            // The flat set would orphan the children; a valid txn never
            // asks, so putting the node back is the rare path.
            self.add_node_entry(node);
            return Err(ErrorCode::NotEmpty);
        }
        self.quota_deleted(path, node.data_len());
        let parent = self
            .update_node(parent_path, |p| {
                p.num_children -= 1;
                p.stat.pzxid = p.stat.pzxid.max(zxid);
            })
            .ok_or(ErrorCode::SystemError)?;
        triggers.push(WatchTrigger { event: EventType::NodeDeleted, path: Arc::from(path), acl: node.acl().clone() });
        triggers.push(WatchTrigger {
            event: EventType::NodeChildrenChanged,
            path: Arc::from(parent_path),
            acl: parent.acl().clone(),
        });
        Ok(())
    }

    fn apply_set_data(
        &mut self,
        header: &TxnHeader,
        path: &str,
        data: &Option<Bytes>,
        keep_large_value: bool,
        version: i32,
        triggers: &mut Triggers,
    ) -> Result<WriteResult, ErrorCode> {
        let (old_len, node) = self
            .update_node_data(path, data, keep_large_value, |n| {
                n.stat.version = version;
                n.stat.mtime = header.time_ms;
                n.stat.mzxid = header.zxid;
            })
            .ok_or(ErrorCode::NoNode)?;
        self.quota_data_changed(path, old_len, node.data_len());
        triggers.push(WatchTrigger {
            event: EventType::NodeDataChanged,
            path: Arc::from(path),
            acl: node.acl().clone(),
        });
        Ok(WriteResult::Stat(node.stat()))
    }
}
