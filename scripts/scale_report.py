#!/usr/bin/env python3
"""Writes docs/benchmarks/scale.md from scale-results.jsonl (rows appended by
`scripts/compare-zookeeper.sh --scale`): the newest run at each scale (1M,
10M) in a section of its own, so a 10M run does not replace the 1M report,
and a targets table with each issue #9 target marked met, missed or not
measured from those rows. The hand-written analysis lives in scale-notes.md
next to it and is copied in verbatim.

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

SCALES = (1_000_000, 10_000_000)
SCALE_NAMES = {1_000_000: "1M", 10_000_000: "10M"}


def row_scale(r):
    """The scale a measurement row belongs to (znodes or watches), or None."""
    n = r.get("znodes") if r["kind"] in ("memory", "restart") else r.get("watches")
    return n if r["kind"] in ("memory", "restart", "watches") else None


def run_scale(run):
    """A run's scale: the largest of its rows' (a 10M run holds only 10M rows)."""
    sizes = [row_scale(r) for r in run if row_scale(r)]
    return max(sizes) if sizes else None


def newest_run_at(runs, scale):
    for run_id, run in reversed(runs):
        if run_scale(run) == scale:
            return run_id, run
    return None, None


def fmt_us(us):
    """A latency given in microseconds, in µs below 10 ms, else in ms."""
    return f"{us} µs" if us < 10_000 else f"{us / 1000:.0f} ms"


def fmt_gets(g):
    return f"{fmt_us(g['p50'])} / {fmt_us(g['p99'])} / {fmt_us(g['p999'])} / {fmt_us(g['max'])}"


def fmt_count(n):
    return SCALE_NAMES.get(n, f"{n:,}")


def render_run(w, run_id, run, scale):
    machine = next((r for r in run if r["kind"] == "machine"), {})
    load = next((r for r in run if r["kind"] == "load"), {})
    config = next((r for r in run if r["kind"] == "scale-config"), {})
    name = fmt_count(scale)

    def one(kind, label, **match):
        for r in run:
            if r["kind"] == kind and r.get("label") == label and all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    w(f"## The {name} run\n")
    snap = f", snapCount {config['snap_count']}" if config else ""
    w(f"Run `{run_id}`: `{machine.get('command', 'scripts/compare-zookeeper.sh --scale')}` on "
      f"{machine.get('nproc')} cores ({machine.get('model')}, {machine.get('mem_gib')} GiB, kernel "
      f"{machine.get('kernel')}), Apache ZooKeeper {machine.get('zk_version')} (Debian), commit "
      f"{machine.get('commit')}{snap}. 1-minute load at the start: {load.get('load1')} (the machine was "
      "shared with other builds). Each measurement runs on a fresh server; raw rows are in "
      "`scale-results.jsonl`.\n")

    found = {"memory": {}, "watches": {}, "restart": {}}
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
    return found


def verdict(ok):
    return "**met**" if ok else "**missed**"


NOT_MEASURED = "**not measured**"


def targets(w, at):
    """at: scale -> (run_id, found) for the runs rendered."""
    w("## Targets\n")
    w("| target | measured | | run |")
    w("|---|---|---|---|")
    one_m = at.get(1_000_000)
    ten_m = at.get(10_000_000)

    def get(entry, kind, key):
        return entry[1][kind].get(key) if entry else None

    def run_of(entry):
        return f"`{entry[0]}`" if entry else ""

    mem = get(one_m, "memory", "zoocore")
    if mem:
        z = get(one_m, "memory", "zookeeper")
        other = f"; Apache {z['overhead_per_znode']:.0f} B" if z else ""
        w(f"| ≤ {OVERHEAD_PER_ZNODE_MAX_B} B overhead per znode at 1M | {mem['overhead_per_znode']:.0f} B{other} | "
          f"{verdict(mem['overhead_per_znode'] <= OVERHEAD_PER_ZNODE_MAX_B)} (cost per field: "
          f"docs/architecture.md) | {run_of(one_m)} |")
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
              f"{verdict(r['bytes_per_watch'] <= BYTES_PER_WATCH_MAX_B and count_ok)}{method} | {run_of(entry)} |")

    mem10 = get(ten_m, "memory", "zoocore")
    what = "10M znodes with 100-byte values in < 2 GiB RSS"
    if mem10:
        rss = mem10["rss_after"]
        w(f"| {what} | {rss / 2**30:.2f} GiB ({mem10['bytes_per_znode']:.0f} B per znode) | "
          f"{verdict(rss < RSS_10M_MAX_B and mem10.get('errors', 0) == 0)} | {run_of(ten_m)} |")
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
        w(f"| {what} | {r['restart_ms']:.0f} ms{other} | {verdict(r['restart_ms'] < limit)} | {run_of(entry)} |")
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
    w("# zoocore at scale (issue #9): memory per znode and per watch, restart after kill -9\n")
    w("Generated by `scripts/scale_report.py` from `scale-results.jsonl`: the newest run at each scale, "
      "then the targets, then the notes (`scale-notes.md`).\n")
    at = {}
    for scale in SCALES:
        run_id, run = newest_run_at(runs, scale)
        if run:
            at[scale] = (run_id, render_run(w, run_id, run, scale))
    targets(w, at)

    notes = os.path.join(out_dir, "scale-notes.md")
    if os.path.exists(notes):
        w(open(notes).read().rstrip() + "\n")
    with open(os.path.join(out_dir, "scale.md"), "w") as f:
        f.write("\n".join(out))
    print(f"wrote {os.path.join(out_dir, 'scale.md')} (runs: "
          + ", ".join(f"{fmt_count(s)} {at[s][0]}" for s in at) + ")")


if __name__ == "__main__":
    main()
