//! TLS between the servers: the election port (`election_net`) and the
//! learner -> leader quorum port (`quorum_net`), as Apache's `sslQuorum`,
//! `portUnification` and `ssl.quorum.*` (QuorumX509Util) set them up.
//!
//! Who owns what:
//! - `QuorumTransport::load` (start-up, blocking file reads) turns
//!   `config::QuorumTlsConfig` into a rustls client config (for dialling)
//!   and server config (for accepting), sharing tls.rs's store loaders, so
//!   a store that cannot be read fails start-up with an error naming its
//!   `ssl.quorum.*` key. Both sides present this server's certificate and
//!   check the peer's chain against the quorum trust store (mutual TLS;
//!   `ssl.quorum.clientAuth`, default need, says what an acceptor demands).
//! - `dial` / `accept` run the handshake on a fresh socket, bounded by
//!   [`QUORUM_TLS_HANDSHAKE_TIMEOUT`], and then check the peer's name as
//!   Apache's ZKTrustManager does for the quorum (both directions, unless
//!   `ssl.quorum.hostnameVerification=false`): the peer's IP against the
//!   certificate's IP subject alternative names, else the peer's
//!   reverse-resolved host name against its DNS names (the subject's CN
//!   when the certificate has neither kind). rustls checks the chain; the
//!   name check is ours because rustls knows only the name we dialled and,
//!   on the accepting side, nothing of the peer's address.
//! - `QuorumStream` is what the election and quorum code read and write:
//!   the bare socket, or tls.rs's `TlsStream` over it. A plaintext ensemble
//!   gets `QuorumStream::Plain` and pays one match per read or write.
//!
//! `portUnification=true` makes the listeners take both (the first byte
//! tells, as Apache's UnifiedServerSocket); with `sslQuorum=false` too, the
//! dialler still speaks plaintext: that is the first step of Apache's
//! rolling upgrade to quorum TLS.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::config::{ClientAuth, QuorumTlsConfig};
use crate::server::quorum_sasl::QuorumSasl;
use crate::server::tls::{
    crypto_provider, load_key_store, load_trust_store, protocol_versions, TlsStream, TLS_HANDSHAKE_RECORD_TYPE,
};

/// How long a quorum TLS handshake (with the first-byte wait of a unified
/// port) may take before the connection is dropped.
pub const QUORUM_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The loaded quorum TLS settings, shared by every quorum connection.
pub struct QuorumTls {
    client_config: Arc<ClientConfig>,
    server_config: Arc<ServerConfig>,
    hostname_verification: bool,
}

/// What the election and quorum ports speak: which way to dial, what to
/// accept. `Default` is plaintext both ways (Apache without `sslQuorum`).
#[derive(Clone, Default)]
pub struct QuorumTransport {
    /// Loaded when anything speaks TLS.
    tls: Option<Arc<QuorumTls>>,
    /// `sslQuorum`: dial with TLS.
    dial_tls: bool,
    /// `portUnification`: accept plaintext beside TLS.
    accept_plain_too: bool,
    /// Quorum SASL (`quorum.auth.*`, server::quorum_sasl), run by the
    /// election and quorum code after the TLS handshake.
    sasl: Option<Arc<QuorumSasl>>,
}

impl std::fmt::Debug for QuorumTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTransport")
            .field("tls_loaded", &self.tls.is_some())
            .field("dial_tls", &self.dial_tls)
            .field("accept_plain_too", &self.accept_plain_too)
            .field("sasl", &self.sasl.is_some())
            .finish()
    }
}

