//! TLS on the client port and x509 auth against the real binary: every
//! certificate is made here with rcgen (a CA, the server, and client
//! identities), the PKCS#12 stores with p12-keystore; the client is rustls
//! with a bare frame exchange, and zoocore's own client (`Transport::Tls`,
//! what the benchmark uses) in `the_project_client_pipelines_over_tls`.
//! Servers listen on 127.0.0.1 ports the test picks and are stopped by PID.

mod common;
// Shared with the benchmark's smoke test (bench/tests/smoke.rs).
#[path = "common/pki.rs"]
mod pki;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{ServerOptions, TestServer};
use pki::{leaf, new_ca, Identity, ORG};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use zoocore::client::{Client, TlsSettings, Transport};
use zoocore::jute::{Reader, Record};
use zoocore::proto::records::*;
use zoocore::proto::types::{op, open_acl_unsafe, perms, Acl, CreateMode, ErrorCode, Id};

const KEYSTORE_PASSWORD: &str = "keystore-secret";

/// A CA, the server's identity, and clients signed by the CA (plus one from
/// a CA the server does not trust).
struct Pki {
    dir: PathBuf,
    ca: Identity,
    server: Identity,
    alice: Identity,
    bob: Identity,
    admin: Identity,
    stranger: Identity,
}

