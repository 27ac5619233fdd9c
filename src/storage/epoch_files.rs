//! The two ZAB epoch files, `currentEpoch` and `acceptedEpoch`, as Apache
//! ZooKeeper keeps them in the snapshot directory (`dataDir/version-2`), so a
//! data directory moves between zoocore and Apache unchanged.
//!
//! * Format: the epoch in ASCII decimal, no newline (Apache's
//!   `Long.toString`). Reading takes the first line and parses it as a
//!   signed 64-bit decimal, as `readLongFromFile` does; anything else is
//!   refused with the file's path in the message. Unlike Apache we also
//!   refuse a negative epoch (Apache never writes one; -1 is its "not read
//!   yet" marker).
//! * Writing is atomic: `<name>.tmp` is created, written, fsynced, renamed
//!   over `<name>`, then the directory is fsynced (Apache's
//!   `AtomicFileOutputStream` skips that last step; without it the rename
//!   itself may not survive a power cut).
//! * Start-up ([`reconcile_epochs`], Apache's `QuorumPeer.loadDataBase`): a
//!   missing file is created from the epoch of the last processed zxid; a
//!   `currentEpoch` older than that zxid is repaired from `currentEpoch.tmp`
//!   if an interrupted write left one; otherwise, if the zxid's epoch is at
//!   most `acceptedEpoch`, it is raised to the zxid's epoch (see
//!   [`reconcile_epochs`]; Apache refuses to start there), and it is fatal
//!   past `acceptedEpoch`; an `acceptedEpoch` below `currentEpoch` is fatal.
//!
//! Plain `std::fs`: this runs at start-up and at an epoch change, not on the
//! hot path. Parsing, formatting and the start-up rules are pure.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const CURRENT_EPOCH_FILE_NAME: &str = "currentEpoch";
pub const ACCEPTED_EPOCH_FILE_NAME: &str = "acceptedEpoch";

/// Suffix of the file written before the rename (Apache's TMP_EXTENSION),
/// the same so that either server can repair after the other crashed.
pub const EPOCH_TMP_SUFFIX: &str = ".tmp";

/// How much of an epoch file is read. An epoch is at most 20 characters; a
/// first line longer than this is garbage, not an epoch.
pub const EPOCH_FILE_READ_MAX_BYTES: usize = 4096;

#[derive(Debug)]
pub enum EpochFileError {
    /// The file's first line is not a non-negative decimal i64.
    Garbage {
        path: PathBuf,
        found: String,
    },
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `currentEpoch` is older than the epoch of the last logged zxid and
    /// no `currentEpoch.tmp` explains it.
    CurrentEpochBehindData {
        current_epoch: i64,
        last_processed_zxid: i64,
    },
    AcceptedBelowCurrent {
        accepted_epoch: i64,
        current_epoch: i64,
    },
}

impl std::fmt::Display for EpochFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EpochFileError::Garbage { path, found } => {
                write!(f, "{}: expected an epoch (decimal number), found {found:?}", path.display())
            }
            EpochFileError::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            EpochFileError::CurrentEpochBehindData { current_epoch, last_processed_zxid } => write!(
                f,
                "the current epoch {current_epoch:#x} is older than the last zxid {last_processed_zxid:#x} \
                 and there is no {CURRENT_EPOCH_FILE_NAME}{EPOCH_TMP_SUFFIX} to repair it from"
            ),
            EpochFileError::AcceptedBelowCurrent { accepted_epoch, current_epoch } => {
                write!(f, "the accepted epoch {accepted_epoch:#x} is less than the current epoch {current_epoch:#x}")
            }
        }
    }
}

impl std::error::Error for EpochFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EpochFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The file's bytes: the epoch in decimal, no newline.
pub fn format_epoch(epoch: i64) -> String {
    epoch.to_string()
}

