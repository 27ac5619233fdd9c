#!/usr/bin/env python3
"""Writes docs/benchmarks/scale.md from scale-results.jsonl (rows appended by
`scripts/compare-zookeeper.sh --scale`): at each scale (1M, 10M, and any
other size a smaller run used) a section of its own with, for each
measurement, the newest run that made it at that scale (so a 10M run does
not replace the 1M report, and a run of some parts only, --scale-parts,
does not hide the other parts of an earlier run); then the newest large
znode run (its size does not depend on the znode count); and a targets
table with each issue #9 target marked met, missed or not measured from
those rows. The hand-written analysis lives in scale-notes.md next to it and
is copied in verbatim.

    scripts/scale_report.py docs/benchmarks/scale-results.jsonl docs/benchmarks
"""
import json
import os
import sys

# Issue #9 targets measured here.
OVERHEAD_PER_ZNODE_MAX_B = 64
BYTES_PER_WATCH_MAX_B = 48
RESTART_1M_MAX_MS = 1000
RSS_10M_MAX_B = 2 * 2**30
RESTART_10M_MAX_MS = 10_000
# "Snapshots do not hurt the tail": setData p99 while a snapshot is being
# written at most this times the p99 without one.
SNAPSHOT_TAIL_MAX_RATIO = 2.0
# "A 10 MiB setData's time is dominated by the disk": its p50 at most this
# times the p50 of writing + fdatasyncing the same bytes to a file there.
LARGE_SET_OVER_FLOOR_MAX = 2.0
LARGE_VALUE_BYTES = 10 << 20
# "Many large writes do not grow RSS without bound": the server's RSS grows
# by less than this many values over the writes after the first few
# (45 of the default 50).
LARGE_RSS_GROWTH_MAX_VALUES = 2
LARGE_WRITES_AFTER_FIRST_MIN = 45
# "wchc/wchp ... do not stall the shard that answers them": the slowest get
# of the probe session while a dump is read at most this times the slowest
# get of the same probe in the 2 s just before (the machine's own stalls).
DUMP_SLOWEST_GET_MAX_RATIO = 2.0

SCALES = (1_000_000, 10_000_000)
SCALE_NAMES = {1_000_000: "1M", 10_000_000: "10M"}
# The measurements rendered per scale, in the report's order.
SCALED_KINDS = ("memory", "watches", "restart", "snapshot_tail")


def row_scale(r):
    """The scale a measurement row belongs to (znodes or watches), or None."""
    if r["kind"] in ("memory", "restart", "snapshot_tail"):
        return r.get("znodes")
    return r.get("watches") if r["kind"] == "watches" else None


def rows_at(runs, scale):
    """For each measurement, the rows of the newest run that made it at
    `scale`, merged (each row keeps its run_id), with the contributing runs
    (newest first); ([], []) when nothing was measured at that scale."""
    merged, used = [], []
    for kind in SCALED_KINDS:
        for run_id, run in reversed(runs):
            picked = [r for r in run if r["kind"] == kind and row_scale(r) == scale]
            if picked:
                merged += picked
                if run_id not in [u[0] for u in used]:
                    used.append((run_id, run))
                break
    return merged, used


def fmt_us(us):
    """A latency given in microseconds, in µs below 10 ms, else in ms."""
    return f"{us} µs" if us < 10_000 else f"{us / 1000:.0f} ms"


def fmt_gets(g):
    return f"{fmt_us(g['p50'])} / {fmt_us(g['p99'])} / {fmt_us(g['p999'])} / {fmt_us(g['max'])}"


def fmt_count(n):
    return SCALE_NAMES.get(n, f"{n:,}")


def describe_run(w, run_id, run, parts=None):
    machine = next((r for r in run if r["kind"] == "machine"), {})
    load = next((r for r in run if r["kind"] == "load"), {})
    config = next((r for r in run if r["kind"] == "scale-config"), {})
    snap = f", snapCount {config['snap_count']}" if config else ""
    which = f" ({parts})" if parts else ""
    w(f"Run `{run_id}`{which}: `{machine.get('command', 'scripts/compare-zookeeper.sh --scale')}` on "
      f"{machine.get('nproc')} cores ({machine.get('model')}, {machine.get('mem_gib')} GiB, kernel "
      f"{machine.get('kernel')}), Apache ZooKeeper {machine.get('zk_version')} (Debian), commit "
      f"{machine.get('commit')}{snap}. 1-minute load at the start: {load.get('load1')} (the notes say what "
      "else ran). Each measurement runs on a fresh server; raw rows are in "
      "`scale-results.jsonl`.\n")