impl QuorumTransport {
    /// Reads the `ssl.quorum.*` stores when `sslQuorum` or `portUnification`
    /// is on; errors name the key.
    pub fn load(cfg: &QuorumTlsConfig) -> Result<QuorumTransport, String> {
        if !cfg.enabled() {
            return Ok(QuorumTransport::default());
        }
        let keys = &cfg.keys;
        if let Some(class) = &keys.context_supplier_class {
            return Err(format!("ssl.quorum.context.supplier.class {class}: zoocore cannot load Java classes; use ssl.quorum.keyStore.* and ssl.quorum.trustStore.*"));
        }
        if keys.crl || keys.ocsp {
            return Err(
                "ssl.quorum.crl / ssl.quorum.ocsp: zoocore does not check certificate revocation; set both to false"
                    .into(),
            );
        }
        if keys.trust_store.location.is_none() {
            return Err("ssl.quorum.trustStore.location is not set: quorum TLS checks every peer's certificate \
                        against the quorum trust store (Apache would fall back to the JVM's CAs; zoocore has none)"
                .into());
        }
        let provider = Arc::new(crypto_provider("ssl.quorum", keys)?);
        let versions = protocol_versions(keys);
        let (chain, key) = load_key_store("ssl.quorum", &keys.key_store)?;
        let roots = Arc::new(load_trust_store("ssl.quorum", &keys.trust_store, ClientAuth::Need)?);
        let trust_location = keys.trust_store.location.as_deref().unwrap_or_default();

        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("ssl.quorum.enabledProtocols / ssl.quorum.ciphersuites: {e}"))?;
        let server = match keys.client_auth {
            ClientAuth::None => server.with_no_client_auth(),
            auth => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                let verifier = if auth == ClientAuth::Want { verifier.allow_unauthenticated() } else { verifier };
                let verifier =
                    verifier.build().map_err(|e| format!("ssl.quorum.trustStore.location {trust_location}: {e}"))?;
                server.with_client_cert_verifier(verifier)
            }
        };
        let key_location = keys.key_store.location.as_deref().unwrap_or_default();
        let pair_error = |e: rustls::Error| {
            format!(
                "ssl.quorum.keyStore.location {key_location}: the key and certificate do not make a usable pair: {e}"
            )
        };
        let server_config = server.with_single_cert(chain.clone(), key.clone_key()).map_err(pair_error)?;

        let chain_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("ssl.quorum.trustStore.location {trust_location}: {e}"))?;
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("ssl.quorum.enabledProtocols / ssl.quorum.ciphersuites: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainThenOurNameCheck(chain_verifier)))
            .with_client_auth_cert(chain, key)
            .map_err(pair_error)?;
        let tls = QuorumTls {
            client_config: Arc::new(client_config),
            server_config: Arc::new(server_config),
            hostname_verification: keys.hostname_verification,
        };
        tracing::info!(
            ssl_quorum = cfg.ssl_quorum,
            port_unification = cfg.port_unification,
            hostname_verification = keys.hostname_verification,
            client_auth = ?keys.client_auth,
            "quorum TLS configured"
        );
        Ok(QuorumTransport {
            tls: Some(Arc::new(tls)),
            dial_tls: cfg.ssl_quorum,
            accept_plain_too: cfg.port_unification,
            sasl: None,
        })
    }

    /// The same transport with quorum SASL on every connection (or none).
    pub fn with_sasl(mut self, sasl: Option<Arc<QuorumSasl>>) -> QuorumTransport {
        self.sasl = sasl;
        self
    }

    /// Quorum SASL, when `quorum.auth.enableSasl` is on.
    pub fn sasl(&self) -> Option<&QuorumSasl> {
        self.sasl.as_deref()
    }

    /// Whether a listener must look at (or handshake on) a connection
    /// before the protocol reads it: TLS or quorum SASL.
    pub fn accepts_only_plaintext(&self) -> bool {
        self.tls.is_none() && self.sasl.is_none()
    }

    /// Makes a freshly connected socket to `peer` ready for the protocol:
    /// as it is, or after a TLS handshake and the peer name check.
    pub async fn dial(&self, tcp: TcpStream, peer: SocketAddr) -> io::Result<QuorumStream> {
        let tls = match &self.tls {
            Some(tls) if self.dial_tls => tls,
            _ => return Ok(QuorumStream::Plain(tcp)),
        };
        // rustls sends no SNI for an IP address; the name check is below.
        let name = ServerName::IpAddress(peer.ip().into());
        let connection = ClientConnection::new(tls.client_config.clone(), name).map_err(io::Error::other)?;
        let mut stream = TlsStream::new(tcp, Connection::Client(connection));
        with_timeout(stream.handshake()).await?;
        if tls.hostname_verification {
            check_peer_name(&stream, peer.ip())?;
        }
        Ok(QuorumStream::Tls(Box::new(stream)))
    }

    /// Makes an accepted socket ready for the protocol: plaintext (when
    /// allowed), or a TLS handshake and the peer name check.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<QuorumStream> {
        let Some(tls) = &self.tls else { return Ok(QuorumStream::Plain(tcp)) };
        let handshake = async {
            if self.accept_plain_too {
                let mut first = [0u8; 1];
                if tcp.peek(&mut first).await? == 0 || first[0] != TLS_HANDSHAKE_RECORD_TYPE {
                    return Ok(QuorumStream::Plain(tcp));
                }
            }
            let peer = tcp.peer_addr()?;
            let connection = ServerConnection::new(tls.server_config.clone()).map_err(io::Error::other)?;
            let mut stream = TlsStream::new(tcp, Connection::Server(connection));
            stream.handshake().await?;
            // A peer without a certificate got this far only with clientAuth want/none.
            if tls.hostname_verification && stream.peer_leaf_certificate().is_some() {
                check_peer_name(&stream, peer.ip())?;
            }
            Ok(QuorumStream::Tls(Box::new(stream)))
        };
        with_timeout(handshake).await
    }
}

