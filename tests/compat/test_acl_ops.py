"""Each client opcode's ACL check, one test per opcode, run against zoocore
and (ZK_SERVER=apache) Apache ZooKeeper with the same expectations: which
permission an operation needs on which node (Apache's PrepRequestProcessor
for writes, FinalRequestProcessor for reads), that holding exactly that
permission is enough, and that a request refused for its ACL leaves no
watch behind.

Every node is made by an owner (digest "owner") holding ALL; the world gets
one permission set per case, and a client with no credentials tries the
operation. The one version-dependent answer is exists(): Apache 3.9.2 /
3.8.4 / 3.7.3 and later check READ on an existing node (ZOOKEEPER-2590),
older servers (Debian's 3.8.0) answer its Stat; zoocore follows the newer
servers.
"""

import re

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from conftest import closing_clients, four_letter_word, is_ensemble, server_kind
from zkext import PERSISTENT, WATCHER_ANY, ExtKazooClient

OWNER_AUTH = ("digest", "owner:owner-secret")
OWNER_ACL = make_digest_acl("owner", "owner-secret", all=True)
WORLD = Id("world", "anyone")
ALL_BUT = {
    "READ": Permissions.ALL & ~Permissions.READ,
    "WRITE": Permissions.ALL & ~Permissions.WRITE,
    "CREATE": Permissions.ALL & ~Permissions.CREATE,
    "DELETE": Permissions.ALL & ~Permissions.DELETE,
    "ADMIN": Permissions.ALL & ~Permissions.ADMIN,
}
ONLY = {
    "READ": Permissions.READ,
    "WRITE": Permissions.WRITE,
    "CREATE": Permissions.CREATE,
    "DELETE": Permissions.DELETE,
    "ADMIN": Permissions.ADMIN,
}

pytestmark = pytest.mark.skipif(is_ensemble(), reason="ACL checks do not depend on the ensemble; single server only")


@pytest.fixture
def clients(zk_hosts):
    def new_client(**kwargs):
        client = ExtKazooClient(hosts=zk_hosts, **kwargs)
        client.start(timeout=15)
        return client

    made = closing_clients(new_client)
    factory = next(made)
    owner = factory(auth_data=[OWNER_AUTH])
    stranger = factory()
    yield owner, stranger
    next(made, None)


def node(owner, path, world_perms, data=b"d"):
    owner.create(path, data, acl=[OWNER_ACL, ACL(world_perms, WORLD)], makepath=True)
    return path


def total_watches(zk_hosts):
    text = four_letter_word(zk_hosts.split(",")[0], "wchs")
    m = re.search(r"Total watches:(\d+)", text)
    assert m, text
    return int(m.group(1))


def server_checks_read_on_exists(zk_hosts):
    if server_kind() != "apache":
        return True
    text = four_letter_word(zk_hosts.split(",")[0], "srvr")
    m = re.search(r"Zookeeper version: (\d+)\.(\d+)\.(\d+)", text)
    assert m, text
    version = tuple(int(x) for x in m.groups())
    return version >= (3, 9, 2) or (3, 8, 4) <= version < (3, 9, 0) or (3, 7, 3) <= version < (3, 8, 0)


def test_get_data_needs_read_and_a_refusal_leaves_no_watch(clients, zk_hosts, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["READ"])
    allowed = node(owner, zk_path + "/allowed", ONLY["READ"])
    before = total_watches(zk_hosts)
    with pytest.raises(NoAuthError):
        stranger.get(denied, watch=lambda e: None)
    assert total_watches(zk_hosts) == before, "a refused getData left a watch"
    assert stranger.get(allowed)[0] == b"d"


def test_get_children_needs_read_and_a_refusal_leaves_no_watch(clients, zk_hosts, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["READ"])
    allowed = node(owner, zk_path + "/allowed", ONLY["READ"])
    owner.create(allowed + "/c")
    before = total_watches(zk_hosts)
    with pytest.raises(NoAuthError):
        stranger.get_children(denied, watch=lambda e: None)
    with pytest.raises(NoAuthError):
        stranger.get_children(denied, include_data=True)  # getChildren2
    assert total_watches(zk_hosts) == before, "a refused getChildren left a watch"
    assert stranger.get_children(allowed) == ["c"]
    children, stat = stranger.get_children(allowed, include_data=True)
    assert children == ["c"] and stat.numChildren == 1


def test_exists_checks_read_on_an_existing_node_as_apache_3_9_2(clients, zk_hosts, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["READ"])
    before = total_watches(zk_hosts)
    if server_checks_read_on_exists(zk_hosts):
        with pytest.raises(NoAuthError):
            stranger.exists(denied, watch=lambda e: None)
        assert total_watches(zk_hosts) == before, "a refused exists left a watch"
    else:
        assert stranger.exists(denied) is not None
    # A missing node is no permission question: None, and the watch waits.
    assert stranger.exists(zk_path + "/missing", watch=lambda e: None) is None
    assert total_watches(zk_hosts) == before + 1


def test_set_data_needs_write(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["WRITE"])
    allowed = node(owner, zk_path + "/allowed", ONLY["WRITE"])
    with pytest.raises(NoAuthError):
        stranger.set(denied, b"x")
    assert owner.get(denied)[0] == b"d", "a refused setData changed the data"
    stranger.set(allowed, b"x")
    assert owner.get(allowed)[0] == b"x"


