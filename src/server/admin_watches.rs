//! The AdminServer's `watches` (wchc) and `watches_by_path` (wchp) answers:
//! every worker shard's watch list (`watch::SessionWatchList` /
//! `watch::PathWatchList`, listed in chunks on the shard) merged into one
//! JSON document, written into pieces of about `PIECE_BYTES`, each handed
//! on (`PieceSink`: the HTTP body's bounded pipe) as soon as it is full, so
//! the whole answer is never in memory; a sink that refuses a piece (the
//! client left) stops the merge.
//!
//! Sans-IO and single-threaded: worker 0's AdminServer runs it on a helper
//! thread of its own (`server::admin`), so neither the commit shard (which
//! orders every write) nor an executor spends the O(watches log watches) of
//! the sort and merge. No map of the whole answer is built: each shard's
//! list is sorted by an index (sessions by id, paths by bytes), the sorted
//! runs are merged k ways, and each key's values are collected, sorted and
//! deduplicated one key at a time. The output is byte for byte what
//! `serde_json::to_string_pretty` wrote for the map of Apache's shape
//! (`session_id_to_watched_paths` / `path_to_session_ids`, then `command`
//! and `error`), keys in the order the old BTreeMaps gave.

use bytes::Bytes;

use crate::watch::{PathWatchList, SessionId, SessionWatchList};

/// Writes the JSON document of `cmd` (`report::WATCHES` or
/// `report::WATCHES_BY_PATH`) from every shard's part into `sink`, piece by
/// piece as the merge goes; `command` is the name the envelope carries.
/// False if the sink refused a piece (the client left): the merge stopped
/// there.
pub fn write_parts_json(
    cmd: &str,
    command: &str,
    parts: Vec<crate::server::messages::ShardReport>,
    sink: &mut impl PieceSink,
) -> bool {
    if cmd == crate::server::admin_report::report::WATCHES {
        let lists: Vec<SessionWatchList> = parts.into_iter().map(|p| *p.session_watches).collect();
        write_watches_json(command, &lists, sink)
    } else {
        let lists: Vec<PathWatchList> = parts.into_iter().map(|p| *p.path_watches).collect();
        write_watches_by_path_json(command, &lists, sink)
    }
}

/// A piece is closed once it holds this much (the HTTP body sends them in
/// order; none is one buffer of hundreds of MiB).
pub const PIECE_BYTES: usize = 1 << 20;

/// Where the finished pieces go: the HTTP body's bounded pipe
/// (`server::admin`), or a Vec (the tests, the whole answer).
pub trait PieceSink {
    /// Hands over one piece; false when nobody wants the rest.
    fn send_piece(&mut self, piece: Bytes) -> bool;
}

impl PieceSink for Vec<Bytes> {
    fn send_piece(&mut self, piece: Bytes) -> bool {
        self.push(piece);
        true
    }
}

/// Collects the output into pieces of about `PIECE_BYTES`, each handed to
/// the sink as soon as it is full.
struct Pieces<'s, S: PieceSink> {
    sink: &'s mut S,
    current: Vec<u8>,
    /// Cleared when the sink refused a piece; the rest is not written.
    wanted: bool,
}

impl<'s, S: PieceSink> Pieces<'s, S> {
    fn new(sink: &'s mut S) -> Self {
        Pieces { sink, current: Vec::with_capacity(PIECE_BYTES + PIECE_BYTES / 4), wanted: true }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
        if self.current.len() >= PIECE_BYTES {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(PIECE_BYTES + PIECE_BYTES / 4));
            if self.wanted {
                self.wanted = self.sink.send_piece(Bytes::from(full));
            }
        }
    }

    /// A JSON string, escaped as serde_json escapes it.
    fn push_str_json(&mut self, text: &str) {
        // Writing into a Vec cannot fail; serde_json escapes as before.
        let _ = serde_json::to_writer(&mut self.current, text);
        if self.current.len() >= PIECE_BYTES {
            self.push(b"");
        }
    }

    /// Hands over the last piece; false if any piece was refused.
    fn finish(self) -> bool {
        if self.wanted && !self.current.is_empty() {
            return self.sink.send_piece(Bytes::from(self.current));
        }
        self.wanted
    }
}

/// The pretty-printed envelope around one merged map: `{"<key>": {...},
/// "command": ..., "error": null}` as serde_json's PrettyFormatter lays it
/// out (two-space indents, one array element a line, `{}` / `[]` empty).
struct Envelope<'s, S: PieceSink> {
    out: Pieces<'s, S>,
    entries: usize,
}