/// Parses an epoch file's contents; `path` only names the file in errors.
pub fn parse_epoch(path: &Path, contents: &[u8]) -> Result<i64, EpochFileError> {
    // Java's readLine ends a line at \n, \r or \r\n.
    let line_end = contents.iter().position(|b| *b == b'\n' || *b == b'\r').unwrap_or(contents.len());
    let line = &contents[..line_end];
    let garbage = || EpochFileError::Garbage {
        path: path.to_owned(),
        found: String::from_utf8_lossy(&line[..line.len().min(64)]).into_owned(),
    };
    let text = std::str::from_utf8(line).map_err(|_| garbage())?;
    // i64::from_str accepts what Long.parseLong does for ASCII: an optional
    // sign and digits, no spaces.
    match text.parse::<i64>() {
        Ok(epoch) if epoch >= 0 => Ok(epoch),
        _ => Err(garbage()),
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> EpochFileError + 'a {
    move |source| EpochFileError::Io { op, path: path.to_owned(), source }
}

/// Reads `dir/name`; `Ok(None)` if it does not exist.
pub fn read_epoch_file(dir: &Path, name: &str) -> Result<Option<i64>, EpochFileError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let mut contents = Vec::new();
    file.take(EPOCH_FILE_READ_MAX_BYTES as u64).read_to_end(&mut contents).map_err(io_err("read", &path))?;
    parse_epoch(&path, &contents).map(Some)
}

/// Writes `dir/name` atomically: temp file, write, fsync, rename, fsync of
/// the directory. On failure the temp file is removed (best effort) and
/// the old file, if any, is untouched.
pub fn write_epoch_file(dir: &Path, name: &str, epoch: i64) -> Result<(), EpochFileError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{EPOCH_TMP_SUFFIX}"));
    let written = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(format_epoch(epoch).as_bytes()).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// What start-up found on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredEpochs {
    pub current: Option<i64>,
    /// `currentEpoch.tmp`, left by a write interrupted before its rename.
    pub current_tmp: Option<i64>,
    pub accepted: Option<i64>,
}

/// The epochs to run with, and the files start-up must (re)write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciledEpochs {
    pub current_epoch: i64,
    pub accepted_epoch: i64,
    /// `(file name, epoch)`, in order.
    pub writes: Vec<(&'static str, i64)>,
}

/// Apache's `loadDataBase` rules over what was found, given the last
/// processed zxid of the restored database.
pub fn reconcile_epochs(last_processed_zxid: i64, stored: StoredEpochs) -> Result<ReconciledEpochs, EpochFileError> {
    let epoch_of_zxid = crate::zab::packets::epoch_of(last_processed_zxid);
    let mut writes = Vec::new();
    let mut current_epoch = match stored.current {
        Some(e) => e,
        None => {
            // First start of a quorum server, or data from a standalone one.
            writes.push((CURRENT_EPOCH_FILE_NAME, epoch_of_zxid));
            epoch_of_zxid
        }
    };
    if epoch_of_zxid > current_epoch {
        match stored.current_tmp {
            // A write of currentEpoch interrupted before its rename, after
            // data of the new epoch reached disk: the tmp holds the new epoch.
            Some(tmp) => {
                current_epoch = tmp;
                writes.push((CURRENT_EPOCH_FILE_NAME, tmp));
            }
            // A learner that crashed mid-sync: it logs (and fsyncs) the
            // sync's txns before it writes the new currentEpoch, so that a
            // crash never leaves a currentEpoch promising history the log
            // lacks (ZOOKEEPER-4646). The txns came from a leader of an
            // epoch it accepted, so its history really reaches their epoch;
            // claiming exactly that (not the leader's newer epoch) keeps its
            // election vote honest. Found by the simulator (seed 435), where
            // Apache's rule left the server unable to start.
            None if stored.accepted.is_some_and(|accepted| epoch_of_zxid <= accepted) => {
                current_epoch = epoch_of_zxid;
                writes.push((CURRENT_EPOCH_FILE_NAME, epoch_of_zxid));
            }
            None => return Err(EpochFileError::CurrentEpochBehindData { current_epoch, last_processed_zxid }),
        }
    }
    let accepted_epoch = match stored.accepted {
        Some(e) => e,
        None => {
            writes.push((ACCEPTED_EPOCH_FILE_NAME, epoch_of_zxid));
            epoch_of_zxid
        }
    };
    if accepted_epoch < current_epoch {
        return Err(EpochFileError::AcceptedBelowCurrent { accepted_epoch, current_epoch });
    }
    Ok(ReconciledEpochs { current_epoch, accepted_epoch, writes })
}

