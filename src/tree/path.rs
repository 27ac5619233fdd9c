//! Znode paths: ZooKeeper's `validatePath`, parent/name splitting, and the
//! order of the tree's ordered set.
//!
//! The set orders paths by (parent, name) instead of plain string order, so
//! the children of one node form a single contiguous key range. That lets the
//! tree answer getChildren with a range scan and keep no per-node child set.

use std::cmp::Ordering;
use std::ops::Bound;

use crate::proto::ErrorCode;

/// ZooKeeper's `PathUtils.validatePath`: Err(BadArguments) on failure.
///
/// Java checks UTF-16 units; a Rust `char` outside the BMP is a surrogate
/// pair there, and surrogates are forbidden, so any char > U+FFFF fails.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ErrorCode::BadArguments);
    };
    if rest.is_empty() {
        return Ok(());
    }
    for component in rest.split('/') {
        // Covers "//" and a trailing '/'.
        if component.is_empty() || component == "." || component == ".." {
            return Err(ErrorCode::BadArguments);
        }
        if component.chars().any(is_forbidden_char) {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

fn is_forbidden_char(c: char) -> bool {
    let c = c as u32;
    c <= 0x1f || (0x7f..=0x9f).contains(&c) || (0xd800..=0xf8ff).contains(&c) || c >= 0xfff0
}

/// Splits at the last '/': `"/a/b"` -> `("/a", "b")`, `"/a"` -> `("", "a")`,
/// `"/"` -> `("", "")`. No '/' at all gives `None`.
pub(crate) fn split_last(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    Some((&path[..slash], &path[slash + 1..]))
}

/// The parent path as ZooKeeper looks it up: everything before the last '/',
/// with `""` meaning the root (Java keeps the root under both "" and "/").
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    split_last(path).map(|(parent, _)| if parent.is_empty() { "/" } else { parent })
}

/// A path seen through the tree's (parent, name) ordering. Unsized view over
/// `str`, so lookups need no allocation.
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct TreePath(str);

impl TreePath {
    pub(crate) fn new(path: &str) -> &TreePath {
        // SAFETY: TreePath is repr(transparent) over str, so the pointer cast
        // keeps layout and metadata (length) intact.
        unsafe { &*(path as *const str as *const TreePath) }
    }

    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// (parent, name); a string without '/' (never stored) sorts as a name
    /// under the empty parent.
    fn parts(&self) -> (&str, &str) {
        split_last(&self.0).unwrap_or(("", &self.0))
    }
}

impl TreePath {
    /// The definition of the order: (parent, name), compared as strings.
    fn cmp_by_parts(&self, other: &Self) -> Ordering {
        let (parent_a, name_a) = self.parts();
        let (parent_b, name_b) = other.parts();
        parent_a.cmp(parent_b).then_with(|| name_a.cmp(name_b))
    }
}

impl Ord for TreePath {
    /// Same result as `cmp_by_parts` without splitting either path (the map
    /// compares keys ~20 times per insert or lookup; this is most of the
    /// snapshot load time). Past the common prefix at `i`, where the last
    /// '/' of each path lies decides:
    /// * neither rest holds a '/': the last slashes are the same one, in
    ///   the prefix; equal parents, the names differ in the rests;
    /// * only `a`'s rest does: `b`'s parent ends inside the prefix, so it is
    ///   a proper prefix of `a`'s parent: `a` is greater (and vice versa);
    /// * both do: if `a`'s last '/' is at `i`, `a`'s parent is a proper
    ///   prefix of `b`'s (they cannot both be at `i`); otherwise both
    ///   parents run past `i` and first differ at `i`.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.first() != Some(&b'/') || b.first() != Some(&b'/') {
            return self.cmp_by_parts(other);
        }
        let i = common_prefix_len(a, b);
        let (rest_a, rest_b) = (a.get(i..).unwrap_or_default(), b.get(i..).unwrap_or_default());
        // The rests differ in their first byte (or one is empty), so that
        // byte alone orders them: no memcmp call.
        let first = || rest_a.first().cmp(&rest_b.first());
        match (last_slash(rest_a), last_slash(rest_b)) {
            (LastSlash::None, LastSlash::None) => first(),
            (_, LastSlash::None) => Ordering::Greater,
            (LastSlash::None, _) => Ordering::Less,
            (LastSlash::First, _) => Ordering::Less,
            (_, LastSlash::First) => Ordering::Greater,
            (LastSlash::Later, LastSlash::Later) => first(),
        }
    }
}

/// Where the last '/' of a rest lies: only whether it is the rest's first
/// byte matters to the order.
#[derive(Clone, Copy)]
enum LastSlash {
    None,
    First,
    Later,
}

fn last_slash(rest: &[u8]) -> LastSlash {
    if has_slash(rest.get(1..).unwrap_or_default()) {
        LastSlash::Later
    } else if rest.first() == Some(&b'/') {
        LastSlash::First
    } else {
        LastSlash::None
    }
}