impl<'s, S: PieceSink> Envelope<'s, S> {
    fn open(key: &str, sink: &'s mut S) -> Self {
        let mut out = Pieces::new(sink);
        out.push(b"{\n  ");
        out.push_str_json(key);
        out.push(b": {");
        Envelope { out, entries: 0 }
    }

    /// One `"key": [values]` entry of the inner map; `key` is written
    /// quoted by `write_key`, each value by `write_value`.
    fn entry<V>(
        &mut self,
        write_key: impl FnOnce(&mut Pieces<'s, S>),
        values: &[V],
        mut write_value: impl FnMut(&mut Pieces<'s, S>, &V),
    ) {
        self.out.push(if self.entries == 0 { b"\n    " } else { b",\n    " });
        self.entries += 1;
        write_key(&mut self.out);
        if values.is_empty() {
            self.out.push(b": []");
            return;
        }
        self.out.push(b": [");
        for (i, v) in values.iter().enumerate() {
            self.out.push(if i == 0 { b"\n      " } else { b",\n      " });
            write_value(&mut self.out, v);
        }
        self.out.push(b"\n    ]");
    }

    /// False once the sink refused a piece: the caller stops merging.
    fn wanted(&self) -> bool {
        self.out.wanted
    }

    fn close(mut self, command: &str) -> bool {
        self.out.push(if self.entries == 0 { b"}" } else { b"\n  }" });
        self.out.push(b",\n  \"command\": ");
        self.out.push_str_json(command);
        self.out.push(b",\n  \"error\": null\n}");
        self.out.finish()
    }
}

fn utf8(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The smallest key among the runs' heads, with `key(run, at)` giving the
/// key of position `at` of run `run`.
fn min_head<K: Ord + Copy>(heads: &[usize], lens: &[usize], key: impl Fn(usize, usize) -> K) -> Option<K> {
    heads.iter().zip(lens).enumerate().filter(|(_, (at, len))| at < len).map(|(run, (at, _))| key(run, *at)).min()
}

/// `watches` as one list of pieces (the whole answer in memory: tests).
pub fn watches_json(command: &str, lists: &[SessionWatchList]) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    write_watches_json(command, lists, &mut pieces);
    pieces
}

/// `watches`: `session_id_to_watched_paths`, sessions in numeric order, each
/// with its data-watch paths sorted and deduplicated over every shard.
pub fn write_watches_json(command: &str, lists: &[SessionWatchList], sink: &mut impl PieceSink) -> bool {
    // Each shard's entries by session id (stable: a session listed twice
    // in one shard keeps both entries, merged below).
    let order: Vec<Vec<usize>> = lists
        .iter()
        .map(|l| {
            let mut idx: Vec<usize> = (0..l.sessions.len()).collect();
            idx.sort_by_key(|&i| l.sessions.get(i).map_or(0, |s| s.0));
            idx
        })
        .collect();
    let lens: Vec<usize> = order.iter().map(Vec::len).collect();
    let mut heads = vec![0usize; lists.len()];
    let session_at = |run: usize, at: usize| -> SessionId {
        let entry = order.get(run).and_then(|o| o.get(at)).copied().unwrap_or(0);
        lists.get(run).and_then(|l| l.sessions.get(entry)).map_or(0, |s| s.0)
    };
    let mut doc = Envelope::open("session_id_to_watched_paths", sink);
    let mut paths: Vec<&[u8]> = Vec::new();
    while let Some(session) = min_head(&heads, &lens, session_at) {
        if !doc.wanted() {
            return false;
        }
        paths.clear();
        for (run, head) in heads.iter_mut().enumerate() {
            let (Some(list), Some(run_order)) = (lists.get(run), order.get(run)) else { continue };
            while *head < run_order.len() && session_at(run, *head) == session {
                let entry = run_order.get(*head).copied().unwrap_or(0);
                paths.extend(list.path_range(entry).map(|p| list.paths.get(p)));
                *head += 1;
            }
        }
        paths.sort_unstable();
        paths.dedup();
        doc.entry(
            |out| out.push(format!("\"{session}\"").as_bytes()),
            &paths,
            |out, path| out.push_str_json(&utf8(path)),
        );
    }
    doc.close(command)
}

/// The path at sorted position `at` of shard `run`'s list.
fn path_of<'a>(lists: &'a [PathWatchList], order: &[Vec<usize>], run: usize, at: usize) -> &'a [u8] {
    let entry = order.get(run).and_then(|o| o.get(at)).copied().unwrap_or(0);
    lists.get(run).map_or(&[][..], |l| l.paths.get(entry))
}

/// `watches_by_path` as one list of pieces (the whole answer in memory: tests).
pub fn watches_by_path_json(command: &str, lists: &[PathWatchList]) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    write_watches_by_path_json(command, lists, &mut pieces);
    pieces
}