/// Reads both files from `snap_dir` (dataDir/version-2), applies
/// [`reconcile_epochs`] and performs its writes.
pub fn load_epochs(snap_dir: &Path, last_processed_zxid: i64) -> Result<ReconciledEpochs, EpochFileError> {
    let current = read_epoch_file(snap_dir, CURRENT_EPOCH_FILE_NAME)?;
    let epoch_of_zxid = crate::zab::packets::epoch_of(last_processed_zxid);
    // The tmp file matters (and is parsed) only when currentEpoch is behind.
    let current_tmp = match current {
        Some(c) if c < epoch_of_zxid => {
            read_epoch_file(snap_dir, &format!("{CURRENT_EPOCH_FILE_NAME}{EPOCH_TMP_SUFFIX}"))?
        }
        _ => None,
    };
    let accepted = read_epoch_file(snap_dir, ACCEPTED_EPOCH_FILE_NAME)?;
    let reconciled = reconcile_epochs(last_processed_zxid, StoredEpochs { current, current_tmp, accepted })?;
    for (name, epoch) in &reconciled.writes {
        write_epoch_file(snap_dir, name, *epoch)?;
    }
    Ok(reconciled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::packets::make_zxid;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("/data/version-2/currentEpoch")
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("zoocore-epoch-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn format_is_bare_decimal_like_long_to_string() {
        assert_eq!(format_epoch(0), "0");
        assert_eq!(format_epoch(17), "17");
        assert_eq!(format_epoch(i64::MAX), "9223372036854775807");
    }

    #[test]
    fn parse_takes_the_first_line_as_java_readline_does() {
        assert_eq!(parse_epoch(p(), b"5").unwrap(), 5);
        assert_eq!(parse_epoch(p(), b"5\n").unwrap(), 5);
        assert_eq!(parse_epoch(p(), b"12\r\nignored").unwrap(), 12);
        assert_eq!(parse_epoch(p(), b"+3").unwrap(), 3);
    }

    #[test]
    fn parse_refuses_garbage_naming_the_file() {
        for bad in [&b""[..], b" 5", b"5 ", b"0x5", b"five", b"\xff\xfe", b"99999999999999999999", b"-1"] {
            let err = parse_epoch(p(), bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("/data/version-2/currentEpoch"), "{msg}");
            assert!(matches!(err, EpochFileError::Garbage { .. }));
        }
    }

    #[test]
    fn write_then_read_round_trips_and_leaves_no_tmp() {
        let dir = TempDir::new("rw");
        assert_eq!(read_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME).unwrap(), None);
        write_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME, 7).unwrap();
        write_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME, 8).unwrap();
        assert_eq!(fs::read(dir.0.join(ACCEPTED_EPOCH_FILE_NAME)).unwrap(), b"8");
        assert_eq!(read_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME).unwrap(), Some(8));
        assert!(!dir.0.join("acceptedEpoch.tmp").exists());
    }

    #[test]
    fn a_garbage_file_on_disk_is_reported_with_its_path() {
        let dir = TempDir::new("garbage");
        fs::write(dir.0.join(CURRENT_EPOCH_FILE_NAME), b"not an epoch").unwrap();
        let msg = read_epoch_file(&dir.0, CURRENT_EPOCH_FILE_NAME).unwrap_err().to_string();
        assert!(msg.contains(&dir.0.join(CURRENT_EPOCH_FILE_NAME).display().to_string()), "{msg}");
        assert!(msg.contains("not an epoch"), "{msg}");
    }

    #[test]
    fn first_start_creates_both_files_from_the_data_epoch() {
        let r = reconcile_epochs(make_zxid(3, 9), StoredEpochs::default()).unwrap();
        assert_eq!(r.current_epoch, 3);
        assert_eq!(r.accepted_epoch, 3);
        assert_eq!(r.writes, vec![(CURRENT_EPOCH_FILE_NAME, 3), (ACCEPTED_EPOCH_FILE_NAME, 3)]);
        // An empty database: epoch 0.
        let r = reconcile_epochs(0, StoredEpochs::default()).unwrap();
        assert_eq!((r.current_epoch, r.accepted_epoch), (0, 0));
    }

    #[test]
    fn stored_epochs_are_used_as_they_are() {
        let stored = StoredEpochs { current: Some(4), current_tmp: None, accepted: Some(5) };
        let r = reconcile_epochs(make_zxid(4, 2), stored).unwrap();
        assert_eq!((r.current_epoch, r.accepted_epoch), (4, 5));
        assert!(r.writes.is_empty());
    }

    #[test]
    fn current_epoch_behind_the_data_is_repaired_from_tmp_or_refused() {
        let behind = StoredEpochs { current: Some(2), current_tmp: Some(3), accepted: Some(3) };
        let r = reconcile_epochs(make_zxid(3, 1), behind).unwrap();
        assert_eq!(r.current_epoch, 3);
        assert_eq!(r.writes, vec![(CURRENT_EPOCH_FILE_NAME, 3)]);
        let past_accepted = StoredEpochs { current_tmp: None, ..behind };
        let err = reconcile_epochs(make_zxid(4, 1), past_accepted).unwrap_err();
        assert!(matches!(err, EpochFileError::CurrentEpochBehindData { current_epoch: 2, .. }), "{err}");
    }

    /// A learner crashed after logging a sync's txns (of epoch 3, from the
    /// leader of epoch 5 it accepted) and before writing currentEpoch.
    #[test]
    fn current_epoch_behind_data_of_an_accepted_epoch_is_raised_to_the_data() {
        let crashed_mid_sync = StoredEpochs { current: Some(1), current_tmp: None, accepted: Some(5) };
        let r = reconcile_epochs(make_zxid(3, 0x28), crashed_mid_sync).unwrap();
        assert_eq!(r.current_epoch, 3, "the epoch its history reaches, not the leader's");
        assert_eq!(r.accepted_epoch, 5);
        assert_eq!(r.writes, vec![(CURRENT_EPOCH_FILE_NAME, 3)]);
    }

    #[test]
    fn accepted_below_current_is_refused() {
        let stored = StoredEpochs { current: Some(5), current_tmp: None, accepted: Some(4) };
        let err = reconcile_epochs(make_zxid(5, 1), stored).unwrap_err();
        assert!(matches!(err, EpochFileError::AcceptedBelowCurrent { accepted_epoch: 4, current_epoch: 5 }));
    }

    #[test]
    fn load_epochs_writes_missing_files_and_repairs_from_tmp() {
        let dir = TempDir::new("load");
        let r = load_epochs(&dir.0, make_zxid(2, 5)).unwrap();
        assert_eq!((r.current_epoch, r.accepted_epoch), (2, 2));
        assert_eq!(read_epoch_file(&dir.0, CURRENT_EPOCH_FILE_NAME).unwrap(), Some(2));
        assert_eq!(read_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME).unwrap(), Some(2));
        // A crash left currentEpoch.tmp = 3 after epoch 3's txns were logged.
        fs::write(dir.0.join("currentEpoch.tmp"), b"3").unwrap();
        write_epoch_file(&dir.0, ACCEPTED_EPOCH_FILE_NAME, 3).unwrap();
        let r = load_epochs(&dir.0, make_zxid(3, 1)).unwrap();
        assert_eq!(r.current_epoch, 3);
        assert_eq!(read_epoch_file(&dir.0, CURRENT_EPOCH_FILE_NAME).unwrap(), Some(3));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(epoch in 0i64..=i64::MAX) {
            prop_assert_eq!(parse_epoch(p(), format_epoch(epoch).as_bytes()).unwrap(), epoch);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_epoch(p(), &bytes);
        }
    }
}
