//! Quotas, as Apache keeps them (DataTree's quota parts, `Quotas`,
//! `StatsTrack`, `ZooKeeperServer.checkQuota`). Sans-IO.
//!
//! A quota on path P is two nodes that zkCli's `setquota` writes:
//! `/zookeeper/quota/P/zookeeper_limits` (the limits, in `StatsTrack` text:
//! `count=..,bytes=..` and since 3.7 `countHardLimit`, `byteHardLimit`) and
//! `/zookeeper/quota/P/zookeeper_stats` (the usage: nodes and data bytes in
//! P's subtree, P included). The tree keeps:
//! * the set of quota roots (Apache's `PathTrie`): a root is added when its
//!   limits node is created, removed when it is deleted, and rebuilt from
//!   the `/zookeeper/quota` subtree after a snapshot load (`rebuild_quotas`);
//! * the usage: each create, delete and setData under a root rewrites the
//!   deepest root's stats node data in apply (no stat change and no watch,
//!   as Apache), so every server and every replayed log agree; creating a
//!   stats node, and a snapshot load, recompute the usage from the subtree.
//!
//! Per write this costs one set lookup per path component (none when no
//! quota is set), plus parsing and rewriting one short stats node.
//!
//! `check` is the leader's prepare-time test (`zookeeper.enforceQuota`): a
//! hard limit refuses the write with QuotaExceeded, a soft one only notes
//! it. Unlike Apache, which checks each request (and each op of a multi)
//! against the committed tree, zoocore checks against the tree as every
//! write before it leaves it, so writes in flight and the ops of one multi
//! cannot together pass a hard limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdSet;

use super::DataTree;
use crate::proto::ErrorCode;

/// Apache's `Quotas.quotaZookeeper`.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// Apache's `Quotas.limitNode`.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// Apache's `Quotas.statNode`.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD_LIMIT: &str = "countHardLimit";
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// The limits node path of quota root `root` (`Quotas.limitPath`).
pub fn limit_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{LIMIT_NODE}")
}

/// The stats node path of quota root `root` (`Quotas.statPath`).
pub fn stat_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{STAT_NODE}")
}

/// Apache's `StatsTrack`: `key=long` pairs separated by ',' or ';'. A
/// missing key reads as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses the text as Apache does, except that a pair Java would throw
    /// on (no '=', a value that is not a number) is skipped: the stats are
    /// rewritten in apply, where a throw is not an option.
    pub fn parse(data: &[u8]) -> StatsTrack {
        let mut values = BTreeMap::new();
        let text = String::from_utf8_lossy(data);
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            // Java's split("=") drops trailing empty parts, so "bytes=5="
            // is ("bytes", "5"); it reads the second part.
            let mut parts = pair.split('=');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = if value.is_empty() { Some(-1) } else { value.parse::<i64>().ok() };
            if let Some(value) = value {
                values.insert(key.to_owned(), value);
            }
        }
        StatsTrack { values }
    }

    fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    fn set(&mut self, key: &str, value: i64) {
        self.values.insert(key.to_owned(), value);
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }
    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }
    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT)
    }
    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT)
    }
    pub fn set_count(&mut self, v: i64) {
        self.set(COUNT, v)
    }
    pub fn set_bytes(&mut self, v: i64) {
        self.set(BYTES, v)
    }
    pub fn set_count_hard_limit(&mut self, v: i64) {
        self.set(COUNT_HARD_LIMIT, v)
    }
    pub fn set_byte_hard_limit(&mut self, v: i64) {
        self.set(BYTE_HARD_LIMIT, v)
    }

    /// The count limit that applies: the hard one when set (QuotaMetricsUtils).
    pub fn count_limit(&self) -> i64 {
        if self.count_hard_limit() > -1 {
            self.count_hard_limit()
        } else {
            self.count()
        }
    }

    pub fn byte_limit(&self) -> i64 {
        if self.byte_hard_limit() > -1 {
            self.byte_hard_limit()
        } else {
            self.bytes()
        }
    }
}

/// Apache's text: `count=N,bytes=M`, then, only if there are other keys, a
/// '=' (so 3.4's parser ignores them) and `;key=value` for each in order.
impl std::fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{COUNT}={},{BYTES}={}", self.count(), self.bytes())?;
        let mut others = self.values.iter().filter(|(k, _)| *k != COUNT && *k != BYTES).peekable();
        if others.peek().is_some() {
            f.write_str("=")?;
            for (key, value) in others {
                write!(f, ";{key}={value}")?;
            }
        }
        Ok(())
    }
}

