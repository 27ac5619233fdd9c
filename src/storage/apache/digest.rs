//! Apache's tree digest (DigestCalculator, digest version 2), which every
//! 3.6+ txn carries (`TxnDigest`) and every 3.6+ snapshot ends with
//! (`ZxidDigest`), so replicas can detect divergence.
//!
//! A node's digest is the CRC32 of, in order: its path as UTF-8 (the root
//! as "", since Apache keys it under both "" and "/"), its data (nothing for
//! null), then 60 big-endian bytes: czxid, mzxid, pzxid, ctime, mtime (i64),
//! version, cversion, aversion (i32), ephemeralOwner (i64). cversion is the
//! stored create counter and ephemeralOwner the raw value, as in
//! StatPersisted. Nodes whose path starts with "/zookeeper/" count as 0
//! (quota nodes are updated locally); "/zookeeper" itself and the root
//! count. The tree digest is the wrapping i64 sum of all node digests.

use crate::tree::{DataTree, Node, StoredStat};

/// DigestCalculator.DIGEST_VERSION.
pub const DIGEST_VERSION: i32 = 2;
/// Paths under this prefix are left out of the digest.
pub const DIGEST_EXCLUDED_PREFIX: &str = "/zookeeper/";
const STAT_DIGEST_BYTES: usize = 6 * 8 + 3 * 4;

/// The digest of one node's path, data and stat (a CRC32, so 0..2^32).
pub fn digest_of(path: &str, data: Option<&[u8]>, stat: &StoredStat) -> i64 {
    if path.starts_with(DIGEST_EXCLUDED_PREFIX) {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut fields = [0u8; STAT_DIGEST_BYTES];
    let mut slot = &mut fields[..];
    for long in [stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime] {
        slot = put(slot, &long.to_be_bytes());
    }
    for int in [stat.version, stat.cversion, stat.aversion] {
        slot = put(slot, &int.to_be_bytes());
    }
    put(slot, &stat.ephemeral_owner.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    if let Some(data) = data {
        crc.update(data);
    }
    crc.update(&fields);
    crc.finalize() as i64
}

/// Copies `bytes` to the front of `slot` and returns the rest of it.
fn put<'a>(slot: &'a mut [u8], bytes: &[u8]) -> &'a mut [u8] {
    let (head, rest) = slot.split_at_mut(bytes.len().min(slot.len()));
    head.copy_from_slice(&bytes[..head.len()]);
    rest
}

/// The digest of the node at `path`.
pub fn node_digest(path: &str, node: &Node) -> i64 {
    digest_of(path, node.data().map(|d| &d[..]), &node.stored_stat())
}

/// The whole tree's digest: the wrapping sum of every node's digest.
pub fn tree_digest(tree: &DataTree) -> i64 {
    tree.iter().fold(0i64, |sum, (path, node)| sum.wrapping_add(node_digest(path, node)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stat() -> StoredStat {
        StoredStat {
            czxid: 2,
            mzxid: 3,
            ctime: 1_000,
            mtime: 2_000,
            version: 1,
            cversion: 4,
            aversion: 5,
            ephemeral_owner: 0x77,
            pzxid: 6,
        }
    }

    /// The bytes DigestCalculator feeds to CRC32, spelled out by hand.
    #[test]
    fn field_order_and_encoding() {
        let mut expected = Vec::new();
        expected.extend_from_slice(b"/a");
        expected.extend_from_slice(b"hi");
        for long in [2i64, 3, 6, 1_000, 2_000] {
            expected.extend_from_slice(&long.to_be_bytes());
        }
        for int in [1i32, 4, 5] {
            expected.extend_from_slice(&int.to_be_bytes());
        }
        expected.extend_from_slice(&0x77i64.to_be_bytes());
        assert_eq!(expected.len(), 2 + 2 + 60);
        assert_eq!(digest_of("/a", Some(b"hi"), &stat()), crc32fast::hash(&expected) as i64);
        // Null and empty data hash alike; the root hashes as "".
        assert_eq!(digest_of("/a", None, &stat()), digest_of("/a", Some(b""), &stat()));
        assert_eq!(digest_of("/", None, &stat()), crc32fast::hash(&expected[4..]) as i64);
        assert_eq!(digest_of("/zookeeper/quota", None, &stat()), 0);
        assert_ne!(digest_of("/zookeeper", None, &stat()), 0);
    }

    #[test]
    fn tree_digest_is_the_wrapping_sum() {
        let mut tree = DataTree::new();
        let fresh = tree_digest(&tree);
        // A fresh tree: root and /zookeeper count, quota and config do not.
        let zero = StoredStat::default();
        let expected = digest_of("/", Some(b""), &zero) + digest_of("/zookeeper", Some(b""), &zero);
        assert_eq!(fresh, expected);
        let open = crate::proto::open_acl_unsafe();
        tree.restore_node("/x", Some(Bytes::from_static(b"v")), &open, stat());
        let node = tree.get("/x").unwrap();
        assert_eq!(tree_digest(&tree), fresh.wrapping_add(node_digest("/x", node)));
    }
}
