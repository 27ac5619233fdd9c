//! SASL DIGEST-MD5 on the client port, over TCP against the real server:
//! the project's client runs the exchange (src/client, on the same
//! `sasl::digest_md5` code as a client) against users from a JAAS file the
//! test writes, named by zoo.cfg's `java.security.auth.login.config`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ServerOptions, TestServer};
use zoocore::client::{Client, ClientError};
use zoocore::proto::types::{perms, Acl, CreateMode, Id};
use zoocore::proto::ErrorCode;

const TIMEOUT: Duration = Duration::from_secs(10);

const JAAS: &str = "// written by tests/sasl.rs\nServer {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    user_super=\"super_secret\"\n    user_alice=\"alice-secret\"\n    user_bob=\"bob-secret\";\n};\n";

/// A server with the JAAS file above; `name` keeps each test's file apart.
fn start(name: &str, extra: &str) -> TestServer {
    let dir = std::env::temp_dir().join(format!("zoocore-sasl-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("jaas dir");
    let jaas = dir.join("jaas.conf");
    std::fs::write(&jaas, JAAS).expect("write jaas");
    TestServer::start_with(ServerOptions {
        extra_config: format!(
            "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\njava.security.auth.login.config={}\n{extra}",
            jaas.display()
        ),
        ..Default::default()
    })
}

fn sasl_acl(user: &str) -> Vec<Acl> {
    vec![Acl { perms: perms::ALL, id: Id { scheme: "sasl".into(), id: user.into() } }]
}

fn code(e: ClientError) -> Option<ErrorCode> {
    e.code()
}

#[test]
fn digest_md5_logins_and_sasl_acls() {
    let server = start("logins", "superUser=bob\n");

    // Right password: the sasl id is the user name, seen by whoAmI and ACLs.
    let alice = Client::connect(server.addr, TIMEOUT).expect("connect");
    alice.sasl_digest_md5("alice", "alice-secret", "Y25vbmNlLWFsaWNl").expect("alice logs in");
    let ids = alice.who_am_i().expect("whoAmI");
    assert!(ids.iter().any(|i| i.auth_scheme == "sasl" && i.user == "alice"), "{ids:?}");
    alice.create("/alice", b"a", &sasl_acl("alice"), CreateMode::Persistent).expect("create");
    assert_eq!(alice.get_data("/alice", false).expect("own read").0.as_deref(), Some(&b"a"[..]));

    // Someone else (anonymous, or another SASL user) gets NoAuth.
    let anonymous = Client::connect(server.addr, TIMEOUT).expect("connect");
    assert_eq!(anonymous.get_data("/alice", false).map_err(code).err(), Some(Some(ErrorCode::NoAuth)));
    let carol = Client::connect(server.addr, TIMEOUT).expect("connect");
    carol.sasl_digest_md5("super", "super_secret", "c3VwZXI").expect("user super logs in");
    // Apache: the sasl id "super" matches every sasl ACL id.
    assert!(carol.get_data("/alice", false).is_ok());

    // zookeeper.superUser: bob is super and passes every ACL.
    let bob = Client::connect(server.addr, TIMEOUT).expect("connect");
    bob.sasl_digest_md5("bob", "bob-secret", "Ym9i").expect("bob logs in");
    bob.create(
        "/digest-only",
        b"",
        &[Acl { perms: perms::ALL, id: Id { scheme: "digest".into(), id: "x:y".into() } }],
        CreateMode::Persistent,
    )
    .expect("create");
    assert!(bob.get_data("/digest-only", false).is_ok());
    assert_eq!(alice.get_data("/digest-only", false).map_err(code).err(), Some(Some(ErrorCode::NoAuth)));

    // `auth` ACLs expand to the sasl id.
    let auth_acl = vec![Acl { perms: perms::ALL, id: Id { scheme: "auth".into(), id: "".into() } }];
    alice.create("/by-auth", b"", &auth_acl, CreateMode::Persistent).expect("create auth acl");
    let (acl, _) = alice.get_acl("/by-auth").expect("getAcl");
    assert_eq!(acl, sasl_acl("alice"));

    // Wrong password and unknown user: AuthFailed, then the connection closes.
    let wrong = Client::connect(server.addr, TIMEOUT).expect("connect");
    let e = wrong.sasl_digest_md5("alice", "not-her-password", "d3Jvbmc").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed), "{e}");
    assert!(common::wait_until(TIMEOUT, || wrong.is_closed()), "connection stays open after a failed login");
    let unknown = Client::connect(server.addr, TIMEOUT).expect("connect");
    let e = unknown.sasl_digest_md5("mallory", "x", "bWFsbG9yeQ").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed), "{e}");
    assert!(common::wait_until(TIMEOUT, || unknown.is_closed()));
    assert!(server.log().contains("no such user"), "the log says why");

    // A GSSAPI client's first token: refused, the log names the mechanism.
    let kerberos = Client::connect(server.addr, TIMEOUT).expect("connect");
    let e = kerberos
        .call(zoocore::proto::records::Request::Sasl { token: vec![0x60, 0x82, 0x02, 0x00].into() })
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed), "{e}");
    assert!(common::wait_until(TIMEOUT, || server.log().contains("SASL mechanism GSSAPI (Kerberos) is not supported")));
}