KIND_NAMES = {"memory": "memory", "watches": "watches", "restart": "restart", "snapshot_tail": "snapshot tail"}


def render_run(w, run, used, scale):
    """run: the merged rows at `scale`; used: the runs they came from."""
    name = fmt_count(scale)

    def one(kind, label, **match):
        for r in run:
            if r["kind"] == kind and r.get("label") == label and all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    w(f"## The {name} run\n")
    for run_id, rows in used:
        parts = None
        if len(used) > 1:
            kinds = [k for k in SCALED_KINDS if any(r["kind"] == k and r.get("run_id") == run_id for r in run)]
            parts = ", ".join(KIND_NAMES[k] for k in kinds)
        describe_run(w, run_id, rows, parts)

    found = {"memory": {}, "watches": {}, "restart": {}, "snapshot_tail": {}}
    mem_rows = [(label, one("memory", label)) for label in ("zoocore", "zookeeper")]
    if any(r for _, r in mem_rows):
        n = next(r["znodes"] for _, r in mem_rows if r)
        w(f"### Memory per znode ({fmt_count(n)} znodes, 100-byte values)\n")
        w("| server | RSS before | RSS after | bytes per znode | path + data | overhead per znode |")
        w("|---|---|---|---|---|---|")
        for label, r in mem_rows:
            if not r:
                continue
            found["memory"][label] = r
            w(f"| {label} | {r['rss_before'] / 2**20:.0f} MiB | {r['rss_after'] / 2**20:.0f} MiB | "
              f"{r['bytes_per_znode']:.0f} B | {r['mean_path_len'] + r['value_size']:.0f} B | "
              f"{r['overhead_per_znode']:.0f} B |")
        w("")

    watch_rows = [((label, shape), one("watches", label, shape=shape))
                  for label in ("zoocore", "zookeeper") for shape in ("shared", "distinct")]
    if any(r for _, r in watch_rows):
        first = next(r for _, r in watch_rows if r)
        per_session = first["watches"] // max(first["sessions"], 1)
        w(f"### Memory per watch ({fmt_count(first['watches'])} exists watches, {first['sessions']:,} sessions)\n")
        w(f"Shared: every session watches the same {per_session:,} paths ({first['sessions']:,} watchers per "
          f"path). Distinct: every (session, path) pair is a path of its own ({first['watches']:,} paths). "
          "The paths do not exist, so no znode memory is added; `wchs` confirms the count. Warm-up: each "
          "session first sent a burst of watchless exists requests, so its connection's buffers are in "
          "\"RSS before\" (rows without it count them as watch memory).\n")
        w("| server | shape | warm-up | watches (wchs) | RSS before | RSS after | bytes per watch | mean path |")
        w("|---|---|---|---|---|---|---|---|")
        for key, r in watch_rows:
            if not r:
                continue
            found["watches"][key] = r
            warm = "yes" if r.get("warmup") else "no"
            w(f"| {key[0]} | {key[1]} | {warm} | {r['server_reported']} | {r['rss_before'] / 2**20:.0f} MiB | "
              f"{r['rss_after'] / 2**20:.0f} MiB | {r['bytes_per_watch']:.1f} B | {r['mean_path_len']:.0f} B |")
        w("")
        dumped = [(key, r) for key, r in watch_rows if r and r.get("dumps")]
        if dumped:
            w("#### wchc / wchp of all the watches, with a get probe\n")
            w("After the RSS readings: one `wchc` and then one `wchp` read to the end by the bench, while "
              "another session sends gets of `/` one at a time (the baseline is 2 s of the same gets just "
              "before). \"Watch lines\" counts the reply's tab-led lines, one per "
              "(path, session); \"RSS peak\" is the server's VmRSS sampled every 20 ms during the dump.\n")
            w("| server | shape | word | bytes | watch lines | first byte | end | RSS peak | "
              "get p50 / p99 / p99.9 / max | gets |")
            w("|---|---|---|---|---|---|---|---|---|---|")
            for key, r in dumped:
                b = r["get_baseline_us"]
                w(f"| {key[0]} | {key[1]} | baseline | | | | | | {fmt_gets(b)} | "
                  f"{b['count']} |")
                for d in r["dumps"]:
                    g = d["get_us"]
                    w(f"| {key[0]} | {key[1]} | {d['word']} | {d['bytes'] / 2**20:.0f} MiB | {d['entries']} | "
                      f"{d['first_byte_ms'] / 1000:.1f} s | {d['total_ms'] / 1000:.1f} s | "
                      f"{d['rss_peak'] / 2**20:.0f} MiB | {fmt_gets(g)} | {g['count']} |")
            w("")

    restart_rows = [r for r in run if r["kind"] == "restart"]
    if restart_rows:
        n = restart_rows[0]["znodes"]
        w(f"### Restart after kill -9 ({fmt_count(n)} znodes + a log tail after the newest snapshot)\n")
        w("`zoocore-bench restart`: creates the znodes, writes setData until the log holds 100k-110k txns "
          "after the newest snapshot, kill -9, starts the same command line again and times until a new "
          "session reads the last-created znode back and `srvr` reports the pre-kill zxid.\n")
        w("| server | snapshot zxid | txns after it | kill -9 to serving | note |")
        w("|---|---|---|---|---|")
        for label in ("zoocore", "zookeeper"):
            for r in restart_rows:
                if r.get("label") != label:
                    continue
                # The slowest sample decides the target.
                if label not in found["restart"] or r["restart_ms"] > found["restart"][label]["restart_ms"]:
                    found["restart"][label] = r
                w(f"| {label} | 0x{r['snapshot_zxid']:x} | {r['tail_txns']} | {r['restart_ms']:.0f} ms | "
                  f"{r.get('rerun', '')} |")
        w("")

    tail_rows = [(label, one("snapshot_tail", label)) for label in ("zoocore", "zookeeper")]
    if any(r for _, r in tail_rows):
        first = next(r for _, r in tail_rows if r)
        config = next((r for run_id, rows in used if run_id == first.get("run_id") for r in rows
                       if r["kind"] == "scale-config"), {})
        snap = config.get("snaptail_snap_count")
        w(f"### Write tail while a snapshot is written ({fmt_count(first['znodes'])} znodes)\n")
        w(f"`zoocore-bench snapshot-tail` on a fresh server with snapCount {snap or 'as in the run line'} "
          "(a snapshot every snapCount/2 to snapCount txns; docs/storage.md's method uses 20000): preloads "
          f"the znodes (100-byte values), then one session sends setData at a fixed rate ({first['rate']}/s "
          f"asked, for {first.get('duration_s', '?')} s), one outstanding, while a thread "
          "polls the snapshot directory every 2 ms. A snapshot is being written while a `snapshot.*.tmp` "
          "exists (zoocore writes one and renames it) or while a `snapshot.*` file is new or has grown "
          f"within the last {first.get('quiet_ms', 50)} ms (Apache ZooKeeper 3.8 writes its snapshots in "
          "place, without a temporary name). A write whose send, completion or any poll in between saw "
          "one counts as \"during\", the others \"without\". \"Achieved\" is the writes done per second "
          "of the run (below the asked rate, the server or the machine could not keep up: the windows "
          "then hold fewer samples than planned). \"Windows\" are the spans the poller saw a snapshot "
          "being written.\n")
        w("| server | achieved | snapshots seen | windows (ms) | without: n, p50 / p99 / max | "
          "during: n, p50 / p99 / max | p99 during / without |")
        w("|---|---|---|---|---|---|---|")
        for label, r in tail_rows:
            if not r:
                continue
            found["snapshot_tail"][label] = r
            windows = r.get("snapshot_windows_ms", [])
            shown = ", ".join(f"{ms:.0f}" for ms in windows[:8]) + (" …" if len(windows) > 8 else "")
            ratio = r["during_p99_us"] / r["without_p99_us"] if r["without_p99_us"] and r["during_n"] else None
            achieved = (f"{(r['without_n'] + r['during_n']) / r['duration_s']:.0f}/s" if r.get("duration_s")
                        else "")
            w(f"| {label} | {achieved} | {r['snapshots_seen']} | {shown} | {r['without_n']:,}, {fmt_us(r['without_p50_us'])} / "
              f"{fmt_us(r['without_p99_us'])} / {fmt_us(r['without_max_us'])} | {r['during_n']:,}, "
              f"{fmt_us(r['during_p50_us'])} / {fmt_us(r['during_p99_us'])} / {fmt_us(r['during_max_us'])} | "
              f"{'' if ratio is None else f'{ratio:.2f}x'} |")
        w("")
    return found


