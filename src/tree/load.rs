//! Bulk loading of a tree from a snapshot: nodes arrive in `DataTree::iter`
//! order ((parent, name) order, so parents first and each node's children
//! contiguous), which lets the loader check order and parents cheaply and
//! add each parent's numChildren once per run of children instead of once
//! per child; and, being sorted, build the node set bottom-up at the end
//! instead of inserting each node.

use bytes::Bytes;
use imbl::OrdSet;

use super::node::{InternedAcl, NewData, Node, NodeStat};
use super::path::{self, TreePath};
use super::{DataTree, NodeKind, StoredStat, SPECIAL_PATHS};
use crate::proto::Acl;
use crate::storage::apache::digest;

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

/// Builds a `DataTree` from nodes in snapshot order. The nodes are
/// collected in a `Vec` (already in set order, as `check_order` makes sure)
/// and the node set is built from it bottom-up in `finish`, with no insert
/// and no key comparison (`OrdSet::from_sorted_unique`, the vendored imbl's
/// addition); a parent's numChildren is set once its run of children ends.
pub struct TreeLoader {
    /// Everything but the node set, which `finish` builds.
    tree: DataTree,
    /// Every node so far, in (parent, name) order.
    nodes: Vec<Node>,
    /// The parent of the current run of siblings (its index in `nodes`)
    /// and how many were loaded.
    run_parent: usize,
    run_count: i32,
}

impl Default for TreeLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeLoader {
    pub fn new() -> TreeLoader {
        TreeLoader { tree: DataTree::empty(), nodes: Vec::new(), run_parent: 0, run_count: 0 }
    }

    /// Room for `count` more nodes (a snapshot's node count), so that the
    /// `Vec` is not regrown and copied on the way to 1M.
    pub fn reserve(&mut self, count: usize) {
        self.nodes.reserve(count);
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
        let node_digest = digest::digest_of(path, data, &stat) as u32;
        let new_data = match data {
            Some(d) => NewData::Copy(d),
            None => NewData::Null,
        };
        let node = Node::build(path, new_data, &acl, &NodeStat { stat, num_children: 0 }, node_digest);
        self.tree.data_size += (path.len() + node.data_len()) as u64;
        self.tree.digest = self.tree.digest.wrapping_add(node.digest());
        self.nodes.push(node);
        Ok(())
    }

    /// Checks that `path` comes next (the root first, then strictly
    /// ascending, its parent loaded) and counts it in its parent's run.
    fn check_order(&mut self, path: &str) -> Result<(), LoadError> {
        let Some(last) = self.nodes.last() else {
            if path != "/" {
                return Err(LoadError::RootNotFirst(path.to_owned()));
            }
            return Ok(());
        };
        if TreePath::new(path) <= TreePath::new(last.path()) {
            return Err(LoadError::OutOfOrder(path.to_owned()));
        }
        let Some((parent, name)) = path::split_last(path) else {
            return Err(LoadError::MissingParent(path.to_owned()));
        };
        if name.is_empty() {
            return Err(LoadError::MissingParent(path.to_owned()));
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        if self.run_count > 0 && self.nodes.get(self.run_parent).is_some_and(|p| p.path() == parent) {
            self.run_count += 1;
            return Ok(());
        }
        self.flush_run();
        // Once per run of siblings, not per node: the nodes so far are in
        // set order, so the parent is found by binary search.
        let key = TreePath::new(parent);
        let Ok(at) = self.nodes.binary_search_by(|n| TreePath::new(n.path()).cmp(key)) else {
            return Err(LoadError::MissingParent(path.to_owned()));
        };
        self.run_parent = at;
        self.run_count = 1;
        Ok(())
    }

    /// Rebuilds the run's parent with its numChildren (which is no part of
    /// the digest, so the node's digest stays).
    fn flush_run(&mut self) {
        if self.run_count > 0 {
            if let Some(parent) = self.nodes.get_mut(self.run_parent) {
                let mut stat = parent.node_stat();
                stat.num_children += self.run_count;
                *parent = parent.restat(None, &stat, parent.digest() as u32);
            }
            self.run_count = 0;
        }
    }

    /// The loaded tree, with its last zxid set: the node set built in one
    /// pass, then the ephemeral, container and TTL indexes from it. The one
    /// place a loaded tree is finished; what else a tree derives from its
    /// nodes after a load belongs here too.
    pub fn finish(mut self, last_zxid: i64) -> Result<DataTree, LoadError> {
        self.flush_run();
        let nodes = std::mem::take(&mut self.nodes);
        for node in &nodes {
            if node.kind() != NodeKind::Persistent {
                self.tree.index(node);
            }
        }
        self.tree.nodes = OrdSet::from_sorted_unique(nodes);
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
    use proptest::prelude::*;

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

    /// One step of a random tree: (parent choice, name, data, owner kind, owner).
    type Step = (usize, String, Option<Vec<u8>>, u8, i64);

    /// A random tree as (parent choice, name, data, owner kind) steps.
    fn any_steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            (
                any::<usize>(),
                "[a-c]{1,2}",
                prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                0u8..8,
                any::<i64>(),
            ),
            0..2500,
        )
    }

    fn owner_of(kind: u8, random: i64) -> i64 {
        match kind {
            0 => (random & 0xff) + 1,                        // ephemeral of one of 256 sessions
            1 => crate::proto::CONTAINER_EPHEMERAL_OWNER,    // container
            2 => crate::proto::TTL_MASK | (random & 0xffff), // TTL node
            _ => 0,
        }
    }

