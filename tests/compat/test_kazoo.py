"""Round trips through kazoo, the Python ZooKeeper client.

Every assertion here holds against Apache ZooKeeper 3.8; that is the
behaviour zoocore must reproduce.  Where 3.8 and 3.9 differ, both are
accepted and the comment says why.
"""

import re
import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NoChildrenForEphemeralsError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType
from kazoo.protocol.serialization import Create
from kazoo.security import OPEN_ACL_UNSAFE, ACL, Id, Permissions, make_digest_acl

from conftest import SUPER_AUTH, closing_clients, four_letter_word, is_ensemble
from zkext import (
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    PERSISTENT,
    PERSISTENT_RECURSIVE,
    WATCHER_ANY,
    WATCHER_DATA,
    ExtKazooClient,
    Proxy,
    wait_until,
)

SESSION_TIMEOUT_S = 2.0  # within [2, 20] ticks of the 500 ms tickTime


def catch_up(client, path):
    """Before a client reads what another client wrote: in an ensemble the two
    may be on different members, and ZooKeeper promises a reader the other's
    write only after sync (a member applies commits a little after the
    writer's own member replied). One server orders everything already."""
    if is_ensemble():
        client.sync(path)


@pytest.fixture
def make_client(zk_hosts):
    """Factory for started ExtKazooClients; all are stopped at the end."""

    def new_client(hosts=None, **kwargs):
        client = ExtKazooClient(hosts=hosts or zk_hosts, **kwargs)
        client.start(timeout=15)
        return client

    yield from closing_clients(new_client)


@pytest.fixture
def zk(make_client):
    return make_client()


# --------------------------------------------------------------------------
# CRUD and Stat


def test_create_get_set_delete_with_versions(zk, zk_path):
    created = zk.create(zk_path, b"v0")
    assert created == zk_path

    data, stat = zk.get(zk_path)
    assert data == b"v0"
    assert stat.version == 0
    assert stat.cversion == 0
    assert stat.aversion == 0
    assert stat.dataLength == 2
    assert stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime
    assert stat.czxid > 0

    with pytest.raises(NodeExistsError):
        zk.create(zk_path, b"again")

    stat1 = zk.set(zk_path, b"value-1", version=0)
    assert stat1.version == 1
    assert stat1.dataLength == 7
    assert stat1.mzxid > stat1.czxid
    assert stat1.czxid == stat.czxid
    assert stat1.pzxid == stat.pzxid  # data changes leave pzxid alone
    assert stat1.mtime >= stat.mtime

    with pytest.raises(BadVersionError):
        zk.set(zk_path, b"stale", version=0)
    assert zk.get(zk_path)[0] == b"value-1"

    stat2 = zk.set(zk_path, b"", version=-1)  # -1 matches any version
    assert stat2.version == 2
    assert stat2.dataLength == 0
    assert zk.get(zk_path) == (b"", stat2)

    with pytest.raises(BadVersionError):
        zk.delete(zk_path, version=1)
    zk.delete(zk_path, version=2)
    assert zk.exists(zk_path) is None
    with pytest.raises(NoNodeError):
        zk.get(zk_path)
    with pytest.raises(NoNodeError):
        zk.delete(zk_path)
    with pytest.raises(NoNodeError):
        zk.set(zk_path, b"x")


def test_create_without_parent_fails(zk, zk_path):
    with pytest.raises(NoNodeError):
        zk.create(zk_path + "/child")
    zk.create(zk_path + "/a/b", b"deep", makepath=True)
    assert zk.get(zk_path + "/a/b")[0] == b"deep"


def test_bad_paths_are_rejected(zk, zk_path):
    # kazoo normalises paths in create(), so send the raw request.  The parent
    # is looked up before the full path is validated, so "//x" is -101.
    zk.create(zk_path)
    cases = [
        ("noslash", BadArgumentsError),
        (zk_path + "/", BadArgumentsError),
        (zk_path + "//x", NoNodeError),
        (zk_path + "/.", BadArgumentsError),
        (zk_path + "/..", BadArgumentsError),
        (zk_path + "/a\x00b", BadArgumentsError),
        (zk_path + "/x\x01", BadArgumentsError),
        (zk_path + "/\ue000", BadArgumentsError),  # private-use area
    ]
    for bad, error in cases:
        with pytest.raises(error):
            zk._sync_call(Create(bad, b"", OPEN_ACL_UNSAFE, 0))
    assert zk.get_children(zk_path) == []