def fmt_mib(b):
    return "" if b is None else f"{b / 2**20:.0f} MiB"


def render_large(w, run_id, run):
    """The large-values rows of one run; returns {label: row}."""
    rows = {r["label"]: r for r in run if r["kind"] == "large_values"}
    first = next(iter(rows.values()))
    size = first["value_size"]
    w(f"## Large znodes ({size / 2**20:g} MiB values)\n")
    describe_run(w, run_id, run)
    w(f"`zoocore-bench large-values` on a fresh server run with jute.maxbuffer=16777216 (zoocore: zoo.cfg; "
      f"Apache: `-Djute.maxbuffer`): one session creates a znode, then sends {first['writes']} setData of a "
      f"{size / 2**20:g} MiB value, one outstanding, each value different; then getData of it. The floor "
      "is the same bytes written (buffered pwrite) into a preallocated file in the server's dataDir and "
      "fdatasync'd, one at a time. The server's RSS is read (after 1 s) before the writes, after the "
      f"first {first['first_writes']} and after all of them.\n")
    w("| server | setData p50 / p99 / max | getData p50 / p99 / max | floor p50 / max | setData p50 / floor p50 | "
      f"RSS before / after {first['first_writes']} / after all | growth after the first "
      f"{first['first_writes']} |")
    w("|---|---|---|---|---|---|---|")
    for label in ("zoocore", "zookeeper"):
        r = rows.get(label)
        if not r:
            continue
        s, g, f = r["set_latency_us"], r["get_latency_us"], r["floor_latency_us"]
        growth = r.get("rss_growth_after_first")
        w(f"| {label} | {fmt_us(s['p50'])} / {fmt_us(s['p99'])} / {fmt_us(s['max'])} | {fmt_us(g['p50'])} / "
          f"{fmt_us(g['p99'])} / {fmt_us(g['max'])} | {fmt_us(f['p50'])} / {fmt_us(f['max'])} | "
          f"{r['set_p50_over_floor_p50']:.2f} | {fmt_mib(r.get('rss_before'))} / "
          f"{fmt_mib(r.get('rss_after_first'))} / {fmt_mib(r.get('rss_after_all'))} | "
          f"{'' if growth is None else f'{growth / 2**20:+.0f} MiB'} |")
    w("")
    return rows


