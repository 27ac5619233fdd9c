//! Recovery from damaged storage, against the real binary: torn tails of
//! the newest log (truncated, zeroed, scribbled), corruption in the middle
//! of a log (refused, then `--repair`), a corrupt newest snapshot (fallback
//! to an older one), sessions and ephemerals across a restart, the
//! operator tools (log-dump, snapshot-dump, purge), zxids across ZAB epochs
//! (a log written by hand), and truncation (TRUNC) with crashes during it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};
use zoocore::client::Client;
use zoocore::proto::{open_acl_unsafe, CreateMode, EventType};
use zoocore::server::recovery::list_by_zxid;
use zoocore::server::truncate::{truncate_after, truncate_after_until, TruncateStep};
use zoocore::storage::log_format::{decode_file_header, encode_batch_to_vec, encode_file_header, scan_log};
use zoocore::storage::txn::{LoggedTxn, Txn, TxnHeader};

const TIMEOUT: Duration = Duration::from_secs(10);

/// 1 MiB preallocation keeps the files small; `extra` adds config lines.
fn start(extra: &str) -> TestServer {
    TestServer::start_with(ServerOptions { extra_config: format!("preAllocSize=1024\n{extra}"), ..Default::default() })
}

/// dataDir/zoocore: logs and snapshots (dataLogDir defaults to dataDir).
fn store_dir(s: &TestServer) -> PathBuf {
    s.dir.join("data").join("zoocore")
}

fn logs(s: &TestServer) -> Vec<(i64, PathBuf)> {
    list_by_zxid(&store_dir(s), "log")
}

fn snapshots(s: &TestServer) -> Vec<(i64, PathBuf)> {
    list_by_zxid(&store_dir(s), "snapshot")
}

fn newest_log(s: &TestServer) -> PathBuf {
    logs(s).last().expect("a log file exists").1.clone()
}

/// One batch of a log file: where it is and the paths its writes touch.
#[derive(Debug, Clone)]
struct BatchInfo {
    start: usize,
    /// Padded end (block-aligned).
    end: usize,
    /// Header + records, without the padding.
    used_end: usize,
    paths: Vec<String>,
}

fn txn_path(t: &Txn) -> Vec<String> {
    match t {
        Txn::Create { path, .. }
        | Txn::CreateContainer { path, .. }
        | Txn::CreateTtl { path, .. }
        | Txn::Delete { path }
        | Txn::SetData { path, .. }
        | Txn::SetAcl { path, .. }
        | Txn::Check { path, .. } => vec![path.clone()],
        Txn::Multi(subs) => subs.iter().flat_map(|(_, sub)| txn_path(sub)).collect(),
        Txn::CreateSession { .. } | Txn::CloseSession { .. } | Txn::Error { .. } => vec![],
    }
}

/// Walks the valid batches of a log file (batches start at block
/// boundaries with magic "ZCBT"; batch_len at header offset 8).
fn batches(bytes: &[u8]) -> Vec<BatchInfo> {
    let header = decode_file_header(bytes).expect("log file header");
    let bs = header.block_size;
    let scan = scan_log(bytes, bs).expect("scan log");
    let mut out = Vec::new();
    let mut at = bs;
    while at < scan.valid_end as usize {
        assert_eq!(&bytes[at..at + 4], b"ZCBT", "batch magic at {at}");
        let len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let used_end = at + 32 + len;
        out.push(BatchInfo { start: at, end: used_end.div_ceil(bs) * bs, used_end, paths: Vec::new() });
        at = used_end.div_ceil(bs) * bs;
    }
    for r in &scan.records {
        let rec = LoggedTxn::decode(bytes::Bytes::copy_from_slice(&bytes[r.payload.clone()])).expect("txn decodes");
        let b =
            out.iter_mut().find(|b| b.start <= r.payload.start && r.payload.end <= b.end).expect("record in a batch");
        b.paths.extend(txn_path(&rec.txn));
    }
    out
}

fn connect(s: &TestServer) -> Client {
    Client::connect(s.addr, TIMEOUT).expect("connect")
}

fn create(c: &Client, path: &str, data: &[u8]) {
    c.create(path, data, &open_acl_unsafe(), CreateMode::Persistent).unwrap_or_else(|e| panic!("create {path}: {e}"));
}

fn assert_node(c: &Client, path: &str, data: &[u8]) {
    match c.get_data(path, false) {
        Ok((d, _)) => assert_eq!(d.as_deref(), Some(data), "{path}: data"),
        Err(e) => panic!("{path} is missing: {e}"),
    }
}