async fn with_timeout<T>(work: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    futures_lite::future::or(work, async {
        glommio::timer::sleep(QUORUM_TLS_HANDSHAKE_TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the TLS handshake took longer than {QUORUM_TLS_HANDSHAKE_TIMEOUT:?}"),
        ))
    })
    .await
}

fn check_peer_name(stream: &TlsStream, peer: IpAddr) -> io::Result<()> {
    let cert = stream
        .peer_leaf_certificate()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the peer showed no certificate"))?;
    verify_peer_name(cert, peer, reverse_lookup).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{why} (ssl.quorum.hostnameVerification=false turns this check off)"),
        )
    })
}

/// rustls's chain check (signatures, validity, the trust store) without its
/// name check, which `check_peer_name` does after the handshake the way
/// Apache does it (rustls would only match the IP we dialled).
#[derive(Debug)]
struct ChainThenOurNameCheck(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainThenOurNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last, so a name
        // error means the chain is good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Apache's ZKHostnameVerifier as ZKTrustManager uses it: the peer's IP
/// must be one of the certificate's IP subject alternative names, or its
/// host name (from `reverse`) one of the DNS names; a certificate with no
/// IP or DNS names is matched by its subject's CN instead.
pub fn verify_peer_name(
    cert_der: &[u8],
    peer: IpAddr,
    reverse: impl FnOnce(IpAddr) -> Option<String>,
) -> Result<(), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("the peer's certificate does not parse: {e}"))?;
    let mut ips = Vec::new();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(v6));
                    }
                }
                GeneralName::DNSName(name) => dns_names.push(name.to_string()),
                _ => {}
            }
        }
    }
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let peer = canonical(peer);
    let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    let has_alt_names = !ips.is_empty() || !dns_names.is_empty();
    let ip_matches = if has_alt_names {
        ips.iter().any(|ip| canonical(*ip) == peer)
    } else {
        common_name.as_deref() == Some(peer.to_string().as_str())
    };
    if ip_matches {
        return Ok(());
    }
    let host = reverse(peer);
    if let Some(host) = &host {
        let host_matches = if has_alt_names {
            dns_names.iter().any(|pattern| dns_name_matches(pattern, host))
        } else {
            common_name.as_deref().is_some_and(|cn| dns_name_matches(cn, host))
        };
        if host_matches {
            return Ok(());
        }
    }
    let names = if has_alt_names {
        let mut all: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        all.extend(dns_names.iter().map(|d| format!("DNS:{d}")));
        format!("its subject alternative names are {}", all.join(", "))
    } else {
        format!(
            "it has no IP or DNS subject alternative names and its CN is {}",
            common_name.as_deref().unwrap_or("(none)")
        )
    };
    Err(format!(
        "the peer's certificate does not name its address {peer}{}: {names}",
        host.map(|h| format!(" or host name {h}")).unwrap_or_default()
    ))
}

/// `*.example.com` matches one leftmost label; otherwise equal, ignoring
/// case and a trailing dot.
fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(rest) => host.split_once('.').is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// The peer's host name, as Java's InetAddress.getHostName (the resolver's
/// reverse lookup: /etc/hosts, then DNS). Blocking, but asked only when the
/// certificate does not name the peer's IP.
fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let addr = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: addr is a valid sockaddr of addr.len() bytes; host is a
    // writable buffer of the length passed; no service buffer is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast(),
            addr.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo wrote a NUL-terminated string into host.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    name.to_str().ok().map(str::to_owned)
}

