"""Round trip through Apache's Java shell, zkCli.sh (package zookeeper)."""

import os
import re
import subprocess
import uuid

import pytest

from conftest import require_tool

ZKCLI = os.environ.get("ZK_CLI_SH", "/usr/share/zookeeper/bin/zkCli.sh")


def run_zkcli(hostport, args=None, stdin_commands=None, timeout=60):
    binary = require_tool(ZKCLI, "zkCli.sh")
    command = [binary, "-server", hostport] + (args or [])
    stdin = None
    if stdin_commands is not None:
        stdin = ("\n".join(stdin_commands) + "\nquit\n").encode()
    for _attempt in range(3):
        result = subprocess.run(
            command,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        out = result.stdout.decode("utf-8", "replace")
        # On a loaded machine the JVM client can lose its first connection
        # before the command ran; that says nothing about the server.
        if "ConnectionLoss" not in out:
            break
    return result.returncode, out


def test_zkcli_single_commands(zk_host):
    path = "/zkcli-%s" % uuid.uuid4().hex[:8]
    rc, out = run_zkcli(zk_host, ["create", path, "hello"])
    assert rc == 0, out
    assert "Created %s" % path in out, out
    rc, out = run_zkcli(zk_host, ["get", path])
    assert rc == 0 and "\nhello\n" in out, out
    rc, out = run_zkcli(zk_host, ["delete", path])
    assert rc == 0, out
    rc, out = run_zkcli(zk_host, ["get", path])
    assert "Node does not exist: %s" % path in out, out


def test_zkcli_batch_round_trip(zk_host):
    path = "/zkcli-batch-%s" % uuid.uuid4().hex[:8]
    rc, out = run_zkcli(
        zk_host,
        stdin_commands=[
            "create %s first" % path,
            "ls /",
            "get %s" % path,
            "set %s second" % path,
            "get -s %s" % path,
            "create -s %s/seq- x" % path,
            "create -e %s/eph y" % path,
            "ls -s %s" % path,
            "stat %s" % path,
            "deleteall %s" % path,
            "ls /",
        ],
    )
    assert rc == 0, out
    assert "Created %s\n" % path in out, out
    listings = re.findall(r"^\[(.*)\]$", out, re.M)
    assert any(path[1:] in l.split(", ") and "zookeeper" in l.split(", ") for l in listings), out
    assert "\nfirst\n" in out, out
    assert "\nsecond\n" in out, out
    assert "dataVersion = 1\n" in out, out
    assert "dataLength = 6\n" in out, out
    assert re.search(r"^cZxid = 0x[0-9a-f]+$", out, re.M), out
    assert re.search(r"^ephemeralOwner = 0x0$", out, re.M), out
    assert "Created %s/seq-0000000000\n" % path in out, out
    assert "Created %s/eph\n" % path in out, out
    assert "numChildren = 2\n" in out, out
    # The last ls no longer shows the node.
    assert path[1:] not in listings[-1].split(", "), out


def test_zkcli_acl_and_auth(zk_host):
    path = "/zkcli-acl-%s" % uuid.uuid4().hex[:8]
    rc, out = run_zkcli(
        zk_host,
        stdin_commands=[
            "addauth digest zed:pw",
            "create %s secret auth:zed:pw:cdrwa" % path,
            "getAcl %s" % path,
        ],
    )
    assert rc == 0, out
    assert "'digest,'zed:" in out, out
    assert ": cdrwa" in out, out
    rc, out = run_zkcli(zk_host, ["get", path])
    assert "Insufficient permission : %s" % path in out, out
    rc, out = run_zkcli(zk_host, stdin_commands=["addauth digest super:admin", "delete %s" % path, "ls /"])
    assert path[1:] not in out.splitlines()[-1], out
