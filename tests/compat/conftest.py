"""Server fixtures for the third-party-client compatibility tests.

The same tests run against zoocore (the default) or against real Apache
ZooKeeper, which defines the behaviour zoocore must match:

    ZK_SERVER=zoocore   start $ZOOCORE_BIN server --config <tmp zoo.cfg>
    ZK_SERVER=apache    start org.apache.zookeeper.server.ZooKeeperServerMain

Each server gets a free port on 127.0.0.1 and a fresh temporary dataDir, and is
stopped by its PID when the fixture ends.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# super:admin, i.e. base64(sha1("super:admin")).
SUPER_DIGEST = "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
SUPER_AUTH = ("digest", "super:admin")

# tickTime 500 ms makes the session timeout bounds 1 s .. 10 s, so the expiry
# tests stay fast.
TICK_TIME_MS = 500
CONTAINER_CHECK_INTERVAL_MS = 1000

APACHE_CLASSPATH_DEFAULT = "/usr/share/java/zookeeper.jar"
APACHE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def server_kind():
    kind = os.environ.get("ZK_SERVER", "zoocore").strip().lower()
    if kind not in ("zoocore", "apache"):
        raise pytest.UsageError("ZK_SERVER must be 'zoocore' or 'apache', got %r" % kind)
    return kind


def zoocore_binary():
    explicit = os.environ.get("ZOOCORE_BIN")
    if explicit:
        return explicit
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO_ROOT, "target")
    return os.path.join(target_dir, "release", "zoocore")


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(path, what):
    """Skip locally when an external client is missing, but fail in CI."""
    if os.path.exists(path) and os.access(path, os.X_OK):
        return path
    message = "%s not found at %s (install Debian packages zookeeper/zookeeper-bin)" % (what, path)
    if in_ci():
        pytest.fail(message + "; it is required when CI=true")
    pytest.skip(message)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def four_letter_word(hostport, command, timeout=5.0):
    """Send a 4lw command and return the whole reply (the server closes the socket)."""
    host, port = hostport.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(command.encode("ascii") if isinstance(command, str) else command)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def write_zoo_cfg(path, data_dir, port):
    # Apache turns every unrecognised key k into the system property
    # zookeeper.k, which is how extendedTypesEnabled, the super digest, the
    # container check interval and the 4lw whitelist take effect; zoocore reads
    # the same keys from zoo.cfg.
    lines = [
        "tickTime=%d" % TICK_TIME_MS,
        "dataDir=%s" % data_dir,
        "clientPort=%d" % port,
        "clientPortAddress=127.0.0.1",
        "4lw.commands.whitelist=*",
        "extendedTypesEnabled=true",
        "DigestAuthenticationProvider.superDigest=%s" % SUPER_DIGEST,
        "znode.container.checkIntervalMs=%d" % CONTAINER_CHECK_INTERVAL_MS,
        # Apache's Jetty admin server would otherwise grab port 8080.
        "admin.enableServer=false",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class ServerProcess:
    """One server process with its own temp directory, port and log file."""

    def __init__(self, kind=None):
        self.kind = kind or server_kind()
        self.workdir = tempfile.mkdtemp(prefix="zk-compat-%s-" % self.kind)
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir)
        self.cfg_path = os.path.join(self.workdir, "zoo.cfg")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.port = None
        self.proc = None

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.port

    def command(self):
        if self.kind == "zoocore":
            binary = zoocore_binary()
            if not os.path.exists(binary):
                pytest.fail("zoocore binary not found at %s (run cargo build --release or set ZOOCORE_BIN)" % binary)
            return [binary, "server", "--config", self.cfg_path]
        java = os.environ.get("ZK_JAVA", shutil.which("java") or "/usr/bin/java")
        classpath = os.environ.get("ZK_CLASSPATH", APACHE_CLASSPATH_DEFAULT)
        if not os.path.exists(classpath.split(":")[0]):
            message = "Apache ZooKeeper jar not found at %s" % classpath
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        # zoo.cfg already sets most of these; the -D flags make the Apache
        # launcher independent of when each class first reads its property.
        # The container reaper reads the bare property
        # znode.container.checkIntervalMs (no "zookeeper." prefix), which a
        # zoo.cfg key cannot produce, so for Apache the -D flag is required.
        return [
            java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.4lw.commands.whitelist=*",
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=%s" % SUPER_DIGEST,
            "-Dznode.container.checkIntervalMs=%d" % CONTAINER_CHECK_INTERVAL_MS,
            "-Dzookeeper.admin.enableServer=false",
            "-cp",
            classpath,
            APACHE_MAIN,
            self.cfg_path,
        ]

    def start(self):
        last_error = None
        # The free port can be taken between probing and binding; retry then.
        for _attempt in range(3):
            self.port = free_port()
            write_zoo_cfg(self.cfg_path, self.data_dir, self.port)
            log = open(self.log_path, "ab")
            env = dict(os.environ)
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            log.close()
            try:
                self._wait_ready()
                return self
            except RuntimeError as err:
                last_error = err
                self.stop()
        raise RuntimeError("%s server did not start: %s\n--- log ---\n%s" % (self.kind, last_error, self.log_tail()))

    def _wait_ready(self):
        """Ready when ruok answers imok, or srvr answers, or (for a server
        without 4lw support) when TCP connects have worked for a while."""
        deadline = time.monotonic() + START_TIMEOUT_S
        first_connect = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("process exited with status %s" % self.proc.returncode)
            try:
                if four_letter_word(self.hostport, "ruok", timeout=1.0) == "imok":
                    return
                if four_letter_word(self.hostport, "srvr", timeout=1.0):
                    return
                first_connect = first_connect or time.monotonic()
                if time.monotonic() - first_connect > 3.0:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("not answering on %s after %.0fs" % (self.hostport, START_TIMEOUT_S))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None

    def cleanup(self):
        self.stop()
        if os.environ.get("ZK_KEEP_TMP"):
            return
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, max_bytes=8000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-max_bytes:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def zk_server():
    """A server shared by the tests of one module (tests use unique paths)."""
    server = ServerProcess().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def zk_hosts(zk_server):
    """The "host:port" of the module's server."""
    return zk_server.hostport


@pytest.fixture
def fresh_zk_server():
    """A server of its own, for tests that count nodes or sessions."""
    server = ServerProcess().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def zk_path(request):
    """A unique absolute path prefix (not created) for the current test."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    return "/%s-%s" % (name, uuid.uuid4().hex[:8])


def pytest_report_header(config):
    kind = os.environ.get("ZK_SERVER", "zoocore")
    extra = zoocore_binary() if kind == "zoocore" else os.environ.get("ZK_CLASSPATH", APACHE_CLASSPATH_DEFAULT)
    return "zk server: %s (%s)" % (kind, extra)
