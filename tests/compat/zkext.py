"""Protocol pieces that released kazoo (2.11) lacks, built on its public
request/serialisation conventions: container and TTL creates (ops 19, 21),
addWatch (106), checkWatches/removeWatches (17/18), getAllChildrenNumber
(104), getEphemerals (103), plus a log of the raw
watch-event frames a client receives, and a tiny TCP proxy used to cut a
client off from the server without closing its session.

Request objects follow kazoo's protocol: a ``type`` attribute (the opcode),
``serialize()`` returning the body bytes and a ``deserialize(buf, offset)``
classmethod returning the result.
"""

import socket
import struct
import threading
import time
from collections import defaultdict, namedtuple

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Connect, Watch, ZnodeStat, int_struct, read_string, stat_struct, write_buffer, write_string
from kazoo.protocol.states import EVENT_TYPE_MAP, WatchedEvent
from kazoo.security import OPEN_ACL_UNSAFE

# CreateMode flags (reference §9).
CONTAINER_FLAGS = 4
PERSISTENT_WITH_TTL_FLAGS = 5
PERSISTENT_SEQUENTIAL_WITH_TTL_FLAGS = 6

# AddWatchMode (reference §7).
PERSISTENT = 0
PERSISTENT_RECURSIVE = 1

# WatcherType for checkWatches/removeWatches.
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3

# Wire event types.
NODE_CREATED = 1
NODE_DELETED = 2
NODE_DATA_CHANGED = 3
NODE_CHILDREN_CHANGED = 4

long_struct = struct.Struct("!q")


def _serialize_acls(acls):
    out = bytearray(int_struct.pack(len(acls)))
    for acl in acls:
        out.extend(int_struct.pack(acl.perms) + write_string(acl.id.scheme) + write_string(acl.id.id))
    return out


def _read_create2_response(buf, offset):
    path, offset = read_string(buf, offset)
    stat = ZnodeStat._make(stat_struct.unpack_from(buf, offset))
    return path, stat


class CreateContainer(namedtuple("CreateContainer", "path data acl")):
    type = 19

    def serialize(self):
        out = bytearray(write_string(self.path))
        out.extend(write_buffer(self.data))
        out.extend(_serialize_acls(self.acl))
        out.extend(int_struct.pack(CONTAINER_FLAGS))
        return out

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_create2_response(buf, offset)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        out = bytearray(write_string(self.path))
        out.extend(write_buffer(self.data))
        out.extend(_serialize_acls(self.acl))
        out.extend(int_struct.pack(self.flags))
        out.extend(long_struct.pack(self.ttl))
        return out

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_create2_response(buf, offset)


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class CheckWatches(namedtuple("CheckWatches", "path watcher_type")):
    type = 17

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    type = 18

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103

    def serialize(self):
        return bytearray(write_string(self.prefix))

    @classmethod
    def deserialize(cls, buf, offset):
        (count,) = int_struct.unpack_from(buf, offset)
        offset += int_struct.size
        paths = []
        for _ in range(count):
            path, offset = read_string(buf, offset)
            paths.append(path)
        return paths


RawEvent = namedtuple("RawEvent", "type path zxid")


