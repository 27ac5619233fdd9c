//! Operator tools behind `zoocore log-dump`, `zoocore snapshot-dump` and
//! `zoocore purge`: print a log's transactions or a snapshot's contents,
//! verifying every checksum on the way.

use std::fmt::Write as _;
use std::path::Path;

use crate::storage::log_format::{decode_file_header, scan_log, Tail};
use crate::storage::snapshot_format::read_snapshot;
use crate::storage::txn::{TxnBody, TxnRecord};
use crate::tree::WriteOp;

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
        match TxnRecord::decode(bytes.slice(r.payload.clone())) {
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

fn describe(rec: &TxnRecord) -> String {
    let head = format!("zxid 0x{:x} time {} session 0x{:x}", rec.zxid, rec.time_ms, rec.session_id);
    match &rec.body {
        TxnBody::CreateSession { timeout_ms } => format!("{head} createSession timeout={timeout_ms}"),
        TxnBody::CloseSession => format!("{head} closeSession"),
        TxnBody::DeleteContainer { path } => format!("{head} deleteContainer {path}"),
        TxnBody::Write { op, write, err, .. } => {
            let outcome = if *err == 0 { String::new() } else { format!(" -> error {err}") };
            format!("{head} op={op} {}{outcome}", describe_write(write))
        }
    }
}

fn describe_write(w: &WriteOp) -> String {
    match w {
        WriteOp::Create { path, data, flags, ttl, .. } => {
            let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
            format!("create {path} flags={flags}{ttl} data={}", data_len(data.as_deref()))
        }
        WriteOp::Delete { path, version } => format!("delete {path} version={version}"),
        WriteOp::SetData { path, data, version } => {
            format!("setData {path} version={version} data={}", data_len(data.as_deref()))
        }
        WriteOp::SetAcl { path, acl, version } => format!("setACL {path} version={version} acl={acl:?}"),
        WriteOp::Check { path, version } => format!("check {path} version={version}"),
        WriteOp::Multi(ops) => {
            let inner: Vec<String> = ops.iter().map(describe_write).collect();
            format!("multi [{}]", inner.join("; "))
        }
        WriteOp::DeleteContainer { path } => format!("deleteContainer {path}"),
        WriteOp::CloseSession => "closeSession".to_string(),
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
