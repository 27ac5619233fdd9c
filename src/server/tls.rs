//! TLS on the client port (rustls) and the x509 identity of a TLS client.
//!
//! Who owns what:
//! - `ClientTls::load` (start-up, blocking file reads) turns the `ssl.*` keys
//!   of `config::ClientTlsConfig` into one shared `rustls::ServerConfig`; a
//!   store that cannot be read fails start-up with an error naming its key.
//!   Store formats follow Apache's FileKeyStoreLoader: `PEM` (a file with the
//!   private key and the certificate chain, the key PKCS#8, encrypted when
//!   `*.password` is set), `PKCS12` and `JKS` (`server::jks`); the type comes
//!   from `*.type` or the file's extension (.pem, .p12, .jks).
//! - `Transport` says what a listener speaks: plaintext, TLS only
//!   (`secureClientPort`), or both told apart by the first byte
//!   (`client.portUnification`, as Apache's DualModeSslHandler).
//! - `accept` runs the handshake on the whole socket before the connection
//!   splits into its reader and writer tasks, and returns the client's
//!   subject DN in Apache's form (`X500Principal.getName()`, RFC 2253).
//! - `TlsStream` is the socket after the handshake: rustls's sans-IO
//!   `ServerConnection` driven by polling the glommio socket, so the shard
//!   never blocks. Its read half only reads the socket and its write half
//!   only writes it (glommio keeps one waker per direction); TLS records
//!   the reading side produces after the handshake (a KeyUpdate answer) go
//!   out with the next write.
//!
//! The plaintext path does not come through here: a plain connection is the
//! bare TcpStream, as before.
//!
//! Quorum TLS (`server::quorum_tls`) shares the store loaders, the suite and
//! protocol choice (each takes the key prefix, `ssl` or `ssl.quorum`, for
//! its messages) and `TlsStream`, which holds a client or server
//! `rustls::Connection`.

use std::io::{self, Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{Connection, RootCertStore, ServerConfig, ServerConnection};

use crate::config::{ClientAuth, ClientTlsConfig, StoreSettings, X509_PROVIDER_CLASS};
use crate::server::worker_shard::Conn;
use crate::server::x509_v1::{self, V1TolerantClientVerifier};

/// The first byte of a TLS handshake record (content type 22).
pub const TLS_HANDSHAKE_RECORD_TYPE: u8 = 0x16;
/// How long a client may take over its TLS handshake before it is dropped
/// (a connection that never finishes would hold its slot for ever).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest key or trust store file zoocore reads.
pub const STORE_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// What one client listener speaks.
#[derive(Clone)]
pub enum Transport {
    Plain,
    /// `secureClientPort`: TLS only.
    Tls(Arc<ClientTls>),
    /// `client.portUnification`: TLS when the first byte opens a handshake.
    Unified(Arc<ClientTls>),
}

/// Everything a worker needs to serve TLS clients, built once at start-up.
pub struct ClientTls {
    pub server_config: Arc<ServerConfig>,
    /// `X509AuthenticationProvider.superUser`: this subject DN is super.
    pub super_user: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("super_user", &self.super_user).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads the stores and builds the TLS settings; None when no client
    /// listener speaks TLS. `source` (zoo.cfg's name) prefixes nothing: the
    /// errors name the key, as in "ssl.keyStore.location /x.p12: wrong password".
    pub fn load(cfg: &ClientTlsConfig) -> Result<Option<Arc<ClientTls>>, String> {
        if !cfg.enabled() {
            return Ok(None);
        }
        if let Some(class) = &cfg.context_supplier_class {
            return Err(format!("ssl.context.supplier.class {class}: zoocore cannot load Java classes; use ssl.keyStore.* and ssl.trustStore.*"));
        }
        if let Some(scheme) = cfg.ssl_auth_provider.as_deref().filter(|s| *s != "x509") {
            return Err(format!(
                "ssl.authProvider {scheme}: zoocore's only TLS auth provider is x509 ({X509_PROVIDER_CLASS})"
            ));
        }
        if cfg.crl || cfg.ocsp {
            return Err("ssl.crl / ssl.ocsp: zoocore does not check certificate revocation; set both to false".into());
        }
        if cfg.client_hostname_verification {
            return Err("ssl.clientHostnameVerification=true: zoocore does not match client certificates against the client's address; set it to false".into());
        }
        if let Some(factory) = &cfg.server_cnxn_factory {
            tracing::info!(serverCnxnFactory = %factory, "serverCnxnFactory is a Java class; zoocore has one connection layer and ignores it");
        }
        let provider = Arc::new(crypto_provider("ssl", cfg)?);
        let versions = protocol_versions(cfg);
        let (chain, key) = load_key_store("ssl", &cfg.key_store)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("ssl.enabledProtocols / ssl.ciphersuites: {e}"))?;
        let builder = match cfg.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let roots = load_trust_store("ssl", &cfg.trust_store, auth)?;
                let anchors = roots.roots.clone();
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if auth == ClientAuth::Want { verifier.allow_unauthenticated() } else { verifier };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("ssl.trustStore.location {}: {e}", display(&cfg.trust_store.location)))?;
                builder.with_client_cert_verifier(Arc::new(V1TolerantClientVerifier::new(verifier, anchors, &provider)))
            }
        };
        let certified = x509_v1::certified_key(chain, key, &provider).map_err(|e| {
            format!(
                "ssl.keyStore.location {}: the key and certificate do not make a usable pair: {e}",
                display(&cfg.key_store.location)
            )
        })?;
        let server_config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        Ok(Some(Arc::new(ClientTls {
            server_config: Arc::new(server_config),
            super_user: cfg.x509_super_user.clone(),
        })))
    }
}

