//! TLS for the blocking client (rustls, ring provider).
//!
//! A rustls connection is one state machine for both directions, so it
//! cannot be split the way a `TcpStream` is (`try_clone`). Here the
//! connection sits in one `Mutex` shared by the writers and the reader
//! thread, and the lock is held only for the CPU work, never across a
//! socket call:
//! - writers (already serialised by the client's send lock) encrypt under
//!   the lock into their own buffer, release it, then write the records to
//!   the socket; so the socket sees records in the order they were sealed;
//! - the reader blocks in `read` on its clone of the socket without the
//!   lock, then takes it to feed the bytes in and take plaintext out.
//!
//! Records the reader's side produces (a KeyUpdate answer) stay queued in
//! the connection and leave with the next write. The cost against
//! plaintext, on the client: one lock round per read and per write, a copy
//! of each frame into and out of rustls, and the cipher.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::lock;
use crate::server::tls::pem_blocks;

/// Largest PEM file the client reads (a CA bundle, a certificate, a key).
const PEM_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Ciphertext read from the socket in one `read` call.
const TLS_READ_CHUNK_BYTES: usize = 32 * 1024;
/// How long closing may wait to send close_notify.
const CLOSE_NOTIFY_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a TLS client needs to connect: rustls's settings and the name the
/// server's certificate must carry (an IP SAN for loopback servers).
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<crate::server::tls::PemBlock>, String> {
    let fail = |why: String| format!("{what} {}: {why}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    if meta.len() > PEM_FILE_MAX_BYTES {
        return Err(fail(format!("larger than {PEM_FILE_MAX_BYTES} bytes")));
    }
    let data = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let blocks = pem_blocks(&String::from_utf8_lossy(&data)).map_err(fail)?;
    if blocks.is_empty() {
        return Err(fail("no PEM block in it".into()));
    }
    Ok(blocks)
}

impl TlsSettings {
    /// Settings from PEM files: the CA certificates that the server's chain
    /// must lead to, and optionally the client's certificate chain and
    /// private key (PKCS#8, PKCS#1 or SEC1, unencrypted) for client auth.
    /// `server_name` is what the server certificate is checked against.
    pub fn from_pem_files(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: ServerName<'static>,
    ) -> Result<TlsSettings, String> {
        let mut roots = RootCertStore::empty();
        for block in read_pem("--tls-ca", ca)?.into_iter().filter(|b| b.label.ends_with("CERTIFICATE")) {
            roots
                .add(CertificateDer::from(block.der))
                .map_err(|e| format!("--tls-ca {}: a certificate cannot be trusted: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("--tls-ca {}: holds no certificate", ca.display()));
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS protocol versions: {e}"))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let chain: Vec<CertificateDer<'static>> = read_pem("--tls-cert", cert_path)?
                    .into_iter()
                    .filter(|b| b.label.ends_with("CERTIFICATE"))
                    .map(|b| CertificateDer::from(b.der))
                    .collect();
                if chain.is_empty() {
                    return Err(format!("--tls-cert {}: holds no certificate", cert_path.display()));
                }
                let key_block = read_pem("--tls-key", key_path)?
                    .into_iter()
                    .find(|b| b.label.ends_with("PRIVATE KEY") && !b.label.starts_with("ENCRYPTED"))
                    .ok_or_else(|| format!("--tls-key {}: holds no unencrypted private key", key_path.display()))?;
                let key = PrivateKeyDer::try_from(key_block.der)
                    .map_err(|e| format!("--tls-key {}: unusable private key: {e}", key_path.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!(
                        "--tls-cert {} / --tls-key {}: not a usable pair: {e}",
                        cert_path.display(),
                        key_path.display()
                    )
                })?
            }
        };
        Ok(TlsSettings { config: Arc::new(config), server_name })
    }

    /// Settings from a rustls config built by the caller (tests).
    pub fn from_config(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> TlsSettings {
        TlsSettings { config, server_name }
    }

    /// The server name for a server at `ip` (its certificate needs an IP SAN).
    pub fn ip_name(ip: IpAddr) -> ServerName<'static> {
        ServerName::IpAddress(ip.into())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Runs the handshake on `sock` to its end, blocking. `sock` should have a
/// read timeout so that a server that never answers cannot hang the caller.
pub(super) fn handshake(settings: &TlsSettings, sock: &mut TcpStream) -> io::Result<ClientConnection> {
    let mut conn = ClientConnection::new(settings.config.clone(), settings.server_name.clone()).map_err(tls_error)?;
    // Frames of any size are written whole (the caller bounds them); the
    // default limit would make `write_all` fail past 64 KiB of records.
    conn.set_buffer_limit(None);
    while conn.is_handshaking() {
        let (read, _) = conn.complete_io(sock)?;
        if read == 0 && conn.is_handshaking() && !conn.wants_write() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed during the TLS handshake"));
        }
    }
    Ok(conn)
}

/// A blocking `Read + Write` over a connection during the session
/// handshake (before the reader thread exists).
pub(super) struct HandshakeStream<'a> {
    pub conn: &'a mut ClientConnection,
    pub sock: &'a mut TcpStream,
}

impl Read for HandshakeStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        rustls::Stream::new(self.conn, self.sock).read(buf)
    }
}

