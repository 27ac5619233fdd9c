"""Round trip through Apache's C client, cli_mt (package zookeeper-bin).

cli_mt reads one command per line from stdin and runs them asynchronously,
so commands are paced and the output is matched loosely.  Its `create`
always stores the data "new"; `set <path> <data>` takes the data.
"""

import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import require_tool

CLI_MT = os.environ.get("ZK_CLI_MT", "/usr/lib/zookeeper/bin/cli_mt")


def run_cli_mt(hostport, commands, pause=0.4):
    binary = require_tool(CLI_MT, "cli_mt")
    proc = subprocess.Popen(
        [binary, hostport],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.0)  # let it connect; commands sent earlier fail with -116
        for command in commands:
            proc.stdin.write((command + "\n").encode())
            proc.stdin.flush()
            time.sleep(pause)
        output, _ = proc.communicate(b"quit\n", timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.decode("utf-8", "replace")
    # Drop the library's log lines.
    return "\n".join(l for l in text.splitlines() if "ZOO_" not in l)


def test_cli_mt_round_trip(zk_host):
    base = "/climt-%s" % uuid.uuid4().hex[:8]
    out = run_cli_mt(
        zk_host,
        [
            "create %s" % base,
            "ls /",
            "get %s" % base,
            "set %s changed" % base,
            "get %s" % base,
            "create +s %s/s" % base,
            "create +e %s/e" % base,
            "ls %s" % base,
            "delete %s/s0000000000" % base,
            "delete %s/e" % base,
            "delete %s" % base,
            "exists %s" % base,
        ],
    )
    assert "Got a new session id: 0x" in out, out
    assert "[%s]: rc = 0" % base in out, out
    assert "\tname = %s\n" % base in out + "\n", out
    # ls / lists the new node and /zookeeper, one per tab-indented line.
    assert "\t%s\n" % base[1:] in out and "\tzookeeper\n" in out, out
    # get shows the value length, the data and a Stat.
    assert " value_len = 3\nnew\n" in out, out
    assert " value_len = 7\nchanged\n" in out, out
    assert re.search(r"\tversion=1\taversion=0", out), out
    assert "\tname = %s/s0000000000" % base in out, out
    assert "\tname = %s/e" % base in out, out
    assert "%s/s0000000000: rc = 0" % base in out, out
    assert "%s: rc = 0" % base in out, out
    # exists after delete reports ZNONODE (-101).
    assert "Error -101 for %s" % base in out, out


def test_cli_mt_errors(zk_host):
    base = "/climt-err-%s" % uuid.uuid4().hex[:8]
    out = run_cli_mt(
        zk_host,
        [
            "get %s" % base,
            "create %s" % base,
            "create %s" % base,
            "create %s/child" % base,
            "delete %s" % base,
            "delete %s/child" % base,
            "delete %s" % base,
        ],
    )
    assert "%s: rc = -101" % base in out, out  # get of a missing node
    assert "[%s]: rc = -110" % base in out, out  # node exists
    assert "%s: rc = -111" % base in out, out  # not empty