fn display(location: &Option<String>) -> &str {
    location.as_deref().unwrap_or("(not set)")
}

/// A suite's Java (IANA) name: rustls writes TLS 1.3 suites `TLS13_...`
/// where Java and IANA write `TLS_AES_128_GCM_SHA256`.
fn java_suite_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

/// ring's suites, narrowed to `<prefix>.ciphersuites` by their Java names
/// (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384).
/// `prefix` is `ssl` (client port) or `ssl.quorum`, for the messages.
pub(crate) fn crypto_provider(prefix: &str, cfg: &ClientTlsConfig) -> Result<rustls::crypto::CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(wanted) = &cfg.cipher_suites {
        let name = java_suite_name;
        let known: Vec<String> = provider.cipher_suites.iter().map(name).collect();
        if let Some(unknown) = wanted.iter().find(|w| !known.contains(w)) {
            return Err(format!(
                "{prefix}.ciphersuites: {unknown} is not a cipher suite zoocore (rustls) offers; it offers {}",
                known.join(",")
            ));
        }
        if wanted.is_empty() {
            return Err(format!("{prefix}.ciphersuites is empty"));
        }
        // In the order written: Java lets the list's order be the preference.
        provider.cipher_suites =
            wanted.iter().filter_map(|w| provider.cipher_suites.iter().find(|s| name(s) == *w).copied()).collect();
    }
    Ok(provider)
}

/// `ssl.enabledProtocols` wins; else `ssl.protocol` TLSv1.2 means 1.2 only,
/// anything else (TLSv1.3, TLS, unset) 1.3 and 1.2.
pub(crate) fn protocol_versions(cfg: &ClientTlsConfig) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let names: Vec<&str> = match (&cfg.enabled_protocols, cfg.protocol.as_deref()) {
        (Some(list), _) => list.iter().map(String::as_str).collect(),
        (None, Some("TLSv1.2")) => vec!["TLSv1.2"],
        (None, _) => vec!["TLSv1.3", "TLSv1.2"],
    };
    let mut versions = Vec::new();
    if names.contains(&"TLSv1.3") {
        versions.push(&rustls::version::TLS13);
    }
    if names.contains(&"TLSv1.2") {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// A store's format, as Apache's KeyStoreFileType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Pem,
    Pkcs12,
    /// Java's JKS; a PKCS12 file under this type is read as PKCS12, as
    /// Java's JKS loader does (keytool has written PKCS12 by default since
    /// Java 9, `.jks` names included).
    Jks,
}