class ExtKazooClient(KazooClient):
    """KazooClient plus the ops above and a log of raw event frames.

    ``raw_events`` is appended to by kazoo's connection thread in wire order,
    before any later reply on the same connection is handed to the caller, so
    it can check the server's event-before-response ordering.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw_events = []
        self._persistent_watchers = defaultdict(list)
        self._recursive_watchers = defaultdict(list)
        self._last_header_zxid = None
        # kazoo 2.11 does not keep the timeout the server negotiated.
        self.negotiated_timeout_ms = None
        self._install_event_hook()

    def _install_event_hook(self):
        connection = self._connection
        original_read_header = connection._read_header
        original_read_watch_event = connection._read_watch_event
        original_invoke = connection._invoke

        def invoke(timeout, request, xid=None):
            result = original_invoke(timeout, request, xid)
            if isinstance(request, Connect) and isinstance(result, tuple):
                self.negotiated_timeout_ms = result[0].time_out
            return result

        def read_header(*args, **kwargs):
            header, buf, offset = original_read_header(*args, **kwargs)
            self._last_header_zxid = header.zxid
            return header, buf, offset

        def read_watch_event(buf, offset):
            watch, _ = Watch.deserialize(buf, offset)
            self.raw_events.append(RawEvent(watch.type, watch.path, self._last_header_zxid))
            self._dispatch_persistent(watch.type, watch.path)
            return original_read_watch_event(buf, offset)

        connection._read_header = read_header
        connection._read_watch_event = read_watch_event
        connection._invoke = invoke

    def _dispatch_persistent(self, event_type, path):
        if event_type not in EVENT_TYPE_MAP:
            return
        event = WatchedEvent(EVENT_TYPE_MAP[event_type], self._state, self.unchroot(path))
        targets = list(self._persistent_watchers.get(path, []))
        # Recursive watches never see NodeChildrenChanged (reference §7).
        if event_type != NODE_CHILDREN_CHANGED:
            for watched, watchers in list(self._recursive_watchers.items()):
                if path == watched or watched == "/" or path.startswith(watched + "/"):
                    targets.extend(watchers)
        for watcher in targets:
            watcher(event)

    def _sync_call(self, request, timeout=10):
        async_result = self.handler.async_result()
        self._call(request, async_result)
        return async_result.get(timeout=timeout)

    def events_for(self, path):
        return [e for e in self.raw_events if e.path == path]

    def create_container(self, path, value=b"", acl=None):
        return self._sync_call(CreateContainer(path, value, acl or self.default_acl or OPEN_ACL_UNSAFE))

    def create_ttl(self, path, value=b"", ttl=1000, sequence=False, acl=None):
        flags = PERSISTENT_SEQUENTIAL_WITH_TTL_FLAGS if sequence else PERSISTENT_WITH_TTL_FLAGS
        request = CreateTTL(path, value, acl or self.default_acl or OPEN_ACL_UNSAFE, flags, ttl)
        return self._sync_call(request)

    def create_raw_ttl(self, path, flags, ttl, value=b""):
        return self._sync_call(CreateTTL(path, value, self.default_acl or OPEN_ACL_UNSAFE, flags, ttl))

    def add_watch(self, path, watcher, mode):
        """addWatch; the watcher runs on the connection thread for each event."""
        self._sync_call(AddWatch(path, mode))
        table = self._recursive_watchers if mode == PERSISTENT_RECURSIVE else self._persistent_watchers
        table[path].append(watcher)

    def get_all_children_number(self, path):
        return self._sync_call(GetAllChildrenNumber(path))

    def get_ephemerals(self, prefix="/"):
        return self._sync_call(GetEphemerals(prefix))

    def check_watches(self, path, watcher_type=WATCHER_ANY):
        return self._sync_call(CheckWatches(path, watcher_type))

    def remove_watches(self, path, watcher_type=WATCHER_ANY):
        """Server-side removal only; kazoo's local one-shot tables are cleared too."""
        result = self._sync_call(RemoveWatches(path, watcher_type))
        if watcher_type in (WATCHER_ANY, WATCHER_DATA):
            self._data_watchers.pop(path, None)
        if watcher_type in (WATCHER_ANY, WATCHER_CHILDREN):
            self._child_watchers.pop(path, None)
        if watcher_type == WATCHER_ANY:
            self._persistent_watchers.pop(path, None)
            self._recursive_watchers.pop(path, None)
        return result


class Proxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut()`` drops every
    connection and refuses new ones until ``restore()``, which partitions a
    client from the server while its session lives on."""

    def __init__(self, target_hostport):
        host, port = target_hostport.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.enabled = True
        self.closed = False
        self.lock = threading.Lock()
        self.sockets = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def hostport(self):
        return "127.0.0.1:%d" % self.port

    def _accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.enabled:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.extend([client, upstream])
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.enabled = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self):
        self.enabled = True

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
