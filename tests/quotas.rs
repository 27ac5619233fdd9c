//! Quotas over TCP with the project's client: limits set by writing the
//! nodes zkCli's `setquota` writes, `enforceQuota=true` hard limits refusing
//! creates and setData with QuotaExceeded (alone and inside a multi) and
//! changing nothing, a soft limit allowed, the `zookeeper_stats` text after
//! creates, deletes and setData, the mntr figures, and the usage after a
//! restart that loads a snapshot.

mod common;

use std::time::Duration;

use common::{create_op, wait_until, ServerOptions, TestServer};
use zoocore::client::{Client, ClientError};
use zoocore::proto::records::*;
use zoocore::proto::types::{open_acl_unsafe, CreateMode, ErrorCode};

const T: Duration = Duration::from_secs(10);

fn start(extra: &str) -> TestServer {
    TestServer::start_with(ServerOptions { extra_config: extra.to_owned(), ..ServerOptions::default() })
}

fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET /metrics from the Prometheus listener on `port`: the body.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

fn create(c: &Client, path: &str, data: &[u8]) -> Result<String, ClientError> {
    c.create(path, data, &open_acl_unsafe(), CreateMode::Persistent)
}

/// What zkCli's `setquota` does for a new quota on `path`: the quota
/// directory's parents, the limits node, then the stats node with zeros.
fn set_quota(c: &Client, path: &str, limits: &str) {
    let mut dir = String::from("/zookeeper/quota");
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir.push('/');
        dir.push_str(part);
        if c.exists(&dir, false).unwrap().is_none() {
            create(c, &dir, b"").unwrap();
        }
    }
    create(c, &format!("{dir}/zookeeper_limits"), limits.as_bytes()).unwrap();
    create(c, &format!("{dir}/zookeeper_stats"), b"count=0,bytes=0").unwrap();
}

fn stats(c: &Client, path: &str) -> String {
    let (data, _) = c.get_data(&format!("/zookeeper/quota{path}/zookeeper_stats"), false).unwrap();
    String::from_utf8(data.unwrap_or_default().to_vec()).unwrap()
}

fn quota_exceeded(r: Result<impl std::fmt::Debug, ClientError>) -> bool {
    matches!(r, Err(ClientError::Keeper(ErrorCode::QuotaExceeded)))
}

fn mntr_value(s: &TestServer, key: &str) -> Option<String> {
    s.four_letter("mntr").lines().find_map(|l| l.strip_prefix(&format!("{key}\t")).map(str::to_owned))
}

#[test]
fn hard_limits_refuse_and_change_nothing() {
    let metrics_port = unused_port();
    let s = start(&format!(
        "enforceQuota=true\n\
         metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={metrics_port}"
    ));
    let c = Client::connect(s.addr, T).unwrap();
    create(&c, "/q", b"ab").unwrap();
    create(&c, "/q/a", b"cd").unwrap();
    // The text zkCli 3.7+ writes for `setquota -N 4 -B 10 /q`.
    set_quota(&c, "/q", "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=4");
    assert_eq!(stats(&c, "/q"), "count=2,bytes=4");

    create(&c, "/q/b", b"ef").unwrap();
    create(&c, "/q/b/c", b"").unwrap();
    assert_eq!(stats(&c, "/q"), "count=4,bytes=6");

    // Count: a fifth node is refused and nothing changes.
    let before = c.get_data("/q/b", false).unwrap().1;
    assert!(quota_exceeded(create(&c, "/q/b/d", b"")));
    assert_eq!(c.exists("/q/b/d", false).unwrap(), None);
    assert_eq!(c.get_data("/q/b", false).unwrap().1, before, "the parent's cversion and pzxid stay");
    assert_eq!(stats(&c, "/q"), "count=4,bytes=6");

    // Bytes: 6 - 2 + 7 > 10 is refused, 6 - 2 + 6 = 10 is allowed.
    assert!(quota_exceeded(c.set_data("/q/b", b"1234567", -1)));
    assert_eq!(c.get_data("/q/b", false).unwrap().0.as_deref(), Some(&b"ef"[..]));
    c.set_data("/q/b", b"123456", -1).unwrap();
    assert_eq!(stats(&c, "/q"), "count=4,bytes=10");

    // Deletes free room; a multi that needs more than is free fails whole.
    c.delete("/q/b/c", -1).unwrap();
    assert_eq!(stats(&c, "/q"), "count=3,bytes=10");
    let results = c.multi(vec![create_op("/q/x", b""), create_op("/q/y", b"")]).unwrap();
    assert_eq!(
        results,
        vec![MultiResult::Error(ErrorCode::Ok.code()), MultiResult::Error(ErrorCode::QuotaExceeded.code())]
    );
    assert_eq!(c.exists("/q/x", false).unwrap(), None);
    assert_eq!(stats(&c, "/q"), "count=3,bytes=10");
    // One fits.
    let results = c.multi(vec![create_op("/q/x", b"")]).unwrap();
    assert!(matches!(&results[..], [MultiResult::Create { path }] if path == "/q/x"), "{results:?}");
    assert_eq!(stats(&c, "/q"), "count=4,bytes=10");

    // Outside the quota nothing is limited.
    create(&c, "/free", b"0123456789abcdef").unwrap();

    assert_eq!(mntr_value(&s, "zk_q_quota_count_limit_per_namespace").as_deref(), Some("4"));
    assert_eq!(mntr_value(&s, "zk_q_quota_bytes_limit_per_namespace").as_deref(), Some("10"));
    assert_eq!(mntr_value(&s, "zk_q_quota_count_usage_per_namespace").as_deref(), Some("4"));
    assert_eq!(mntr_value(&s, "zk_q_quota_bytes_usage_per_namespace").as_deref(), Some("10"));
    // Refused: the create, the setData and the multi's create.
    assert_eq!(mntr_value(&s, "zk_q_quota_exceeded_error_per_namespace").as_deref(), Some("3"));
    let body = metrics(metrics_port);
    for line in [
        "quota_count_limit_per_namespace{key=\"q\"} 4",
        "quota_bytes_usage_per_namespace{key=\"q\"} 10",
        "quota_exceeded_error_per_namespace{key=\"q\"} 3",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} not in:\n{body}");
    }

    // Deleting the limits node lifts the quota.
    c.delete("/zookeeper/quota/q/zookeeper_limits", -1).unwrap();
    create(&c, "/q/z", b"0123456789").unwrap();
    assert_eq!(stats(&c, "/q"), "count=4,bytes=10", "no longer kept");
}