/// `*.type` when set, else the file's extension (Apache's
/// KeyStoreFileType.fromPropertyValueOrFileName).
fn store_type(prefix: &str, settings: &StoreSettings, location: &str) -> Result<StoreType, String> {
    let from_name = |t: &str| -> Result<StoreType, String> {
        match t.to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" => Ok(StoreType::Jks),
            "BCFKS" => Err(format!(
                "{prefix}.type {t}: zoocore reads PEM, PKCS12 and JKS stores; convert with \
                 keytool -importkeystore -srckeystore {location} -destkeystore store.p12 -deststoretype PKCS12"
            )),
            _ => Err(format!("{prefix}.type {t}: expected PEM, PKCS12 or JKS")),
        }
    };
    match &settings.store_type {
        Some(t) => from_name(t),
        None => match Path::new(location).extension().and_then(|e| e.to_str()) {
            Some("pem") => Ok(StoreType::Pem),
            Some("p12") => Ok(StoreType::Pkcs12),
            Some("jks") => from_name("JKS"),
            Some("bcfks") => from_name("BCFKS"),
            _ => Err(format!(
                "{prefix}.location {location}: cannot tell the store type from the file name; set {prefix}.type to PEM, PKCS12 or JKS"
            )),
        },
    }
}

/// A store of the JKS type that is a PKCS12 file (a DER SEQUENCE, not the
/// JKS magic) is read as PKCS12, as Java's JKS loader does; anything else
/// stays JKS, whose reader then names what is wrong.
fn jks_or_pkcs12(kind: StoreType, data: &[u8]) -> StoreType {
    if kind == StoreType::Jks && !crate::server::jks::looks_like_jks(data) && data.first() == Some(&0x30) {
        StoreType::Pkcs12
    } else {
        kind
    }
}

/// `*.passwordPath` (its contents less one trailing newline, as Apache's
/// SecretUtils) wins over `*.password`.
fn store_password(prefix: &str, settings: &StoreSettings) -> Result<String, String> {
    let Some(path) = &settings.password_path else {
        return Ok(settings.password.0.clone());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{prefix}.passwordPath {path}: cannot read: {e}"))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

fn read_store(prefix: &str, location: &str) -> Result<Vec<u8>, String> {
    let fail = |why: String| format!("{prefix}.location {location}: {why}");
    let file = std::fs::File::open(location).map_err(|e| fail(format!("cannot open: {e}")))?;
    let len = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?.len();
    if len > STORE_FILE_MAX_BYTES {
        return Err(fail(format!("{len} bytes is more than a store may hold ({STORE_FILE_MAX_BYTES})")));
    }
    let mut data = Vec::with_capacity(len as usize);
    file.take(STORE_FILE_MAX_BYTES).read_to_end(&mut data).map_err(|e| fail(format!("cannot read: {e}")))?;
    Ok(data)
}

/// The server's certificate chain and private key from `<prefix>.keyStore.*`.
pub(crate) fn load_key_store(
    prefix: &str,
    settings: &StoreSettings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let key_prefix = format!("{prefix}.keyStore");
    let store_key = key_prefix.as_str();
    let location = settings.location.as_deref().ok_or_else(|| {
        if prefix == "ssl" {
            "ssl.keyStore.location is not set; a TLS client port needs the server's key".to_owned()
        } else {
            format!("{store_key}.location is not set; quorum TLS needs this server's key and certificate")
        }
    })?;
    let kind = store_type(store_key, settings, location)?;
    let password = store_password(store_key, settings)?;
    let data = read_store(store_key, location)?;
    let fail = |why: String| format!("{store_key}.location {location}: {why}");
    let kind = jks_or_pkcs12(kind, &data);
    match kind {
        StoreType::Jks => {
            let store = crate::server::jks::parse_jks(&data, &password).map_err(fail)?;
            // Apache's key manager picks the first key entry that suits;
            // a server store normally holds one.
            let entry = store
                .private_keys
                .into_iter()
                .next()
                .ok_or_else(|| fail("holds no private key with its certificate".into()))?;
            if entry.chain_der.is_empty() {
                return Err(fail(format!("the key of entry \"{}\" has no certificate", entry.alias)));
            }
            let certs = entry.chain_der.into_iter().map(CertificateDer::from).collect();
            let key = PrivateKeyDer::try_from(entry.pkcs8_der)
                .map_err(|e| fail(format!("the key of entry \"{}\" is unusable: {e}", entry.alias)))?;
            Ok((certs, key))
        }
        StoreType::Pem => {
            let text = String::from_utf8_lossy(&data);
            let blocks = pem_blocks(&text).map_err(fail)?;
            let chain: Vec<CertificateDer<'static>> = blocks
                .iter()
                .filter(|b| b.label.ends_with("CERTIFICATE"))
                .map(|b| CertificateDer::from(b.der.clone()))
                .collect();
            if chain.is_empty() {
                return Err(fail("no certificate in the file (PEM type: the key and its certificate chain)".into()));
            }
            let key_block = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")).ok_or_else(|| {
                fail("no private key in the file (PEM type: the key and its certificate chain)".into())
            })?;
            let key = pem_private_key(store_key, &key_block.label, &key_block.der, &password).map_err(fail)?;
            Ok((chain, key))
        }
        StoreType::Pkcs12 => {
            let store =
                p12_keystore::KeyStore::from_pkcs12(&data, &password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
                    .map_err(|e| fail(p12_error(e)))?;
            let (_alias, chain) =
                store.private_key_chain().ok_or_else(|| fail("holds no private key with its certificate".into()))?;
            let certs: Vec<CertificateDer<'static>> =
                chain.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
            if certs.is_empty() {
                return Err(fail("its private key has no certificate".into()));
            }
            let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec())
                .map_err(|e| fail(format!("unusable private key: {e}")))?;
            Ok((certs, key))
        }
    }
}