/// `watches_by_path`: `path_to_session_ids`, paths in byte order, each with
/// its watching sessions sorted and deduplicated over every shard.
pub fn write_watches_by_path_json(command: &str, lists: &[PathWatchList], sink: &mut impl PieceSink) -> bool {
    let order: Vec<Vec<usize>> = lists
        .iter()
        .map(|l| {
            let mut idx: Vec<usize> = (0..l.paths.len()).collect();
            idx.sort_by(|&a, &b| l.paths.get(a).cmp(l.paths.get(b)));
            idx
        })
        .collect();
    let lens: Vec<usize> = order.iter().map(Vec::len).collect();
    let mut heads = vec![0usize; lists.len()];
    let path_at = |run: usize, at: usize| path_of(lists, &order, run, at);
    let mut doc = Envelope::open("path_to_session_ids", sink);
    let mut sessions: Vec<SessionId> = Vec::new();
    while let Some(path) = min_head(&heads, &lens, path_at) {
        if !doc.wanted() {
            return false;
        }
        sessions.clear();
        for (run, head) in heads.iter_mut().enumerate() {
            let (Some(list), Some(run_order)) = (lists.get(run), order.get(run)) else { continue };
            while *head < run_order.len() && path_at(run, *head) == path {
                let entry = run_order.get(*head).copied().unwrap_or(0);
                sessions.extend_from_slice(list.sessions_of(entry));
                *head += 1;
            }
        }
        sessions.sort_unstable();
        sessions.dedup();
        doc.entry(|out| out.push_str_json(&utf8(path)), &sessions, |out, sid| out.push(sid.to_string().as_bytes()));
    }
    doc.close(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::WatchRegistry;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// What the AdminServer answered before: the whole map as serde_json
    /// Values, the envelope, `to_string_pretty`.
    fn old_watches(command: &str, regs: &[WatchRegistry]) -> String {
        let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for r in regs {
            for (sid, paths) in r.by_session() {
                by_session.entry(sid).or_default().extend(paths);
            }
        }
        let m: Map<String, Value> = by_session
            .into_iter()
            .map(|(sid, mut paths)| {
                paths.sort();
                paths.dedup();
                (sid.to_string(), json!(paths))
            })
            .collect();
        envelope(command, "session_id_to_watched_paths", m)
    }

    fn old_watches_by_path(command: &str, regs: &[WatchRegistry]) -> String {
        let mut by_path: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for r in regs {
            for (path, sids) in r.by_path() {
                by_path.entry(path).or_default().extend(sids);
            }
        }
        let m: Map<String, Value> = by_path
            .into_iter()
            .map(|(path, mut sids)| {
                sids.sort_unstable();
                sids.dedup();
                (path, json!(sids))
            })
            .collect();
        envelope(command, "path_to_session_ids", m)
    }

    fn envelope(command: &str, key: &str, m: Map<String, Value>) -> String {
        let mut data = Map::new();
        data.insert(key.into(), Value::Object(m));
        data.insert("command".into(), json!(command));
        data.insert("error".into(), Value::Null);
        serde_json::to_string_pretty(&Value::Object(data)).unwrap_or_default()
    }

    /// The lists a shard's dump task makes, in chunks of `chunk` entries.
    fn listed(reg: &WatchRegistry, chunk: usize) -> (SessionWatchList, PathWatchList) {
        let (mut by_session, mut by_path) = (SessionWatchList::default(), PathWatchList::default());
        let mut cursor = Some(crate::watch::DumpCursor::default());
        while let Some(at) = cursor {
            cursor = reg.export_watches_by_session(at, chunk, &mut by_session);
        }
        let mut cursor = Some(crate::watch::DumpCursor::default());
        while let Some(at) = cursor {
            cursor = reg.export_watches_by_path(at, chunk, &mut by_path);
        }
        (by_session, by_path)
    }

    fn text(pieces: Vec<Bytes>) -> String {
        String::from_utf8(pieces.concat()).unwrap_or_default()
    }

    #[test]
    fn empty_answers_are_the_old_ones() {
        let regs = [WatchRegistry::new()];
        let (s, p) = listed(&regs[0], 4);
        assert_eq!(text(watches_json("watches", &[s])), old_watches("watches", &regs));
        assert_eq!(text(watches_by_path_json("watches_by_path", &[p])), old_watches_by_path("watches_by_path", &regs));
        assert_eq!(text(watches_json("watches", &[])), old_watches("watches", &[]));
    }

    #[test]
    fn a_session_on_two_shards_and_a_shared_path_are_merged() {
        let mut a = WatchRegistry::new();
        let mut b = WatchRegistry::new();
        a.add_data_watch(7, "/b");
        a.add_data_watch(7, "/a");
        a.add_child_watch(7, "/only-children");
        b.add_data_watch(7, "/a");
        b.add_data_watch(3, "/c\"quoted\"");
        b.add_persistent(-5, "/b");
        let regs = [a, b];
        let lists: Vec<_> = regs.iter().map(|r| listed(r, 1)).collect();
        let sessions: Vec<SessionWatchList> = lists.iter().map(|l| l.0.clone()).collect();
        let paths: Vec<PathWatchList> = lists.iter().map(|l| l.1.clone()).collect();
        let wchc = text(watches_json("watches", &sessions));
        assert_eq!(wchc, old_watches("watches", &regs));
        let parsed: Value = serde_json::from_str(&wchc).unwrap_or_default();
        assert_eq!(parsed["session_id_to_watched_paths"]["7"], json!(["/a", "/b"]));
        let wchp = text(watches_by_path_json("watches_by_path", &paths));
        assert_eq!(wchp, old_watches_by_path("watches_by_path", &regs));
        let parsed: Value = serde_json::from_str(&wchp).unwrap_or_default();
        assert_eq!(parsed["path_to_session_ids"]["/b"], json!([-5, 7]));
    }

    #[test]
    fn a_large_answer_comes_in_pieces() {
        let mut reg = WatchRegistry::new();
        for i in 0..40_000 {
            reg.add_data_watch(i % 3, &format!("/app/some/long/prefix/p{i}"));
        }
        let (s, p) = listed(&reg, 4096);
        let pieces = watches_by_path_json("watches_by_path", &[p]);
        assert!(pieces.len() > 1, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|b| b.len() < PIECE_BYTES + 64 * 1024));
        assert_eq!(text(pieces), old_watches_by_path("watches_by_path", &[reg.clone()]));
        assert_eq!(text(watches_json("watches", &[s])), old_watches("watches", &[reg]));
    }

    /// Takes `left` pieces, then refuses: a client that leaves mid-answer.
    struct LeavesAfter {
        left: usize,
        offered: usize,
    }

    impl PieceSink for LeavesAfter {
        fn send_piece(&mut self, _piece: Bytes) -> bool {
            self.offered += 1;
            self.left = self.left.saturating_sub(1);
            self.left > 0
        }
    }

    #[test]
    fn a_refused_piece_stops_the_merge() {
        let mut reg = WatchRegistry::new();
        for i in 0..40_000 {
            reg.add_data_watch(i % 3, &format!("/app/some/long/prefix/p{i}"));
        }
        let (s, p) = listed(&reg, 4096);
        assert!(watches_by_path_json("wchp", std::slice::from_ref(&p)).len() > 2, "the answer is more than 2 pieces");
        let mut sink = LeavesAfter { left: 1, offered: 0 };
        assert!(!write_watches_by_path_json("wchp", &[p], &mut sink));
        assert_eq!(sink.offered, 1, "nothing is written after the refusal");
        let mut sink = LeavesAfter { left: 1, offered: 0 };
        assert!(!write_watches_json("wchc", &[s], &mut sink));
        assert_eq!(sink.offered, 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random watches over random shards, listed in random chunk sizes:
        /// the streamed JSON is the old map's, byte for byte.
        #[test]
        fn streamed_json_is_the_old_maps(
            ops in proptest::collection::vec((0usize..3, -3i64..6, 0usize..12, 0u8..4), 0..80),
            chunk in 1usize..9,
        ) {
            let mut regs = vec![WatchRegistry::new(), WatchRegistry::new(), WatchRegistry::new()];
            let names = ["/", "/a", "/a/b", "/a/b/c", "/b", "/ä", "/a/ü/x", "/zz", "/a/b2", "/\u{1}", "/a/", "/q/r"];
            for (shard, sid, path, kind) in ops {
                let (Some(reg), Some(path)) = (regs.get_mut(shard), names.get(path)) else { continue };
                match kind {
                    0 => reg.add_data_watch(sid, path),
                    1 => reg.add_child_watch(sid, path),
                    2 => reg.add_persistent(sid, path),
                    _ => reg.add_persistent_recursive(sid, path),
                }
            }
            let lists: Vec<_> = regs.iter().map(|r| listed(r, chunk)).collect();
            let sessions: Vec<SessionWatchList> = lists.iter().map(|l| l.0.clone()).collect();
            let paths: Vec<PathWatchList> = lists.iter().map(|l| l.1.clone()).collect();
            prop_assert_eq!(text(watches_json("wchc", &sessions)), old_watches("wchc", &regs));
            prop_assert_eq!(text(watches_by_path_json("wchp", &paths)), old_watches_by_path("wchp", &regs));
        }
    }
}