def test_include_data_create2_returns_stat(zk, zk_path):
    path, stat = zk.create(zk_path, b"abc", include_data=True)
    assert path == zk_path
    assert stat.dataLength == 3
    assert stat.version == 0
    assert zk.exists(zk_path) == stat


def test_parent_stat_tracks_children(zk, zk_path):
    zk.create(zk_path)
    base = zk.exists(zk_path)

    czxids = []
    for i in range(3):
        _, child_stat = zk.create("%s/c%d" % (zk_path, i), include_data=True)
        czxids.append(child_stat.czxid)
    parent = zk.exists(zk_path)
    assert parent.numChildren == 3
    assert parent.cversion == 3
    assert parent.pzxid == czxids[-1]  # pzxid = zxid of the last child change
    assert parent.mzxid == base.mzxid  # child changes are not data changes
    assert parent.version == 0

    zk.delete(zk_path + "/c0")
    after_delete = zk.exists(zk_path)
    assert after_delete.numChildren == 2
    # The visible cversion counts deletes too (creates + deletes) ...
    assert after_delete.cversion == 4
    assert after_delete.pzxid > parent.pzxid
    assert after_delete.mzxid == base.mzxid

    # ... but the sequence suffix comes from the stored create counter (3).
    seq = zk.create(zk_path + "/s-", sequence=True)
    assert seq == zk_path + "/s-0000000003"

    with pytest.raises(NotEmptyError):
        zk.delete(zk_path)
    zk.delete(zk_path, recursive=True)
    assert zk.exists(zk_path) is None


def test_get_children(zk, zk_path):
    zk.create(zk_path)
    names = {"a", "b", "c-with-dash", "d.e"}
    for name in names:
        zk.create("%s/%s" % (zk_path, name), name.encode())
    assert set(zk.get_children(zk_path)) == names
    children, stat = zk.get_children(zk_path, include_data=True)
    assert set(children) == names
    assert stat.numChildren == len(names)
    with pytest.raises(NoNodeError):
        zk.get_children(zk_path + "/missing")
    assert "zookeeper" in zk.get_children("/")


def test_zookeeper_system_nodes(zk):
    assert zk.exists("/zookeeper") is not None
    assert zk.exists("/zookeeper/quota") is not None
    assert zk.exists("/zookeeper/config") is not None
    with pytest.raises((BadArgumentsError, NotEmptyError)):
        zk.delete("/zookeeper")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper/quota")


def test_sequential_nodes(zk, zk_path):
    zk.create(zk_path)
    paths = [zk.create(zk_path + "/job-", b"", sequence=True) for _ in range(12)]
    suffixes = []
    for path in paths:
        match = re.fullmatch(re.escape(zk_path) + r"/job-(\d{10})", path)
        assert match, path
        suffixes.append(int(match.group(1)))
    assert suffixes == list(range(12))
    # A non-sequential child also bumps the counter.
    zk.create(zk_path + "/plain")
    assert zk.create(zk_path + "/job-", sequence=True).endswith("0000000013")
    # A sequential name may end in '/' (the suffix becomes the whole name).
    assert zk.create(zk_path + "/", sequence=True) == zk_path + "/0000000014"
    ephemeral_seq = zk.create(zk_path + "/e-", ephemeral=True, sequence=True)
    assert ephemeral_seq == zk_path + "/e-0000000015"


def test_sync(zk, zk_path):
    zk.create(zk_path)
    assert zk.sync(zk_path) == zk_path


# --------------------------------------------------------------------------
# Sessions and ephemerals


def test_ephemeral_disappears_on_close(make_client, zk_path):
    owner = make_client()
    observer = make_client()
    observer.create(zk_path)
    owner.create(zk_path + "/eph", b"mine", ephemeral=True)
    catch_up(observer, zk_path)
    stat = observer.exists(zk_path + "/eph")
    assert stat.ephemeralOwner == owner.client_id[0]
    assert stat.ephemeralOwner != 0
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create(zk_path + "/eph/child")

    deleted = threading.Event()
    observer.exists(zk_path + "/eph", watch=lambda event: deleted.set())
    owner.stop()  # sends closeSession
    assert deleted.wait(10), "no NodeDeleted for the ephemeral"
    assert observer.exists(zk_path + "/eph") is None