fn p12_error(e: p12_keystore::error::Error) -> String {
    match e {
        p12_keystore::error::Error::MacError(_) => "wrong password (the store's integrity check failed)".into(),
        other => format!("not a readable PKCS12 store: {other}"),
    }
}

/// Apache's PemReader: the key is PKCS#8, encrypted when a password is set.
/// zoocore also takes PKCS#1 and SEC1 keys.
fn pem_private_key(store_key: &str, label: &str, der: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, String> {
    if label == "ENCRYPTED PRIVATE KEY" {
        if password.is_empty() {
            return Err(format!("the private key is encrypted but {store_key}.password is not set"));
        }
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
            .map_err(|e| format!("unreadable encrypted private key: {e}"))?;
        let plain = info
            .decrypt(password.as_bytes())
            .map_err(|_| "wrong password (the private key does not decrypt)".to_owned())?;
        return PrivateKeyDer::try_from(plain.as_bytes().to_vec()).map_err(|e| format!("unusable private key: {e}"));
    }
    PrivateKeyDer::try_from(der.to_vec()).map_err(|e| format!("unusable private key: {e}"))
}

/// The certificates a peer's chain must lead to, from `<prefix>.trustStore.*`.
pub(crate) fn load_trust_store(
    prefix: &str,
    settings: &StoreSettings,
    auth: ClientAuth,
) -> Result<RootCertStore, String> {
    let key_prefix = format!("{prefix}.trustStore");
    let store_key = key_prefix.as_str();
    let location = settings.location.as_deref().ok_or_else(|| {
        format!(
            "{store_key}.location is not set, but {prefix}.clientAuth is {} (Apache's default is need); \
             set a trust store, or {prefix}.clientAuth=none",
            match auth {
                ClientAuth::Want => "want",
                ClientAuth::Need => "need",
                ClientAuth::None => "none",
            }
        )
    })?;
    let kind = store_type(store_key, settings, location)?;
    let data = read_store(store_key, location)?;
    let fail = |why: String| format!("{store_key}.location {location}: {why}");
    let kind = jks_or_pkcs12(kind, &data);
    let certs: Vec<Vec<u8>> = match kind {
        StoreType::Jks => {
            let password = store_password(store_key, settings)?;
            let store = crate::server::jks::parse_jks(&data, &password).map_err(fail)?;
            // Java's trust manager trusts the trusted-certificate entries
            // and, for a key entry, its chain's top.
            let mut certs = store.trusted_der;
            certs.extend(store.private_keys.into_iter().filter_map(|k| k.chain_der.into_iter().last()));
            certs
        }
        StoreType::Pem => {
            let text = String::from_utf8_lossy(&data);
            pem_blocks(&text)
                .map_err(fail)?
                .into_iter()
                .filter(|b| b.label.ends_with("CERTIFICATE"))
                .map(|b| b.der)
                .collect()
        }
        StoreType::Pkcs12 => {
            let password = store_password(store_key, settings)?;
            let store =
                p12_keystore::KeyStore::from_pkcs12(&data, &password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
                    .map_err(|e| fail(p12_error(e)))?;
            store
                .entries()
                .filter_map(|(_, entry)| match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => Some(c.as_der().to_vec()),
                    _ => None,
                })
                .collect()
        }
    };
    if certs.is_empty() {
        return Err(fail("holds no certificate to trust".into()));
    }
    let mut roots = RootCertStore::empty();
    for der in certs {
        roots.add(CertificateDer::from(der)).map_err(|e| fail(format!("a certificate cannot be trusted: {e}")))?;
    }
    Ok(roots)
}

/// One `-----BEGIN <label>----- ... -----END <label>-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block of `text`, in order. As Apache's PemReader (a MIME
/// base64 decoder), anything between the lines that is not base64 is
/// skipped; text outside blocks is ignored.
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    use base64::Engine;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after_begin = &rest[start + "-----BEGIN ".len()..];
        let label_end = after_begin.find("-----").ok_or("a BEGIN line without its closing dashes")?;
        let label = after_begin[..label_end].trim().to_owned();
        let body_and_rest = &after_begin[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_and_rest.find(&end_marker).ok_or_else(|| format!("{label} block without its END line"))?;
        let body: String = body_and_rest[..body_end]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("{label} block is not valid base64: {e}"))?;
        blocks.push(PemBlock { label, der });
        rest = &body_and_rest[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

/// The subject of a DER certificate as Java's
/// `getSubjectX500Principal().getName()` (RFC 2253) prints it: RDNs last
/// first, joined by ','; CN, C, L, ST, O, OU, STREET, DC and UID by
/// keyword, other attributes as `<oid>=#<hex of the DER value>`; `,=+<>#;"\`
/// escaped with '\', as are leading and trailing spaces.
pub fn subject_dn_rfc2253(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut avas = Vec::new();
        for ava in rdn.iter() {
            avas.push(ava_rfc2253(ava)?);
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// Java's RFC 2253 keywords (AVAKeyword entries marked RFC 2253 compliant).
const RFC2253_KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

fn ava_rfc2253(ava: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Result<String, String> {
    use x509_parser::der_parser::asn1_rs::{Tag, ToDer};
    let oid = ava.attr_type().to_id_string();
    let keyword = RFC2253_KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    let value = ava.attr_value();
    let data = value.as_bytes();
    // Java prints a value as text only for these string types.
    let text: Option<String> = match value.tag() {
        Tag::PrintableString | Tag::Ia5String | Tag::Utf8String | Tag::GeneralString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::T61String => Some(data.iter().map(|&b| b as char).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    match (keyword, text) {
        (Some(keyword), Some(text)) => Ok(format!("{keyword}={}", escape_rfc2253(&text))),
        (keyword, _) => {
            let der = value.to_der_vec().map_err(|e| format!("unencodable attribute {oid}: {e}"))?;
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!("{}=#{hex}", keyword.unwrap_or(&oid)))
        }
    }
}

fn escape_rfc2253(value: &str) -> String {
    const SPECIAL: &str = ",=+<>#;\"\\";
    let chars: Vec<char> = value.chars().collect();
    let lead = chars.iter().take_while(|c| matches!(c, ' ' | '\r')).count();
    let trail_start = chars.len() - chars.iter().rev().take_while(|c| matches!(c, ' ' | '\r')).count();
    let mut out = String::with_capacity(value.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        if SPECIAL.contains(c) || i < lead || i >= trail_start {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A connection after `accept` decided what it speaks.
pub enum Accepted {
    Plain(TcpStream),
    /// The TLS stream, and the client's identity when it showed a certificate.
    Tls(Box<TlsStream>, Option<X509Identity>),
}

/// What Apache's X509AuthenticationProvider gives a client with a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Identity {
    /// The certificate's subject, RFC 2253 (`subject_dn_rfc2253`).
    pub subject_dn: String,
    /// The DN is `X509AuthenticationProvider.superUser`.
    pub is_super: bool,
}

/// Adds the client's `x509` id (and `super`) to its connection, as Apache
/// does when the handshake completes.
pub fn grant_x509(conn: &Conn, identity: &X509Identity) {
    let mut authz = (**conn.authz.borrow()).clone();
    authz.add_x509(&identity.subject_dn, identity.is_super);
    *conn.authz.borrow_mut() = Arc::new(authz);
    tracing::info!(peer = %conn.peer, id = %identity.subject_dn, is_super = identity.is_super, "authenticated x509 id");
}

/// Runs what `transport` asks of a fresh connection: nothing (plain), a TLS
/// handshake, or (unified) a peek at the first byte, then maybe a handshake.
pub async fn accept(stream: TcpStream, transport: &Transport) -> io::Result<Accepted> {
    let tls = match transport {
        Transport::Plain => return Ok(Accepted::Plain(stream)),
        Transport::Tls(tls) => tls,
        Transport::Unified(tls) => {
            let mut first = [0u8; 1];
            // An empty peek is a client that closed at once: the plain path ends it.
            if stream.peek(&mut first).await? == 0 || first[0] != TLS_HANDSHAKE_RECORD_TYPE {
                return Ok(Accepted::Plain(stream));
            }
            tls
        }
    };
    let connection = ServerConnection::new(tls.server_config.clone()).map_err(io::Error::other)?;
    let mut stream = TlsStream::new(stream, Connection::Server(connection));
    let handshake = async {
        futures_lite::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
        let identity = match stream.tls.peer_certificates().and_then(|chain| chain.first()) {
            Some(cert) => {
                let subject_dn = subject_dn_rfc2253(cert).map_err(io::Error::other)?;
                let is_super = tls.super_user.as_deref() == Some(subject_dn.as_str());
                Some(X509Identity { subject_dn, is_super })
            }
            None => None,
        };
        Ok::<_, io::Error>(identity)
    };
    let timeout = async {
        glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake took too long"))
    };
    let identity = futures_lite::future::or(handshake, timeout).await?;
    Ok(Accepted::Tls(Box::new(stream), identity))
}

/// A socket with rustls between it and the protocol: a client's connection
/// to the client port (server side), or a quorum connection (either side).
pub struct TlsStream {
    tcp: TcpStream,
    tls: Connection,
    /// Plaintext taken by rustls whose records are still being written:
    /// `poll_write` reports it only once they are on the socket, so a
    /// writer that never flushes loses nothing.
    accepted_plaintext: Option<usize>,
}

/// The socket as a `Read`/`Write` for rustls, turning Pending into WouldBlock.
struct PollIo<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for PollIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_read(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for PollIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// `tls` is a fresh connection; run `handshake` before anything else.
    pub(crate) fn new(tcp: TcpStream, tls: Connection) -> TlsStream {
        TlsStream { tcp, tls, accepted_plaintext: None }
    }

    /// The socket under the TLS layer (for its address, fd and options).
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The peer's certificate (its leaf), once the handshake is done.
    pub(crate) fn peer_leaf_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.tls.peer_certificates().and_then(|chain| chain.first())
    }

    /// Runs the handshake to its end (no timeout: the caller bounds it).
    pub(crate) async fn handshake(&mut self) -> io::Result<()> {
        futures_lite::future::poll_fn(|cx| self.poll_handshake(cx)).await
    }

    /// Writes every pending TLS record to the socket.
    fn poll_write_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut PollIo { tcp: &mut self.tcp, cx }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads records from the socket into rustls. Ok(false) at end of stream.
    fn poll_read_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        match self.tls.read_tls(&mut PollIo { tcp: &mut self.tcp, cx }) {
            Ok(0) => Poll::Ready(Ok(false)),
            Ok(_) => match self.tls.process_new_packets() {
                Ok(_) => Poll::Ready(Ok(true)),
                Err(e) => Poll::Ready(Err(tls_error(e))),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Drives the handshake on the whole socket (before the split).
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.tls.wants_write() {
                std::task::ready!(self.poll_write_records(cx))?;
                continue;
            }
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(self.poll_read_records(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the TLS handshake",
                    )))
                }
                Err(e) => {
                    // Best effort: tell the client why (the alert rustls queued).
                    let _ = self.poll_write_records(cx);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if !std::task::ready!(this.poll_read_records(cx))? {
                // End of stream: rustls tells a clean close from a cut one.
                return Poll::Ready(match this.tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    other => other,
                });
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.accepted_plaintext.is_none() {
            // Records left from before (a KeyUpdate answer) go out first.
            std::task::ready!(this.poll_write_records(cx))?;
            this.accepted_plaintext = Some(this.tls.writer().write(buf)?);
        }
        std::task::ready!(this.poll_write_records(cx))?;
        Poll::Ready(Ok(this.accepted_plaintext.take().unwrap_or(0)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_write_records(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        std::task::ready!(this.poll_write_records(cx))?;
        Pin::new(&mut this.tcp).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_subject(build: impl FnOnce(&mut rcgen::DistinguishedName)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        build(&mut params.distinguished_name);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_is_rfc2253_last_rdn_first() {
        let der = cert_with_subject(|dn| {
            dn.push(rcgen::DnType::CountryName, "US");
            dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
            dn.push(rcgen::DnType::CommonName, "alice");
        });
        assert_eq!(subject_dn_rfc2253(&der).unwrap(), "CN=alice,O=Acme\\, Inc.,C=US");
    }

    #[test]
    fn subject_escapes_and_unknown_attributes() {
        let der = cert_with_subject(|dn| {
            dn.push(
                rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
                rcgen::DnValue::Ia5String("a@b".try_into().unwrap()),
            );
            dn.push(rcgen::DnType::CommonName, " #x+y<z>;\"q\"\\ ");
        });
        assert_eq!(
            subject_dn_rfc2253(&der).unwrap(),
            "CN=\\ \\#x\\+y\\<z\\>\\;\\\"q\\\"\\\\\\ ,1.2.840.113549.1.9.1=#1603614062"
        );
    }

    #[test]
    fn subject_rejects_garbage() {
        assert!(subject_dn_rfc2253(b"not a certificate").is_err());
        assert!(subject_dn_rfc2253(&[]).is_err());
    }

    #[test]
    fn pem_blocks_in_order_skipping_text() {
        let text = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\nmore\n\
                    -----BEGIN CERTIFICATE-----\r\nBAUG\r\n-----END CERTIFICATE-----\n";
        let blocks = pem_blocks(text).unwrap();
        assert_eq!(
            blocks,
            vec![
                PemBlock { label: "PRIVATE KEY".into(), der: vec![0, 1, 2, 3] },
                PemBlock { label: "CERTIFICATE".into(), der: vec![4, 5, 6] },
            ]
        );
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").unwrap()[0].der.is_empty());
        assert_eq!(pem_blocks("no pem here").unwrap(), vec![]);
    }

    #[test]
    fn store_type_from_setting_or_extension() {
        let s = |t: Option<&str>| StoreSettings { store_type: t.map(str::to_owned), ..Default::default() };
        assert_eq!(store_type("ssl.keyStore", &s(None), "/a/b.pem"), Ok(StoreType::Pem));
        assert_eq!(store_type("ssl.keyStore", &s(None), "/a/b.p12"), Ok(StoreType::Pkcs12));
        assert_eq!(store_type("ssl.keyStore", &s(Some("pkcs12")), "/a/b.pem"), Ok(StoreType::Pkcs12));
        assert_eq!(store_type("ssl.keyStore", &s(None), "/a/b.jks"), Ok(StoreType::Jks));
        let bcfks = store_type("ssl.keyStore", &s(None), "/a/b.bcfks").unwrap_err();
        assert!(bcfks.starts_with("ssl.keyStore.type BCFKS"), "{bcfks}");
        let unknown = store_type("ssl.trustStore", &s(None), "/a/b").unwrap_err();
        assert!(unknown.contains("ssl.trustStore.type"), "{unknown}");
    }

    #[test]
    fn cipher_suites_by_java_name() {
        let mut cfg = ClientTlsConfig {
            cipher_suites: Some(vec!["TLS_AES_128_GCM_SHA256".into(), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into()]),
            ..Default::default()
        };
        let p = crypto_provider("ssl", &cfg).unwrap();
        assert_eq!(p.cipher_suites.len(), 2);
        assert_eq!(java_suite_name(&p.cipher_suites[0]), "TLS_AES_128_GCM_SHA256");
        assert_eq!(java_suite_name(&p.cipher_suites[1]), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
        cfg.cipher_suites = Some(vec!["TLS_RSA_WITH_AES_128_CBC_SHA".into()]);
        let e = crypto_provider("ssl", &cfg).unwrap_err();
        assert!(e.starts_with("ssl.ciphersuites: TLS_RSA_WITH_AES_128_CBC_SHA"), "{e}");
    }

    #[test]
    fn protocols_from_keys() {
        let v = |cfg: &ClientTlsConfig| protocol_versions(cfg).iter().map(|v| v.version.as_str()).collect::<Vec<_>>();
        let mut cfg = ClientTlsConfig::default();
        assert_eq!(v(&cfg), vec![Some("TLSv1_3"), Some("TLSv1_2")]);
        cfg.protocol = Some("TLSv1.2".into());
        assert_eq!(v(&cfg), vec![Some("TLSv1_2")]);
        cfg.enabled_protocols = Some(vec!["TLSv1.3".into()]);
        assert_eq!(v(&cfg), vec![Some("TLSv1_3")]);
    }
}
