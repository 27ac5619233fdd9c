//! The files the Debian package installs (packaging/debian/), checked
//! without installing anything: the default zoo.cfg is read whole (no key
//! logged as ignored) with the values the README and the unit promise, and
//! the unit runs what the binary's CLI accepts. scripts/test-package.sh
//! installs and runs the package itself (as root, in CI).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use zoocore::config::Config;

fn packaging_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian").join(name)
}

#[test]
fn packaged_zoo_cfg_is_read_whole_with_the_documented_values() {
    let path = packaging_file("zoo.cfg");
    let text = std::fs::read_to_string(&path).expect("packaging/debian/zoo.cfg");
    let (c, warnings) = Config::parse(&text, "zoo.cfg").expect("the packaged zoo.cfg parses");
    assert!(warnings.is_empty(), "the packaged zoo.cfg has keys zoocore ignores: {warnings:?}");
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/zoocore"));
    assert_eq!(c.data_log_dir, c.data_dir);
    assert_eq!(c.client_port, 2181);
    // No clientPortAddress: every interface, as Apache ZooKeeper.
    assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert!(!c.client_port_address_set);
    assert_eq!(c.tick_time_ms, 2000);
    for word in ["srvr", "ruok", "mntr"] {
        assert!(c.fourlw_enabled(word), "{word} is enabled");
    }
    for word in ["dump", "cons", "wchp", "stat"] {
        assert!(!c.fourlw_enabled(word), "{word} stays off, as in Apache's default");
    }
    assert!(c.autopurge_purge_interval_ms > 0, "old snapshots are purged");
    assert!(c.quorum.is_none() && c.servers.is_empty(), "standalone until the operator adds server lines");
}

#[test]
fn unit_runs_the_server_subcommand_on_the_packaged_config() {
    let unit = std::fs::read_to_string(packaging_file("zoocore.service")).expect("zoocore.service");
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart=");
    assert_eq!(exec, "/usr/bin/zoocore server --config /etc/zoocore/zoo.cfg");
    for line in ["User=zoocore", "LimitMEMLOCK=infinity", "Restart=on-failure", "KillSignal=SIGTERM"] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}");
    }
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")), "the unit sets LimitNOFILE");
    // The CLI accepts what ExecStart passes (--help parses the same args).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config", "/etc/zoocore/zoo.cfg", "--help"])
        .output()
        .expect("run zoocore");
    assert!(out.status.success(), "zoocore server --config PATH is a valid command line: {out:?}");
}