def test_ephemeral_disappears_after_session_expiry(make_client, zk_server, zk_path):
    proxy = Proxy(zk_server.hostport)
    try:
        states = []
        owner = make_client(hosts=proxy.hostport, timeout=SESSION_TIMEOUT_S)
        owner.add_listener(states.append)
        observer = make_client()
        observer.create(zk_path)
        owner.create(zk_path + "/eph", ephemeral=True)
        session_id = owner.client_id[0]
        catch_up(observer, zk_path)
        assert observer.exists(zk_path + "/eph").ephemeralOwner == session_id

        deleted = threading.Event()
        observer.exists(zk_path + "/eph", watch=lambda event: deleted.set())
        # Partition the owner: the server sees the connection drop and must
        # expire the session after its timeout, deleting the ephemeral.
        proxy.cut()
        assert deleted.wait(SESSION_TIMEOUT_S + 8), "ephemeral not removed after expiry"
        assert observer.exists(zk_path + "/eph") is None

        # On reconnect the server tells the owner its session has expired.
        proxy.restore()
        assert wait_until(lambda: KazooState.LOST in states, timeout=15), states
    finally:
        proxy.close()


def test_reconnect_with_session_id_keeps_session(make_client, zk_server, zk_path):
    proxy = Proxy(zk_server.hostport)
    try:
        first = make_client(hosts=proxy.hostport, timeout=6.0)
        first.create(zk_path, ephemeral=True)
        session_id, password = first.client_id
        negotiated = first.negotiated_timeout_ms
        proxy.cut()  # first can no longer reach the server; the session lives on

        second = make_client(client_id=(session_id, password), timeout=6.0)
        assert second.client_id[0] == session_id
        catch_up(second, zk_path)
        stat = second.exists(zk_path)
        assert stat is not None and stat.ephemeralOwner == session_id
        assert second.negotiated_timeout_ms == negotiated
        # The resumed session still owns its ephemerals: it can delete and
        # recreate them, and closing it removes them.
        second.set(zk_path, b"resumed")
        first.stop()
        second.stop()
        checker = make_client()
        catch_up(checker, zk_path)
        assert checker.exists(zk_path) is None
    finally:
        proxy.close()


def test_reconnect_with_wrong_password_is_expired(make_client, zk_hosts):
    first = make_client()
    session_id, password = first.client_id
    bad = bytes(b ^ 0xFF for b in password)
    impostor = ExtKazooClient(hosts=zk_hosts, client_id=(session_id, bad), timeout=6.0)
    states = []
    impostor.add_listener(states.append)
    try:
        # The server answers with timeout 0, which kazoo reports as LOST.
        impostor.start(timeout=5)
        assert wait_until(lambda: KazooState.LOST in states, timeout=10), states
    except Exception:
        pass  # some kazoo versions raise from start() instead
    finally:
        impostor.stop()
        impostor.close()
    # The genuine session is unaffected.
    assert first.exists("/zookeeper") is not None
    assert first.client_id[0] == session_id


def test_session_timeout_is_negotiated_within_bounds(make_client):
    # minSessionTimeout = 2 * tickTime = 1 s, maxSessionTimeout = 20 * tickTime = 10 s.
    low = make_client(timeout=0.2)
    assert low.negotiated_timeout_ms == 1000
    high = make_client(timeout=60.0)
    assert high.negotiated_timeout_ms == 10000
    mid = make_client(timeout=4.0)
    assert mid.negotiated_timeout_ms == 4000


# --------------------------------------------------------------------------
# multi


def test_transaction_success(zk, zk_path):
    zk.create(zk_path, b"p")
    tx = zk.transaction()
    tx.create(zk_path + "/a", b"1")
    tx.create(zk_path + "/a/b", b"2")  # later ops see earlier ones
    tx.set_data(zk_path, b"p2", version=0)
    tx.check(zk_path + "/a", 0)
    tx.create(zk_path + "/s-", sequence=True)
    results = tx.commit()
    assert results[0] == zk_path + "/a"
    assert results[1] == zk_path + "/a/b"
    assert results[2].version == 1
    assert results[3] is True
    assert results[4] == zk_path + "/s-0000000001"

    a_stat = zk.exists(zk_path + "/a")
    b_stat = zk.exists(zk_path + "/a/b")
    p_stat = zk.exists(zk_path)
    # All sub-ops share one zxid.
    assert a_stat.czxid == b_stat.czxid == p_stat.mzxid

    tx = zk.transaction()
    tx.delete(zk_path + "/a/b")
    tx.delete(zk_path + "/a")
    assert tx.commit() == [True, True]
    assert zk.exists(zk_path + "/a") is None


