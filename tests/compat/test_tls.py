"""kazoo's TLS client (KazooClient(use_ssl=True, certfile=, keyfile=, ca=))
against the server's secureClientPort, with x509 ACLs.

The certificates are made here with Debian's `openssl` (a CA, the server
with SAN IP:127.0.0.1, two clients); the server's key store is Apache's PEM
type (key + chain in one file; for zoocore the key is an encrypted PKCS#8
with ssl.keyStore.password), the trust store a PEM file of the CA. As kazoo's
own TestSSLClient does, with PEM stores; and with JKS key and trust stores
written by pyjks as kazoo's own harness writes them (jks_tls). Runs against zoocore or, with
ZK_SERVER=apache, against Apache ZooKeeper 3.8 (NettyServerCnxnFactory), which
defines the behaviour; the TLS code path does not depend on the ensemble, so
the ensemble run skips it.
"""

import os
import shutil
import subprocess
import tempfile

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, Id, Permissions

from conftest import ServerProcess, in_ci, is_ensemble, pick_unused_ports, server_kind

pytestmark = pytest.mark.skipif(is_ensemble(), reason="TLS is per server; covered by the single-server run")

PEM_KEY_PASSWORD = "pem-key-secret"
ORG = "zoocore-test"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory):
    """CA, server and two client certificates (EC P-256), signed by the CA."""
    if shutil.which("openssl") is None:
        message = "openssl not found (Debian package openssl)"
        if in_ci():
            pytest.fail(message + "; it is required when CI=true")
        pytest.skip(message)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.pem",
            "-subj", "/CN=zoocore compat CA", "-days", "2", cwd=directory)

    def leaf(name, cn, san=None):
        openssl("req", *new_key, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/O=%s/CN=%s" % (ORG, cn), cwd=directory)
        ext = os.path.join(directory, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write("subjectAltName=%s\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext, cwd=directory)

    leaf("server", "server", "IP:127.0.0.1,DNS:localhost")
    leaf("alice", "alice")
    leaf("bob", "bob")
    openssl("pkcs8", "-topk8", "-in", "server.key", "-out", "server-encrypted.key",
            "-v2", "aes-256-cbc", "-passout", "pass:" + PEM_KEY_PASSWORD, cwd=directory)

    def read(name):
        with open(os.path.join(directory, name)) as f:
            return f.read()

    # Apache's PEM key store: the private key and the certificate chain.
    with open(os.path.join(directory, "server-plain.pem"), "w") as f:
        f.write(read("server.key") + read("server.crt") + read("ca.pem"))
    with open(os.path.join(directory, "server-encrypted.pem"), "w") as f:
        f.write(read("server-encrypted.key") + read("server.crt") + read("ca.pem"))
    return directory


@pytest.fixture(scope="module")
def pki():
    directory = tempfile.mkdtemp(prefix="zk-compat-tls-")
    try:
        yield make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# Debian's zookeeper.jar names netty-handler but not netty-codec, which
# Netty's SslHandler needs (without it Apache's TLS handshake dies with
# NoClassDefFoundError io/netty/handler/codec/ByteToMessageDecoder).
NETTY_CODEC_JAR = "/usr/share/java/netty-codec.jar"


class TlsServerProcess(ServerProcess):
    def command(self):
        command = super().command()
        if self.kind == "apache" and "-cp" in command:
            i = command.index("-cp") + 1
            command[i] = command[i] + ":" + NETTY_CODEC_JAR
        return command


@pytest.fixture(scope="module")
def tls_server(pki):
    kind = "apache" if server_kind() == "apache" else "zoocore"
    server = TlsServerProcess(kind)
    (secure_port,) = pick_unused_ports(1)
    if kind == "zoocore":
        # An encrypted PKCS#8 key with its password (Apache's PEM type with a password).
        key_store = ["ssl.keyStore.location=%s" % os.path.join(pki, "server-encrypted.pem"),
                     "ssl.keyStore.password=%s" % PEM_KEY_PASSWORD]
    else:
        # Debian's Apache 3.8 on its JRE: the unencrypted key keeps the run
        # independent of which PBES2 ciphers that JRE can decrypt.
        key_store = ["ssl.keyStore.location=%s" % os.path.join(pki, "server-plain.pem")]
    server.extra_lines = [
        "secureClientPort=%d" % secure_port,
        "secureClientPortAddress=127.0.0.1",
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
        "ssl.keyStore.type=PEM",
        "ssl.trustStore.location=%s" % os.path.join(pki, "ca.pem"),
        "ssl.trustStore.type=PEM",
        "ssl.clientAuth=need",
    ] + key_store
    server.start()
    server.secure_hostport = "127.0.0.1:%d" % secure_port
    try:
        yield server
    finally:
        server.cleanup()


def tls_client(pki, server, who="alice", **kwargs):
    options = dict(use_ssl=True, ca=os.path.join(pki, "ca.pem"), timeout=10)
    if who:
        options.update(certfile=os.path.join(pki, who + ".crt"), keyfile=os.path.join(pki, who + ".key"))
    options.update(kwargs)
    return KazooClient(hosts=server.secure_hostport, **options)


@pytest.fixture
def alice(pki, tls_server):
    client = tls_client(pki, tls_server, "alice")
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def subject(cn):
    """The x509 id: the subject DN as Java's X500Principal.getName() writes it."""
    return "CN=%s,O=%s" % (cn, ORG)


def test_round_trip_over_tls(alice, zk_path):
    # kazoo's own TestSSLClient.test_create.
    path = alice.create(zk_path)
    assert path == zk_path
    assert alice.exists(zk_path)
    alice.set(zk_path, b"x" * 100000)
    data, stat = alice.get(zk_path)
    assert data == b"x" * 100000 and stat.dataLength == 100000


def test_x509_acl_is_enforced(pki, tls_server, alice, zk_path):
    acl = [ACL(Permissions.ALL, Id("x509", subject("alice")))]
    alice.create(zk_path, b"alice's", acl=acl)
    assert alice.get(zk_path)[0] == b"alice's"
    assert alice.get_acls(zk_path)[0] == acl
    bob = tls_client(pki, tls_server, "bob")
    bob.start(timeout=15)
    try:
        with pytest.raises(NoAuthError):
            bob.get(zk_path)
        with pytest.raises(NoAuthError):
            bob.set(zk_path, b"bob's")
    finally:
        bob.stop()
        bob.close()


def test_a_client_without_a_certificate_is_refused(pki, tls_server):
    # ssl.clientAuth=need: the handshake fails, so no session ever starts.
    anonymous = tls_client(pki, tls_server, who=None, connection_retry=None)
    with pytest.raises((KazooTimeoutError, Exception)):
        anonymous.start(timeout=4)
    anonymous.stop()
    anonymous.close()


@pytest.fixture(scope="module")
def jks_tls(pki):
    """JKS key and trust stores as kazoo's own harness makes them (pyjks:
    a PrivateKeyEntry "server cert" and a TrustedCertEntry "kazoo ca",
    saved with the password "apassword"), with the zoo.cfg lines its
    ManagedZooKeeper writes (no ssl.*.type: the type comes from the .jks
    names). The certificates are this module's (X.509 v3): kazoo's harness
    signs v1 ones, which zoocore's verifier (webpki) refuses and Apache
    accepts (docs/security.md)."""
    try:
        import jks
    except ImportError as e:  # pyjks: kazoo's test-harness extra
        if in_ci():
            pytest.fail("pyjks cannot be imported (%s); CI installs it" % e)
        pytest.skip("pyjks cannot be imported: %s" % e)

    def der(*args):
        out = subprocess.run(["openssl", *args, "-outform", "DER"], cwd=pki, check=True, capture_output=True)
        return out.stdout

    server_cert, ca_cert = der("x509", "-in", "server.crt"), der("x509", "-in", "ca.pem")
    server_key = der("pkcs8", "-topk8", "-nocrypt", "-in", "server.key")
    directory = tempfile.mkdtemp(prefix="zk-compat-jks-")
    truststore_path = os.path.join(directory, "truststore.jks")
    keystore_path = os.path.join(directory, "keystore.jks")
    jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("kazoo ca", ca_cert)]).save(truststore_path, "apassword")
    key_entry = jks.PrivateKeyEntry.new("server cert", [server_cert, ca_cert], server_key, "pkcs8")
    jks.KeyStore.new("jks", [key_entry]).save(keystore_path, "apassword")

    kind = "apache" if server_kind() == "apache" else "zoocore"
    server = TlsServerProcess(kind)
    (secure_port,) = pick_unused_ports(1)
    server.extra_lines = [
        "secureClientPort=%d" % secure_port,
        "secureClientPortAddress=127.0.0.1",
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.location=%s" % keystore_path,
        "ssl.keyStore.password=apassword",
        "ssl.trustStore.location=%s" % truststore_path,
        "ssl.trustStore.password=apassword",
    ]
    server.start()
    server.secure_hostport = "127.0.0.1:%d" % secure_port
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def test_kazoo_ssl_client_create_with_jks_stores(pki, jks_tls, zk_path):
    # kazoo 2.11's TestSSLClient: setUp's client options, test_create's body.
    client = tls_client(pki, jks_tls, "alice")
    client.start(timeout=15)
    try:
        path = client.create(zk_path)
        assert path == zk_path
        assert client.exists(zk_path)
    finally:
        client.stop()
        client.close()


def test_jks_trust_store_refuses_a_client_without_a_certificate(pki, jks_tls):
    # The harness leaves ssl.clientAuth at Apache's default, need: the JKS
    # trust store is what a client's certificate is checked against.
    anonymous = tls_client(pki, jks_tls, who=None, connection_retry=None)
    with pytest.raises((KazooTimeoutError, Exception)):
        anonymous.start(timeout=4)
    anonymous.stop()
    anonymous.close()