def verdict(ok):
    return "**met**" if ok else "**missed**"


NOT_MEASURED = "**not measured**"


def targets(w, at, large, off_scale):
    """at: scale -> (run_id, found) for the targets' scales; large: the
    newest large-values rows by label (or {}); off_scale: (scale, found)
    of smaller runs, newest first (used only where a target's scale has no
    row, and marked so)."""
    w("## Targets\n")
    w("| target | measured | | run |")
    w("|---|---|---|---|")
    one_m = at.get(1_000_000)
    ten_m = at.get(10_000_000)

    def get(entry, kind, key):
        return entry[1][kind].get(key) if entry else None

    def run_of_row(r):
        return f"`{r.get('run_id')}`" if r else ""

    mem = get(one_m, "memory", "zoocore")
    if mem:
        z = get(one_m, "memory", "zookeeper")
        other = f"; Apache {z['overhead_per_znode']:.0f} B" if z else ""
        w(f"| ≤ {OVERHEAD_PER_ZNODE_MAX_B} B overhead per znode at 1M | {mem['overhead_per_znode']:.0f} B{other} | "
          f"{verdict(mem['overhead_per_znode'] <= OVERHEAD_PER_ZNODE_MAX_B)} (cost per field: "
          f"docs/architecture.md) | {run_of_row(mem)} |")
    else:
        w(f"| ≤ {OVERHEAD_PER_ZNODE_MAX_B} B overhead per znode at 1M | | {NOT_MEASURED} | |")

    for scale, entry in ((1_000_000, one_m), (10_000_000, ten_m)):
        for shape in ("shared", "distinct"):
            r = get(entry, "watches", ("zoocore", shape))
            what = f"≤ {BYTES_PER_WATCH_MAX_B} B per watch ({shape} paths, {fmt_count(scale)} watches)"
            if not r:
                w(f"| {what} | | {NOT_MEASURED} | |")
                continue
            z = get(entry, "watches", ("zookeeper", shape))
            other = f"; Apache {z['bytes_per_watch']:.0f} B" if z else ""
            method = "" if r.get("warmup") else " (no warm-up: connection buffers counted in; see the notes)"
            count_ok = r.get("server_reported") == r["watches"]
            count = "" if count_ok else f"; wchs reported {r.get('server_reported')}, not {r['watches']}"
            w(f"| {what} | {r['bytes_per_watch']:.1f} B{other}{count} | "
              f"{verdict(r['bytes_per_watch'] <= BYTES_PER_WATCH_MAX_B and count_ok)}{method} | {run_of_row(r)} |")

    for scale, entry in ((1_000_000, one_m), (10_000_000, ten_m)):
        what = (f"wchc / wchp of {fmt_count(scale)} watches do not stall the shard answering them: slowest probe "
                f"get during a dump ≤ {DUMP_SLOWEST_GET_MAX_RATIO:g}x the slowest before it")
        dumped = [r for shape in ("shared", "distinct")
                  for r in [get(entry, "watches", ("zoocore", shape))] if r and r.get("dumps")]
        if not dumped:
            w(f"| {what} | | {NOT_MEASURED} | |")
            continue
        parts, ok = [], True
        for r in dumped:
            base = r["get_baseline_us"]["max"]
            worst = max(d["get_us"]["max"] for d in r["dumps"])
            ok = ok and base > 0 and worst <= DUMP_SLOWEST_GET_MAX_RATIO * base
            parts.append(f"{r['shape']}: {fmt_us(worst)} vs {fmt_us(base)}")
        w(f"| {what} | {'; '.join(parts)} | {verdict(ok)} | {run_of_row(dumped[0])} |")

    mem10 = get(ten_m, "memory", "zoocore")
    what = "10M znodes with 100-byte values in < 2 GiB RSS"
    if mem10:
        rss = mem10["rss_after"]
        w(f"| {what} | {rss / 2**30:.2f} GiB ({mem10['bytes_per_znode']:.0f} B per znode) | "
          f"{verdict(rss < RSS_10M_MAX_B and mem10.get('errors', 0) == 0)} | {run_of_row(mem10)} |")
    else:
        w(f"| {what} | | {NOT_MEASURED} | |")

    for scale, entry, limit in ((1_000_000, one_m, RESTART_1M_MAX_MS), (10_000_000, ten_m, RESTART_10M_MAX_MS)):
        what = f"kill -9 to serving, {fmt_count(scale)} znodes + 100k tail, < {limit / 1000:g} s"
        r = get(entry, "restart", "zoocore")
        if not r:
            w(f"| {what} | | {NOT_MEASURED} | |")
            continue
        z = get(entry, "restart", "zookeeper")
        other = f"; Apache {z['restart_ms']:.0f} ms" if z else ""
        w(f"| {what} | {r['restart_ms']:.0f} ms{other} | {verdict(r['restart_ms'] < limit)} | {run_of_row(r)} |")

    what = f"setData p99 during a 1M-znode snapshot ≤ {SNAPSHOT_TAIL_MAX_RATIO:g}x p99 without"
    tails = one_m[1]["snapshot_tail"] if one_m else {}
    smaller = ""
    if not tails.get("zoocore"):
        for n, found in off_scale:
            if found["snapshot_tail"].get("zoocore"):
                tails, smaller = found["snapshot_tail"], f" at {fmt_count(n)} znodes, not 1M"
                break
    r = tails.get("zoocore")
    if not r:
        w(f"| {what} | | {NOT_MEASURED} | |")
    elif not r["during_n"] or not r["without_p99_us"]:
        w(f"| {what} | no write during a snapshot ({r['snapshots_seen']} seen){smaller} | {NOT_MEASURED} | "
          f"{run_of_row(r)} |")
    else:
        ratio = r["during_p99_us"] / r["without_p99_us"]
        z = tails.get("zookeeper")
        other = ""
        if z and z["during_n"] and z["without_p99_us"]:
            other = (f"; Apache {fmt_us(z['during_p99_us'])} / {fmt_us(z['without_p99_us'])} = "
                     f"{z['during_p99_us'] / z['without_p99_us']:.2f}x")
        note = f" (measured{smaller}: not the target's size)" if smaller else ""
        w(f"| {what} | {fmt_us(r['during_p99_us'])} / {fmt_us(r['without_p99_us'])} = {ratio:.2f}x{other} | "
          f"{verdict(ratio <= SNAPSHOT_TAIL_MAX_RATIO)}{note} | {run_of_row(r)} |")

    r = large.get("zoocore")
    z = large.get("zookeeper")
    what = (f"10 MiB setData dominated by the disk: p50 ≤ {LARGE_SET_OVER_FLOOR_MAX:g}x the p50 of writing + "
            "fdatasyncing the same bytes")
    if not r:
        w(f"| {what} | | {NOT_MEASURED} | |")
    else:
        size_note = "" if r["value_size"] == LARGE_VALUE_BYTES else f" ({r['value_size']} B values, not 10 MiB)"
        other = f"; Apache {z['set_p50_over_floor_p50']:.2f}x" if z else ""
        ok = r["set_p50_over_floor_p50"] <= LARGE_SET_OVER_FLOOR_MAX
        w(f"| {what} | {fmt_us(r['set_latency_us']['p50'])} / {fmt_us(r['floor_latency_us']['p50'])} = "
          f"{r['set_p50_over_floor_p50']:.2f}x{other} | {verdict(ok)}{size_note} | {run_of_row(r)} |")
    what = (f"many 10 MiB writes do not grow RSS without bound: growth over the writes after the first few "
            f"< {LARGE_RSS_GROWTH_MAX_VALUES} values")
    if not r or r.get("rss_growth_after_first") is None:
        w(f"| {what} | | {NOT_MEASURED} | |")
    else:
        later = r["writes"] - r["first_writes"]
        growth = r["rss_growth_after_first"]
        other = ""
        if z and z.get("rss_growth_after_first") is not None:
            other = f"; Apache {z['rss_growth_after_first'] / 2**20:+.0f} MiB"
        few = "" if later >= LARGE_WRITES_AFTER_FIRST_MIN else f" (only {later} writes after the first: too few)"
        ok = growth < LARGE_RSS_GROWTH_MAX_VALUES * r["value_size"]
        w(f"| {what} | {growth / 2**20:+.0f} MiB over writes {r['first_writes'] + 1}-{r['writes']} "
          f"({growth / r['value_size']:+.1f} values){other} | {verdict(ok)}{few} | {run_of_row(r)} |")
    w("")