def test_transaction_failure_is_atomic(zk, zk_path):
    zk.create(zk_path, b"p")
    before = zk.exists(zk_path)
    tx = zk.transaction()
    tx.create(zk_path + "/new", b"x")
    tx.set_data(zk_path, b"changed")
    tx.check(zk_path, 5)  # wrong version -> whole multi fails
    tx.create(zk_path + "/after")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    # Ops after the failing one report -2 (RuntimeInconsistency), ops before it 0.
    assert isinstance(results[3], RuntimeInconsistency)
    assert zk.exists(zk_path + "/new") is None
    assert zk.exists(zk_path + "/after") is None
    data, after = zk.get(zk_path)
    assert data == b"p"
    assert after.version == before.version
    assert after.cversion == before.cversion

    tx = zk.transaction()
    tx.create(zk_path + "/x")
    tx.create(zk_path + "/x")  # exists
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists(zk_path + "/x") is None

    tx = zk.transaction()
    tx.delete(zk_path + "/missing")
    results = tx.commit()
    assert isinstance(results[0], NoNodeError)


def test_failed_transaction_consumes_a_zxid(zk, zk_path):
    zk.create(zk_path)
    first = zk.set(zk_path, b"1")
    tx = zk.transaction()
    tx.check(zk_path, 99)
    tx.commit()
    second = zk.set(zk_path, b"2")
    assert second.mzxid >= first.mzxid + 2


# --------------------------------------------------------------------------
# ACLs


def test_digest_acl(make_client, zk_path):
    owner = make_client(auth_data=[("digest", "alice:secret")])
    stranger = make_client()
    acl = make_digest_acl("alice", "secret", all=True)
    owner.create(zk_path, b"private", acl=[acl])
    catch_up(stranger, zk_path)

    with pytest.raises(NoAuthError):
        stranger.get(zk_path)
    with pytest.raises(NoAuthError):
        stranger.set(zk_path, b"x")
    with pytest.raises(NoAuthError):
        stranger.create(zk_path + "/child")
    # exists checks READ on an existing node from 3.9 (and 3.8.4); 3.8.0
    # answers with the Stat.
    try:
        assert stranger.exists(zk_path) is not None
    except NoAuthError:
        pass
    assert owner.get(zk_path)[0] == b"private"

    stranger.add_auth("digest", "alice:secret")
    assert stranger.get(zk_path)[0] == b"private"
    stranger.set(zk_path, b"now mine too")

    wrong = make_client(auth_data=[("digest", "alice:wrong")])
    catch_up(wrong, zk_path)
    with pytest.raises(NoAuthError):
        wrong.get(zk_path)

    acls, stat = owner.get_acls(zk_path)
    assert stat.aversion == 0
    assert len(acls) == 1
    assert acls[0].id.scheme == "digest"
    assert acls[0].id.id == acl.id.id
    assert acls[0].perms == Permissions.ALL


def test_set_acl_and_read_only_world(make_client, zk_path):
    owner = make_client(auth_data=[("digest", "bob:pw")])
    other = make_client()
    owner.create(zk_path, b"data")
    stat = owner.set_acls(
        zk_path,
        [make_digest_acl("bob", "pw", all=True), ACL(Permissions.READ, Id("world", "anyone"))],
        version=0,
    )
    assert stat.aversion == 1
    catch_up(other, zk_path)
    assert other.get(zk_path)[0] == b"data"
    with pytest.raises(NoAuthError):
        other.set(zk_path, b"nope")
    with pytest.raises(BadVersionError):
        owner.set_acls(zk_path, [make_digest_acl("bob", "pw", all=True)], version=0)
    # getACL without ADMIN hides the digest hash on newer servers.
    acls, _ = other.get_acls(zk_path)
    digest_ids = [a.id.id for a in acls if a.id.scheme == "digest"]
    assert digest_ids and all(i.startswith("bob:") for i in digest_ids)


def test_super_digest_bypasses_acls(make_client, zk_path):
    owner = make_client(auth_data=[("digest", "carol:pw")])
    owner.create(zk_path, b"locked", acl=[make_digest_acl("carol", "pw", all=True)])
    admin = make_client(auth_data=[SUPER_AUTH])
    catch_up(admin, zk_path)
    assert admin.get(zk_path)[0] == b"locked"
    admin.set(zk_path, b"by super")
    admin.delete(zk_path)
    catch_up(owner, zk_path)
    assert owner.exists(zk_path) is None


