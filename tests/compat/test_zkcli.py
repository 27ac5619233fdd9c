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


def test_zkcli_quotas(zk_host):
    """setquota / listquota / delquota, with enforceQuota=true on the server
    (conftest.py sets it for zoocore and Apache): a soft limit (-n) only
    warns, hard limits (-N, -B) refuse creates and setData with zkCli's
    "Quota has exceeded" and change nothing, and the stats track usage."""
    soft = "/zkcli-quota-soft-%s" % uuid.uuid4().hex[:8]
    rc, out = run_zkcli(
        zk_host,
        stdin_commands=[
            "create %s" % soft,
            "setquota -n 2 %s" % soft,
            "listquota %s" % soft,
            "create %s/a" % soft,
            "create %s/b" % soft,
            "listquota %s" % soft,
            "delquota %s" % soft,
            "listquota %s" % soft,
        ],
    )
    assert rc == 0, out
    assert "Output quota for %s count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1" % soft in out, out
    assert "Output stat for %s count=1,bytes=0" % soft in out, out
    # Over the soft limit: allowed.
    assert "Created %s/b" % soft in out, out
    assert "Output stat for %s count=3,bytes=0" % soft in out, out
    assert "quota for %s does not exist." % soft in out, out

    hard = "/zkcli-quota-hard-%s" % uuid.uuid4().hex[:8]
    rc, out = run_zkcli(
        zk_host,
        stdin_commands=[
            "create %s" % hard,
            "setquota -N 2 %s" % hard,
            "setquota -B 5 %s" % hard,
            "create %s/a 12" % hard,
            "create %s/b" % hard,
            "set %s/a 123456" % hard,
            "get %s/a" % hard,
            "listquota %s" % hard,
            "delquota -N %s" % hard,
            "create %s/c" % hard,
            "listquota %s" % hard,
        ],
    )
    assert rc == 0, out
    assert "Output quota for %s count=-1,bytes=-1=;byteHardLimit=5;countHardLimit=2" % hard in out, out
    assert "Created %s/a" % hard in out, out
    assert "Quota has exceeded : %s/b" % hard in out, out
    assert "Quota has exceeded : %s/a" % hard in out, out
    lines = out.splitlines()
    # get prints the unchanged data on its own line.
    assert "12" in lines, out
    assert "Output stat for %s count=2,bytes=2" % hard in out, out
    # delquota -N lifts the count limit only.
    assert "Created %s/c" % hard in out, out
    assert "Output quota for %s count=-1,bytes=-1=;byteHardLimit=5;countHardLimit=-1" % hard in out, out
    assert "Output stat for %s count=3,bytes=2" % hard in out, out