/// An election or quorum connection after `dial` / `accept`.
pub enum QuorumStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl QuorumStream {
    /// The socket itself (address, fd, options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            QuorumStream::Plain(tcp) => tcp,
            QuorumStream::Tls(tls) => tls.tcp(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, QuorumStream::Tls(_))
    }
}

impl AsyncRead for QuorumStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            QuorumStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            QuorumStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for QuorumStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            QuorumStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            QuorumStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            QuorumStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            QuorumStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            QuorumStream::Plain(tcp) => Pin::new(tcp).poll_close(cx),
            QuorumStream::Tls(tls) => Pin::new(tls.as_mut()).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn the_peer_ip_must_be_an_ip_alt_name() {
        let c = cert(&["127.0.0.2", "zk2.example"], "zk2");
        assert_eq!(verify_peer_name(&c, LOCAL, |_| None), Ok(()));
        let e = verify_peer_name(&c, "127.0.0.3".parse().unwrap(), |_| None).unwrap_err();
        assert!(e.contains("127.0.0.3") && e.contains("IP:127.0.0.2") && e.contains("DNS:zk2.example"), "{e}");
        // An IPv4-mapped peer address is the same address.
        assert_eq!(verify_peer_name(&c, "::ffff:127.0.0.2".parse().unwrap(), |_| None), Ok(()));
    }

    #[test]
    fn else_its_host_name_a_dns_alt_name() {
        let c = cert(&["zk2.example", "*.zk.example"], "zk2");
        assert_eq!(verify_peer_name(&c, LOCAL, |_| Some("ZK2.example.".into())), Ok(()));
        assert_eq!(verify_peer_name(&c, LOCAL, |_| Some("a.zk.example".into())), Ok(()));
        assert!(verify_peer_name(&c, LOCAL, |_| Some("a.b.zk.example".into())).is_err());
        let e = verify_peer_name(&c, LOCAL, |_| Some("other".into())).unwrap_err();
        assert!(e.contains("host name other"), "{e}");
        // With alt names, the CN is not consulted.
        let c = cert(&["zk2.example"], "127.0.0.2");
        assert!(verify_peer_name(&c, LOCAL, |_| None).is_err());
    }

    #[test]
    fn the_cn_only_without_alt_names() {
        let c = cert(&[], "127.0.0.2");
        assert_eq!(verify_peer_name(&c, LOCAL, |_| None), Ok(()));
        let c = cert(&[], "localhost");
        assert_eq!(verify_peer_name(&c, LOCAL, |_| Some("localhost".into())), Ok(()));
        let e = verify_peer_name(&c, LOCAL, |_| None).unwrap_err();
        assert!(e.contains("CN is localhost"), "{e}");
        assert!(verify_peer_name(b"garbage", LOCAL, |_| None).is_err());
    }

    #[test]
    fn plaintext_by_default() {
        let t = QuorumTransport::load(&QuorumTlsConfig::default()).unwrap();
        assert!(t.accepts_only_plaintext() && !t.dial_tls);
    }

    #[test]
    fn load_errors_name_the_key() {
        let mut cfg = QuorumTlsConfig { ssl_quorum: true, ..QuorumTlsConfig::default() };
        let e = QuorumTransport::load(&cfg).unwrap_err();
        assert!(e.starts_with("ssl.quorum.trustStore.location is not set"), "{e}");
        cfg.keys.trust_store.location = Some("/nonexistent/ca.pem".into());
        let e = QuorumTransport::load(&cfg).unwrap_err();
        assert!(e.starts_with("ssl.quorum.keyStore.location is not set"), "{e}");
        cfg.keys.key_store.location = Some("/nonexistent/key.p12".into());
        let e = QuorumTransport::load(&cfg).unwrap_err();
        assert!(e.starts_with("ssl.quorum.keyStore.location /nonexistent/key.p12: cannot open"), "{e}");
        cfg.keys.cipher_suites = Some(vec!["TLS_NULL".into()]);
        let e = QuorumTransport::load(&cfg).unwrap_err();
        assert!(e.starts_with("ssl.quorum.ciphersuites: TLS_NULL"), "{e}");
    }
}
