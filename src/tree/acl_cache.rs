//! ACL interning: nodes with equal ACL lists share one `NodeShared` (the
//! list and no large value), the way ZooKeeper's ACL cache shares one list
//! per distinct ACL.
//!
//! The cache holds `Weak` references, so it never keeps an ACL alive: once
//! no node in any published tree version uses a list, its entry is dead and
//! is swept out lazily. Being an `imbl` map it clones in O(1) with the tree.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use super::node::NodeShared;
use crate::proto::Acl;

#[derive(Clone, Default)]
pub(crate) struct AclCache {
    /// hash of the ACL list -> the live lists with that hash.
    by_hash: imbl::HashMap<u64, Vec<Weak<NodeShared>>>,
    /// Entry count at which to sweep every bucket for dead lists.
    sweep_at: usize,
}

impl AclCache {
    /// The shared list equal to `acl`, creating it if none is live.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> Arc<NodeShared> {
        let hash = hash_of(acl);
        if let Some(bucket) = self.by_hash.get(&hash) {
            if let Some(found) = bucket.iter().filter_map(Weak::upgrade).find(|a| *a.acl == *acl) {
                return found;
            }
        }
        let shared = Arc::new(NodeShared { acl: Arc::from(acl), large_data: None });
        let bucket = self.by_hash.entry(hash).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        bucket.push(Arc::downgrade(&shared));
        if self.by_hash.len() >= self.sweep_at {
            self.sweep();
        }
        shared
    }

    /// Drops buckets whose lists are all gone; amortized by doubling the
    /// threshold after each sweep.
    fn sweep(&mut self) {
        self.by_hash = std::mem::take(&mut self.by_hash)
            .into_iter()
            .filter_map(|(hash, mut bucket)| {
                bucket.retain(|w| w.strong_count() > 0);
                (!bucket.is_empty()).then_some((hash, bucket))
            })
            .collect();
        self.sweep_at = (self.by_hash.len() * 2).max(64);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }
}

fn hash_of(acl: &[Acl]) -> u64 {
    let mut hasher = DefaultHasher::new();
    acl.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{open_acl_unsafe, read_acl_unsafe};

    #[test]
    fn equal_lists_share_storage_and_dead_ones_go() {
        let mut cache = AclCache::default();
        let a = cache.intern(&open_acl_unsafe());
        let b = cache.intern(&open_acl_unsafe());
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.intern(&read_acl_unsafe());
        assert!(!Arc::ptr_eq(&a, &c));
        drop(c);
        cache.sweep();
        assert_eq!(cache.len(), 1);
        // A dropped list is recreated on demand.
        let d = cache.intern(&read_acl_unsafe());
        assert_eq!(&*d.acl, &read_acl_unsafe()[..]);
    }
}
