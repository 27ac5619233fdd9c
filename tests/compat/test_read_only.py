"""kazoo's read_only=True against a zoocore ensemble in read-only mode.

A 3-member zoocore ensemble with readonlymode.enabled=true (its own, whatever
ZK_SERVER says: the conftest has no Apache ensemble). Two members stop (by
PID); kazoo with read_only=True connects to the survivor in CONNECTED_RO,
reads, and gets NotReadOnlyCallError for writes; a client without read_only
does not get in. When the two come back kazoo finds the read/write server
through `isro`, its read-only session is unknown there (expired), and it goes
on with a new read/write session, as it does against Apache.
"""

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState

from conftest import (
    ENSEMBLE_INIT_LIMIT_TICKS,
    ENSEMBLE_SYNC_LIMIT_TICKS,
    EnsembleProcesses,
    four_letter_word,
    pick_unused_ports,
    server_kind,
    srvr_mode,
    write_zoo_cfg,
)

pytestmark = pytest.mark.skipif(
    server_kind() == "apache", reason="needs a zoocore ensemble (conftest starts no Apache ensemble)"
)

READ_ONLY_WITHIN_S = 20.0
SETTLE_S = 30.0


class ReadOnlyEnsemble(EnsembleProcesses):
    """EnsembleProcesses with readonlymode.enabled=true on every member."""

    def _write_configs(self):
        ports = pick_unused_ports(3 * len(self.members))
        extra = [
            "initLimit=%d" % ENSEMBLE_INIT_LIMIT_TICKS,
            "syncLimit=%d" % ENSEMBLE_SYNC_LIMIT_TICKS,
            "readonlymode.enabled=true",
        ] + ["server.%d=127.0.0.1:%d:%d" % (m.sid, ports[3 * i + 1], ports[3 * i + 2]) for i, m in enumerate(self.members)]
        for i, m in enumerate(self.members):
            m.port = ports[3 * i]
            write_zoo_cfg(m.cfg_path, m.data_dir, m.port, extra)


def wait_for(what, limit_s, cond):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out after %.0fs waiting for %s" % (limit_s, what))


@pytest.fixture
def ensemble():
    e = ReadOnlyEnsemble().start()
    try:
        yield e
    finally:
        e.cleanup()


def test_kazoo_read_only_client_across_a_partition(ensemble):
    survivor = ensemble.follower
    others = [m for m in ensemble.members if m is not survivor]

    setup = KazooClient(hosts=ensemble.connect_string)
    setup.start(timeout=15)
    setup.create("/kazoo-ro", b"before")
    setup.stop()
    setup.close()

    for m in others:
        m.stop()
    wait_for("read-only mode", READ_ONLY_WITHIN_S, lambda: srvr_mode(survivor.hostport) == "read-only")
    assert four_letter_word(survivor.hostport, "isro") == "ro"

    plain = KazooClient(hosts=survivor.hostport, timeout=2.0)
    with pytest.raises(KazooTimeoutError):
        plain.start(timeout=3)
    plain.stop()
    plain.close()

    client = KazooClient(hosts=ensemble.connect_string, read_only=True)
    client.start(timeout=15)
    try:
        assert client.client_state == KeeperState.CONNECTED_RO
        ro_session = client.client_id[0]
        data, _ = client.get("/kazoo-ro")
        assert data == b"before"
        assert client.get_children("/") and client.exists("/kazoo-ro")
        with pytest.raises(NotReadOnlyCallError):
            client.set("/kazoo-ro", b"no way")
        with pytest.raises(NotReadOnlyCallError):
            client.create("/kazoo-ro/new")
        with pytest.raises(NotReadOnlyCallError):
            client.delete("/kazoo-ro")

        for m in others:
            m.spawn()
        wait_for("the quorum", SETTLE_S, lambda: srvr_mode(survivor.hostport) in ("leader", "follower"))

        # kazoo pings isro while read-only, finds "rw", reconnects; its
        # read-only session is not the quorum's, so it gets a new one.
        wait_for("a read/write session", SETTLE_S, lambda: client.client_state == KeeperState.CONNECTED)

        def write_works():
            try:
                client.set("/kazoo-ro", b"after")
                return True
            except Exception:
                return False

        wait_for("a write through the read/write session", SETTLE_S, write_works)
        assert client.client_id[0] != ro_session
        assert client.get("/kazoo-ro")[0] == b"after"
    finally:
        client.stop()
        client.close()
