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
        TreeLoader { tree: DataTree::empty(), last_key: None, run_parent: None }
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
        self.push_node(path, Node::new(data, acl, stat))
    }

    /// `push` for data borrowed from a snapshot buffer: copied once, into
    /// an allocation of the node's own (`push` with a `Bytes` slice of the
    /// buffer would copy it, and the decoder's copy, again).
    pub fn push_slice(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: Arc<[Acl]>,
        stat: StoredStat,
    ) -> Result<(), LoadError> {
        let mut node = Node::new(None, acl, stat);
        node.data = data.map(|d| if d.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(d) });
        self.push_node(path, node)
    }

    fn push_node(&mut self, path: &str, node: Node) -> Result<(), LoadError> {
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
