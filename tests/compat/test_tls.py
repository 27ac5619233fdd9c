"""kazoo's TLS client (KazooClient(use_ssl=True, certfile=, keyfile=, ca=))
against the server's secureClientPort, with x509 ACLs.

The certificates are made here with Debian's `openssl` (a CA, the server
with SAN IP:127.0.0.1, two clients); the server's key store is Apache's PEM
type (key + chain in one file; for zoocore the key is an encrypted PKCS#8
with ssl.keyStore.password), the trust store a PEM file of the CA. As kazoo's
own TestSSLClient does, but with stores both servers read: kazoo's harness
writes JKS, which zoocore does not read. Runs against zoocore or, with
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