/// Whether `bytes` holds a '/', eight bytes at a time (a byte-at-a-time scan
/// of both rests was a third of every key comparison: the tree compares keys
/// ~17 times per descent, three descents per create).
fn has_slash(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        // A '/' byte becomes 0 here; "has a zero byte" is exact.
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ (ONES * b'/' as u64);
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return true;
        }
    }
    chunks.remainder().contains(&b'/')
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time (the
/// tree compares keys ~25 times per insert or lookup, and keys under one
/// parent share their whole parent path).
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        let diff = word(x) ^ word(y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let (tail_a, tail_b) = (a.get(i..).unwrap_or_default(), b.get(i..).unwrap_or_default());
    i + tail_a.iter().zip(tail_b).take_while(|(x, y)| x == y).count()
}

impl PartialOrd for TreePath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bounds (as owned strings) of the key range holding exactly the children
/// of `path`. Both bounds are exclusive. Children of P have parent part P
/// (or "" for the root); the range runs from (P, "") to (P + "\0", ""). The
/// lower bound is either no node at all or the root itself, which is why it
/// is excluded.
pub(crate) fn child_range_bounds(path: &str) -> (String, String) {
    let parent_part = if path == "/" { "" } else { path };
    let lower = format!("{parent_part}/");
    let upper = format!("{parent_part}\0/");
    (lower, upper)
}

pub(crate) fn as_bounds(bounds: &(String, String)) -> (Bound<&TreePath>, Bound<&TreePath>) {
    (Bound::Excluded(TreePath::new(&bounds.0)), Bound::Excluded(TreePath::new(&bounds.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_path_rules() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/...", "/a/.b", "/é"] {
            assert_eq!(validate_path(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/\u{e000}",
            "/\u{f8ff}",
            "/\u{fff0}",
            "/\u{ffff}",
            "/\u{1F600}",
        ] {
            assert_eq!(validate_path(bad), Err(ErrorCode::BadArguments), "{bad:?}");
        }
        assert_eq!(validate_path("/\u{f900}"), Ok(()));
        assert_eq!(validate_path("/\u{a0}"), Ok(()));
        assert_eq!(validate_path("/\u{ffef}"), Ok(()));
    }

    #[test]
    fn parent_split() {
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/"), Some("/"));
        assert_eq!(parent_of("abc"), None);
        assert_eq!(parent_of("/q/"), Some("/q"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// The fast comparison agrees with the definition, including on
        /// paths that share prefixes and on strings without a leading '/'.
        #[test]
        fn fast_order_matches_definition(a in "[/ab\\-0\\x00]{0,10}", b in "[/ab\\-0\\x00]{0,10}") {
            let (a, b) = (TreePath::new(&a), TreePath::new(&b));
            proptest::prop_assert_eq!(a.cmp(b), a.cmp_by_parts(b));
        }

        #[test]
        fn fast_order_matches_definition_on_paths(a in "(/[ab0]{0,3}){1,4}", b in "(/[ab0]{0,3}){1,4}") {
            let (a, b) = (TreePath::new(&a), TreePath::new(&b));
            proptest::prop_assert_eq!(a.cmp(b), a.cmp_by_parts(b));
        }

        /// Long names and rests past eight bytes (the word-at-a-time '/'
        /// search), with bytes next to '/' ('.' and '0') and multi-byte
        /// characters, behind a shared prefix.
        #[test]
        fn fast_order_matches_definition_on_long_paths(
            prefix in "(/[ab]{1,9}){0,3}",
            x in "(/[a./0\u{e9}]{0,14}){1,3}",
            y in "(/[a./0\u{e9}]{0,14}){1,3}",
        ) {
            let (a, b) = (format!("{prefix}{x}"), format!("{prefix}{y}"));
            let (a, b) = (TreePath::new(&a), TreePath::new(&b));
            proptest::prop_assert_eq!(a.cmp(b), a.cmp_by_parts(b));
        }
    }

    #[test]
    fn children_are_contiguous() {
        let mut keys: Vec<&TreePath> =
            ["/", "/a", "/a/x", "/a/y", "/a0", "/a/x/z", "/b", "/a-"].map(TreePath::new).to_vec();
        keys.sort();
        let bounds = child_range_bounds("/a");
        let (lo, hi) = (TreePath::new(&bounds.0), TreePath::new(&bounds.1));
        let kids: Vec<&str> = keys.iter().filter(|k| **k > lo && **k < hi).map(|k| k.as_str()).collect();
        assert_eq!(kids, vec!["/a/x", "/a/y"]);
        let bounds = child_range_bounds("/");
        let (lo, hi) = (TreePath::new(&bounds.0), TreePath::new(&bounds.1));
        let kids: Vec<&str> = keys.iter().filter(|k| **k > lo && **k < hi).map(|k| k.as_str()).collect();
        assert_eq!(kids, vec!["/a", "/a-", "/a0", "/b"]);
    }
}
