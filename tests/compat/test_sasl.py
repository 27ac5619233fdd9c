"""kazoo's SASL DIGEST-MD5 login (pure-sasl) against the server, with the
JAAS file kazoo's own harness writes for its sasl tests
(kazoo/testing/harness.py, ZOOKEEPER_JAAS_AUTH=digest), generated here.

The cases are kazoo 2.11's kazoo/tests/test_sasl.py,
TestLegacySASLDigestAuthentication and TestSASLDigestAuthentication
(test_connect_sasl_auth, test_invalid_sasl_auth): kazoo's harness starts
only a Java server from ZOOKEEPER_PATH, so its classes cannot be pointed at
zoocore; the bodies are kept as kazoo has them, but for one race: kazoo 2.11
reports CONNECTED before it runs the SASL exchange, so `start()` usually
returns before the failure arrives (against Apache 3.8 too) and only then
does the client go to AUTH_FAILED. The invalid-login cases therefore accept
either order and wait for the AUTH_FAILED state. Runs against zoocore or, with
ZK_SERVER=apache, against Apache ZooKeeper 3.8, which defines the behaviour.
zoocore reads the JAAS path from zoo.cfg's java.security.auth.login.config;
Apache from the -Djava.security.auth.login.config flag, as kazoo passes it.
The exchange is per connection, so the ensemble run skips it.
"""

import os
import shutil
import tempfile
import warnings

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl

from conftest import ServerProcess, closing_clients, in_ci, is_ensemble, server_kind
from zkext import wait_until

pytestmark = pytest.mark.skipif(is_ensemble(), reason="SASL is per connection; covered by the single-server run")

# kazoo/testing/harness.py's JAAS file for ZOOKEEPER_JAAS_AUTH=digest.
KAZOO_JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};"""

USERNAME = "jaasuser"
PASSWORD = "jaas_password"


def require_puresasl():
    try:
        import puresasl  # NOQA
    except ImportError:
        message = "pure-sasl not installed (scripts/setup-test-deps.sh installs it)"
        if in_ci():
            pytest.fail(message + "; it is required when CI=true")
        pytest.skip(message)


class SaslServerProcess(ServerProcess):
    def __init__(self, kind, jaas_path):
        super().__init__(kind)
        self.jaas_path = jaas_path
        # As kazoo's harness: the SASL provider is named in zoo.cfg.
        self.extra_lines = ["authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"]
        if kind == "zoocore":
            self.extra_lines.append("java.security.auth.login.config=%s" % jaas_path)

    def command(self):
        command = super().command()
        if self.kind == "apache" and "-cp" in command:
            command.insert(command.index("-cp"), "-Djava.security.auth.login.config=%s" % self.jaas_path)
        return command


@pytest.fixture(scope="module")
def sasl_server():
    require_puresasl()
    directory = tempfile.mkdtemp(prefix="zk-compat-sasl-")
    jaas_path = os.path.join(directory, "jaas.conf")
    with open(jaas_path, "w") as f:
        f.write(KAZOO_JAAS)
    kind = "apache" if server_kind() == "apache" else "zoocore"
    server = SaslServerProcess(kind, jaas_path)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def get_client(sasl_server):
    yield from closing_clients(lambda **kwargs: KazooClient(hosts=sasl_server.hostport, **kwargs))


@pytest.fixture
def plain_client(get_client):
    client = get_client()
    client.start(timeout=15)
    return client


def expect_auth_failed(client):
    """The login is refused: start() raises, or returns at CONNECTED and the
    client then reaches AUTH_FAILED (see the module docstring)."""
    # Listeners run inside kazoo's state change, so client_state is the
    # cause of the LOST they see.
    seen = []
    client.add_listener(lambda state: seen.append((state, client.client_state)))
    try:
        client.start(timeout=15)
    except (AuthFailedError, KazooTimeoutError):
        pass
    assert wait_until(lambda: (KazooState.LOST, KeeperState.AUTH_FAILED) in seen, timeout=15), seen


def connect_sasl_auth(client, plain_client, path):
    acl = make_acl("sasl", credential=USERNAME, all=True)
    client.start(timeout=15)
    try:
        client.create(path, acl=(acl,))
        with pytest.raises(NoAuthError):
            plain_client.get(path)
        assert client.get(path)[0] == b""
    finally:
        client.delete(path)
        client.stop()
        client.close()


def test_legacy_connect_sasl_auth(get_client, plain_client, zk_path):
    # TestLegacySASLDigestAuthentication.test_connect_sasl_auth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = get_client(auth_data=[("sasl", "%s:%s" % (USERNAME, PASSWORD))])
    connect_sasl_auth(client, plain_client, zk_path)


def test_legacy_invalid_sasl_auth(get_client):
    # TestLegacySASLDigestAuthentication.test_invalid_sasl_auth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = get_client(auth_data=[("sasl", "baduser:badpassword")])
    expect_auth_failed(client)


def test_connect_sasl_auth(get_client, plain_client, zk_path):
    # TestSASLDigestAuthentication.test_connect_sasl_auth
    client = get_client(sasl_options={"mechanism": "DIGEST-MD5", "username": USERNAME, "password": PASSWORD})
    connect_sasl_auth(client, plain_client, zk_path)


def test_invalid_sasl_auth(get_client):
    # TestSASLDigestAuthentication.test_invalid_sasl_auth
    client = get_client(sasl_options={"mechanism": "DIGEST-MD5", "username": "baduser", "password": "badpassword"})
    expect_auth_failed(client)


def test_wrong_password_for_a_known_user(get_client):
    client = get_client(sasl_options={"mechanism": "DIGEST-MD5", "username": USERNAME, "password": "not-it"})
    expect_auth_failed(client)