fn assert_absent(c: &Client, path: &str) {
    assert!(c.exists(path, false).expect("exists").is_none(), "{path} should not exist");
}

/// Runs the server binary on `s`'s config and expects it to exit by itself
/// within 10 s; returns the exit status and its stderr.
fn run_expecting_exit(s: &TestServer, args: &[&str]) -> (ExitStatus, String) {
    let err_path = s.dir.join("failed-start.log");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .arg("server")
        .arg("--config")
        .arg(s.dir.join("zoo.cfg"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn zoocore");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (status, std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit; stderr:\n{}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tool(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoocore")).args(args).output().expect("run zoocore tool");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn flip_bit(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

/// Log lines since `from` (the server log is appended to across restarts).
/// ANSI colour codes are stripped.
fn log_since(s: &TestServer, from: usize) -> String {
    strip_ansi(s.log().get(from..).unwrap_or_default())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            // CSI: ESC [ parameters final-byte(@..~)
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// The lines of `log` that mention `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

// ---------------------------------------------------------------- torn tail

enum Damage {
    /// Truncate the file in the middle of the last batch's records.
    Truncate,
    /// Zero every block of the last batch (reads back like preallocated space).
    ZeroAll,
    /// Zero the first block of a multi-block last batch.
    ZeroFirstBlock,
    /// Random bytes over the whole last batch.
    Scribble,
}

fn torn_tail_case(damage: Damage, expect_cut_message: bool) {
    let mut s = start("");
    let c = connect(&s);
    create(&c, "/t", b"");
    for i in 0..20 {
        create(&c, &format!("/t/n{i}"), format!("v{i}").as_bytes());
    }
    // The final acknowledged write: its batch is the one damaged. A big
    // value makes it span several blocks.
    let last_data = vec![b'x'; 10_000];
    create(&c, "/t/last", &last_data);
    s.kill9();
    drop(c);

    let log = newest_log(&s);
    let bytes = std::fs::read(&log).expect("read log");
    let all = batches(&bytes);
    let last = all.last().expect("batches");
    assert_eq!(last.paths, vec!["/t/last".to_string()], "the last batch is the last write");
    assert!(last.end - last.start >= 3 * 4096, "the last batch spans several blocks: {last:?}");
    match damage {
        Damage::Truncate => {
            let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
            f.set_len(((last.start + last.used_end) / 2) as u64).unwrap();
        }
        Damage::ZeroAll => {
            let mut b = bytes.clone();
            b[last.start..last.end].fill(0);
            std::fs::write(&log, b).unwrap();
        }
        Damage::ZeroFirstBlock => {
            let mut b = bytes.clone();
            b[last.start..last.start + 4096].fill(0);
            std::fs::write(&log, b).unwrap();
        }
        Damage::Scribble => {
            let mut b = bytes.clone();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for byte in &mut b[last.start..last.end] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            std::fs::write(&log, b).unwrap();
        }
    }

    let mark = s.log().len();
    s.restart();
    let after = log_since(&s, mark);
    let cut = lines_with(&after, "cutting a torn tail");
    if expect_cut_message {
        assert_eq!(cut.len(), 1, "one cut reported:\n{after}");
        assert!(cut[0].contains(&format!("offset={}", last.start)), "the cut names the offset: {}", cut[0]);
        assert!(cut[0].contains(&log.display().to_string()), "the cut names the file: {}", cut[0]);
    } else {
        assert!(cut.is_empty(), "zeros read as preallocated space, nothing to cut:\n{after}");
    }

    let c = connect(&s);
    for i in 0..20 {
        assert_node(&c, &format!("/t/n{i}"), format!("v{i}").as_bytes());
    }
    assert_absent(&c, "/t/last");
    // The server takes new writes, and they survive another crash.
    for i in 0..5 {
        create(&c, &format!("/t/after{i}"), b"a");
    }
    create(&c, "/t/last", b"again");
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    for i in 0..20 {
        assert_node(&c, &format!("/t/n{i}"), format!("v{i}").as_bytes());
    }
    for i in 0..5 {
        assert_node(&c, &format!("/t/after{i}"), b"a");
    }
    assert_node(&c, "/t/last", b"again");
    assert_eq!(c.get_children("/t", false).unwrap().len(), 26);
}

#[test]
fn torn_tail_truncated_mid_batch() {
    torn_tail_case(Damage::Truncate, true);
}

#[test]
fn torn_tail_zero_filled_batch() {
    // A batch that reads back as all zeros is indistinguishable from
    // preallocated space: Clean, no cut needed, the write is simply absent.
    torn_tail_case(Damage::ZeroAll, false);
}

#[test]
fn torn_tail_first_block_zeroed() {
    torn_tail_case(Damage::ZeroFirstBlock, true);
}

#[test]
fn torn_tail_scribbled() {
    torn_tail_case(Damage::Scribble, true);
}

/// The newest log holds a single batch and that batch is torn: after the
/// cut the file holds no transaction, and its name is the zxid the next
/// write gets.
#[test]
fn torn_only_batch_of_newest_log() {
    let mut s = start("");
    let c = connect(&s);
    create(&c, "/a", b"1");
    drop(c);
    assert!(s.terminate(TIMEOUT).is_some_and(|st| st.success()));
    s.restart();
    // A fresh process writes to a fresh file; one write there (with its
    // session) and a crash.
    let before = logs(&s).len();
    let c = connect(&s);
    create(&c, "/b", b"2");
    s.kill9();
    drop(c);
    assert_eq!(logs(&s).len(), before + 1, "the new process opened a new log");
    let log = newest_log(&s);
    let bytes = std::fs::read(&log).unwrap();
    let all = batches(&bytes);
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    // Truncate the file to its header: every batch of it is gone.
    f.set_len(all[0].start as u64 + 10).unwrap();
    drop(f);

    s.restart();
    let c = connect(&s);
    assert_node(&c, "/a", b"1");
    assert_absent(&c, "/b");
    create(&c, "/c", b"3");
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/a", b"1");
    assert_node(&c, "/c", b"3");
}

/// The server created the newest log but crashed before its header was
/// durable: the file is all zeros.
#[test]
fn newest_log_with_zero_header() {
    let mut s = start("");
    let c = connect(&s);
    create(&c, "/a", b"1");
    s.kill9();
    drop(c);
    let (last_zxid, _) = *logs(&s).last().unwrap();
    // A file the next process would have created, preallocated, header lost.
    let ghost = store_dir(&s).join(format!("log.{:x}", last_zxid + 100));
    std::fs::write(&ghost, vec![0u8; 1 << 20]).unwrap();
    let mark = s.log().len();
    s.restart();
    let after = log_since(&s, mark);
    assert!(!lines_with(&after, &ghost.display().to_string()).is_empty(), "the empty log is reported:\n{after}");
    let c = connect(&s);
    assert_node(&c, "/a", b"1");
    create(&c, "/b", b"2");
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/a", b"1");
    assert_node(&c, "/b", b"2");
}

// ---------------------------------------------------- mid-log corruption

#[test]
fn mid_log_corruption_refuses_to_start_and_repair_cuts() {
    let mut s = start("");
    let c = connect(&s);
    create(&c, "/m", b"");
    for i in 0..30 {
        create(&c, &format!("/m/n{i}"), format!("v{i}").as_bytes());
    }
    s.kill9();
    drop(c);
    let log = newest_log(&s);
    let bytes = std::fs::read(&log).unwrap();
    let all = batches(&bytes);
    // A batch with later valid batches behind it.
    let bad_index = all.iter().position(|b| b.paths == vec!["/m/n20".to_string()]).expect("batch of /m/n20");
    let bad = &all[bad_index];
    flip_bit(&log, bad.start + 40);

    let (status, stderr) = run_expecting_exit(&s, &[]);
    assert!(!status.success(), "start-up must fail on mid-log corruption");
    assert!(stderr.contains(&log.display().to_string()), "the message names the file:\n{stderr}");
    assert!(stderr.contains(&format!("offset {}", bad.start)), "the message names the offset {}:\n{stderr}", bad.start);

    // log-dump refuses the file as well.
    let (status, _, err) = tool(&["log-dump", log.to_str().unwrap()]);
    assert!(!status.success(), "log-dump exits non-zero on a corrupt log");
    assert!(err.contains(&format!("offset {}", bad.start)), "{err}");

    let mark = s.log().len();
    s.restart_with_args(&["--repair"]);
    let after = log_since(&s, mark);
    let repair = lines_with(&after, "repair: cutting the log");
    assert_eq!(repair.len(), 1, "the repair is reported:\n{after}");
    assert!(repair[0].contains(&format!("offset={}", bad.start)), "{}", repair[0]);
    let c = connect(&s);
    for i in 0..20 {
        assert_node(&c, &format!("/m/n{i}"), format!("v{i}").as_bytes());
    }
    for i in 20..30 {
        assert_absent(&c, &format!("/m/n{i}"));
    }
    create(&c, "/m/after", b"a");
    s.kill9();
    drop(c);
    // A plain start works again and keeps everything.
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/m/n19", b"v19");
    assert_node(&c, "/m/after", b"a");
    assert_eq!(c.get_children("/m", false).unwrap().len(), 21);
}

// ------------------------------------------------------ snapshot fallback

/// Waits until at least `n` snapshots exist and none is being written,
/// writing `/fill<k>` nodes meanwhile if the test's own writes were not
/// enough. How many snapshots a run of writes starts depends on timing: a
/// snapshot is skipped while the previous one is still being written (as
/// ZooKeeper's "too busy to snap"), and with writes faster than snapshots
/// (a fast log, a slow disk) a fixed number of writes can fall short.
fn wait_for_snapshots(s: &TestServer, c: &Client, n: usize) {
    let deadline = Instant::now() + TIMEOUT * 3;
    let mut fill = 0;
    loop {
        let writing = std::fs::read_dir(store_dir(s))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
        let have = snapshots(s).len();
        if have >= n && !writing {
            return;
        }
        assert!(Instant::now() < deadline, "expected {n} snapshots, have {:?}", snapshots(s));
        if writing {
            std::thread::sleep(Duration::from_millis(5));
        } else {
            create(c, &format!("/fill{fill}"), b"");
            fill += 1;
        }
    }
}

#[test]
fn corrupt_newest_snapshots_fall_back_to_older_one() {
    let mut s = start("snapCount=50\n");
    let c = connect(&s);
    create(&c, "/s", b"");
    for i in 0..300 {
        create(&c, &format!("/s/n{i}"), format!("v{i}").as_bytes());
    }
    for i in (0..300).step_by(3) {
        c.set_data(&format!("/s/n{i}"), format!("w{i}").as_bytes(), -1).unwrap();
    }
    wait_for_snapshots(&s, &c, 5);
    s.kill9();
    drop(c);
    let snaps = snapshots(&s);
    assert!(logs(&s).len() >= 5, "snapshots roll the log: {:?}", logs(&s));
    let (_, newest) = &snaps[snaps.len() - 1];
    let (_, second) = &snaps[snaps.len() - 2];
    let (third_zxid, third) = &snaps[snaps.len() - 3];
    let len = std::fs::metadata(newest).unwrap().len() as usize;
    flip_bit(newest, len / 2);
    let f = std::fs::OpenOptions::new().write(true).open(second).unwrap();
    f.set_len(std::fs::metadata(second).unwrap().len() / 2).unwrap();
    drop(f);

    // A snapshot the crash interrupted is left under its temporary name.
    let unfinished = store_dir(&s).join("snapshot.fffff.tmp");
    std::fs::write(&unfinished, b"half a snapshot").unwrap();

    let mark = s.log().len();
    s.restart();
    let after = log_since(&s, mark);
    assert!(!unfinished.exists(), "the unfinished snapshot is removed at start-up");
    assert_eq!(lines_with(&after, "does not verify; trying an older one").len(), 2, "{after}");
    let loaded = lines_with(&after, "loaded snapshot");
    assert!(
        loaded.len() == 1 && loaded[0].contains(&third.display().to_string()),
        "loads {} (0x{third_zxid:x}):\n{after}",
        third.display()
    );
    let c = connect(&s);
    for i in 0..300 {
        let want = if i % 3 == 0 { format!("w{i}") } else { format!("v{i}") };
        assert_node(&c, &format!("/s/n{i}"), want.as_bytes());
    }
    assert_eq!(c.get_children("/s", false).unwrap().len(), 300);
}

// --------------------------------------- sessions and ephemerals across restart

#[test]
fn sessions_and_ephemerals_survive_a_restart() {
    let mut s = TestServer::start_with(ServerOptions {
        tick_ms: 200,
        extra_config: "preAllocSize=1024\n".into(),
        ..Default::default()
    });
    let setup = connect(&s);
    create(&setup, "/e", b"");
    drop(setup);
    // `kept` reconnects after the restart; `gone` does not.
    let kept = Client::connect(s.addr, Duration::from_secs(4)).unwrap();
    let gone = Client::connect(s.addr, Duration::from_millis(1600)).unwrap();
    kept.create("/e/kept1", b"k", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    kept.create("/e/kept2", b"k", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    gone.create("/e/gone", b"g", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    let (kept_id, kept_pw) = (kept.session_id(), kept.session_password());
    assert_eq!(kept.negotiated_timeout(), Duration::from_secs(4));

    s.kill9();
    drop(kept);
    drop(gone);
    s.restart();

    let kept = Client::reconnect(s.addr, kept_id, kept_pw.clone(), Duration::from_secs(4)).expect("reattach");
    assert_eq!(kept.session_id(), kept_id);
    let watcher = connect(&s);
    let events = watcher.events().unwrap();
    assert!(
        watcher.exists("/e/gone", true).unwrap().is_some(),
        "the other session's ephemeral is there until that session expires"
    );
    for p in ["/e/kept1", "/e/kept2"] {
        let st = kept.exists(p, false).unwrap().unwrap_or_else(|| panic!("{p} lost across the restart"));
        assert_eq!(st.ephemeral_owner, kept_id);
    }
    let ev = events.recv_timeout(Duration::from_secs(6)).expect("NodeDeleted for the expired session's ephemeral");
    assert_eq!(ev.kind(), Some(EventType::NodeDeleted));
    assert_eq!(ev.path, "/e/gone");
    assert_absent(&watcher, "/e/gone");
    let mut children = kept.get_children("/e", false).unwrap();
    children.sort();
    assert_eq!(children, vec!["kept1", "kept2"]);

    // The expiry was logged: another crash does not bring /e/gone back,
    // and the kept session still reattaches.
    s.kill9();
    drop(kept);
    drop(watcher);
    s.restart();
    let kept = Client::reconnect(s.addr, kept_id, kept_pw, Duration::from_secs(4)).expect("reattach again");
    let mut children = kept.get_children("/e", false).unwrap();
    children.sort();
    assert_eq!(children, vec!["kept1", "kept2"]);
}

// ------------------------------------------------------------------ tools

#[test]
fn log_dump_prints_every_transaction() {
    let mut s = start("");
    let c = connect(&s);
    for i in 0..10 {
        create(&c, &format!("/d{i}"), b"x");
    }
    c.set_data("/d3", b"yy", -1).unwrap();
    c.delete("/d4", -1).unwrap();
    s.kill9();
    drop(c);
    let log = newest_log(&s);
    let bytes = std::fs::read(&log).unwrap();
    let header = decode_file_header(&bytes).unwrap();
    let records = scan_log(&bytes, header.block_size).unwrap().records.len();
    let (status, out, err) = tool(&["log-dump", log.to_str().unwrap()]);
    assert!(status.success(), "log-dump on a good log: {err}");
    let txn_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("zxid 0x")).collect();
    // createSession + 10 creates + setData + delete.
    assert_eq!(records, 13);
    assert_eq!(txn_lines.len(), records, "{out}");
    assert!(txn_lines[0].contains("createSession"), "{out}");
    assert!(out.contains("create /d9"), "{out}");
    assert!(out.contains("setData /d3"), "{out}");
    assert!(out.contains("delete /d4"), "{out}");
    assert!(out.contains("checksums verified"), "{out}");
}

#[test]
fn snapshot_dump_verifies_the_seal() {
    let mut s = start("snapCount=20\n");
    let c = connect(&s);
    for i in 0..60 {
        create(&c, &format!("/p{i}"), format!("v{i}").as_bytes());
    }
    wait_for_snapshots(&s, &c, 1);
    s.kill9();
    drop(c);
    let snaps = snapshots(&s);
    let (_, snap) = snaps.last().unwrap();
    let (status, out, err) = tool(&["snapshot-dump", snap.to_str().unwrap(), "--data"]);
    assert!(status.success(), "snapshot-dump on a good snapshot: {err}");
    assert!(out.contains("seal verified"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("/p1 ") && l.contains("data=\"v1\"")), "{out}");
    let len = std::fs::metadata(snap).unwrap().len() as usize;
    for offset in [10, len / 2, len - 3] {
        let copy = s.dir.join("snapshot.copy");
        std::fs::copy(snap, &copy).unwrap();
        flip_bit(&copy, offset);
        let (status, _, err) = tool(&["snapshot-dump", copy.to_str().unwrap()]);
        assert!(!status.success(), "a flipped bit at {offset} of {len} must be refused");
        assert!(!err.is_empty());
    }
}

#[test]
fn purge_keeps_newest_snapshots_and_the_logs_they_need() {
    let mut s = start("snapCount=30\n");
    let c = connect(&s);
    for i in 0..300 {
        create(&c, &format!("/q{i}"), format!("v{i}").as_bytes());
    }
    wait_for_snapshots(&s, &c, 7);
    assert!(s.terminate(TIMEOUT).is_some_and(|st| st.success()));
    drop(c);
    let snaps_before = snapshots(&s);
    let logs_before = logs(&s);
    let keep = 4;
    let oldest_kept = snaps_before[snaps_before.len() - keep].0;
    let first_needed_log = logs_before.iter().rposition(|(first, _)| *first <= oldest_kept + 1).unwrap();

    let cfg = s.dir.join("zoo.cfg");
    let (status, out, err) = tool(&["purge", "--config", cfg.to_str().unwrap(), "-n", &keep.to_string()]);
    assert!(status.success(), "purge: {err}");
    let snaps_after = snapshots(&s);
    let logs_after = logs(&s);
    assert_eq!(snaps_after, snaps_before[snaps_before.len() - keep..].to_vec());
    assert_eq!(logs_after, logs_before[first_needed_log..].to_vec());
    let removed = snaps_before.len() - keep + first_needed_log;
    assert!(out.contains(&format!("removed {removed} files")), "{out}");

    // -n below 3 still keeps 3.
    let (status, _, err) = tool(&["purge", "--config", cfg.to_str().unwrap(), "-n", "1"]);
    assert!(status.success(), "{err}");
    assert_eq!(snapshots(&s).len(), 3);

    // Every snapshot kept verifies, and the server recovers everything.
    for (_, p) in snapshots(&s) {
        let (status, _, err) = tool(&["snapshot-dump", p.to_str().unwrap()]);
        assert!(status.success(), "{err}");
    }
    s.restart();
    let c = connect(&s);
    for i in 0..300 {
        assert_node(&c, &format!("/q{i}"), format!("v{i}").as_bytes());
    }
}

/// Corruption in a log that later logs follow: `--repair` cuts it and sets
/// every later log aside under its own name (nothing is overwritten).
#[test]
fn repair_sets_each_later_log_aside() {
    let mut s = start("");
    for round in 0..3 {
        if round > 0 {
            s.restart();
        }
        let c = connect(&s);
        for i in 0..5 {
            create(&c, &format!("/r{round}-{i}"), b"x");
        }
        s.kill9();
        drop(c);
    }
    let all_logs = logs(&s);
    assert_eq!(all_logs.len(), 3, "one log per process: {all_logs:?}");
    let first = &all_logs[0].1;
    let bytes = std::fs::read(first).unwrap();
    let bad = batches(&bytes).into_iter().find(|b| b.paths == vec!["/r0-3".to_string()]).unwrap();
    flip_bit(first, bad.used_end - 1);

    let (status, stderr) = run_expecting_exit(&s, &[]);
    assert!(!status.success());
    assert!(stderr.contains(&first.display().to_string()) && stderr.contains(&format!("offset {}", bad.start)));

    s.restart_with_args(&["--repair"]);
    let aside: Vec<PathBuf> =
        all_logs[1..].iter().map(|(_, p)| PathBuf::from(format!("{}.corrupt-aside", p.display()))).collect();
    for p in &aside {
        assert!(
            p.exists(),
            "{} was set aside: {:?}\n{}",
            p.display(),
            std::fs::read_dir(store_dir(&s)).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>(),
            s.log()
        );
    }
    let c = connect(&s);
    for i in 0..3 {
        assert_node(&c, &format!("/r0-{i}"), b"x");
    }
    for path in ["/r0-3", "/r0-4", "/r1-0", "/r2-4"] {
        assert_absent(&c, path);
    }
    create(&c, "/after", b"a");
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/r0-2", b"x");
    assert_node(&c, "/after", b"a");
    assert_absent(&c, "/r1-0");
}

// ------------------------------------------------------------ ZAB epochs

const E1: i64 = 0x1_0000_0000;
const E2: i64 = 0x2_0000_0000;
const E3: i64 = 0x3_0000_0000;
/// Block size of the logs written by hand.
const HAND_BLOCK: usize = 4096;

/// The create of `/z<zxid hex>` at `zxid`.
fn create_txn(zxid: i64) -> bytes::Bytes {
    LoggedTxn {
        header: TxnHeader { session_id: 0, cxid: 0, zxid, time_ms: 0, op: zoocore::proto::op::CREATE },
        txn: Txn::Create {
            path: format!("/z{zxid:x}"),
            data: Some(bytes::Bytes::from_static(b"h")),
            acl: open_acl_unsafe(),
            ephemeral: false,
            parent_cversion: 1,
        },
        digest: None,
    }
    .to_bytes()
}

/// A server whose store holds only the logs given (file -> batches of
/// zxids), written with log_format's encoder: started once for its
/// directory and config, stopped, its files replaced.
fn server_with_hand_written_logs(files: &[&[&[i64]]]) -> (TestServer, Vec<PathBuf>) {
    let mut s = start("");
    s.kill9();
    for entry in std::fs::read_dir(store_dir(&s)).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let mut paths = Vec::new();
    for batches in files {
        let first = batches[0][0];
        let mut file = encode_file_header(HAND_BLOCK, first);
        for batch in *batches {
            let payloads: Vec<(i64, bytes::Bytes)> = batch.iter().map(|z| (*z, create_txn(*z))).collect();
            let refs: Vec<(i64, &[u8])> = payloads.iter().map(|(z, b)| (*z, b.as_ref())).collect();
            file.extend(encode_batch_to_vec(&refs, HAND_BLOCK).unwrap());
        }
        let path = store_dir(&s).join(format!("log.{first:x}"));
        std::fs::write(&path, file).unwrap();
        paths.push(path);
    }
    (s, paths)
}

#[test]
fn replay_accepts_counter_one_of_a_higher_epoch() {
    let (mut s, _) = server_with_hand_written_logs(&[
        &[&[E1 | 1, E1 | 2], &[E1 | 3, E2 | 1]],
        // A later leader's log: epochs 3 and 5 (4 never proposed).
        &[&[E3 | 1, E3 | 2], &[0x5_0000_0001]],
    ]);
    s.restart();
    let c = connect(&s);
    for z in [E1 | 1, E1 | 2, E1 | 3, E2 | 1, E3 | 1, E3 | 2, 0x5_0000_0001] {
        assert_node(&c, &format!("/z{z:x}"), b"h");
    }
    // The server goes on from the last zxid, and that survives a crash.
    create(&c, "/after", b"a");
    let stat = c.exists("/after", false).unwrap().unwrap();
    // 0x5_0000_0002 is the client's createSession.
    assert_eq!(stat.czxid, 0x5_0000_0003);
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/after", b"a");
    assert_node(&c, &format!("/z{:x}", E2 | 1), b"h");
}

/// A gap inside an epoch, a lower epoch, and a higher epoch at a counter
/// other than 1, inside one file and across files: refused, naming the
/// file and offset.
#[test]
fn replay_refuses_zxids_that_do_not_follow() {
    let e2_batch: &[i64] = &[E2 | 1, E2 | 2, E2 | 3];
    let second_batch_offset = 2 * HAND_BLOCK;
    // Across batches of one file: the scan calls the second batch corrupt.
    for bad in [E2 | 5, E1 | 4, E3 | 2, E3] {
        let (s, paths) = server_with_hand_written_logs(&[&[e2_batch, &[bad]]]);
        let (status, stderr) = run_expecting_exit(&s, &[]);
        assert!(!status.success(), "{bad:#x}: start-up must fail");
        assert!(stderr.contains(&paths[0].display().to_string()), "{bad:#x}: names the file:\n{stderr}");
        assert!(
            stderr.contains(&format!("offset {second_batch_offset}")) && stderr.contains("does not follow"),
            "{bad:#x}: names the offset:\n{stderr}"
        );
    }
    // Across files (a lower epoch would sort before, so: a gap and a wrong counter).
    for bad in [E2 | 5, E3 | 2] {
        let (s, paths) = server_with_hand_written_logs(&[&[e2_batch], &[&[bad, bad + 1]]]);
        let (status, stderr) = run_expecting_exit(&s, &[]);
        assert!(!status.success(), "{bad:#x}: start-up must fail");
        assert!(stderr.contains(&paths[1].display().to_string()), "{bad:#x}: names the file:\n{stderr}");
        // The first record of the file: after its header block and the batch header.
        assert!(stderr.contains(&format!("offset {}", HAND_BLOCK + 32)), "{bad:#x}: names the offset:\n{stderr}");
    }
}

// ------------------------------------------------------------ truncation

/// The zxid of the txn that created `path`, from the logs.
fn create_zxid(s: &TestServer, path: &str) -> i64 {
    for (_, log) in logs(s) {
        let bytes = std::fs::read(&log).unwrap();
        let header = decode_file_header(&bytes).unwrap();
        for r in scan_log(&bytes, header.block_size).unwrap().records {
            let txn = LoggedTxn::decode(bytes::Bytes::copy_from_slice(&bytes[r.payload.clone()])).unwrap();
            if matches!(&txn.txn, Txn::Create { path: p, .. } if p == path) {
                return r.zxid;
            }
        }
    }
    panic!("no create of {path} in the logs");
}

/// Logs rolled at snapshots, snapshots above and below the zxid; the
/// truncation keeps exactly the creates up to the zxid, and the server
/// goes on logging after it.
#[test]
fn truncate_after_keeps_exactly_the_txns_up_to_the_zxid() {
    let mut s = start("snapCount=20\n");
    let c = connect(&s);
    for i in 0..80 {
        create(&c, &format!("/t{i}"), format!("v{i}").as_bytes());
    }
    wait_for_snapshots(&s, &c, 3);
    s.kill9();
    drop(c);
    assert!(logs(&s).len() >= 3, "snapshots rolled the log: {:?}", logs(&s));
    let zxid = create_zxid(&s, "/t40");
    let data = s.dir.join("data");
    let report = truncate_after(&data, &data, zxid).unwrap();
    assert_eq!(report.last_kept_zxid, Some(zxid));
    assert_eq!(report.first_dropped_zxid, Some(zxid + 1));
    assert!(!report.removed_snapshots.is_empty(), "{report:?}");
    assert!(snapshots(&s).iter().all(|(z, _)| *z <= zxid), "{:?}", snapshots(&s));
    assert!(logs(&s).iter().all(|(z, _)| *z <= zxid), "{:?}", logs(&s));

    let mark = s.log().len();
    s.restart();
    let after = log_since(&s, mark);
    assert!(lines_with(&after, "recovered").iter().any(|l| l.contains(&format!("zxid=0x{zxid:x}"))), "{after}");
    let c = connect(&s);
    for i in 0..=40 {
        assert_node(&c, &format!("/t{i}"), format!("v{i}").as_bytes());
    }
    for i in 41..80 {
        assert_absent(&c, &format!("/t{i}"));
    }
    create(&c, "/after", b"a");
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    assert_node(&c, "/t40", b"v40");
    assert_node(&c, "/after", b"a");
    assert_absent(&c, "/t41");
}

/// A crash after each step of a truncation, then the real server starts:
/// before the intent, everything; from it on, exactly the txns up to the
/// zxid (the server finishes the truncation itself).
#[test]
fn server_finishes_an_interrupted_truncation() {
    for step in [
        TruncateStep::Checked,
        TruncateStep::IntentWritten,
        TruncateStep::SnapshotsRemoved,
        TruncateStep::LogsRemoved,
        TruncateStep::LogRewritten,
    ] {
        let mut s = start("snapCount=20\n");
        let c = connect(&s);
        for i in 0..50 {
            create(&c, &format!("/t{i}"), b"x");
        }
        wait_for_snapshots(&s, &c, 2);
        s.kill9();
        drop(c);
        let zxid = create_zxid(&s, "/t20");
        let data = s.dir.join("data");
        truncate_after_until(&data, &data, zxid, step).unwrap();
        let mark = s.log().len();
        s.restart();
        let after = log_since(&s, mark);
        let finished = !lines_with(&after, "finished a truncation that was interrupted").is_empty();
        assert_eq!(finished, step > TruncateStep::Checked, "{step:?}:\n{after}");
        let c = connect(&s);
        assert_node(&c, "/t20", b"x");
        if step == TruncateStep::Checked {
            assert_node(&c, "/t49", b"x");
        } else {
            for i in 21..50 {
                assert_absent(&c, &format!("/t{i}"));
            }
        }
        create(&c, "/after", b"a");
        s.kill9();
        drop(c);
        s.restart();
        let c = connect(&s);
        assert_node(&c, "/after", b"a");
        assert_node(&c, "/t20", b"x");
        if step > TruncateStep::Checked {
            assert_absent(&c, "/t21");
        }
    }
}

/// A newer log file is only started once every write to the older ones is
/// durable, so a damaged tail in an older file is lost acknowledged data,
/// not a torn write: start-up refuses (before, it cut the file and carried
/// on into the next, skipping what was lost; found by the simulator,
/// docs/simulation.md).
#[test]
fn damaged_tail_of_an_older_log_refuses_to_start() {
    let mut s = start("");
    let c = connect(&s);
    create(&c, "/o", b"");
    for i in 0..10 {
        create(&c, &format!("/o/a{i}"), &vec![b'a'; 6_000]);
    }
    s.kill9();
    drop(c);
    s.restart();
    let c = connect(&s);
    for i in 0..5 {
        create(&c, &format!("/o/b{i}"), b"b");
    }
    s.kill9();
    drop(c);
    let files = logs(&s);
    assert!(files.len() >= 2, "a restart starts a new log file: {files:?}");
    let older = &files[files.len() - 2].1;
    let bytes = std::fs::read(older).expect("read the older log");
    let last = batches(&bytes).last().cloned().expect("batches");
    let f = std::fs::OpenOptions::new().write(true).open(older).expect("open");
    f.set_len(((last.start + last.used_end) / 2) as u64).expect("truncate");

    let (status, stderr) = run_expecting_exit(&s, &[]);
    assert!(!status.success(), "start-up must refuse a damaged older log");
    assert!(stderr.contains(&older.display().to_string()), "the message names the file:\n{stderr}");
    assert!(stderr.contains("not the newest"), "the message says why it is not a torn write:\n{stderr}");
}