def test_auth_acl_scheme_and_invalid_acl(make_client, zk_path):
    client = make_client(auth_data=[("digest", "dave:pw")])
    # "auth" expands to every authenticated id of the session.
    client.create(zk_path, acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = client.get_acls(zk_path)
    assert [(a.id.scheme, a.id.id.split(":")[0]) for a in acls] == [("digest", "dave")]
    anonymous = make_client()
    from kazoo.exceptions import InvalidACLError

    with pytest.raises(InvalidACLError):
        anonymous.create(zk_path + "-x", acl=[ACL(Permissions.ALL, Id("auth", ""))])


# --------------------------------------------------------------------------
# Watches


def _collector():
    events = []
    fired = threading.Event()

    def watcher(event):
        events.append(event)
        fired.set()

    return events, fired, watcher


def test_data_watch_fires_once(zk, make_client, zk_path):
    writer = make_client()
    zk.create(zk_path, b"0")
    events, fired, watcher = _collector()
    zk.get(zk_path, watch=watcher)
    writer.set(zk_path, b"1")
    assert fired.wait(10)
    writer.set(zk_path, b"2")  # the one-shot watch is gone
    writer.set(zk_path, b"3")
    zk.sync(zk_path)
    time.sleep(0.3)
    assert [(e.type, e.path) for e in events] == [(EventType.CHANGED, zk_path)]
    assert [(e.type, e.path) for e in zk.events_for(zk_path)] == [(NODE_DATA_CHANGED, zk_path)]


def test_exists_watch_on_missing_node_fires_created(zk, make_client, zk_path):
    writer = make_client()
    events, fired, watcher = _collector()
    assert zk.exists(zk_path, watch=watcher) is None
    writer.create(zk_path)
    assert fired.wait(10)
    assert [(e.type, e.path) for e in events] == [(EventType.CREATED, zk_path)]


def test_data_watch_fires_deleted(zk, make_client, zk_path):
    writer = make_client()
    zk.create(zk_path)
    events, fired, watcher = _collector()
    zk.exists(zk_path, watch=watcher)
    writer.delete(zk_path)
    assert fired.wait(10)
    assert [(e.type, e.path) for e in events] == [(EventType.DELETED, zk_path)]


def test_get_data_on_missing_node_sets_no_watch(zk, make_client, zk_path):
    writer = make_client()
    events, _, watcher = _collector()
    with pytest.raises(NoNodeError):
        zk.get(zk_path, watch=watcher)
    writer.create(zk_path)
    zk.sync(zk_path)
    time.sleep(0.3)
    assert events == []
    assert zk.events_for(zk_path) == []


def test_child_watch(zk, make_client, zk_path):
    writer = make_client()
    zk.create(zk_path)
    events, fired, watcher = _collector()
    zk.get_children(zk_path, watch=watcher)
    writer.set(zk_path, b"data change does not fire a child watch")
    writer.create(zk_path + "/kid")
    assert fired.wait(10)
    assert [(e.type, e.path) for e in events] == [(EventType.CHILD, zk_path)]

    fired.clear()
    zk.get_children(zk_path, watch=watcher)
    writer.delete(zk_path + "/kid")
    assert fired.wait(10)
    assert [(e.type, e.path) for e in events][-1] == (EventType.CHILD, zk_path)

    # A child watch on a node that is deleted gets NodeDeleted.
    fired.clear()
    zk.get_children(zk_path, watch=watcher)
    writer.delete(zk_path)
    assert fired.wait(10)
    assert events[-1].type == EventType.DELETED


def test_one_frame_per_type_and_path(make_client, zk_path):
    watcher_client = make_client()
    writer = make_client()
    watcher_client.create(zk_path)
    events, fired, watcher = _collector()
    # Two standard data watches (getData and exists) on the same path still
    # produce one frame on the wire.
    watcher_client.get(zk_path, watch=watcher)
    watcher_client.exists(zk_path, watch=lambda e: None)
    writer.set(zk_path, b"x")
    assert fired.wait(10)
    watcher_client.sync(zk_path)
    time.sleep(0.2)
    assert [e.type for e in watcher_client.events_for(zk_path)] == [NODE_DATA_CHANGED]


def test_persistent_watch(zk, make_client, zk_path):
    writer = make_client()
    zk.create(zk_path)
    events, _, watcher = _collector()
    zk.add_watch(zk_path, watcher, PERSISTENT)
    writer.set(zk_path, b"1")
    writer.set(zk_path, b"2")
    writer.create(zk_path + "/child")
    writer.set(zk_path + "/child", b"not seen: persistent is not recursive")
    writer.delete(zk_path + "/child")
    writer.delete(zk_path)
    writer.create(zk_path)  # still registered after NodeDeleted
    expected = [
        (EventType.CHANGED, zk_path),
        (EventType.CHANGED, zk_path),
        (EventType.CHILD, zk_path),
        (EventType.CHILD, zk_path),
        (EventType.DELETED, zk_path),
        (EventType.CREATED, zk_path),
    ]
    assert wait_until(lambda: len(events) >= len(expected), timeout=10)
    zk.sync(zk_path)
    time.sleep(0.2)
    assert [(e.type, e.path) for e in events] == expected


def test_persistent_recursive_watch(zk, make_client, zk_path):
    writer = make_client()
    zk.create(zk_path)
    events, _, watcher = _collector()
    zk.add_watch(zk_path, watcher, PERSISTENT_RECURSIVE)
    writer.create(zk_path + "/a")
    writer.create(zk_path + "/a/b", b"")
    writer.set(zk_path + "/a/b", b"deep")
    writer.set(zk_path, b"top")
    writer.delete(zk_path + "/a/b")
    writer.create(zk_path + "-sibling")  # not under the watched path
    expected = [
        (EventType.CREATED, zk_path + "/a"),
        (EventType.CREATED, zk_path + "/a/b"),
        (EventType.CHANGED, zk_path + "/a/b"),
        (EventType.CHANGED, zk_path),
        (EventType.DELETED, zk_path + "/a/b"),
    ]
    assert wait_until(lambda: len(events) >= len(expected), timeout=10)
    zk.sync(zk_path)
    time.sleep(0.2)
    # No NodeChildrenChanged is ever delivered to a recursive watch.
    assert [(e.type, e.path) for e in events] == expected
    assert all(e.type != NODE_CHILDREN_CHANGED for e in zk.raw_events)


def test_persistent_watch_on_missing_path(zk, make_client, zk_path):
    writer = make_client()
    events, _, watcher = _collector()
    zk.add_watch(zk_path, watcher, PERSISTENT)
    writer.create(zk_path)
    assert wait_until(lambda: events, timeout=10)
    assert (events[0].type, events[0].path) == (EventType.CREATED, zk_path)


def test_remove_watches(zk, make_client, zk_path):
    from kazoo.exceptions import NoWatcherError

    writer = make_client()
    zk.create(zk_path)
    events, _, watcher = _collector()
    zk.get(zk_path, watch=watcher)
    zk.get_children(zk_path, watch=watcher)
    zk.check_watches(zk_path, WATCHER_DATA)
    zk.remove_watches(zk_path, WATCHER_DATA)
    with pytest.raises(NoWatcherError):
        zk.check_watches(zk_path, WATCHER_DATA)
    zk.check_watches(zk_path, WATCHER_ANY)  # the child watch is still there
    zk.remove_watches(zk_path, WATCHER_ANY)
    with pytest.raises(NoWatcherError):
        zk.remove_watches(zk_path, WATCHER_ANY)

    zk.add_watch(zk_path, watcher, PERSISTENT_RECURSIVE)
    # WatcherType Any removes persistent and recursive watches too.
    zk.remove_watches(zk_path, WATCHER_ANY)
    writer.set(zk_path, b"x")
    writer.create(zk_path + "/c")
    zk.sync(zk_path)
    time.sleep(0.3)
    assert events == []
    assert zk.events_for(zk_path) == []


def test_event_arrives_before_read_reply(make_client, zk_path):
    """A client must see the NodeDataChanged event before any later reply that
    reveals the change (reference §7, ordering guarantee)."""
    reader = make_client()
    writer = make_client()
    reader.create(zk_path, b"-1")
    for i in range(50):
        reader.get(zk_path, watch=lambda event: None)
        seen_before = len(reader.events_for(zk_path))
        writer.set(zk_path, str(i).encode())
        catch_up(reader, zk_path)
        data, _ = reader.get(zk_path)
        assert data == str(i).encode()
        # raw_events is filled by the connection thread in wire order, before
        # the reply that get() just returned was read.
        assert len(reader.events_for(zk_path)) == seen_before + 1, "iteration %d" % i
        assert reader.events_for(zk_path)[-1].type == NODE_DATA_CHANGED


def test_event_precedes_own_write_reply(make_client, zk_path):
    client = make_client()
    client.create(zk_path, b"")
    for i in range(20):
        client.get(zk_path, watch=lambda event: None)
        before = len(client.events_for(zk_path))
        client.set(zk_path, b"%d" % i)
        assert len(client.events_for(zk_path)) == before + 1


def test_event_zxid(make_client, zk_path):
    client = make_client()
    writer = make_client()
    client.create(zk_path)
    client.get(zk_path, watch=lambda event: None)
    stat = writer.set(zk_path, b"z")
    assert wait_until(lambda: client.events_for(zk_path), timeout=10)
    zxid = client.events_for(zk_path)[0].zxid
    # 3.9 stamps the event with the txn's zxid; 3.8 and older send -1.
    assert zxid in (stat.mzxid, -1)


# --------------------------------------------------------------------------
# Container and TTL nodes


def test_container_node_is_reaped_after_last_child(zk, zk_path):
    path, stat = zk.create_container(zk_path, b"c")
    assert path == zk_path
    # The stored owner is 0x8000000000000000, but clients are shown 0 for
    # container and TTL nodes (only session ids are exposed).
    assert stat.ephemeralOwner == 0
    assert zk.exists(zk_path).ephemeralOwner == 0
    zk.create(zk_path + "/child")
    # A container that has children is kept.
    time.sleep(2.5)
    assert zk.exists(zk_path) is not None
    zk.delete(zk_path + "/child")
    assert wait_until(lambda: zk.exists(zk_path) is None, timeout=10), "container not reaped"


def test_container_never_used_is_kept(zk, zk_path):
    zk.create_container(zk_path)
    time.sleep(2.5)  # > 2 container check intervals
    assert zk.exists(zk_path) is not None


def test_ttl_node(zk, zk_path):
    path, stat = zk.create_ttl(zk_path, b"t", ttl=500)
    assert path == zk_path
    # Stored as 0xFF00000000000000 | ttl, shown to clients as 0.
    assert stat.ephemeralOwner == 0
    assert wait_until(lambda: zk.exists(zk_path) is None, timeout=10), "TTL node not reaped"


def test_ttl_node_with_children_is_kept(zk, zk_path):
    zk.create_ttl(zk_path, ttl=500)
    zk.create(zk_path + "/child")
    time.sleep(2.5)
    assert zk.exists(zk_path) is not None


def test_ttl_sequential_and_bad_ttl(zk, zk_path):
    zk.create(zk_path)
    path, _ = zk.create_ttl(zk_path + "/t-", ttl=60000, sequence=True)
    assert path == zk_path + "/t-0000000000"
    with pytest.raises(BadArgumentsError):
        zk.create_ttl(zk_path + "/zero", ttl=0)
    with pytest.raises(BadArgumentsError):
        zk.create_ttl(zk_path + "/huge", ttl=1 << 40)
    with pytest.raises(BadArgumentsError):
        zk.create_raw_ttl(zk_path + "/nonttl", flags=0, ttl=1000)


# --------------------------------------------------------------------------
# Server info and four-letter words


def test_server_version(zk):
    version = zk.server_version()
    assert isinstance(version, tuple) and len(version) >= 3
    # Apache 3.8 reference run or a 3.9-compatible zoocore.
    assert version[:2] in ((3, 8), (3, 9))


def test_4lw_ruok_isro(zk):
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"


def _parse_mntr(text):
    values = {}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("\t")
        assert sep == "\t", "mntr line without tab: %r" % line
        assert key.startswith("zk_"), line
        values[key] = value
    return values


def test_4lw_mntr(make_client, fresh_zk_server, expected_mode):
    client = make_client(hosts=fresh_zk_server.hostport)
    client.create("/mntr-a", b"12345")
    client.create("/mntr-e", ephemeral=True)
    # kazoo's command() reads one 8 KiB chunk; mntr on 3.8 is longer.
    values = _parse_mntr(four_letter_word(fresh_zk_server.hostport, "mntr"))
    for key in (
        "zk_version",
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_server_state",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
    ):
        assert key in values, key
    assert re.match(r"3\.\d+\.\d+", values["zk_version"])
    assert values["zk_server_state"] == expected_mode
    # Apache counts the root twice (it is stored under "" and "/"): a fresh
    # server reports 5 = /, "", /zookeeper, /zookeeper/quota,
    # /zookeeper/config; plus our two nodes.
    assert int(values["zk_znode_count"]) == 7
    assert int(values["zk_ephemerals_count"]) == 1
    # The kazoo session plus the 4lw connection itself.
    assert int(values["zk_num_alive_connections"]) >= 1
    assert int(values["zk_outstanding_requests"]) == 0
    float(values["zk_avg_latency"])


def _srvr_fields(text):
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    return fields


def test_4lw_srvr(make_client, fresh_zk_server, expected_mode):
    client = make_client(hosts=fresh_zk_server.hostport)
    stat = client.create("/srvr", include_data=True)[1]
    text = client.command(b"srvr")
    lines = text.splitlines()
    assert lines[0].startswith("Zookeeper version: 3.")
    assert ", built on " in lines[0]
    fields = _srvr_fields(text)
    assert re.fullmatch(r"\d+/\d+(\.\d+)?/\d+", fields["Latency min/avg/max"])
    for key in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
        assert re.fullmatch(r"\d+", fields[key]), key
    assert fields["Mode"] == expected_mode
    # 5 on a fresh server (see test_4lw_mntr) plus /srvr.
    assert int(fields["Node count"]) == 6
    assert re.fullmatch(r"0x[0-9a-f]+", fields["Zxid"])
    assert int(fields["Zxid"], 16) >= stat.czxid


def test_4lw_stat_and_cons(make_client, fresh_zk_server, expected_mode):
    client = make_client(hosts=fresh_zk_server.hostport)
    session_id = client.client_id[0]
    text = client.command(b"stat")
    lines = text.splitlines()
    assert lines[0].startswith("Zookeeper version: ")
    assert lines[1] == "Clients:"
    assert any(re.match(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)$", l) for l in lines)
    assert "Mode: %s" % expected_mode in lines
    assert any(l.startswith("Node count: ") for l in lines)

    cons = client.command(b"cons")
    assert cons.endswith("\n\n")
    session_lines = [l for l in cons.splitlines() if "sid=0x%x" % session_id in l]
    assert len(session_lines) == 1, cons
    assert re.match(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+,sid=0x[0-9a-f]+,", session_lines[0])
    for field in ("lop=", "est=", "to=", "lcxid=0x", "lzxid=0x", "lresp=", "llat=", "minlat=", "avglat=", "maxlat="):
        assert field in session_lines[0], field


def test_4lw_envi(zk):
    text = zk.command(b"envi")
    lines = text.splitlines()
    assert lines[0] == "Environment:"
    keys = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    # 3.8.0 Debian prints "3.8.0-${mvngit.commit.id}, built on ...", a release
    # build "3.9.x-<sha>, built on ..."; kazoo only needs the leading digits.
    assert re.match(r"3\.\d+\.\d+", keys["zookeeper.version"])
    assert "host.name" in keys
    assert any(k.startswith("os.") for k in keys)


def test_4lw_conf(zk, zk_server):
    text = zk.command(b"conf")
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    # kazoo picks any member of an ensemble; a single server has one port.
    assert int(values["clientPort"]) in getattr(zk_server, "ports", [zk_server.port])
    assert values["tickTime"] == "500"
    assert values["dataDir"].rstrip("/").endswith("version-2")
    assert values["minSessionTimeout"] == "1000"
    assert values["maxSessionTimeout"] == "10000"
    assert values["maxClientCnxns"] == "60"
    assert "serverId" in values


def test_4lw_wchs_and_wchc(make_client, fresh_zk_server):
    client = make_client(hosts=fresh_zk_server.hostport)
    client.create("/w1")
    client.create("/w2")
    client.get("/w1", watch=lambda e: None)
    client.exists("/w2", watch=lambda e: None)
    client.get_children("/w1", watch=lambda e: None)  # child watches are not counted
    text = client.command(b"wchs")
    lines = text.splitlines()
    assert lines[0] == "1 connections watching 2 paths"
    assert lines[1] == "Total watches:2"

    wchc = client.command(b"wchc")
    assert "0x%x" % client.client_id[0] in wchc
    assert "\t/w1" in wchc and "\t/w2" in wchc
    wchp = client.command(b"wchp")
    assert "/w1\n\t0x%x" % client.client_id[0] in wchp


def test_4lw_dump(make_client, fresh_zk_server):
    client = make_client(hosts=fresh_zk_server.hostport)
    client.create("/dump-eph", ephemeral=True)
    text = client.command(b"dump")
    assert text.startswith("SessionTracker dump:")
    assert "ephemeral nodes dump:" in text
    assert "Sessions with Ephemerals (1):" in text
    assert "0x%x:" % client.client_id[0] in text
    assert "\t/dump-eph" in text


def test_4lw_not_on_established_session(zk):
    # 4lw are only recognised before a ConnectRequest; kazoo opens a new
    # socket for command(), so a fresh one still works after sessions exist.
    assert zk.command(b"ruok") == "imok"


def test_4lw_raw_socket(zk_host):
    assert four_letter_word(zk_host, "ruok") == "imok"
    assert four_letter_word(zk_host, "isro") == "rw"
    assert four_letter_word(zk_host, "srvr").startswith("Zookeeper version: ")
    assert four_letter_word(zk_host, "dirs").startswith("datadir_size: ")
    assert four_letter_word(zk_host, "srst") == "Server stats reset.\n"
    assert four_letter_word(zk_host, "crst") == "Connection stats reset.\n"
