"""Server fixtures for the third-party-client compatibility tests.

The same tests run against zoocore (the default) or against real Apache
ZooKeeper, which defines the behaviour zoocore must match:

    ZK_SERVER=zoocore            start $ZOOCORE_BIN server --config <tmp zoo.cfg>
    ZK_SERVER=apache             start org.apache.zookeeper.server.ZooKeeperServerMain
    ZK_SERVER=zoocore-ensemble   start three zoocore members (server.1..3) and
                                 wait until one leads and two follow

Each server gets a free port on 127.0.0.1 and a fresh temporary dataDir, and is
stopped by its PID when the fixture ends.

Fixtures: `zk_hosts` is the connect string for clients (all three hosts for an
ensemble), `zk_host` is one "host:port" (for an ensemble a follower's, so
writes through it are forwarded to the leader) for tools that talk to one
server: 4lw sockets, cli_mt, zkCli.sh, the partitioning Proxy.
"""

import os
import random
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


ENSEMBLE_KIND = "zoocore-ensemble"
SERVER_KINDS = ("zoocore", "apache", ENSEMBLE_KIND)
ENSEMBLE_SIZE = 3
# Apache's defaults for a small loopback ensemble, in ticks of TICK_TIME_MS.
ENSEMBLE_INIT_LIMIT_TICKS = 10
ENSEMBLE_SYNC_LIMIT_TICKS = 5
# Below the ephemeral range only listeners take ports (see pick_unused_ports).
LOW_PORT_FLOOR = 10000


def server_kind():
    kind = os.environ.get("ZK_SERVER", "zoocore").strip().lower()
    if kind not in SERVER_KINDS:
        raise pytest.UsageError("ZK_SERVER must be one of %s, got %r" % (", ".join(SERVER_KINDS), kind))
    return kind


def is_ensemble():
    return server_kind() == ENSEMBLE_KIND


def skip_on_ensemble(reason):
    """Marks a test about single-server behaviour as not applying to an ensemble."""
    return pytest.mark.skipif(server_kind() == ENSEMBLE_KIND, reason="single-server behaviour: " + reason)


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


def ephemeral_port_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out_ports = set()


def pick_unused_ports(count):
    """Ports free now and below the kernel's ephemeral range.

    A port from bind(0) lies in the ephemeral range; once released it can
    become the local port of any outgoing connection (a learner's quorum
    link, a client). An ensemble member binds its quorum port only when it is
    elected leader, long after the port was picked, so such a port may be
    taken by then and the ensemble never settles. Below the range only
    listeners take ports."""
    high = max(ephemeral_port_low(), LOW_PORT_FLOOR + 2) - 1
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    ports = []
    while len(ports) < count:
        port = rng.randrange(LOW_PORT_FLOOR, high)
        if port in _handed_out_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out_ports.add(port)
        ports.append(port)
    return ports


def closing_clients(new_client):
    """For a fixture: yields a factory of kazoo clients made by
    `new_client(**kwargs)` (timeout 10 s unless given), then stops and
    closes every client it made."""
    clients = []

    def make(**kwargs):
        kwargs.setdefault("timeout", 10.0)
        client = new_client(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


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


def write_zoo_cfg(path, data_dir, port, extra_lines=()):
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
        # Hard quota limits refuse writes (test_zkcli.py's setquota test).
        "enforceQuota=true",
        "DigestAuthenticationProvider.superDigest=%s" % SUPER_DIGEST,
        "znode.container.checkIntervalMs=%d" % CONTAINER_CHECK_INTERVAL_MS,
        # The AdminServer (Apache's Jetty, and zoocore's, both on by default)
        # would otherwise listen on 0.0.0.0:8080.
        "admin.enableServer=false",
    ]
    lines.extend(extra_lines)
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
        # More zoo.cfg lines (test_tls.py: secureClientPort and ssl.*).
        self.extra_lines = []

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
            "-Dzookeeper.enforceQuota=true",
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
            write_zoo_cfg(self.cfg_path, self.data_dir, self.port, self.extra_lines)
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


def srvr_mode(hostport):
    """`Mode:` from srvr (leader, follower, ...), or "" if the member does
    not answer or is not serving yet."""
    try:
        text = four_letter_word(hostport, "srvr", timeout=1.0)
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):].strip()
    return ""


