//! The names of zoocore's own files in `<dataDir>/zoocore` and
//! `<dataLogDir>/zoocore`, shared by production and the simulator (which
//! names its simulated files the same way in its traces).

/// A log file is named by the first zxid it holds: `log.<hex>`.
pub fn log_file_name(first_zxid: i64) -> String {
    format!("log.{first_zxid:x}")
}

/// A finished snapshot is named by its last zxid: `snapshot.<hex>`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// The temporary name a snapshot is written under before its rename:
/// `snapshot.<hex>.tmp` (never read by recovery).
pub fn unfinished_snapshot_file_name(zxid: i64) -> String {
    format!("{}{UNFINISHED_SNAPSHOT_SUFFIX}", snapshot_file_name(zxid))
}

const SNAPSHOT_PREFIX: &str = "snapshot.";
const UNFINISHED_SNAPSHOT_SUFFIX: &str = ".tmp";

/// Any `snapshot.*.tmp`: what start-up removes (a crash left it mid-write).
pub fn is_unfinished_snapshot_name(name: &str) -> bool {
    name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(UNFINISHED_SNAPSHOT_SUFFIX)
}

/// The zxid of an unfinished snapshot's name (`snapshot.<hex>.tmp`), None
/// for any other name.
pub fn unfinished_snapshot_zxid(name: &str) -> Option<i64> {
    let hex = name.strip_prefix(SNAPSHOT_PREFIX)?.strip_suffix(UNFINISHED_SNAPSHOT_SUFFIX)?;
    i64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(log_file_name(0x1_0000_0001), "log.100000001");
        assert_eq!(snapshot_file_name(10), "snapshot.a");
        assert_eq!(unfinished_snapshot_file_name(10), "snapshot.a.tmp");
        assert_eq!(unfinished_snapshot_zxid("snapshot.a.tmp"), Some(10));
        assert_eq!(unfinished_snapshot_zxid("snapshot.a"), None);
        assert_eq!(unfinished_snapshot_zxid("snapshot.zz.tmp"), None);
        assert!(is_unfinished_snapshot_name("snapshot.zz.tmp"));
        assert!(!is_unfinished_snapshot_name("snapshot.a"));
        assert!(!is_unfinished_snapshot_name("log.a.tmp"));
    }
}