/// A write that went over a quota limit (Apache's rate-limited "Quota
/// exceeded" log line); a hard one refused the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaNote {
    /// The quota root.
    pub root: String,
    /// The written path's top namespace (`PathUtils.getTopNamespace`), the
    /// key of Apache's per-namespace metrics.
    pub namespace: Option<String>,
    pub hard: bool,
    /// Apache's wording, e.g. `Quota exceeded: /q [current count=3, hardCountLimit=2]`.
    pub message: String,
}

/// The quota roots (Apache's `PathTrie` of quota paths): normalised
/// absolute paths. Persistent, so a tree clone stays O(1).
#[derive(Clone, Default)]
pub(super) struct QuotaRoots {
    roots: OrdSet<Arc<str>>,
}

/// The first path component (`PathUtils.getTopNamespace`): "q" for "/q/a".
pub fn top_namespace(path: &str) -> Option<&str> {
    path.split('/').nth(1).filter(|s| !s.is_empty())
}

/// A path as the trie stores it: its non-empty components under "/".
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for part in path.split('/').filter(|p| !p.trim().is_empty()) {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The quota root a node under `/zookeeper/quota` names: the part of
/// `quota_dir` after `/zookeeper/quota` (`Quotas.trimQuotaPath`),
/// normalised; None for the quota directory itself (a quota on "/", which
/// Apache never applies).
fn root_named_by(quota_dir: &str) -> Option<String> {
    let rest = quota_dir.strip_prefix(QUOTA_ROOT)?;
    let root = normalise(rest);
    (root != "/").then_some(root)
}

impl DataTree {
    /// The deepest quota root at or above `path` (`getMaxPrefixWithQuota`);
    /// never "/".
    pub fn quota_root_of(&self, path: &str) -> Option<&str> {
        let roots = &self.quotas.roots;
        if roots.is_empty() {
            return None;
        }
        let mut prefix = path.trim_end_matches('/');
        while !prefix.is_empty() {
            if let Some(root) = roots.get(prefix) {
                return Some(&**root);
            }
            prefix = &prefix[..prefix.rfind('/').unwrap_or(0)];
        }
        None
    }

    /// Every quota root, sorted.
    pub fn quota_roots(&self) -> Vec<String> {
        self.quotas.roots.iter().map(|r| r.to_string()).collect()
    }

    /// The usage Apache keeps for `root`, read from its stats node.
    pub fn quota_usage(&self, root: &str) -> Option<StatsTrack> {
        self.get(&stat_path(root)).map(|n| StatsTrack::parse(n.data().unwrap_or_default()))
    }

    /// After a node was created (apply): a limits node makes its root a
    /// quota root, a stats node gets the subtree's usage, and the deepest
    /// root above the node counts it.
    pub(super) fn quota_created(&mut self, path: &str, data_len: usize) {
        if let Some((parent, name)) = super::path::split_last(path) {
            if parent.starts_with(QUOTA_ROOT) && (name == LIMIT_NODE || name == STAT_NODE) {
                if let Some(root) = root_named_by(parent) {
                    if name == LIMIT_NODE {
                        self.quotas.roots.insert(Arc::from(root));
                    } else {
                        self.recompute_quota_usage(&root);
                    }
                }
            }
        }
        self.add_quota_usage(path, data_len as i64, 1);
    }

    /// After a node was deleted (apply): a limits node's root stops being
    /// one; the deepest root above the node stops counting it.
    pub(super) fn quota_deleted(&mut self, path: &str, data_len: usize) {
        if let Some((parent, name)) = super::path::split_last(path) {
            if name == LIMIT_NODE && parent.starts_with(QUOTA_ROOT) {
                if let Some(root) = root_named_by(parent) {
                    self.quotas.roots.remove(root.as_str() as &str);
                }
            }
        }
        self.add_quota_usage(path, -(data_len as i64), -1);
    }

    /// After a setData (apply).
    pub(super) fn quota_data_changed(&mut self, path: &str, old_len: usize, new_len: usize) {
        self.add_quota_usage(path, new_len as i64 - old_len as i64, 0);
    }

    /// `updateQuotaStat`: adds to the usage of the root above `path`.
    fn add_quota_usage(&mut self, path: &str, bytes_diff: i64, count_diff: i64) {
        let Some(root) = self.quota_root_of(path) else {
            return;
        };
        let stats_path = stat_path(root);
        let Some(node) = self.get(&stats_path) else {
            return;
        };
        let mut stats = StatsTrack::parse(node.data().unwrap_or_default());
        stats.set_count(stats.count() + count_diff);
        stats.set_bytes(stats.bytes() + bytes_diff);
        self.replace_quota_stats(&stats_path, &stats);
    }

    /// `updateQuotaForPath`: the stats node of `root` (if there is one) gets
    /// the node count and data bytes of `root`'s subtree, root included.
    fn recompute_quota_usage(&mut self, root: &str) {
        let stats_path = stat_path(root);
        if self.get(&stats_path).is_none() {
            return;
        }
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(node) = self.get(root) {
            let mut pending = vec![node];
            while let Some(current) = pending.pop() {
                count += 1;
                bytes += current.data_len() as i64;
                if current.num_children() > 0 {
                    self.for_each_child(current.path(), |child| pending.push(child));
                }
            }
        }
        let mut stats = StatsTrack::default();
        stats.set_count(count);
        stats.set_bytes(bytes);
        self.replace_quota_stats(&stats_path, &stats);
    }

    /// The stats node's data becomes `stats`; its stat stays (Apache
    /// changes the data behind the stat's back).
    fn replace_quota_stats(&mut self, stats_path: &str, stats: &StatsTrack) {
        let data = Some(Bytes::from(stats.to_string()));
        self.update_node_data(stats_path, &data, false, |_| {});
    }

    /// `setupQuota`, after a snapshot load: the roots are read again from
    /// the `/zookeeper/quota` subtree (each leaf limits node names one) and
    /// each root's usage is recomputed.
    pub fn rebuild_quotas(&mut self) {
        self.quotas = QuotaRoots::default();
        let Some(quota_dir) = self.get(QUOTA_ROOT) else {
            return;
        };
        let mut roots = Vec::new();
        let mut pending = vec![quota_dir];
        let end = format!("/{LIMIT_NODE}");
        while let Some(current) = pending.pop() {
            if current.num_children() > 0 {
                self.for_each_child(current.path(), |child| pending.push(child));
                continue;
            }
            let path = current.path();
            if path.ends_with(&end) {
                // Apache cuts at the first "/zookeeper_limits".
                let rest = &path[QUOTA_ROOT.len()..];
                let cut = rest.find(&end).unwrap_or(rest.len());
                let root = normalise(&rest[..cut]);
                if root != "/" {
                    roots.push(root);
                }
            }
        }
        for root in roots {
            self.recompute_quota_usage(&root);
            self.quotas.roots.insert(Arc::from(root));
        }
    }

    /// Apache's `checkQuota` for a create (`count_diff` 1) or a setData
    /// (`count_diff` 0) at `path`: Err(QuotaExceeded) when a hard limit
    /// would be passed; a soft limit passed is only noted.
    pub(super) fn check_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
        notes: &mut Vec<QuotaNote>,
    ) -> Result<(), ErrorCode> {
        let Some(root) = self.quota_root_of(path) else {
            return Ok(());
        };
        let Some(limits_node) = self.get(&limit_path(root)) else {
            return Ok(());
        };
        let limits = StatsTrack::parse(limits_node.data().unwrap_or_default());
        let check_count = count_diff != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
        let check_bytes = bytes_diff != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(usage) = self.quota_usage(root) else {
            return Ok(());
        };
        let namespace = top_namespace(path).map(str::to_owned);
        let mut over = |what: &str, current: i64, hard: bool, limit: i64| -> Result<(), ErrorCode> {
            let kind = if hard { "hard" } else { "soft" };
            let message = format!("Quota exceeded: {root} [current {what}={current}, {kind}{}Limit={limit}]", {
                if what == "count" {
                    "Count"
                } else {
                    "Byte"
                }
            });
            notes.push(QuotaNote { root: root.to_owned(), namespace: namespace.clone(), hard, message });
            if hard {
                Err(ErrorCode::QuotaExceeded)
            } else {
                Ok(())
            }
        };
        if check_count {
            let new_count = usage.count() + count_diff;
            let hard = limits.count_hard_limit() > -1;
            if new_count > limits.count_limit() {
                over("count", new_count, hard, limits.count_limit())?;
            }
        }
        if check_bytes {
            let new_bytes = usage.bytes() + bytes_diff;
            let hard = limits.byte_hard_limit() > -1;
            if new_bytes > limits.byte_limit() {
                over("bytes", new_bytes, hard, limits.byte_limit())?;
            }
        }
        Ok(())
    }

    /// QuotaMetricsUtils' gauge sets, per top namespace of the quota roots:
    /// (count limit, bytes limit, count usage, bytes usage), each summed
    /// over the limits (or stats) leaves under `/zookeeper/quota`; a limit
    /// is the hard one when set. A namespace with no limits (or no stats)
    /// node has no entry in that map.
    pub fn quota_metrics(&self) -> QuotaMetrics {
        let mut m = QuotaMetrics::default();
        let Some(quota_dir) = self.get(QUOTA_ROOT) else {
            return m;
        };
        let limits_end = format!("/{LIMIT_NODE}");
        let stats_end = format!("/{STAT_NODE}");
        let mut pending = vec![quota_dir];
        while let Some(current) = pending.pop() {
            if current.num_children() > 0 {
                self.for_each_child(current.path(), |child| pending.push(child));
                continue;
            }
            let path = current.path();
            let is_limits = path.ends_with(&limits_end);
            let is_stats = path.ends_with(&stats_end);
            if !is_limits && !is_stats {
                continue;
            }
            let Some(namespace) = top_namespace(&path[QUOTA_ROOT.len()..]) else {
                continue;
            };
            let Some(data) = current.data() else {
                continue;
            };
            let stats = StatsTrack::parse(data);
            let add = |map: &mut BTreeMap<String, i64>, v: i64| *map.entry(namespace.to_owned()).or_insert(0) += v;
            if is_limits {
                add(&mut m.count_limit, stats.count_limit());
                add(&mut m.bytes_limit, stats.byte_limit());
            } else {
                add(&mut m.count_usage, stats.count());
                add(&mut m.bytes_usage, stats.bytes());
            }
        }
        m
    }
}