#[test]
fn soft_limits_allow_and_usage_is_kept_without_enforcement() {
    let s = start("enforceQuota=true");
    let c = Client::connect(s.addr, T).unwrap();
    create(&c, "/soft", b"").unwrap();
    // `setquota -n 1 -b 1 /soft`: soft limits, which only log.
    set_quota(&c, "/soft", "count=1,bytes=1=;byteHardLimit=-1;countHardLimit=-1");
    create(&c, "/soft/a", b"over").unwrap();
    assert_eq!(stats(&c, "/soft"), "count=2,bytes=4");
    assert!(wait_until(T, || s.log().contains("Quota exceeded: /soft")), "{}", s.log());
    assert_eq!(mntr_value(&s, "zk_soft_quota_exceeded_error_per_namespace"), None);

    // Without enforceQuota a hard limit is not enforced, but still counted.
    let lax = start("");
    let c = Client::connect(lax.addr, T).unwrap();
    create(&c, "/h", b"").unwrap();
    set_quota(&c, "/h", "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=1");
    create(&c, "/h/a", b"x").unwrap();
    assert_eq!(stats(&c, "/h"), "count=2,bytes=1");
}

#[test]
fn usage_survives_a_restart_and_is_recomputed_from_a_snapshot() {
    // snapCount=2: a snapshot after every few txns.
    let mut s = start("enforceQuota=true\nsnapCount=2");
    let c = Client::connect(s.addr, T).unwrap();
    create(&c, "/r", b"").unwrap();
    set_quota(&c, "/r", "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3");
    create(&c, "/r/a", b"abc").unwrap();
    // A client overwrites the stats; Apache recomputes them when it loads
    // a snapshot, so zoocore must too.
    let junk = c.set_data("/zookeeper/quota/r/zookeeper_stats", b"count=0,bytes=0", -1).unwrap();
    let snapshot_dir = s.dir.join("data").join("zoocore");
    let mut n = 0;
    let snapshotted = wait_until(Duration::from_secs(30), || {
        // More writes (outside the quota) until a snapshot covers the junk.
        n += 1;
        create(&c, &format!("/pad{n}"), b"").unwrap();
        std::fs::read_dir(&snapshot_dir).into_iter().flatten().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("snapshot.")
                .and_then(|z| i64::from_str_radix(z, 16).ok())
                .is_some_and(|zxid| zxid >= junk.mzxid)
        })
    });
    assert!(snapshotted, "no snapshot after zxid {:#x}; log:\n{}", junk.mzxid, s.log());
    drop(c);
    s.kill9();
    s.restart();
    let c = Client::connect(s.addr, T).unwrap();
    assert_eq!(stats(&c, "/r"), "count=2,bytes=3");
    create(&c, "/r/b", b"").unwrap();
    assert_eq!(stats(&c, "/r"), "count=3,bytes=3");
    assert!(quota_exceeded(create(&c, "/r/c", b"")));

    // Replaying the log after the snapshot keeps the usage too.
    drop(c);
    s.kill9();
    s.restart();
    let c = Client::connect(s.addr, T).unwrap();
    assert_eq!(stats(&c, "/r"), "count=3,bytes=3");
    assert!(quota_exceeded(create(&c, "/r/c", b"")));
}