def main():
    rows_path, out_dir = sys.argv[1], sys.argv[2]
    rows = [json.loads(line) for line in open(rows_path) if line.strip()]
    runs = []  # (run_id, rows) in file order
    for r in rows:
        if not runs or runs[-1][0] != r.get("run_id"):
            runs.append((r.get("run_id"), []))
        runs[-1][1].append(r)

    out = []
    w = out.append
    w("# zoocore at scale (issue #9): memory per znode and per watch, restart after kill -9, the write "
      "tail during snapshots, large znodes\n")
    w("Generated by `scripts/scale_report.py` from `scale-results.jsonl`: the newest run at each scale, "
      "then the targets, then the notes (`scale-notes.md`).\n")
    at = {}
    for scale in SCALES:
        merged, used = rows_at(runs, scale)
        if merged:
            at[scale] = (used[0][0], render_run(w, merged, used, scale))
    # Sizes other than the targets' (a smoke run): the newest of each, smallest last.
    others = sorted({row_scale(r) for r in rows if row_scale(r) and row_scale(r) not in SCALES}, reverse=True)
    off_scale = []
    for scale in others:
        merged, used = rows_at(runs, scale)
        off_scale.append((scale, render_run(w, merged, used, scale)))
    large = {}
    for run_id, run in reversed(runs):
        if any(r["kind"] == "large_values" for r in run):
            large = render_large(w, run_id, run)
            break
    targets(w, at, large, off_scale)

    notes = os.path.join(out_dir, "scale-notes.md")
    if os.path.exists(notes):
        w(open(notes).read().rstrip() + "\n")
    with open(os.path.join(out_dir, "scale.md"), "w") as f:
        f.write("\n".join(out))
    print(f"wrote {os.path.join(out_dir, 'scale.md')} (runs: "
          + ", ".join([f"{fmt_count(s)} {at[s][0]}" for s in at] + [f"{fmt_count(s)} (smaller)" for s, _ in off_scale]
                      + ([f"large {next(iter(large.values())).get('run_id')}"] if large else [])) + ")")


if __name__ == "__main__":
    main()