impl Write for HandshakeStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(self.conn, self.sock).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        rustls::Stream::new(self.conn, self.sock).flush()
    }
}

/// The writing side: lives in the client's `SendState`, under its lock.
pub(super) struct TlsWriter {
    conn: Arc<Mutex<ClientConnection>>,
    /// Sealed records waiting for the socket; reused between writes.
    records: Vec<u8>,
}

impl TlsWriter {
    /// Seals `plaintext` (and anything queued before it) and writes the
    /// records to `sock`.
    pub fn write_all(&mut self, sock: &mut TcpStream, plaintext: &[u8]) -> io::Result<()> {
        self.records.clear();
        {
            let mut conn = lock(&self.conn);
            if !plaintext.is_empty() {
                conn.writer().write_all(plaintext)?;
            }
            while conn.wants_write() {
                conn.write_tls(&mut self.records)?;
            }
        }
        sock.write_all(&self.records)
    }

    /// Queues close_notify and sends it, best effort: a server that has
    /// stopped reading cannot hold the closing caller for more than
    /// `CLOSE_NOTIFY_WRITE_TIMEOUT`.
    pub fn close_notify(&mut self, sock: &mut TcpStream) {
        lock(&self.conn).send_close_notify();
        let _ = sock.set_write_timeout(Some(CLOSE_NOTIFY_WRITE_TIMEOUT));
        let _ = self.write_all(sock, &[]);
    }
}

/// The reading side, owned by the reader thread.
pub(super) struct TlsReader {
    conn: Arc<Mutex<ClientConnection>>,
    pub sock: TcpStream,
    ciphertext: Box<[u8]>,
    /// `ciphertext[fed..filled]` is read from the socket, not yet in rustls.
    fed: usize,
    filled: usize,
}

impl TlsReader {
    pub fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

impl Read for TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut conn = lock(&self.conn);
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.fed < self.filled {
                    let n = conn.read_tls(&mut &self.ciphertext[self.fed..self.filled])?;
                    self.fed += n;
                    conn.process_new_packets().map_err(tls_error)?;
                    continue;
                }
            }
            // Nothing buffered: block on the socket without the lock.
            let n = self.sock.read(&mut self.ciphertext)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the TLS connection without close_notify",
                ));
            }
            self.fed = 0;
            self.filled = n;
        }
    }
}

/// Splits an established connection into its writer and reader halves.
pub(super) fn split(conn: ClientConnection, read_sock: TcpStream) -> (TlsWriter, TlsReader) {
    let conn = Arc::new(Mutex::new(conn));
    let writer = TlsWriter { conn: conn.clone(), records: Vec::new() };
    let reader = TlsReader {
        conn,
        sock: read_sock,
        ciphertext: vec![0u8; TLS_READ_CHUNK_BYTES].into_boxed_slice(),
        fed: 0,
        filled: 0,
    };
    (writer, reader)
}
