"""kazoo's TLS client (KazooClient(use_ssl=True, certfile=, keyfile=, ca=))
against the server's secureClientPort, with x509 ACLs.

The certificates are made here with Debian's `openssl` (a CA, the server
with SAN IP:127.0.0.1, two clients); the server's key store is Apache's PEM
type (key + chain in one file; for zoocore the key is an encrypted PKCS#8
with ssl.keyStore.password), the trust store a PEM file of the CA. As kazoo's
own TestSSLClient does, with PEM stores; with kazoo's own harness
certificates (X.509 v1 server and client certificates, made by kazoo's
perform_ssl_certs_generation) and its JKS stores (kazoo_harness_tls); and with
JKS stores holding this module's v3 chain (jks_tls). Runs against zoocore or, with
ZK_SERVER=apache, against Apache ZooKeeper 3.8 (NettyServerCnxnFactory), which
defines the behaviour; the TLS code path does not depend on the ensemble, so
the ensemble run skips it.
"""

import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

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


def s_client(pki, server, who="alice"):
    """openssl s_client on the secure port: the server's chain checked
    against the CA and its IP SAN, `who`'s certificate presented. Waits
    for the port first: Apache opens its secure port after the plain one,
    which is what the fixture waits for."""
    host, port = server.secure_hostport.rsplit(":", 1)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nothing listens on %s" % server.secure_hostport
            time.sleep(0.1)
    return subprocess.Popen(
        ["openssl", "s_client", "-connect", server.secure_hostport, "-CAfile", os.path.join(pki, "ca.pem"),
         "-cert", os.path.join(pki, who + ".crt"), "-key", os.path.join(pki, who + ".key"),
         "-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-ign_eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_exactly(stream, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, "timed out after %d of %d bytes" % (len(out), n)
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), n - len(out))
            assert chunk, "the stream ended after %d of %d bytes" % (len(out), n)
            out += chunk
    return out