def test_create_needs_create_on_the_parent(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["CREATE"])
    allowed = node(owner, zk_path + "/allowed", ONLY["CREATE"])
    with pytest.raises(NoAuthError):
        stranger.create(denied + "/child")
    assert owner.exists(denied + "/child") is None
    stranger.create(allowed + "/child")
    assert owner.exists(allowed + "/child") is not None


def test_delete_needs_delete_on_the_parent(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["DELETE"])
    allowed = node(owner, zk_path + "/allowed", ONLY["DELETE"])
    for parent in (denied, allowed):
        owner.create(parent + "/child", acl=[ACL(Permissions.ALL, WORLD)])
    with pytest.raises(NoAuthError):
        stranger.delete(denied + "/child")
    assert owner.exists(denied + "/child") is not None
    stranger.delete(allowed + "/child")
    assert owner.exists(allowed + "/child") is None


def test_set_acl_needs_admin(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["ADMIN"])
    allowed = node(owner, zk_path + "/allowed", ONLY["ADMIN"])
    opened = [ACL(Permissions.ALL, WORLD)]
    with pytest.raises(NoAuthError):
        stranger.set_acls(denied, opened)
    assert owner.get_acls(denied)[1].aversion == 0
    stranger.set_acls(allowed, opened)
    assert owner.get_acls(allowed)[0] == opened


def test_get_acl_needs_read_or_admin_and_hides_digests_without_admin(clients, zk_path):
    owner, stranger = clients
    neither = node(owner, zk_path + "/neither", Permissions.WRITE | Permissions.CREATE | Permissions.DELETE)
    read_only = node(owner, zk_path + "/read", ONLY["READ"])
    admin_only = node(owner, zk_path + "/admin", ONLY["ADMIN"])
    with pytest.raises(NoAuthError):
        stranger.get_acls(neither)
    masked, _ = stranger.get_acls(read_only)
    digests = [a.id.id for a in masked if a.id.scheme == "digest"]
    assert digests == ["owner:x"], masked
    full, _ = stranger.get_acls(admin_only)
    assert [a.id.id for a in full if a.id.scheme == "digest"] == [OWNER_ACL.id.id], full


def test_check_in_a_transaction_needs_read(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["READ"])
    allowed = node(owner, zk_path + "/allowed", ONLY["READ"])
    t = stranger.transaction()
    t.check(denied, 0)
    results = t.commit()
    assert isinstance(results[0], NoAuthError), results
    t = stranger.transaction()
    t.check(allowed, 0)
    assert t.commit() == [True]


def test_a_multi_with_one_refused_op_changes_nothing(clients, zk_path):
    owner, stranger = clients
    open_parent = node(owner, zk_path + "/open", Permissions.ALL)
    closed = node(owner, zk_path + "/closed", ALL_BUT["CREATE"])
    t = stranger.transaction()
    t.create(open_parent + "/a")
    t.create(closed + "/b")
    results = t.commit()
    assert any(isinstance(r, NoAuthError) for r in results), results
    assert owner.exists(open_parent + "/a") is None, "the multi was not atomic"


def test_sync_needs_no_permission(clients, zk_path):
    owner, stranger = clients
    nothing = node(owner, zk_path + "/nothing", 0)
    stranger.sync(nothing)


def test_get_all_children_number_needs_read(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["READ"])
    allowed = node(owner, zk_path + "/allowed", ONLY["READ"])
    for parent in (denied, allowed):
        owner.create(parent + "/a/b", makepath=True)
    with pytest.raises(NoAuthError):
        stranger.get_all_children_number(denied)
    assert stranger.get_all_children_number(allowed) == 2


def test_container_and_ttl_creates_need_create_on_the_parent(clients, zk_path):
    owner, stranger = clients
    denied = node(owner, zk_path + "/denied", ALL_BUT["CREATE"])
    allowed = node(owner, zk_path + "/allowed", ONLY["CREATE"])
    with pytest.raises(NoAuthError):
        stranger.create_container(denied + "/container")
    with pytest.raises(NoAuthError):
        stranger.create_ttl(denied + "/ttl", ttl=60000)
    assert owner.get_children(denied) == []
    stranger.create_container(allowed + "/container")
    stranger.create_ttl(allowed + "/ttl", ttl=60000)
    assert sorted(owner.get_children(allowed)) == ["container", "ttl"]


def test_add_check_and_remove_watches_need_no_permission(clients, zk_hosts, zk_path):
    # Apache's addWatch, checkWatches and removeWatches check no ACL: a
    # persistent watch on a node the caller may not read is set, seen and
    # removed.
    owner, stranger = clients
    nothing = node(owner, zk_path + "/nothing", 0)
    before = total_watches(zk_hosts)
    stranger.add_watch(nothing, lambda event: None, PERSISTENT)
    assert total_watches(zk_hosts) == before + 1
    assert stranger.check_watches(nothing, WATCHER_ANY) is True
    assert stranger.remove_watches(nothing, WATCHER_ANY) is True
    assert total_watches(zk_hosts) == before


def test_get_ephemerals_needs_no_permission_and_lists_only_the_callers(clients, zk_path):
    owner, stranger = clients
    nothing = node(owner, zk_path + "/nothing", Permissions.CREATE)
    stranger.create(nothing + "/mine", ephemeral=True, acl=[ACL(0, WORLD)])
    owner.create(nothing + "/theirs", ephemeral=True)
    assert stranger.get_ephemerals(zk_path) == [nothing + "/mine"]