/// An X.509 **v1** client certificate signed by `ca` (kazoo's test harness
/// signs such ones; rcgen writes only v3): Debian's openssl, `x509 -req`
/// without extensions.
fn v1_leaf(dir: &Path, ca: &Identity, cn: &str) -> Identity {
    let openssl = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (Debian package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    std::fs::write(dir.join("ca.key"), &ca.key_pem).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), &ca.cert_pem).unwrap();
    let subject = format!("/O={ORG}/CN={cn}");
    openssl(
        &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "v1.key"]
            .into_iter()
            .chain(["-out", "v1.csr", "-subj", &subject])
            .collect::<Vec<_>>(),
    );
    openssl(
        &["x509", "-req", "-in", "v1.csr", "-CA", "ca-cert.pem", "-CAkey", "ca.key", "-set_serial", "99"]
            .into_iter()
            .chain(["-days", "2", "-out", "v1.pem"])
            .collect::<Vec<_>>(),
    );
    let text = String::from_utf8(openssl(&["x509", "-in", "v1.pem", "-noout", "-text"])).unwrap();
    assert!(text.contains("Version: 1 (0x0)"), "openssl made a v3 certificate:\n{text}");
    let cert_der = openssl(&["x509", "-in", "v1.pem", "-outform", "DER"]);
    let key_der = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", "v1.key", "-outform", "DER"]);
    Identity {
        cert_pem: std::fs::read_to_string(dir.join("v1.pem")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("v1.key")).unwrap(),
        cert_der: CertificateDer::from(cert_der),
        key_der,
        subject: format!("CN={cn},O={ORG}"),
    }
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("zoocore-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, issuer) = new_ca("zoocore test CA");
        let (_, other_issuer) = new_ca("someone else's CA");
        let pki = Pki {
            server: leaf(&issuer, "zoocore server", &["localhost", "127.0.0.1"]),
            alice: leaf(&issuer, "alice", &[]),
            bob: leaf(&issuer, "bob", &[]),
            admin: leaf(&issuer, "admin", &[]),
            stranger: leaf(&other_issuer, "alice", &[]),
            ca,
            dir,
        };
        // Apache's PEM key store: the key and the certificate chain in one file.
        let pem = format!("{}{}{}", pki.server.key_pem, pki.server.cert_pem, pki.ca.cert_pem);
        std::fs::write(pki.path("server.pem"), pem).unwrap();
        std::fs::write(pki.path("ca.pem"), &pki.ca.cert_pem).unwrap();
        std::fs::write(pki.path("server.p12"), pki.server_p12()).unwrap();
        std::fs::write(pki.path("truststore.p12"), pki.trust_p12()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn server_p12(&self) -> Vec<u8> {
        let cert = |i: &Identity| p12_keystore::Certificate::from_der(&i.cert_der).unwrap();
        let key = p12_keystore::PrivateKey::from_der(&self.server.key_der).unwrap();
        let chain = p12_keystore::PrivateKeyChain::new(b"server".to_vec(), key, [cert(&self.server), cert(&self.ca)]);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("server", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(KEYSTORE_PASSWORD).write().unwrap()
    }

    fn trust_p12(&self) -> Vec<u8> {
        let mut store = p12_keystore::KeyStore::new();
        let ca = p12_keystore::Certificate::from_der(&self.ca.cert_der).unwrap();
        store.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(ca));
        store.writer(KEYSTORE_PASSWORD).write().unwrap()
    }

    /// zoo.cfg lines: PKCS#12 key store, PEM trust store.
    fn config(&self, secure_port: u16, client_auth: &str) -> String {
        format!(
            "secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n\
             ssl.keyStore.location={}\nssl.keyStore.password={KEYSTORE_PASSWORD}\n\
             ssl.trustStore.location={}\nssl.clientAuth={client_auth}\n\
             zookeeper.X509AuthenticationProvider.superUser={}\n",
            self.path("server.p12").display(),
            self.path("ca.pem").display(),
            self.admin.subject,
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rustls client speaking raw ZooKeeper frames.
struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    next_xid: i32,
}

impl TlsClient {
    fn connect(addr: SocketAddr, trust: &Identity, me: Option<&Identity>) -> io::Result<TlsClient> {
        TlsClient::connect_with(addr, trust, me, rustls::DEFAULT_VERSIONS)
    }

    fn connect_with(
        addr: SocketAddr,
        trust: &Identity,
        me: Option<&Identity>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> io::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        roots.add(trust.cert_der.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match me {
            // Not with_client_auth_cert: rustls's own key check there
            // refuses X.509 v1 certificates, which these tests present too.
            Some(me) => {
                let provider = rustls::crypto::ring::default_provider();
                let key = provider.key_provider.load_private_key(me.key()).unwrap();
                let certified = rustls::sign::CertifiedKey::new(vec![me.cert_der.clone()], key);
                builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
            }
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient { stream, next_xid: 1 })
    }

    /// A new session; the first exchange after the handshake, where a
    /// server that refuses the client's certificate shows it.
    fn session(&mut self) -> io::Result<ConnectResponse> {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 10_000,
            session_id: 0,
            passwd: Bytes::from(vec![0u8; 16]),
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_record_frame(&mut out, &req);
        self.stream.write_all(&out)?;
        let frame = self.read_frame()?;
        ConnectResponse::decode(&mut Reader::new(frame)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn read_frame(&mut self) -> io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=1 << 20).contains(&len) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame length {len}")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Sends `req`, returns the reply's error code and body.
    fn call(&mut self, req: &Request) -> io::Result<(ErrorCode, Reader)> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut out = BytesMut::new();
        encode_request_frame(&mut out, xid, req);
        self.stream.write_all(&out)?;
        loop {
            let mut r = Reader::new(self.read_frame()?);
            let header = ReplyHeader::decode(&mut r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if header.xid == xid {
                return Ok((ErrorCode::from_code(header.err).unwrap_or(ErrorCode::SystemError), r));
            }
        }
    }

    fn create(&mut self, path: &str, data: &[u8], acl: Vec<Acl>) -> ErrorCode {
        let req =
            CreateRequest { path: path.into(), data: Some(Bytes::copy_from_slice(data)), acl, flags: 0, ttl: None };
        self.call(&Request::Create { op: op::CREATE, req }).unwrap().0
    }

    fn get_data(&mut self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        let (code, mut r) = self.call(&Request::GetData(PathWatch { path: path.into(), watch: false })).unwrap();
        if code != ErrorCode::Ok {
            return Err(code);
        }
        Ok(r.read_buffer().unwrap().map(|b| b.to_vec()).unwrap_or_default())
    }
}

fn start(pki: &Pki, client_auth: &str, extra: &str) -> (TestServer, SocketAddr) {
    let secure_port = common::ports::unused_port();
    let opts = ServerOptions {
        extra_config: format!("{}{extra}", pki.config(secure_port, client_auth)),
        ..Default::default()
    };
    let server = TestServer::start_with(opts);
    (server, SocketAddr::from((Ipv4Addr::LOCALHOST, secure_port)))
}

fn x509_acl(subject: &str) -> Vec<Acl> {
    vec![Acl { perms: perms::ALL, id: Id::new("x509", subject) }]
}

#[test]
fn round_trip_over_tls_with_a_client_certificate() {
    let pki = Pki::new("round-trip");
    let (server, secure) = start(&pki, "need", "");
    let mut c = TlsClient::connect(secure, &pki.ca, Some(&pki.alice)).expect("TLS handshake");
    let session = c.session().expect("a session over TLS");
    assert!(session.session_id != 0 && session.timeout_ms > 0);
    assert_eq!(c.create("/over-tls", b"sealed", open_acl_unsafe()), ErrorCode::Ok);
    assert_eq!(c.get_data("/over-tls").unwrap(), b"sealed");
    // Many requests in one go: replies larger than one TLS record.
    let big = vec![7u8; 200_000];
    assert_eq!(c.create("/over-tls-big", &big, open_acl_unsafe()), ErrorCode::Ok);
    for _ in 0..3 {
        assert_eq!(c.get_data("/over-tls-big").unwrap(), big);
    }
    // The plaintext port serves as before, and sees the same tree.
    let plain = Client::connect(server.addr, Duration::from_secs(10)).unwrap();
    assert_eq!(plain.get_data("/over-tls", false).unwrap().0.as_deref(), Some(&b"sealed"[..]));
    // Four-letter words work over TLS too (Apache's Netty layer answers them).
    let mut word = TlsClient::connect(secure, &pki.ca, Some(&pki.alice)).unwrap();
    word.stream.write_all(b"ruok").unwrap();
    let mut answer = String::new();
    let _ = word.stream.read_to_string(&mut answer);
    assert_eq!(answer, "imok");
}

/// zoocore's client over TLS: many requests in flight on each of two
/// sessions, replies larger than a TLS record, a watch event, then a clean
/// close; and a refused certificate is an error, not a hang.
#[test]
fn the_project_client_pipelines_over_tls() {
    let pki = Pki::new("client");
    let (server, secure) = start(&pki, "need", "");
    let transport = |me: Option<&Identity>| {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.cert_der.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match me {
            Some(me) => builder.with_client_auth_cert(vec![me.cert_der.clone()], me.key()).unwrap(),
            None => builder.with_no_client_auth(),
        };
        Transport::Tls(TlsSettings::from_config(Arc::new(config), TlsSettings::ip_name(Ipv4Addr::LOCALHOST.into())))
    };
    let tls = transport(Some(&pki.alice));
    let a = Client::connect_via(&tls, secure, Duration::from_secs(10)).expect("a session over TLS");
    let b = Client::connect_via(&tls, secure, Duration::from_secs(10)).expect("a second session over TLS");
    a.create("/piped", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let big = Bytes::from(vec![9u8; 100_000]);
    let pending: Vec<_> = (0..64)
        .map(|i| {
            let data = if i % 8 == 0 { big.clone() } else { Bytes::from(format!("v{i}")) };
            let req = CreateRequest {
                path: format!("/piped/n{i}"),
                data: Some(data),
                acl: open_acl_unsafe(),
                flags: 0,
                ttl: None,
            };
            a.submit(Request::Create { op: op::CREATE, req }).unwrap()
        })
        .collect();
    for (i, p) in pending.into_iter().enumerate() {
        let (hdr, _) = p.wait_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(hdr.err, 0, "create /piped/n{i}");
    }
    // Reads pipelined on the other session, replies in order, big ones whole.
    let reads: Vec<_> = (0..64)
        .map(|i| b.submit(Request::GetData(PathWatch { path: format!("/piped/n{i}"), watch: i == 1 })).unwrap())
        .collect();
    for (i, p) in reads.into_iter().enumerate() {
        match p.wait_timeout(Duration::from_secs(20)).unwrap() {
            (hdr, Response::GetData { data, .. }) => {
                assert_eq!(hdr.err, 0);
                let want = if i % 8 == 0 { big.clone() } else { Bytes::from(format!("v{i}")) };
                assert_eq!(data.as_ref(), Some(&want), "/piped/n{i}");
            }
            other => panic!("getData /piped/n{i}: {other:?}"),
        }
    }
    let events = b.events().unwrap();
    a.set_data("/piped/n1", b"changed", -1).unwrap();
    let ev = events.recv_timeout(Duration::from_secs(10)).expect("the watch fires over TLS");
    assert_eq!(ev.path, "/piped/n1");
    a.close().unwrap();
    b.close().unwrap();
    // The server saw both sessions end (closeSession over TLS), and the plaintext port agrees on the data.
    let plain = Client::connect(server.addr, Duration::from_secs(10)).unwrap();
    assert_eq!(plain.get_children("/piped", false).unwrap().len(), 64);
    // ssl.clientAuth=need: without a certificate there is no session.
    let refused = Client::connect_via(&transport(None), secure, Duration::from_secs(10));
    assert!(refused.is_err(), "a client without a certificate got a session");
}

#[test]
fn need_refuses_a_client_without_a_trusted_certificate() {
    let pki = Pki::new("need");
    let (server, secure) = start(&pki, "need", "");
    let refused =
        |me: Option<&Identity>| TlsClient::connect(secure, &pki.ca, me).and_then(|mut c| c.session()).is_err();
    assert!(refused(None), "no certificate must be refused with ssl.clientAuth=need");
    assert!(refused(Some(&pki.stranger)), "a certificate from an untrusted CA must be refused");
    // Plaintext on the TLS-only port is not a session either.
    let mut raw = zoocore::client::RawConnection::connect(secure).unwrap();
    assert!(raw.handshake(10_000).is_err(), "plaintext on secureClientPort must fail");
    // The server is fine afterwards.
    let mut ok = TlsClient::connect(secure, &pki.ca, Some(&pki.alice)).unwrap();
    ok.session().unwrap();
    assert_eq!(server.four_letter("ruok"), "imok");
}

#[test]
fn x509_acls_are_enforced_and_the_super_user_passes() {
    let pki = Pki::new("acl");
    let (_server, secure) = start(&pki, "need", "");
    let mut alice = TlsClient::connect(secure, &pki.ca, Some(&pki.alice)).unwrap();
    alice.session().unwrap();
    assert_eq!(alice.create("/alice-only", b"mine", x509_acl(&pki.alice.subject)), ErrorCode::Ok);
    // `auth` expands to the caller's x509 id, as with Apache.
    assert_eq!(
        alice.create("/alice-auth", b"also mine", vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }]),
        ErrorCode::Ok
    );
    assert_eq!(alice.get_data("/alice-only").unwrap(), b"mine");
    assert_eq!(alice.get_data("/alice-auth").unwrap(), b"also mine");

    let mut bob = TlsClient::connect(secure, &pki.ca, Some(&pki.bob)).unwrap();
    bob.session().unwrap();
    assert_eq!(bob.get_data("/alice-only"), Err(ErrorCode::NoAuth));
    assert_eq!(bob.get_data("/alice-auth"), Err(ErrorCode::NoAuth));

    let mut admin = TlsClient::connect(secure, &pki.ca, Some(&pki.admin)).unwrap();
    admin.session().unwrap();
    assert_eq!(admin.get_data("/alice-only").unwrap(), b"mine", "the x509 super user reads everything");

    // whoAmI shows the x509 id as the user.
    let (code, mut r) = alice.call(&Request::WhoAmI).unwrap();
    assert_eq!(code, ErrorCode::Ok);
    let count = r.read_i32().unwrap();
    let infos: Vec<(String, String)> =
        (0..count).map(|_| (r.read_string().unwrap(), r.read_string().unwrap())).collect();
    assert!(infos.contains(&("x509".to_owned(), pki.alice.subject.clone())), "{infos:?}");
}

#[test]
fn an_x509_v1_client_certificate_is_verified_and_names_the_client() {
    // Java accepts v1 certificates; webpki alone refuses them. Over TLS 1.3
    // and TLS 1.2 (their handshake signatures take different paths).
    let pki = Pki::new("v1");
    let v1 = v1_leaf(&pki.dir, &pki.ca, "v1 client");
    let (_server, secure) = start(&pki, "need", "");
    let mut owner = TlsClient::connect(secure, &pki.ca, Some(&v1)).expect("a v1 client certificate is accepted");
    owner.session().expect("a session for the v1 client");
    assert_eq!(owner.create("/v1-only", b"mine", x509_acl(&v1.subject)), ErrorCode::Ok);
    assert_eq!(owner.get_data("/v1-only").unwrap(), b"mine");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut again = TlsClient::connect_with(secure, &pki.ca, Some(&v1), &[version]).unwrap();
        again.session().unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(again.get_data("/v1-only").unwrap(), b"mine", "{version:?}");
    }
    let mut bob = TlsClient::connect(secure, &pki.ca, Some(&pki.bob)).unwrap();
    bob.session().unwrap();
    assert_eq!(bob.get_data("/v1-only"), Err(ErrorCode::NoAuth));
    // A v1 certificate from a CA the server does not trust is refused.
    let (stranger_ca, _) = new_ca("zoocore test CA");
    let forged = v1_leaf(&pki.dir, &stranger_ca, "v1 client");
    let refused = TlsClient::connect(secure, &pki.ca, Some(&forged)).and_then(|mut c| c.session());
    assert!(refused.is_err(), "a v1 certificate signed by an unknown key with the trusted CA's name must be refused");
}

#[test]
fn port_unification_serves_tls_and_plaintext_on_one_port() {
    let pki = Pki::new("unified");
    // PEM key store this time, PKCS#12 trust store; `want`: a certificate is optional.
    let extra = format!(
        "client.portUnification=true\nssl.keyStore.location={}\nssl.keyStore.password=\nssl.trustStore.location={}\n\
         ssl.trustStore.password={KEYSTORE_PASSWORD}\n",
        pki.path("server.pem").display(),
        pki.path("truststore.p12").display()
    );
    let (server, _secure) = start(&pki, "want", &extra);
    let port = server.addr;

    let plain = Client::connect(port, Duration::from_secs(10)).unwrap();
    plain.create("/unified", b"both", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    let mut tls = TlsClient::connect(port, &pki.ca, Some(&pki.alice)).unwrap();
    tls.session().unwrap();
    assert_eq!(tls.get_data("/unified").unwrap(), b"both");
    assert_eq!(tls.create("/unified-alice", b"x", x509_acl(&pki.alice.subject)), ErrorCode::Ok);

    // `want`: no certificate is fine, but gives no x509 id.
    let mut anonymous = TlsClient::connect(port, &pki.ca, None).unwrap();
    anonymous.session().unwrap();
    assert_eq!(anonymous.get_data("/unified").unwrap(), b"both");
    assert_eq!(anonymous.get_data("/unified-alice"), Err(ErrorCode::NoAuth));
    assert_eq!(plain.get_data("/unified-alice", false).unwrap_err().code(), Some(ErrorCode::NoAuth));
    assert_eq!(server.four_letter("ruok"), "imok");
}

/// Starts the binary with `cfg` and returns its stderr once it exits.
fn failed_start(dir: &Path, cfg: &str) -> String {
    let cfg_path = dir.join("zoo.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_zoocore"))
        .args(["server", "--config"])
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(!status.success(), "start-up should have failed");
            let mut err = String::new();
            child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return err;
        }
        assert!(Instant::now() < deadline, "zoocore kept running with a broken TLS config");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unreadable_stores_fail_start_up_naming_the_key() {
    let pki = Pki::new("bad-store");
    let base = |extra: &str| {
        format!(
            "tickTime=500\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             secureClientPort={}\nsecureClientPortAddress=127.0.0.1\nssl.trustStore.location={}\n{extra}\n",
            pki.path("data").display(),
            common::ports::unused_port(),
            common::ports::unused_port(),
            pki.path("ca.pem").display(),
        )
    };
    let p12 = pki.path("server.p12");
    let err = failed_start(
        &pki.dir,
        &base(&format!("ssl.keyStore.location={}\nssl.keyStore.password=not-the-password", p12.display())),
    );
    assert!(err.contains(&format!("ssl.keyStore.location {}: wrong password", p12.display())), "{err}");

    let missing = pki.path("missing.p12");
    let err = failed_start(&pki.dir, &base(&format!("ssl.keyStore.location={}", missing.display())));
    assert!(err.contains(&format!("ssl.keyStore.location {}: cannot open", missing.display())), "{err}");

    let jks = pki.path("server.jks");
    std::fs::write(&jks, b"not really").unwrap();
    let err = failed_start(&pki.dir, &base(&format!("ssl.keyStore.location={}", jks.display())));
    assert!(err.contains(&format!("ssl.keyStore.location {}: not a JKS store", jks.display())), "{err}");

    let err = failed_start(
        &pki.dir,
        &base(&format!("ssl.keyStore.location={}\nssl.ciphersuites=TLS_RSA_WITH_RC4_128_MD5", p12.display())),
    );
    assert!(err.contains("ssl.ciphersuites: TLS_RSA_WITH_RC4_128_MD5"), "{err}");
}