/// sessionRequireClientSASLAuth=true: a connection that has not logged in
/// gets SessionClosedRequireSaslAuth (-124) on its first request and is
/// closed; after a login everything works; a failed login also answers -124.
#[test]
fn session_require_client_sasl_auth() {
    let server = start("require", "sessionRequireClientSASLAuth=true\n");
    let anonymous = Client::connect(server.addr, TIMEOUT).expect("connect");
    let e = anonymous.exists("/", false).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::SessionClosedRequireSaslAuth), "{e}");
    assert!(common::wait_until(TIMEOUT, || anonymous.is_closed()));

    // Digest auth is not enough: only the sasl scheme is enforced.
    let digest = Client::connect(server.addr, TIMEOUT).expect("connect");
    digest.add_auth("digest", b"alice:alice-secret").expect("digest auth");
    assert_eq!(digest.exists("/", false).unwrap_err().code(), Some(ErrorCode::SessionClosedRequireSaslAuth));

    let alice = Client::connect(server.addr, TIMEOUT).expect("connect");
    alice.sasl_digest_md5("alice", "alice-secret", "YWxpY2U").expect("login");
    assert!(alice.exists("/", false).expect("exists").is_some());
    alice.create("/ok", b"", &sasl_acl("alice"), CreateMode::Persistent).expect("create");

    let wrong = Client::connect(server.addr, TIMEOUT).expect("connect");
    let e = wrong.sasl_digest_md5("alice", "nope", "bm9wZQ").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::SessionClosedRequireSaslAuth), "{e}");
}

/// enforce.auth.enabled + enforce.auth.schemes=sasl,digest: either scheme lets
/// a connection in.
#[test]
fn enforce_auth_schemes() {
    let server = start("enforce", "enforce.auth.enabled=true\nenforce.auth.schemes=sasl,digest\n");
    let anonymous = Client::connect(server.addr, TIMEOUT).expect("connect");
    assert_eq!(anonymous.get_children("/", false).unwrap_err().code(), Some(ErrorCode::SessionClosedRequireSaslAuth));
    let digest = Client::connect(server.addr, TIMEOUT).expect("connect");
    digest.add_auth("digest", b"d:d").expect("digest auth");
    assert!(digest.get_children("/", false).is_ok());
    let sasl = Client::connect(server.addr, TIMEOUT).expect("connect");
    sasl.sasl_digest_md5("bob", "bob-secret", "Ym9i").expect("login");
    assert!(sasl.get_children("/", false).is_ok());
}

/// A JAAS file zoocore cannot use stops start-up with the file and line.
#[test]
fn bad_jaas_file_is_named_with_its_line() {
    let dir = std::env::temp_dir().join(format!("zoocore-sasl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let jaas = dir.join("bad-jaas.conf");
    let cases = [
        (
            "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_a=\"b\"\n};\n",
            ":4: expected an option",
        ),
        ("Client {\n  x.Y required;\n};\n", "no JAAS section named \"Server\""),
        (
            "Server {\n  com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};\n",
            ":2: com.sun.security.auth.module.Krb5LoginModule: SASL mechanism GSSAPI (Kerberos) is not supported",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(&jaas, text).expect("write jaas");
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPort=2181\njava.security.auth.login.config={}\n",
                dir.join("data").display(),
                jaas.display()
            ),
        )
        .expect("write cfg");
        let out = Command::new(env!("CARGO_BIN_EXE_zoocore"))
            .arg("check-config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .expect("run check-config");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} passed");
        assert!(stderr.contains(&format!("{}", jaas.display())) && stderr.contains(needle), "{text:?}: {stderr}");
    }
}