def test_openssl_s_client_opens_a_session_and_asks_ruok(pki, tls_server):
    # A second TLS client beside kazoo's: a ConnectRequest (protocol 0,
    # lastZxidSeen 0, 10 s timeout, session 0, an empty password, readOnly
    # false) gets a ConnectResponse with a session.
    body = struct.pack(">iqiq", 0, 0, 10000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    client = s_client(pki, tls_server)
    try:
        client.stdin.write(struct.pack(">i", len(body)) + body)
        client.stdin.flush()
        try:
            (length,) = struct.unpack(">i", read_exactly(client.stdout, 4))
            response = read_exactly(client.stdout, length)
        except AssertionError as e:
            client.kill()
            raise AssertionError("%s; openssl said: %s" % (e, client.stderr.read().decode(errors="replace")))
        _protocol, timeout_ms, session_id = struct.unpack(">iiq", response[:16])
        assert session_id != 0 and timeout_ms > 0, response
    finally:
        client.kill()
        client.wait()
    # A four-letter word over TLS: the server answers and closes.
    client = s_client(pki, tls_server)
    out, err = client.communicate(b"ruok", timeout=15)
    assert out == b"imok", (out, err)


def test_a_client_without_a_certificate_is_refused(pki, tls_server):
    # ssl.clientAuth=need: the handshake fails, so no session ever starts.
    anonymous = tls_client(pki, tls_server, who=None, connection_retry=None)
    with pytest.raises((KazooTimeoutError, Exception)):
        anonymous.start(timeout=4)
    anonymous.stop()
    anonymous.close()


def start_with_harness_config(keystore_path, truststore_path):
    """A server with the TLS lines kazoo's ManagedZooKeeper writes (no
    ssl.*.type: the type comes from the .jks names; ssl.clientAuth left at
    Apache's default, need), on a secure port picked here."""
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
    return server


@pytest.fixture(scope="module")
def kazoo_harness_tls():
    """kazoo's own test harness, as its TestSSLClient runs it: the
    certificates made by kazoo.testing.common's
    ZookeeperCluster.perform_ssl_certs_generation (an RSA CA, X.509 v3, and
    server and client certificates it signs as X.509 v1), its pyjks JKS
    stores (a PrivateKeyEntry "server cert", a TrustedCertEntry "kazoo ca",
    password "apassword") and the zoo.cfg lines its ManagedZooKeeper writes
    (no ssl.*.type: the type comes from the .jks names; ssl.clientAuth left
    at Apache's default, need). Yields (server, client PEM directory)."""
    try:
        import jks  # noqa: F401  (pyjks: kazoo's test-harness extra)
        import OpenSSL  # noqa: F401  (pyOpenSSL: the harness signs with it)
        from kazoo.testing.common import ZookeeperCluster
    except ImportError as e:
        if in_ci():
            pytest.fail("kazoo's test harness cannot be imported (%s); CI installs pyjks and pyOpenSSL" % e)
        pytest.skip("kazoo's test harness cannot be imported: %s" % e)

    # The harness's method, run on a bare object that holds only the
    # attribute it fills.
    holder = type("HarnessCerts", (), {"_ssl_configuration": None})()
    ZookeeperCluster.perform_ssl_certs_generation(holder)
    ssl_configuration = holder._ssl_configuration
    directory = tempfile.mkdtemp(prefix="zk-compat-kazoo-harness-")
    truststore_path = os.path.join(directory, "truststore.jks")
    keystore_path = os.path.join(directory, "keystore.jks")
    ssl_configuration["truststore"].save(truststore_path, "apassword")
    ssl_configuration["keystore"].save(keystore_path, "apassword")
    # TestSSLClient.setUp: the client's key, certificate and CA as PEM files.
    for name, key in (("key.pem", "client_key_pem"), ("cert.pem", "client_cert_pem"), ("cacert.pem", "ca_cert_pem")):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(ssl_configuration[key])

    server = start_with_harness_config(keystore_path, truststore_path)
    try:
        yield server, directory
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def harness_client(harness, **kwargs):
    server, directory = harness
    options = dict(use_ssl=True, timeout=10, ca=os.path.join(directory, "cacert.pem"),
                   certfile=os.path.join(directory, "cert.pem"), keyfile=os.path.join(directory, "key.pem"))
    options.update(kwargs)
    return KazooClient(hosts=server.secure_hostport, **options)


def kazoo_test_create(client, zk_path):
    """kazoo 2.11's TestSSLClient.test_create body, then the client stopped."""
    client.start(timeout=15)
    try:
        path = client.create(zk_path)
        assert path == zk_path
        assert client.exists(zk_path)
    finally:
        client.stop()
        client.close()


def test_the_harness_certificates_are_x509_v1(kazoo_harness_tls):
    # What makes this fixture worth having: webpki alone refuses these.
    _, directory = kazoo_harness_tls
    text = subprocess.run(["openssl", "x509", "-in", os.path.join(directory, "cert.pem"), "-noout", "-text"],
                          check=True, capture_output=True, text=True).stdout
    assert "Version: 1 (0x0)" in text


def test_kazoo_ssl_client_create_with_the_harness_certificates(kazoo_harness_tls, zk_path):
    # kazoo 2.11's TestSSLClient: setUp's client options, test_create's body.
    client = harness_client(kazoo_harness_tls)
    kazoo_test_create(client, zk_path)


def test_the_harness_trust_store_refuses_other_certificates(pki, kazoo_harness_tls):
    # Without a certificate, and with one from a CA the harness's JKS trust
    # store does not hold: no session starts.
    _, directory = kazoo_harness_tls
    for options in (dict(certfile=None, keyfile=None),
                    dict(certfile=os.path.join(pki, "alice.crt"), keyfile=os.path.join(pki, "alice.key"))):
        refused = harness_client(kazoo_harness_tls, connection_retry=None, **options)
        with pytest.raises((KazooTimeoutError, Exception)):
            refused.start(timeout=4)
        refused.stop()
        refused.close()


@pytest.fixture(scope="module")
def jks_tls(pki):
    """The harness's JKS layout and zoo.cfg lines (as kazoo_harness_tls)
    with this module's openssl-made X.509 v3 certificates and a key entry
    holding the whole chain, written with pyjks."""
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

    server = start_with_harness_config(keystore_path, truststore_path)
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def test_kazoo_ssl_client_create_with_jks_stores(pki, jks_tls, zk_path):
    # kazoo 2.11's TestSSLClient: setUp's client options, test_create's body.
    client = tls_client(pki, jks_tls, "alice")
    kazoo_test_create(client, zk_path)


def test_jks_trust_store_refuses_a_client_without_a_certificate(pki, jks_tls):
    # The harness leaves ssl.clientAuth at Apache's default, need: the JKS
    # trust store is what a client's certificate is checked against.
    anonymous = tls_client(pki, jks_tls, who=None, connection_retry=None)
    with pytest.raises((KazooTimeoutError, Exception)):
        anonymous.start(timeout=4)
    anonymous.stop()
    anonymous.close()
