//! Operator tools behind `zoocore log-dump`, `zoocore snapshot-dump` and
//! `zoocore purge`: print a log's transactions or a snapshot's contents,
//! verifying every checksum on the way.

use std::fmt::Write as _;
use std::path::Path;

use crate::proto::op;
use crate::storage::log_format::{decode_file_header, scan_log, Tail};
use crate::storage::snapshot_format::read_snapshot;
use crate::storage::txn::{LoggedTxn, Txn};

/// Prints every transaction of a log file; Err if a checksum fails.
pub fn log_dump(path: &Path, out: &mut String) -> Result<(), String> {
    let bytes = bytes::Bytes::from(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
    let header = decode_file_header(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let scan = scan_log(&bytes, header.block_size).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = writeln!(
        out,
        "{}: zoocore log, block size {}, first zxid 0x{:x}, {} transactions",
        path.display(),
        header.block_size,
        header.first_zxid,
        scan.records.len()
    );
    for r in &scan.records {
        match LoggedTxn::decode(bytes.slice(r.payload.clone())) {
            Ok(rec) => {
                let _ = writeln!(out, "{}", describe(&rec));
            }
            Err(e) => return Err(format!("{}: transaction 0x{:x} does not decode: {e}", path.display(), r.zxid)),
        }
    }
    match &scan.tail {
        Tail::Clean => {
            let _ = writeln!(out, "end of log at offset {} (checksums verified)", scan.valid_end);
            Ok(())
        }
        Tail::Torn { offset, reason } => {
            let _ = writeln!(out, "torn tail at offset {offset}: {reason} (the server cuts it at start-up)");
            Ok(())
        }
        Tail::Corrupt { offset, reason } => Err(format!("{}: corrupt at offset {offset}: {reason}", path.display())),
    }
}

fn describe(logged: &LoggedTxn) -> String {
    let h = &logged.header;
    let head = format!("zxid 0x{:x} time {} session 0x{:x} cxid {}", h.zxid, h.time_ms, h.session_id, h.cxid);
    format!("{head} {}", describe_txn(h.op, &logged.txn))
}

fn describe_txn(txn_op: i32, txn: &Txn) -> String {
    match txn {
        Txn::Create { path, data, ephemeral, parent_cversion, .. } => {
            let name = if txn_op == op::CREATE2 { "create2" } else { "create" };
            let kind = if *ephemeral { " ephemeral" } else { "" };
            format!("{name} {path}{kind} parentCVersion={parent_cversion} data={}", data_len(data.as_deref()))
        }
        Txn::CreateContainer { path, data, .. } => format!("createContainer {path} data={}", data_len(data.as_deref())),
        Txn::CreateTtl { path, data, ttl_ms, .. } => {
            format!("createTTL {path} ttl={ttl_ms} data={}", data_len(data.as_deref()))
        }
        Txn::Delete { path } if txn_op == op::DELETE_CONTAINER => format!("deleteContainer {path}"),
        Txn::Delete { path } => format!("delete {path}"),
        Txn::SetData { path, data, version } => {
            format!("setData {path} version={version} data={}", data_len(data.as_deref()))
        }
        Txn::SetAcl { path, acl, version } => format!("setACL {path} version={version} acl={acl:?}"),
        Txn::Check { path, version } => format!("check {path} version={version}"),
        Txn::Multi(subs) => {
            let inner: Vec<String> = subs.iter().map(|(t, sub)| describe_txn(*t, sub)).collect();
            format!("multi [{}]", inner.join("; "))
        }
        Txn::CreateSession { timeout_ms } => format!("createSession timeout={timeout_ms}"),
        Txn::CloseSession { paths_to_delete } => match paths_to_delete {
            Some(paths) => format!("closeSession deleting {paths:?}"),
            None => "closeSession".to_owned(),
        },
        Txn::Error { err } => format!("error {err}"),
    }
}

fn data_len(d: Option<&[u8]>) -> String {
    match d {
        None => "null".to_string(),
        Some(b) => format!("{} bytes", b.len()),
    }
}

/// Prints a snapshot's sessions and nodes; Err if its seal does not verify.
pub fn snapshot_dump(path: &Path, out: &mut String, with_data: bool) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let snap = read_snapshot(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = writeln!(
        out,
        "{}: zoocore snapshot at zxid 0x{:x}, {} sessions, {} nodes (seal verified)",
        path.display(),
        snap.last_zxid,
        snap.sessions.len(),
        snap.tree.node_count()
    );
    for (id, timeout) in &snap.sessions {
        let _ = writeln!(out, "session 0x{id:x} timeout={timeout}");
    }
    for (p, node) in snap.tree.iter() {
        let st = node.stat();
        let _ = write!(
            out,
            "{} czxid=0x{:x} mzxid=0x{:x} pzxid=0x{:x} version={} cversion={} aversion={} owner=0x{:x} dataLength={} numChildren={}",
            if p.is_empty() { "/" } else { p },
            st.czxid,
            st.mzxid,
            st.pzxid,
            st.version,
            st.cversion,
            st.aversion,
            node.stored_stat().ephemeral_owner,
            st.data_length,
            st.num_children
        );
        if with_data {
            match node.data() {
                None => out.push_str(" data=null"),
                Some(d) => {
                    let _ = write!(out, " data={:?}", String::from_utf8_lossy(d));
                }
            }
        }
        out.push('\n');
    }
    Ok(())
}