/// Apache's `quota_*_per_namespace` gauge sets, keyed by namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaMetrics {
    pub count_limit: BTreeMap<String, i64>,
    pub bytes_limit: BTreeMap<String, i64>,
    pub count_usage: BTreeMap<String, i64>,
    pub bytes_usage: BTreeMap<String, i64>,
}

impl QuotaMetrics {
    /// Each gauge set under its Apache metric name (mntr and Prometheus).
    pub fn gauge_sets(&self) -> [(&'static str, &BTreeMap<String, i64>); 4] {
        [
            ("quota_count_limit_per_namespace", &self.count_limit),
            ("quota_bytes_limit_per_namespace", &self.bytes_limit),
            ("quota_count_usage_per_namespace", &self.count_usage),
            ("quota_bytes_usage_per_namespace", &self.bytes_usage),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_text_is_apaches() {
        let mut s = StatsTrack::default();
        s.set_count(-1);
        s.set_bytes(-1);
        s.set_count_hard_limit(2);
        s.set_byte_hard_limit(-1);
        assert_eq!(s.to_string(), "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        assert_eq!(StatsTrack::parse(s.to_string().as_bytes()), s);
        let mut fresh = StatsTrack::default();
        fresh.set_count(0);
        fresh.set_bytes(0);
        assert_eq!(fresh.to_string(), "count=0,bytes=0");
        assert_eq!(StatsTrack::default().to_string(), "count=-1,bytes=-1");
        let old = StatsTrack::parse(b"count=4,bytes=5");
        assert_eq!((old.count(), old.bytes(), old.count_hard_limit()), (4, 5, -1));
        let junk = StatsTrack::parse(b"count,bytes=x;;countHardLimit=3");
        assert_eq!((junk.count(), junk.bytes(), junk.count_hard_limit()), (-1, -1, 3));
    }

    #[test]
    fn names() {
        assert_eq!(top_namespace("/q/a"), Some("q"));
        assert_eq!(top_namespace("/"), None);
        assert_eq!(normalise("/a//b/"), "/a/b");
        assert_eq!(root_named_by("/zookeeper/quota/a/b"), Some("/a/b".to_owned()));
        assert_eq!(root_named_by("/zookeeper/quota"), None);
        assert_eq!(limit_path("/q"), "/zookeeper/quota/q/zookeeper_limits");
    }
}
