//! Durable storage formats, sans-IO: pure functions over byte slices and
//! `std::io::Write`. The glommio O_DIRECT IO (on the log thread) and the
//! recovery driver live in `server/`. docs/storage.md is the long form of this text.
//!
//! * [`apache`]: Apache ZooKeeper's own txn log file, snapshot file and SNAP
//!   stream, and its tree digest (for replication with Apache peers and for
//!   import/export).
//! * [`epoch_files`]: `currentEpoch` / `acceptedEpoch`, as Apache stores them.
//! * [`group_commit`]: which logged txns go into the next write + fdatasync
//!   (one write in flight; what arrives meanwhile goes next, together), and
//!   what is durable: the policy both the server and the simulator run.
//! * [`txn`]: the transaction in Apache ZooKeeper's serialization
//!   (TxnHeader + txn record + optional TxnDigest): what the log holds,
//!   what a PROPOSAL carries, what `DataTree::apply_txn` applies.
//! * [`log_format`]: the log file. Block 0 is a header (magic "ZCLG",
//!   version, block size, first zxid, crc32c). Each group-commit batch
//!   starts at a block boundary: a 32-byte header (magic "ZCBT", record
//!   count, byte length, first/last zxid, crc32c over the header and all
//!   records), then records `{crc32c, payload_len, zxid, payload}`, then
//!   zeros to the next block boundary. A block holding acknowledged records
//!   is never rewritten, so a torn write can only hit the batch in flight.
//!   `scan_log` returns the valid records and classifies what follows:
//!   Clean (zeros/EOF), Torn (a damaged last batch, nothing valid after:
//!   cut it), Corrupt (damage followed by valid data, or broken zxid order:
//!   stop unless repairing).
//! * [`file_names`]: `log.<hex>`, `snapshot.<hex>`, `snapshot.<hex>.tmp`.
//! * [`retention`] and [`truncate_plan`]: which files autopurge and a TRUNC
//!   remove or cut, decided over the listed names (and, for a TRUNC, the
//!   record zxids of the log files it reads); `server::snapshots`,
//!   `server::truncate` and the simulator's disk carry the plans out.
//! * [`snapshot_format`]: header (magic "ZCSN", version, last zxid, counts),
//!   the session table, an ACL table, every node parent-first with its data
//!   (null distinct from empty), ACL index and stored stat, then a trailer
//!   `{body length, crc32c of every preceding byte, "ZCSE"}`. Reading
//!   verifies the seal before parsing and rebuilds the tree with
//!   `tree::TreeLoader`.

pub mod apache;
pub mod epoch_files;
pub mod file_names;
pub mod group_commit;
pub mod log_format;
pub mod recovery;
pub mod retention;
pub mod snapshot_format;
pub mod truncate_plan;
pub mod txn;
