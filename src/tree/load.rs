//! Bulk loading of a tree from a snapshot: nodes arrive in `DataTree::iter`
//! order ((parent, name) order, so parents first and each node's children
//! contiguous), which lets the loader check order and parents cheaply and
//! add each parent's numChildren once per run of children instead of once
//! per child.

use bytes::Bytes;

use super::node::{InternedAcl, NewData, NodeStat};
use super::path::{self, TreePath};
use super::{DataTree, StoredStat, SPECIAL_PATHS};
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
    /// The previous node's path (reused buffer; empty before the root).
    last_path: String,
    /// The parent of the current run of siblings and how many were loaded.
    run_parent: String,
    run_count: i32,
}

impl Default for TreeLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeLoader {
    pub fn new() -> TreeLoader {
        TreeLoader { tree: DataTree::empty(), last_path: String::new(), run_parent: String::new(), run_count: 0 }
    }

    /// The tree's shared copy of an ACL list; intern each distinct list once
    /// and pass clones of the result to `push`.
    pub fn intern_acl(&mut self, acl: &[Acl]) -> InternedAcl {
        self.tree.acl_cache.intern(acl)
    }

    /// Adds the next node. `acl` should come from `intern_acl`.
    pub fn push(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl: InternedAcl,
        stat: StoredStat,
    ) -> Result<(), LoadError> {
        self.push_slice(path, data.as_deref(), acl, stat)
    }

    /// `push` for data borrowed from a snapshot buffer: copied once, into
    /// the node's own allocation.
    pub fn push_slice(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: InternedAcl,
        stat: StoredStat,
    ) -> Result<(), LoadError> {
        self.check_order(path)?;
        let data = match data {
            Some(d) => NewData::Copy(d),
            None => NewData::Null,
        };
        if self.tree.insert_node_entry(path, data, &acl, NodeStat { stat, num_children: 0 }).is_none() {
            return Err(LoadError::OutOfOrder(path.to_owned()));
        }
        self.last_path.clear();
        self.last_path.push_str(path);
        Ok(())
    }

    /// Checks that `path` comes next (the root first, then strictly
    /// ascending, its parent loaded) and counts it in its parent's run.
    fn check_order(&mut self, path: &str) -> Result<(), LoadError> {
        if self.last_path.is_empty() {
            if path != "/" {
                return Err(LoadError::RootNotFirst(path.to_owned()));
            }
            return Ok(());
        }
        if TreePath::new(path) <= TreePath::new(&self.last_path) {
            return Err(LoadError::OutOfOrder(path.to_owned()));
        }
        let Some((parent, name)) = path::split_last(path) else {
            return Err(LoadError::MissingParent(path.to_owned()));
        };
        if name.is_empty() {
            return Err(LoadError::MissingParent(path.to_owned()));
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        if self.run_count > 0 && self.run_parent == parent {
            self.run_count += 1;
            return Ok(());
        }
        self.flush_run();
        if self.tree.get(parent).is_none() {
            return Err(LoadError::MissingParent(path.to_owned()));
        }
        self.run_parent.clear();
        self.run_parent.push_str(parent);
        self.run_count = 1;
        Ok(())
    }

    fn flush_run(&mut self) {
        if self.run_count > 0 {
            let count = self.run_count;
            self.tree.update_node(&self.run_parent, |p| p.num_children += count);
            self.run_count = 0;
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
        self.tree.rebuild_quotas();
        Ok(self.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::open_acl_unsafe;

    fn push(loader: &mut TreeLoader, path: &str, owner: i64) -> Result<(), LoadError> {
        let acl = loader.intern_acl(&open_acl_unsafe());
        loader.push(path, None, acl, StoredStat { ephemeral_owner: owner, ..StoredStat::default() })
    }

    /// A full load in (parent, name) order: top-level names, then each
    /// parent's children.
    const ORDER: [&str; 9] =
        ["/", "/a", "/b", "/zookeeper", "/a/x", "/a/y", "/b/z", "/zookeeper/config", "/zookeeper/quota"];

    #[test]
    fn loads_in_order_and_counts_children() {
        let mut loader = TreeLoader::new();
        for path in ORDER {
            push(&mut loader, path, if path == "/a/y" { 9 } else { 0 }).unwrap();
        }
        let tree = loader.finish(42).unwrap();
        assert_eq!(tree.last_zxid(), 42);
        assert_eq!(tree.get("/").unwrap().num_children(), 3);
        assert_eq!(tree.get("/a").unwrap().num_children(), 2);
        assert_eq!(tree.get("/b").unwrap().num_children(), 1);
        assert_eq!(tree.get("/zookeeper").unwrap().num_children(), 2);
        assert_eq!(tree.ephemerals_of(9), vec!["/a/y"]);
        let expected: Vec<&str> = ORDER.to_vec();
        assert_eq!(tree.iter().map(|(p, _)| p).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn refuses_bad_input() {
        let mut loader = TreeLoader::new();
        assert_eq!(push(&mut loader, "/a", 0), Err(LoadError::RootNotFirst("/a".into())));
        let mut loader = TreeLoader::new();
        push(&mut loader, "/", 0).unwrap();
        push(&mut loader, "/b", 0).unwrap();
        assert_eq!(push(&mut loader, "/a", 0), Err(LoadError::OutOfOrder("/a".into())));
        assert_eq!(push(&mut loader, "/b", 0), Err(LoadError::OutOfOrder("/b".into())));
        assert_eq!(push(&mut loader, "/c/d", 0), Err(LoadError::MissingParent("/c/d".into())));
        assert_eq!(loader.finish(0).err(), Some(LoadError::MissingSpecial("/zookeeper")));
    }
}
