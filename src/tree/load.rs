//! Bulk loading of a tree from a snapshot: nodes arrive in `DataTree::iter`
//! order ((parent, name) order, so parents first and each node's children
//! contiguous), which lets the loader check order and parents cheaply and
//! add each parent's numChildren once per run of children instead of once
//! per child.

use std::sync::Arc;

use bytes::Bytes;

use super::path::{self, PathKey, TreePath};
use super::{DataTree, Node, StoredStat, SPECIAL_PATHS};
use crate::proto::Acl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The first node must be "/".
    RootNotFirst(String),
    /// Not strictly after the previous node in (parent, name) order.
    OutOfOrder(String),
    /// Not an absolute path, or its parent was not loaded.
    MissingParent(String),
    /// A node ZooKeeper always has is absent.
    MissingSpecial(&'static str),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::RootNotFirst(p) => write!(f, "first node is {p:?}, not \"/\""),
            LoadError::OutOfOrder(p) => write!(f, "node {p:?} out of order"),
            LoadError::MissingParent(p) => write!(f, "parent of {p:?} not loaded"),
            LoadError::MissingSpecial(p) => write!(f, "special node {p:?} missing"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Builds a `DataTree` from nodes in snapshot order.
pub struct TreeLoader {
    tree: DataTree,
    last_key: Option<PathKey>,
    /// The parent of the current run of siblings and how many were loaded.
    run_parent: Option<(PathKey, i32)>,
}

impl Default for TreeLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeLoader {
    pub fn new() -> TreeLoader {
        let tree = DataTree {
            nodes: Default::default(),
            ephemerals: Default::default(),
            containers: Default::default(),
            ttls: Default::default(),
            acl_cache: Default::default(),
            data_size: 0,
            last_zxid: 0,
        };
        TreeLoader { tree, last_key: None, run_parent: None }
    }

    /// The tree's shared copy of an ACL list; intern each distinct list once
    /// and pass clones of the result to `push`.
    pub fn intern_acl(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        self.tree.acl_cache.intern(acl)
    }

    /// Adds the next node. `acl` should come from `intern_acl`.
    pub fn push(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl: Arc<[Acl]>,
        stat: StoredStat,
    ) -> Result<(), LoadError> {
        let node = Node::new(data, acl, stat);
        let Some(last) = &self.last_key else {
            if path != "/" {
                return Err(LoadError::RootNotFirst(path.to_owned()));
            }
            let key = PathKey(Arc::from(path));
            self.last_key = Some(key.clone());
            self.tree.insert_node_entry(key, node);
            return Ok(());
        };
        if TreePath::new(path) <= TreePath::new(last.as_str()) {
            return Err(LoadError::OutOfOrder(path.to_owned()));
        }
        let Some((parent, name)) = path::split_last(path) else {
            return Err(LoadError::MissingParent(path.to_owned()));
        };
        if name.is_empty() {
            return Err(LoadError::MissingParent(path.to_owned()));
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        match &mut self.run_parent {
            Some((run, count)) if run.as_str() == parent => *count += 1,
            _ => {
                self.flush_run();
                let Some((parent_key, _)) = self.tree.nodes.get_key_value(TreePath::new(parent)) else {
                    return Err(LoadError::MissingParent(path.to_owned()));
                };
                self.run_parent = Some((parent_key.clone(), 1));
            }
        }
        let key = PathKey(Arc::from(path));
        self.last_key = Some(key.clone());
        self.tree.insert_node_entry(key, node);
        Ok(())
    }

    fn flush_run(&mut self) {
        if let Some((parent, count)) = self.run_parent.take() {
            self.tree.update_node(parent.as_str(), |p| p.num_children += count);
        }
    }

    /// The loaded tree, with its last zxid set.
    pub fn finish(mut self, last_zxid: i64) -> Result<DataTree, LoadError> {
        self.flush_run();
        for special in SPECIAL_PATHS {
            if self.tree.get(special).is_none() {
                return Err(LoadError::MissingSpecial(special));
            }
        }
        self.tree.last_zxid = last_zxid;
        Ok(self.tree)
    }
}