    /// The same tree built one insert at a time (`restore_node`, parents
    /// first), as the tree was loaded before the bulk build.
    fn insert_built(steps: &[Step]) -> DataTree {
        let mut tree = DataTree::new();
        let mut parents: Vec<String> = vec!["/".into(), "/zookeeper".into()];
        for (i, (choice, name, data, kind, random)) in steps.iter().enumerate() {
            let parent = &parents[choice % parents.len()];
            let path = if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") };
            if tree.get(&path).is_some() {
                continue;
            }
            let owner = owner_of(*kind, *random);
            let z = i as i64 + 1;
            let stat = StoredStat {
                czxid: z,
                mzxid: z + (random & 3),
                pzxid: z + (random & 5),
                ctime: 1_000 + z,
                mtime: 1_000 + z + (random & 7),
                version: (random >> 8 & 3) as i32,
                cversion: (random >> 10 & 3) as i32,
                aversion: (random >> 12 & 1) as i32,
                ephemeral_owner: owner,
            };
            let acl = if random & 1 == 0 { open_acl_unsafe() } else { crate::proto::read_acl_unsafe() };
            assert!(tree.restore_node(&path, data.clone().map(Bytes::from), &acl, stat));
            // Ephemerals cannot have children; containers and TTL nodes can.
            if !matches!(NodeKind::from_owner(owner), NodeKind::Ephemeral(_)) {
                parents.push(path);
            }
        }
        tree.set_last_zxid(steps.len() as i64);
        tree
    }

    /// The bulk-built tree: every node of `tree`, in its order, through the loader.
    fn bulk_built(tree: &DataTree) -> DataTree {
        let mut loader = TreeLoader::new();
        for (path, node) in tree.iter() {
            let acl = loader.intern_acl(node.acl());
            loader.push_slice(path, node.data(), acl, node.stored_stat()).unwrap();
        }
        loader.finish(tree.last_zxid()).unwrap()
    }

    type Seen = (String, crate::proto::Stat, NodeKind, Option<Vec<u8>>, Vec<Acl>, i64);

    fn contents(tree: &DataTree) -> Vec<Seen> {
        tree.iter()
            .map(|(p, n)| {
                (p.to_owned(), n.stat(), n.kind(), n.data().map(<[u8]>::to_vec), n.acl().to_vec(), n.digest())
            })
            .collect()
    }

    fn assert_same(bulk: &DataTree, inserted: &DataTree) {
        assert_eq!(contents(bulk), contents(inserted));
        assert_eq!(bulk.node_count(), inserted.node_count());
        assert_eq!(bulk.digest(), inserted.digest());
        assert_eq!(bulk.digest(), crate::storage::apache::digest::tree_digest(bulk));
        assert_eq!(bulk.approximate_data_size(), inserted.approximate_data_size());
        assert_eq!(bulk.ephemerals_by_session(), inserted.ephemerals_by_session());
        assert_eq!(bulk.reapable(i64::MAX, 1, usize::MAX), inserted.reapable(i64::MAX, 1, usize::MAX));
        for (path, node) in inserted.iter() {
            assert_eq!(bulk.get(path).map(Node::path), Some(node.path()), "lookup of {path}");
            assert_eq!(bulk.children(path), inserted.children(path), "children of {path}");
            assert_eq!(bulk.all_children_number(path), inserted.all_children_number(path));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The bulk-built tree equals the insert-built one (iteration, stat,
        /// data, ACL, digest, children, indexes), stays equal under the same
        /// later inserts and removals (which split and merge the bulk-built
        /// B-tree's nodes), and snapshot -> load -> snapshot gives the same bytes.
        #[test]
        fn bulk_load_equals_inserts(steps in any_steps(), removals in prop::collection::vec(any::<usize>(), 0..300)) {
            let mut inserted = insert_built(&steps);
            let mut bulk = bulk_built(&inserted);
            assert_same(&bulk, &inserted);

            let mut bytes = Vec::new();
            crate::storage::snapshot_format::write_snapshot(&mut bytes, inserted.last_zxid(), &[], &inserted).unwrap();
            let loaded = crate::storage::snapshot_format::read_snapshot(&bytes).unwrap().tree;
            assert_same(&loaded, &inserted);
            let mut again = Vec::new();
            crate::storage::snapshot_format::write_snapshot(&mut again, loaded.last_zxid(), &[], &loaded).unwrap();
            prop_assert_eq!(&again, &bytes);

            // Remove leaves (and re-add some under a new name) in both.
            let leaves: Vec<String> = inserted
                .iter()
                .filter(|(p, n)| n.num_children() == 0 && !SPECIAL_PATHS.contains(p))
                .map(|(p, _)| p.to_owned())
                .collect();
            for (i, r) in removals.iter().enumerate() {
                if leaves.is_empty() {
                    break;
                }
                let path = &leaves[r % leaves.len()];
                prop_assert_eq!(bulk.remove_node_entry(path).is_some(), inserted.remove_node_entry(path).is_some());
                let added = format!("/new{i}");
                let stat = StoredStat { czxid: 1, ..StoredStat::default() };
                prop_assert!(bulk.restore_node(&added, None, &open_acl_unsafe(), stat));
                prop_assert!(inserted.restore_node(&added, None, &open_acl_unsafe(), stat));
            }
            assert_same(&bulk, &inserted);
        }
    }
}