class EnsembleMember:
    """One zoocore member: its own dataDir with myid, zoo.cfg and log."""

    def __init__(self, workdir, sid):
        self.sid = sid
        self.workdir = os.path.join(workdir, "s%d" % sid)
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir)
        with open(os.path.join(self.data_dir, "myid"), "w") as f:
            f.write("%d\n" % sid)
        self.cfg_path = os.path.join(self.workdir, "zoo.cfg")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.port = None
        self.proc = None

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.port

    def spawn(self):
        binary = zoocore_binary()
        if not os.path.exists(binary):
            pytest.fail("zoocore binary not found at %s (run cargo build --release or set ZOOCORE_BIN)" % binary)
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            [binary, "server", "--config", self.cfg_path],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

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

    def log_tail(self, max_bytes=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-max_bytes:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"


class EnsembleProcesses:
    """Three zoocore members on 127.0.0.1, ready once one leads and the
    others follow. `hostport`/`port` name a follower (single-host tools);
    `connect_string` names every member."""

    def __init__(self, size=ENSEMBLE_SIZE):
        self.kind = ENSEMBLE_KIND
        self.workdir = tempfile.mkdtemp(prefix="zk-compat-ensemble-")
        self.members = [EnsembleMember(self.workdir, sid) for sid in range(1, size + 1)]
        self.follower = None
        self.leader = None

    @property
    def hostport(self):
        return self.follower.hostport

    @property
    def port(self):
        return self.follower.port

    @property
    def ports(self):
        return [m.port for m in self.members]

    @property
    def connect_string(self):
        return ",".join(m.hostport for m in self.members)

    def _write_configs(self):
        # client, quorum and election port for each member
        ports = pick_unused_ports(3 * len(self.members))
        server_lines = [
            "server.%d=127.0.0.1:%d:%d" % (m.sid, ports[3 * i + 1], ports[3 * i + 2])
            for i, m in enumerate(self.members)
        ]
        extra = ["initLimit=%d" % ENSEMBLE_INIT_LIMIT_TICKS, "syncLimit=%d" % ENSEMBLE_SYNC_LIMIT_TICKS] + server_lines
        for i, m in enumerate(self.members):
            m.port = ports[3 * i]
            write_zoo_cfg(m.cfg_path, m.data_dir, m.port, extra)

    def start(self):
        self._write_configs()
        for m in self.members:
            m.spawn()
        try:
            self._wait_settled()
        except RuntimeError as err:
            logs = "".join("--- s%d ---\n%s\n" % (m.sid, m.log_tail()) for m in self.members)
            self.cleanup()
            raise RuntimeError("ensemble did not settle: %s\n%s" % (err, logs))
        return self

    def _wait_settled(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        modes = {}
        while time.monotonic() < deadline:
            for m in self.members:
                if m.proc.poll() is not None:
                    raise RuntimeError("member %d exited with status %s" % (m.sid, m.proc.returncode))
            modes = {m.sid: srvr_mode(m.hostport) for m in self.members}
            leaders = [m for m in self.members if modes[m.sid] == "leader"]
            followers = [m for m in self.members if modes[m.sid] == "follower"]
            if len(leaders) == 1 and len(followers) == len(self.members) - 1:
                self.leader = leaders[0]
                self.follower = followers[0]
                return
            time.sleep(0.1)
        raise RuntimeError("modes after %.0fs: %r" % (START_TIMEOUT_S, modes))

    def stop(self):
        for m in self.members:
            m.stop()

    def cleanup(self):
        self.stop()
        if os.environ.get("ZK_KEEP_TMP"):
            return
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self):
        return "".join("--- s%d ---\n%s\n" % (m.sid, m.log_tail()) for m in self.members)


def start_server():
    if server_kind() == ENSEMBLE_KIND:
        return EnsembleProcesses().start()
    return ServerProcess().start()


@pytest.fixture(scope="module")
def zk_server():
    """A server shared by the tests of one module (tests use unique paths)."""
    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def zk_hosts(zk_server):
    """The connect string of the module's server (every member of an ensemble)."""
    return getattr(zk_server, "connect_string", zk_server.hostport)


@pytest.fixture(scope="module")
def zk_host(zk_server):
    """One "host:port" of the module's server: for an ensemble a follower, so
    writes through it are forwarded to the leader."""
    return zk_server.hostport


@pytest.fixture(scope="module")
def expected_mode():
    """srvr/stat `Mode:` and mntr zk_server_state of the host `zk_host`
    and `fresh_zk_server.hostport` name."""
    return "follower" if server_kind() == ENSEMBLE_KIND else "standalone"


@pytest.fixture
def fresh_zk_server():
    """A server of its own, for tests that count nodes or sessions."""
    server = start_server()
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
    extra = zoocore_binary() if kind in ("zoocore", ENSEMBLE_KIND) else os.environ.get("ZK_CLASSPATH", APACHE_CLASSPATH_DEFAULT)
    return "zk server: %s (%s)" % (kind, extra)
