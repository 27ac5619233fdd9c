#!/usr/bin/env python3
"""Turns compare-zookeeper.sh's results.jsonl into README.md and SVG plots.

usage: bench_report.py results.jsonl OUT_DIR
       bench_report.py --ensemble ensemble-results.jsonl OUT_DIR [RUN_ID]
         (the ensemble comparison: the last run in the file, or RUN_ID, to OUT_DIR/ensemble.md)
The SVGs are written by hand (polylines and rectangles), no plotting library.
"""
import json
import math
import os
import statistics
import sys
from collections import defaultdict

SERVERS = ["zoocore", "zookeeper"]
COLORS = {"zoocore": "#d95f02", "zookeeper": "#1b9e77"}
DASH = {"1x1": "", "32x64": "6,3", "8x64": "2,2", "1x64": "8,2,2,2", "32x1": "1,3"}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def cell_key(r):
    # Open-loop cells (a fixed offered rate) get their own workload name.
    wl = r["workload"] if not r.get("rate") else f"{r['workload']} @{r['rate']:,.0f}/s"
    return (wl, r["sessions"], r["outstanding"])


def summarize(runs):
    """(label, cell) -> medians over repeats, plus the run closest to the median throughput."""
    groups = defaultdict(list)
    for r in runs:
        groups[(r["label"], cell_key(r))].append(r)
    out = {}
    for k, rs in groups.items():
        tp = median([r["throughput"] for r in rs])
        rep = min(rs, key=lambda r: abs(r["throughput"] - tp))
        out[k] = {
            "n": len(rs),
            "throughput": tp,
            "p50": median([r["latency_us"]["p50"] for r in rs]),
            "p99": median([r["latency_us"]["p99"] for r in rs]),
            "p999": median([r["latency_us"]["p999"] for r in rs]),
            "cpu": median([r.get("server_cpu_us_per_op") for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "saturated": any(r.get("client_saturated") for r in rs),
            "rep": rep,
        }
    return out


# --- SVG --------------------------------------------------------------------------

def svg_doc(w, h, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="sans-serif" font-size="11">\n<rect width="{w}" height="{h}" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def latency_chart(title, series):
    """series: list of (name, color, dash, [(percentile, us)]). x = nines, y = log10(us)."""
    W, H, L, R, T, B = 620, 360, 60, 150, 30, 40
    pw, ph = W - L - R, H - T - B
    max_nines = 5.0
    pts_all = [v for _, _, _, c in series for _, v in c if v > 0]
    if not pts_all:
        return None
    lo = math.floor(math.log10(max(1, min(pts_all))))
    hi = math.ceil(math.log10(max(pts_all) + 1))
    hi = max(hi, lo + 1)

    def x(p):
        n = max_nines if p >= 100 else min(max_nines, -math.log10(1 - p / 100.0)) if p > 0 else 0
        return L + pw * n / max_nines

    def y(v):
        return T + ph * (1 - (math.log10(max(v, 1)) - lo) / (hi - lo))

    body = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>',
            f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for d in range(lo, hi + 1):
        yy = y(10 ** d)
        body.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + pw}" y2="{yy:.1f}" stroke="#eee"/>')
        body.append(f'<text x="{L - 4}" y="{yy + 4:.1f}" text-anchor="end">{10 ** d:g} us</text>')
    for p, lab in [(0, "0"), (90, "90"), (99, "99"), (99.9, "99.9"), (99.99, "99.99"), (99.999, "99.999")]:
        xx = x(p)
        body.append(f'<line x1="{xx:.1f}" y1="{T}" x2="{xx:.1f}" y2="{T + ph}" stroke="#eee"/>')
        body.append(f'<text x="{xx:.1f}" y="{T + ph + 14}" text-anchor="middle">{lab}</text>')
    body.append(f'<text x="{L + pw / 2}" y="{H - 6}" text-anchor="middle">percentile</text>')
    for i, (name, color, dash, curve) in enumerate(series):
        pts = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in curve if p < 100)
        da = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{da}/>')
        ly = T + 14 + i * 16
        body.append(f'<line x1="{L + pw + 8}" y1="{ly - 4}" x2="{L + pw + 30}" y2="{ly - 4}" '
                    f'stroke="{color}" stroke-width="2"{da}/>')
        body.append(f'<text x="{L + pw + 34}" y="{ly}">{esc(name)}</text>')
    return svg_doc(W, H, body)


def bar_chart(title, groups, unit):
    """groups: list of (label, {server: value})."""
    W, H, L, T, B = max(420, 70 * len(groups) + 80), 320, 70, 30, 70
    pw, ph = W - L - 20, H - T - B
    vmax = max([v for _, vals in groups for v in vals.values() if v] or [1])
    body = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>']
    for i in range(5):
        v = vmax * i / 4
        yy = T + ph * (1 - i / 4)
        body.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + pw}" y2="{yy:.1f}" stroke="#eee"/>')
        body.append(f'<text x="{L - 4}" y="{yy + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    gw = pw / max(1, len(groups))
    bw = gw * 0.35
    for gi, (label, vals) in enumerate(groups):
        gx = L + gi * gw + gw * 0.15
        for si, s in enumerate(SERVERS):
            v = vals.get(s) or 0
            hgt = ph * v / vmax
            body.append(f'<rect x="{gx + si * bw:.1f}" y="{T + ph - hgt:.1f}" width="{bw - 2:.1f}" '
                        f'height="{hgt:.1f}" fill="{COLORS[s]}"/>')
        cx = gx + bw
        body.append(f'<text x="{cx:.1f}" y="{T + ph + 12}" text-anchor="end" '
                    f'transform="rotate(-40 {cx:.1f} {T + ph + 12})">{esc(label)}</text>')
    for si, s in enumerate(SERVERS):
        body.append(f'<rect x="{L + 10 + si * 110}" y="{H - 14}" width="10" height="10" fill="{COLORS[s]}"/>')
        body.append(f'<text x="{L + 24 + si * 110}" y="{H - 5}">{s}</text>')
    body.append(f'<text x="12" y="{T + ph / 2}" transform="rotate(-90 12 {T + ph / 2})" '
                f'text-anchor="middle">{esc(unit)}</text>')
    return svg_doc(W, H, body)


def timeline_chart(title, series):
    """series: list of (name, color, dash, [ops per second])."""
    W, H, L, R, T, B = 620, 300, 70, 150, 30, 36
    pw, ph = W - L - R, H - T - B
    n = max([len(s[3]) for s in series] or [1])
    vmax = max([v for s in series for v in s[3]] or [1])
    body = [f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>',
            f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(5):
        yy = T + ph * (1 - i / 4)
        body.append(f'<text x="{L - 4}" y="{yy + 4:.1f}" text-anchor="end">{vmax * i / 4:,.0f}</text>')
    body.append(f'<text x="{L + pw / 2}" y="{H - 6}" text-anchor="middle">second of the measured window</text>')
    for i, (name, color, dash, vals) in enumerate(series):
        pts = " ".join(f"{L + pw * (j + 0.5) / n:.1f},{T + ph * (1 - v / vmax):.1f}" for j, v in enumerate(vals))
        da = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{da}/>')
        ly = T + 14 + i * 16
        body.append(f'<line x1="{L + pw + 8}" y1="{ly - 4}" x2="{L + pw + 30}" y2="{ly - 4}" '
                    f'stroke="{color}" stroke-width="2"{da}/>')
        body.append(f'<text x="{L + pw + 34}" y="{ly}">{esc(name)}</text>')
    return svg_doc(W, H, body)


# --- server-side log metrics ---------------------------------------------------------

def _num(d, key):
    try:
        return float(d[key])
    except (KeyError, TypeError, ValueError):
        return None


def server_log_table(w, runs, cells):
    """Syncs per second and writes per sync from the servers' own mntr
    counters read before and after each run (zoocore: zk_log_batches;
    Apache: zk_cnt_fsynctime), plus zoocore's fsync/batch/queue percentiles."""
    rows = []
    for cell in cells:
        wl = cell[0].split(" ")[0]
        if wl not in ("create", "set", "mixed"):
            continue
        out = []
        for label, key in (("zoocore", "zk_log_batches"), ("zookeeper", "zk_cnt_fsynctime")):
            rs = [r for r in runs if r["label"] == label and cell_key(r) == cell
                  and r.get("server_log_before") and r.get("server_log_after")]
            if not rs:
                out.append(None)
                continue
            r = rs[len(rs) // 2]
            b, a = _num(r["server_log_before"], key), _num(r["server_log_after"], key)
            span = r["window_s"] + (r.get("warmup_s") or 0)
            write_share = 1.0 if wl != "mixed" else (100 - r.get("read_pct", 90)) / 100
            syncs = (a - b) if a is not None and b is not None else None
            per_sync = (r["throughput"] * write_share * span / syncs) if syncs else None
            out.append((syncs / span if syncs is not None and span else None, per_sync, r["server_log_after"]))
        if any(out):
            rows.append((cell, out))
    if not rows:
        return
    w("### The servers' own log metrics")
    w("")
    w("Read with `mntr` before and after each run (the run closest to the median of each cell; the counts include "
      "the warm-up). *syncs/s* = log flushes per second (zoocore `zk_log_batches`, ZooKeeper `zk_cnt_fsynctime`); "
      "*writes/sync* = the client's write rate ÷ that (the group-commit batch size). zoocore's fsync, batch-size "
      "and commit-queue percentiles (`zk_fsync_us_*`, `zk_batch_txns_*`, `zk_commit_queue_us_*`) are cumulative "
      "since the server started (fresh servers for each repeat), so each row also holds the cells of its repeat "
      "before it.")
    w("")
    w("| workload | sessions×out | zoocore syncs/s | zoocore writes/sync | ZooKeeper syncs/s | ZooKeeper writes/sync | "
      "zoocore fsync us p50 / p99 | zoocore txns/batch p50 / p99 | zoocore commit queue us p50 / p99 |")
    w("|---|---|---:|---:|---:|---:|---|---|---|")
    for (wl, s, o), (zc, zk) in rows:
        def f(x, i, d=0):
            return fmt(x[i], d) if x and x[i] is not None else "–"
        m = zc[2] if zc else {}
        pp = lambda k: f"{m.get(k + '_p50', '–')} / {m.get(k + '_p99', '–')}"
        w(f"| {wl} | {s}×{o} | {f(zc, 0)} | {f(zc, 1, 1)} | {f(zk, 0)} | {f(zk, 1, 1)} | {pp('zk_fsync_us')} | "
          f"{pp('zk_batch_txns')} | {pp('zk_commit_queue_us')} |")
    w("")


# --- targets -----------------------------------------------------------------------

def targets_section(w, summ, disk, rtt, mem, notes_path):
    """The issue's targets, each with this run's value and met / missed."""
    def g(label, cell, field):
        x = summ.get((label, cell))
        return x[field] if x else None

    def r(cell, field):
        a, b = g("zoocore", cell, field), g("zookeeper", cell, field)
        return a / b if a is not None and b else None

    def rng(cells, field):
        vals = [(r(c, field), c) for c in cells if r(c, field) is not None]
        if not vals:
            return "–"
        lo, hi = min(vals), max(vals)
        return f"{lo[0]:.2f} ({lo[1][0]} {lo[1][1]}×{lo[1][2]}) … {hi[0]:.2f} ({hi[1][0]} {hi[1][1]}×{hi[1][2]})"

    def verdict(v, ok, aim=None):
        if v is None:
            return "not measured"
        if aim is not None and aim(v):
            return "**met** (and the aim)"
        return "**met**" if ok(v) else "**missed**"

    grid = [(s, o) for s in (1, 32) for o in (1, 64)] + [(8, 64)]
    wcells = [(wl, s, o) for wl in ("create", "set") for s, o in grid]
    rcells = [("get", s, o) for s, o in grid]
    rows = []
    v = r(("create", 8, 64), "cpu")
    rows.append(("server CPU per write ≤ 1/5 of ZooKeeper's (aim 1/10), 8×64",
                 f"{v:.2f}× at create 8×64; range {rng(wcells, 'cpu')}" if v else "–",
                 verdict(v, lambda x: x <= 0.2, lambda x: x <= 0.1)))
    v = r(("create", 32, 64), "cpu")
    rows.append(("server CPU per write ≤ 1/5 of ZooKeeper's (aim 1/10), 32×64",
                 (f"{v:.2f}× at create 32×64 ({fmt(g('zoocore', ('create', 32, 64), 'cpu'), 1)} vs "
                  f"{fmt(g('zookeeper', ('create', 32, 64), 'cpu'), 1)} us)") if v else "–",
                 verdict(v, lambda x: x <= 0.2, lambda x: x <= 0.1)))
    v = r(("get", 8, 64), "cpu")
    rows.append(("server CPU per read ≤ 1/3 of ZooKeeper's (aim 1/5)",
                 f"{v:.2f}× at get 8×64; range {rng(rcells, 'cpu')}" if v else "–",
                 verdict(v, lambda x: x <= 1 / 3, lambda x: x <= 0.2)))
    for wl, need in (("create", 5), ("get", 3)):
        cell = (wl, 8, 64)
        v = r(cell, "throughput")
        sat = any(summ.get((sv, cell), {}).get("saturated") for sv in SERVERS)
        kind = "writes" if wl == "create" else "reads"
        rows.append((f"throughput ≥ {need}× ZooKeeper's, {kind} (load generator not saturated)",
                     (f"{v:.2f}× at {wl} 8×64; range {rng(wcells if wl == 'create' else rcells, 'throughput')}"
                      + (" (client reported saturation)" if sat else "")) if v else "–",
                     verdict(v, lambda x: x >= need)))
    p50 = g("zoocore", ("create", 1, 1), "p50")
    if disk and rtt and p50:
        floor = disk["latency_us"]["p50"] + rtt["latency_us"]["p50"]
        rows.append(("1 session × 1 outstanding write p50 ≤ 1.5 × (fdatasync floor + loopback RTT)",
                     f"create p50 {p50:,.0f} us vs floor {disk['latency_us']['p50']} + RTT {rtt['latency_us']['p50']} "
                     f"= {floor} us → {p50 / floor:.2f}× (limit 1.5× = {1.5 * floor:,.0f} us)",
                     verdict(p50 / floor, lambda x: x <= 1.5)))
    for cell in [c for (lab, c) in summ if lab == "zoocore" and "@" in c[0]]:
        v = r(cell, "p999")
        rows.append((f"p99.9 at equal offered load ≤ 1/10 of ZooKeeper's ({cell[0]}, {cell[1]}×{cell[2]})",
                     f"{fmt(g('zoocore', cell, 'p999'))} us vs {fmt(g('zookeeper', cell, 'p999'))} us → {v:.2f}×"
                     if v else "–", verdict(v, lambda x: x <= 0.1)))
    zc, zk = mem.get("zoocore"), mem.get("zookeeper")
    if zc and zk and zk["bytes_per_znode"] > 0:
        v = zc["bytes_per_znode"] / zk["bytes_per_znode"]
        rows.append((f"memory ≤ 1/5 of ZooKeeper's ({zc['znodes']:,} znodes)",
                     f"{zc['bytes_per_znode']:,.0f} vs {zk['bytes_per_znode']:,.0f} B per znode → {v:.2f}×",
                     verdict(v, lambda x: x <= 0.2)))
        o = zc["overhead_per_znode"]
        rows.append(("~64 B overhead per znode beyond path and data",
                     f"{o:,.0f} B ({o / 64:.1f}× the goal)", verdict(o, lambda x: x <= 64)))
    w("## Targets")
    w("")
    w("The issue's targets against this run (ratio = zoocore ÷ ZooKeeper; medians of the repeats).")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for t, m, v in rows:
        w(f"| {t} | {m} | {v} |")
    w("")
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            w(f.read().rstrip())
        w("")


# --- README ------------------------------------------------------------------------

def main():
    rows = load(sys.argv[1])
    out_dir = sys.argv[2]
    machine = next((r for r in rows if r["kind"] == "machine"), {})
    runs = [r for r in rows if r["kind"] == "run"]
    disk = next((r for r in rows if r["kind"] == "disk-floor"), None)
    rtt = next((r for r in rows if r["kind"] == "rtt"), None)
    mem = {r["label"]: r for r in rows if r["kind"] == "memory"}
    summ = summarize(runs)
    cells = []
    for r in runs:
        if cell_key(r) not in cells:
            cells.append(cell_key(r))

    def get(label, cell, field):
        s = summ.get((label, cell))
        return s[field] if s else None

    files = {}
    lines = []
    w = lines.append
    quick = machine.get("quick")
    w("# zoocore vs Apache ZooKeeper — side-by-side benchmark")
    w("")
    w("Both servers make every write durable before replying to it: zoocore appends each group-commit batch "
      "to its O_DIRECT log and fdatasyncs it (docs/storage.md); Apache ZooKeeper fsyncs its transaction log "
      "(`forceSync=yes`, its default). The write figures below (create, set, the writes of mixed) compare two "
      "durable write paths.")
    w("")
    w(f"Generated by `scripts/compare-zookeeper.sh` ({'**quick mode**: short cells, few repeats' if quick else 'full mode'}"
      f"; {machine.get('repeats', '?')} repeats of {machine.get('duration', '?')} s per cell, medians; commit "
      f"`{machine.get('commit', '?')}`). This is a shared {machine.get('nproc', '?')}-core VM: the numbers are noisy, "
      "and client and server share the two cores, so read the ratios (measured in the same run, cells alternating "
      "between the servers) rather than the absolute figures.")
    w("")
    w("Standalone servers only; three-server ensembles of each are compared in [ensemble.md](ensemble.md) "
      "(`scripts/compare-zookeeper.sh --ensemble`). Plaintext against TLS on each server (both with a "
      "`secureClientPort`, `ssl.clientAuth=need`) is in [tls.md](tls.md) (`scripts/compare-zookeeper.sh --tls`). Memory per znode and per watch and "
      "kill -9 restart at 1M and 10M are in [scale.md](scale.md) (`scripts/compare-zookeeper.sh --scale`).")
    w("")
    w("## Machine")
    w("")
    w(f"* CPU: {machine.get('model', '?')}, {machine.get('nproc', '?')} cores (nproc)")
    w(f"* memory: {machine.get('mem_gib', '?')} GiB; kernel {machine.get('kernel', '?')}")
    w(f"* Apache ZooKeeper: Debian package {machine.get('zk_version', '?')} (ZooKeeperServerMain, default JVM "
      "options, forceSync=yes)")
    w("* both servers: standalone, tickTime=2000, snapCount=100000, dataDir in one directory under /var/tmp "
      "(ext4 on the VM's disk), loopback client port")
    w("")
    w("Reproduce:")
    w("")
    w("```sh")
    w(machine.get("command", "scripts/compare-zookeeper.sh"))
    w("```")
    w("")
    w("## Throughput, latency and server CPU per operation")
    w("")
    w("Sessions × outstanding requests per session (pipelined); 100-byte values; 10,000 preloaded keys for "
      "set/get/mixed; mixed = 90% getData / 10% setData. Latencies in microseconds from hdrhistogram; "
      "server CPU = utime+stime of the server process over the measured window ÷ operations. "
      "Ratio = zoocore ÷ ZooKeeper (throughput: higher is better for zoocore; CPU/op: lower is better).")
    w("")
    w("| workload | sessions×out | zoocore ops/s | ZooKeeper ops/s | ratio | zoocore p50 / p99 / p99.9 | "
      "ZooKeeper p50 / p99 / p99.9 | zoocore CPU us/op | ZooKeeper CPU us/op | CPU ratio |")
    w("|---|---|---:|---:|---:|---|---|---:|---:|---:|")
    notes = []
    for cell in cells:
        wl, s, o = cell
        zc = summ.get(("zoocore", cell))
        zk = summ.get(("zookeeper", cell))

        def lat(x):
            return f"{fmt(x['p50'])} / {fmt(x['p99'])} / {fmt(x['p999'])}" if x else "–"
        mark = ""
        for name, x in (("zoocore", zc), ("ZooKeeper", zk)):
            if x and x["errors"]:
                notes.append(f"{wl} {s}×{o} on {name}: {x['errors']} errors")
                mark = " ⚠"
            if x and x["saturated"]:
                notes.append(f"{wl} {s}×{o} on {name}: the client reported saturation in at least one repeat")
        w(f"| {wl} | {s}×{o}{mark} | {fmt(get('zoocore', cell, 'throughput'))} | "
          f"{fmt(get('zookeeper', cell, 'throughput'))} | "
          f"{ratio(get('zoocore', cell, 'throughput'), get('zookeeper', cell, 'throughput'))} | {lat(zc)} | {lat(zk)} | "
          f"{fmt(get('zoocore', cell, 'cpu'), 1)} | {fmt(get('zookeeper', cell, 'cpu'), 1)} | "
          f"{ratio(get('zoocore', cell, 'cpu'), get('zookeeper', cell, 'cpu'))} |")
    w("")
    if notes:
        w("Notes from the runs:")
        w("")
        for n in notes:
            w(f"* {n}")
        w("")
    if any(r.get("read_write_barrier") for r in runs):
        w("Some runs used `--read-write-barrier` (a session never has reads and writes in flight at once).")
    else:
        w("Mixed runs pipeline reads and writes freely on each session, against both servers (no "
          "`--read-write-barrier`).")
    w("Rows named `@N/s` are open loop at that fixed offered rate (latency from the intended send time), "
      "the same for both servers; all other rows are closed loop.")
    w("")
    server_log_table(w, runs, cells)

    # Floors next to single-session write latency.
    w("## One session, one outstanding request, next to the floors")
    w("")
    w("| measurement | p50 us | p99 us | p99.9 us |")
    w("|---|---:|---:|---:|")
    if disk:
        d = disk["latency_us"]
        w(f"| disk floor: 4 KiB {'O_DIRECT ' if disk.get('o_direct') else ''}write + fdatasync in the dataDir's "
          f"directory | {fmt(d['p50'])} | {fmt(d['p99'])} | {fmt(d['p999'])} |")
    if rtt:
        d = rtt["latency_us"]
        w(f"| loopback TCP round trip (16-byte echo, two threads) | {fmt(d['p50'])} | {fmt(d['p99'])} | {fmt(d['p999'])} |")
    for wl in ("ping", "get", "create", "set"):
        for label, pretty in (("zoocore", "zoocore"), ("zookeeper", "ZooKeeper")):
            x = summ.get((label, (wl, 1, 1)))
            if x:
                tag = " (O_DIRECT log, fdatasynced)" if label == "zoocore" and wl in ("create", "set") else ""
                tag = " (fsynced)" if label == "zookeeper" and wl in ("create", "set") else tag
                w(f"| {pretty} {wl}{tag} | {fmt(x['p50'])} | {fmt(x['p99'])} | {fmt(x['p999'])} |")
    w("")
    if disk and disk["latency_us"]["p50"] < 60:
        w(f"This VM's fdatasync returns in {disk['latency_us']['p50']} us at the median, far below a real device's "
          "flush (the issue's reference VM: ~126 us): the virtual disk very likely acknowledges flushes without "
          "reaching stable media, which flatters both servers' durable writes here.")
        w("")
    w("The client is zoocore's own blocking client (a reader thread per session hands each reply to the load "
      "thread), so every request latency above includes roughly one extra thread wake-up compared with the raw "
      "loopback round trip.")
    w("")

    # Memory.
    w("## Memory: znodes with 100-byte values")
    w("")
    if mem:
        w("| server | znodes | RSS before | RSS after | bytes per znode | of which path + data | overhead per znode |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for label in SERVERS:
            m = mem.get(label)
            if not m:
                continue
            mib = lambda b: f"{b / 1048576:,.1f} MiB"
            pd = m["mean_path_len"] + m["value_size"]
            w(f"| {label} | {m['znodes']:,} | {mib(m['rss_before'])} | {mib(m['rss_after'])} | "
              f"{m['bytes_per_znode']:,.0f} | {pd:,.0f} | {m['overhead_per_znode']:,.0f} |")
        zc, zk = mem.get("zoocore"), mem.get("zookeeper")
        if zc and zk and zk["bytes_per_znode"] > 0:
            w("")
            w(f"zoocore uses {zc['bytes_per_znode'] / zk['bytes_per_znode']:.2f}× ZooKeeper's memory per znode in this run "
              "(goal: ≤ 0.2×, i.e. about 64 bytes of overhead per znode beyond path and data; Apache ZooKeeper 3.8 "
              "holds 1M such znodes in ~1.13 GiB RSS).")
        w("")
        w("RSS is read from /proc/PID/status (VmRSS) before and after the creates, 2 s after each phase. "
          "ZooKeeper's figure includes JVM heap the collector has not returned (default JVM options).")
        if quick:
            w(f"Quick mode: {next(iter(mem.values()))['znodes']:,} znodes.")
    else:
        w("(no memory results)")
    w("")

    targets_section(w, summ, disk, rtt, mem, os.path.join(out_dir, "targets-notes.md"))

    # Plots.
    w("## Plots")
    w("")
    tp_groups = [(f"{wl} {s}×{o}", {sv: get(sv, (wl, s, o), "throughput") for sv in SERVERS})
                 for (wl, s, o) in cells if wl != "ping" and "@" not in wl]
    files["throughput.svg"] = bar_chart("Throughput (median ops/s)", tp_groups, "ops/s")
    w("![throughput](throughput.svg)")
    w("")
    for wl in dict.fromkeys(c[0] for c in cells if "@" not in c[0]):
        series = []
        for (cw, s, o) in cells:
            if cw != wl:
                continue
            for sv in SERVERS:
                x = summ.get((sv, (cw, s, o)))
                if x:
                    curve = [tuple(p) for p in x["rep"]["latency_us"]["curve"]]
                    series.append((f"{sv} {s}×{o}", COLORS[sv], DASH.get(f"{s}x{o}", "4,4"), curve))
        svg = latency_chart(f"{wl}: latency by percentile", series)
        if svg:
            files[f"latency-{wl}.svg"] = svg
            w(f"![{wl} latency](latency-{wl}.svg)")
            w("")
    tl = []
    for (wl, s, o) in cells:
        if (s, o) == (32, 64):
            for sv in SERVERS:
                x = summ.get((sv, (wl, s, o)))
                if x:
                    tl.append((f"{sv} {wl}", COLORS[sv], {"create": "", "set": "6,3", "get": "2,2"}.get(wl, "8,2,2,2"),
                               x["rep"]["timeline"]))
    if tl:
        files["timeline.svg"] = timeline_chart("Throughput over time, 32 sessions × 64 outstanding", tl)
        w("![throughput over time](timeline.svg)")
        w("")
    w("Raw results (one JSON line per run): [results.jsonl](results.jsonl).")
    w("")
    with open(f"{out_dir}/README.md", "w") as f:
        f.write("\n".join(lines))
    for name, content in files.items():
        with open(f"{out_dir}/{name}", "w") as f:
            f.write(content)


# --- ensemble mode (compare-zookeeper.sh --ensemble) ---------------------------------

ENS_TITLE = {"all": "spread over all 3", "leader": "on the leader", "follower": "on a follower"}


def ensemble_runs(rows, run_id=None):
    """The rows of one run of the ensemble comparison (the last one unless run_id is given)."""
    ids = [r.get("run_id") for r in rows if r.get("run_id")]
    if not ids:
        return rows, None
    want = run_id or ids[-1]
    return [r for r in rows if r.get("run_id") == want], want


def ens_key(r):
    system, _, placement = r["label"].partition(":")
    return system, (r["workload"], r["sessions"], r["outstanding"], placement or "all")


def ensemble_report(results_path, out_dir, run_id=None):
    os.makedirs(out_dir, exist_ok=True)
    rows, run_id = ensemble_runs(load(results_path), run_id)
    machine = next((r for r in rows if r["kind"] == "machine"), {})
    runs = {ens_key(r): r for r in rows if r["kind"] == "run"}
    cells = list(dict.fromkeys(k[1] for k in runs))
    disks = [r for r in rows if r["kind"] == "disk-floor"]
    disk = next((r for r in disks if not r.get("label") and r.get("mode", "direct") == "direct"), None)
    rtt = next((r for r in rows if r["kind"] == "rtt"), None)
    loads = [r for r in rows if r["kind"] == "load"]
    fail = defaultdict(list)
    for r in rows:
        if r["kind"] == "failover":
            fail[r["label"]].append(r)
    settled = [r for r in rows if r["kind"] == "ensemble"]

    def get(system, cell, *path):
        x = runs.get((system, cell))
        for p in path:
            if x is None:
                return None
            x = x.get(p)
        return x

    def rat(cell, *path):
        a, b = get("zoocore", cell, *path), get("zookeeper", cell, *path)
        return a / b if a is not None and b else None

    files = {}
    lines = []
    w = lines.append
    w("# zoocore vs Apache ZooKeeper — 3-server ensembles")
    w("")
    w(f"Generated by `scripts/compare-zookeeper.sh --ensemble` from **one run** (run `{run_id}`, commit "
      f"`{machine.get('commit', '?')}`, started {machine.get('started', '?')}): three zoocore servers, then three "
      "Apache ZooKeeper servers, one system at a time, the same workloads and the same client load against each. "
      f"Each cell ran once ({machine.get('duration', '?')} s measured after a warm-up). This is a shared "
      f"{machine.get('nproc', '?')}-core VM on which the three servers and the load generator share the two "
      "cores, so read the ratios rather than the absolute figures.")
    w("")
    w("## Set-up")
    w("")
    w(f"* CPU: {machine.get('model', '?')}, {machine.get('nproc', '?')} cores; {machine.get('mem_gib', '?')} GiB; "
      f"kernel {machine.get('kernel', '?')}")
    w(f"* Apache ZooKeeper: Debian package {machine.get('zk_version', '?')}, `QuorumPeerMain`, default JVM options "
      "but `-Xmx1g` (three JVMs share the machine), forceSync=yes (its default)")
    w("* zoocore: `target/release/zoocore server`, default shards (one worker per core) plus the commit shard")
    w("* every member: its own dataDir under one /var/tmp directory (the VM's disk), its own myid, the same "
      "zoo.cfg text with server.1..3 on 127.0.0.1, tickTime=2000, initLimit=10, syncLimit=5, snapCount=100000")
    w("* load: `zoocore-bench run` (zoocore's own blocking client), 100-byte values, 10,000 preloaded keys for "
      "set/get; *spread over all 3* = sessions assigned round-robin to the three members; server CPU = "
      "utime+stime of all three server processes over the measured window ÷ operations")
    w("* load averages (1 / 5 / 15 min) during the run:")
    for l in loads:
        w(f"  * {l['at']}: {l['load1']:.2f} / {l['load5']:.2f} / {l['load15']:.2f}")
    w(f"  (the script waits for the 1-minute load to drop below {machine.get('max_load', '?')} before it starts)")
    for s in settled:
        modes = ", ".join(f"server.{i + 1} {m}" for i, m in enumerate(s["modes"]))
        system, _, when = (s.get("label") or "?").partition(":")
        when = "after the fail-overs" if when == "end" else "at start"
        w(f"* {system} {when}: {modes} (settled and serving after {s['waited_s']:.1f} s of waiting)")
    w("")
    w("Reproduce:")
    w("")
    w("```sh")
    w(machine.get("command", "scripts/compare-zookeeper.sh --ensemble"))
    w("```")
    w("")

    # Floors.
    fs = disk["latency_us"]["p50"] if disk else None
    rt = rtt["latency_us"]["p50"] if rtt else None
    w("## Floors")
    w("")
    w("Each a 4 KiB write + fdatasync in the directory holding the members' dataDirs (/var/tmp, the same ext4 "
      "filesystem and journal as everything else on this machine, other helpers' builds included): *O_DIRECT "
      "rewrite* of preallocated blocks is zoocore's log path (the fdatasync floor of the targets); *buffered "
      "rewrite* the same through the page cache; *sparse append* is Apache's log path (it pads its log by "
      "writing one byte at the padded end, so every append allocates a block and its fdatasync waits for a "
      "journal commit).")
    w("")
    w("| measurement | when | p50 us | p99 us | p99.9 us |")
    w("|---|---|---:|---:|---:|")
    mode_name = {"direct": "O_DIRECT rewrite + fdatasync", "buffered": "buffered rewrite + fdatasync",
                 "sparse-append": "sparse append + fdatasync"}
    for r in disks + ([rtt] if rtt else []):
        l = r["latency_us"]
        label, mode = r.get("label") or "start", r.get("mode", "direct")
        if "mode" not in r and label == "buffered":  # rows written before disk-floor had --sparse-append
            label, mode = "start", "buffered"
        name = mode_name.get(mode, mode) if r["kind"] == "disk-floor" else "loopback TCP round trip (16-byte echo)"
        w(f"| {name} | {label} | {fmt(l['p50'])} | {fmt(l['p99'])} | {fmt(l['p999'])} |")
    floor_leader = 2 * fs + 2 * rt if fs is not None and rt is not None else None
    if floor_leader:
        w("")
        w(f"The issue's floor for one client writing with one request outstanding: leader fsync + follower fsync + "
          f"two loopback round trips = 2 × {fs} + 2 × {rt} = **{floor_leader} us** (client on the leader). A client "
          f"on a follower adds the forward to the leader: one more round trip, {floor_leader + rt} us. (ZAB lets "
          f"the leader's fsync overlap the follower's, so the tighter bound is fsync + 2 round trips = {fs + 2 * rt} us "
          "on the leader.)")
    w("")

    # Throughput.
    w("## Pipelined throughput and server CPU per operation")
    w("")
    w("Ratio = zoocore ÷ ZooKeeper (throughput: higher is better for zoocore; CPU: lower is better). "
      "Latencies in microseconds (hdrhistogram, client side).")
    w("")
    w("| workload | sessions×out | placement | zoocore ops/s | ZooKeeper ops/s | ratio | zoocore p50 / p99 | "
      "ZooKeeper p50 / p99 | zoocore CPU us/op (3 servers) | ZooKeeper CPU us/op (3 servers) | CPU ratio | errors zoocore / ZK |")
    w("|---|---|---|---:|---:|---:|---|---|---:|---:|---:|---|")
    for c in cells:
        wl, s, o, pl = c
        if (s, o) == (1, 1):
            continue
        lz = get("zoocore", c, "latency_us") or {}
        lk = get("zookeeper", c, "latency_us") or {}
        w(f"| {wl} | {s}×{o} | {ENS_TITLE.get(pl, pl)} | {fmt(get('zoocore', c, 'throughput'))} | "
          f"{fmt(get('zookeeper', c, 'throughput'))} | {ratio(get('zoocore', c, 'throughput'), get('zookeeper', c, 'throughput'))} | "
          f"{fmt(lz.get('p50'))} / {fmt(lz.get('p99'))} | {fmt(lk.get('p50'))} / {fmt(lk.get('p99'))} | "
          f"{fmt(get('zoocore', c, 'server_cpu_us_per_op'), 1)} | {fmt(get('zookeeper', c, 'server_cpu_us_per_op'), 1)} | "
          f"{ratio(get('zoocore', c, 'server_cpu_us_per_op'), get('zookeeper', c, 'server_cpu_us_per_op'))} | "
          f"{get('zoocore', c, 'errors')} / {get('zookeeper', c, 'errors')} |")
    sat = [f"{sv} {c[0]} {c[1]}×{c[2]} {c[3]}" for c in cells for sv in SERVERS if get(sv, c, "client_saturated")]
    if sat:
        w("")
        w("The load generator reported itself saturated in: " + "; ".join(sat) + ".")
    w("")

    # Single client.
    w("## One client, one request outstanding")
    w("")
    w("| workload | client on | zoocore p50 / p99 / p99.9 us | ZooKeeper p50 / p99 / p99.9 us | p50 ratio | "
      "zoocore p50 ÷ floor | ZooKeeper p50 ÷ floor | zoocore CPU us/op | ZooKeeper CPU us/op |")
    w("|---|---|---|---|---:|---:|---:|---:|---:|")
    for c in cells:
        wl, s, o, pl = c
        if (s, o) != (1, 1):
            continue
        lz = get("zoocore", c, "latency_us") or {}
        lk = get("zookeeper", c, "latency_us") or {}
        fl = None
        if floor_leader:
            fl = floor_leader + (rt if pl == "follower" else 0)
        fz = f"{lz['p50'] / fl:.2f}×" if fl and lz.get("p50") else "–"
        fk = f"{lk['p50'] / fl:.2f}×" if fl and lk.get("p50") else "–"
        w(f"| {wl} | {pl} | {fmt(lz.get('p50'))} / {fmt(lz.get('p99'))} / {fmt(lz.get('p999'))} | "
          f"{fmt(lk.get('p50'))} / {fmt(lk.get('p99'))} / {fmt(lk.get('p999'))} | "
          f"{ratio(lz.get('p50'), lk.get('p50'))} | {fz} | {fk} | "
          f"{fmt(get('zoocore', c, 'server_cpu_us_per_op'), 1)} | {fmt(get('zookeeper', c, 'server_cpu_us_per_op'), 1)} |")
    w("")
    w("Floor = the issue's (2 fsyncs + 2 round trips; a follower's client one round trip more), from this run's "
      "floors above.")
    w("")
    # The servers' own log metrics, where the run read them (mntr of the first server named).
    logs = []
    for c in cells:
        if (c[1], c[2]) == (1, 1):
            zc = get("zoocore", c, "server_log_after") or {}
            zk = get("zookeeper", c, "server_log_after") or {}
            if zc or zk:
                logs.append((c, zc, zk))
    if logs:
        w("The servers' own log metrics on the member the single client used (`mntr` after the cell; cumulative "
          "since that member started, so they include the pipelined cells before). Apache exports only its fsync "
          "time summary, in milliseconds.")
        w("")
        w("| cell | member | zoocore fsync us p50 / p99 | zoocore txns per batch p50 / p99 | "
          "zoocore commit queue us p50 / p99 | ZooKeeper fsync ms avg / max |")
        w("|---|---|---|---|---|---|")
        for c, m, k in logs:
            w(f"| {c[0]} 1×1 | {c[3]} | {m.get('zk_fsync_us_p50', '–')} / {m.get('zk_fsync_us_p99', '–')} | "
              f"{m.get('zk_batch_txns_p50', '–')} / {m.get('zk_batch_txns_p99', '–')} | "
              f"{m.get('zk_commit_queue_us_p50', '–')} / {m.get('zk_commit_queue_us_p99', '–')} | "
              f"{k.get('zk_avg_fsynctime', '–')} / {k.get('zk_max_fsynctime', '–')} |")
        w("")

    # Fail-over.
    w("## kill -9 of the leader → first acknowledged write")
    w("")
    w("The leader is found by `srvr` Mode and killed with SIGKILL; at once a client retries on the two other "
      "members (a new session and one create per attempt, each attempt given at most "
      f"{next((r['attempt_timeout_ms'] for v in fail.values() for r in v), '?')} ms, "
      f"{next((r['retry_pause_ms'] for v in fail.values() for r in v), '?')} ms pause after a failure) until a "
      "create is acknowledged; the killed member is restarted and the ensemble left to settle (all members at one "
      "zxid) before the next repeat. *first session* = first accepted handshake.")
    w("")
    w("| system | repeats | first write ms: median | min | max | each | first session ms: median | "
      "attempts (median) |")
    w("|---|---:|---:|---:|---:|---|---:|---:|")
    med_fail = {}
    for sv in SERVERS:
        rs = fail.get(sv, [])
        if not rs:
            w(f"| {sv} | 0 | – | – | – | – | – | – |")
            continue
        ms = [r["first_write_ms"] for r in rs]
        med_fail[sv] = median(ms)
        w(f"| {sv} | {len(rs)} | {fmt(median(ms))} | {fmt(min(ms))} | {fmt(max(ms))} | "
          f"{', '.join(fmt(x) for x in ms)} | {fmt(median([r.get('first_session_ms') for r in rs]))} | "
          f"{fmt(median([r['attempts'] for r in rs]))} |")
    w("")
    if med_fail.get("zoocore") and med_fail.get("zookeeper"):
        w(f"zoocore ÷ ZooKeeper (medians): **{med_fail['zoocore'] / med_fail['zookeeper']:.2f}**.")
        w("")
    reasons = defaultdict(lambda: defaultdict(int))
    for sv, rs in fail.items():
        for r in rs:
            for k, v in r.get("failures", {}).items():
                reasons[sv][k] += v
    if reasons:
        w("Failed attempts by reason, all repeats: " + "; ".join(
            f"{sv}: " + ", ".join(f"{k} {v}" for k, v in sorted(d.items())) for sv, d in reasons.items()) + ".")
        w("")

    # Targets.
    trows = []
    wcells = [c for c in cells if c[0] in ("create", "set") and (c[1], c[2]) != (1, 1)]
    best = max(((rat(c, "throughput"), c) for c in wcells if rat(c, "throughput")), default=(None, None))
    allr = ", ".join(f"{c[0]} {c[1]}×{c[2]} {rat(c, 'throughput'):.2f}×" for c in wcells if rat(c, "throughput"))

    def verdict(ok):
        return "not measured" if ok is None else ("**met**" if ok else "**missed**")

    v = best[0]
    trows.append(("ensemble write throughput ≥ 3× Apache's",
                  f"best {v:.2f}× ({best[1][0]} {best[1][1]}×{best[1][2]}); all: {allr}" if v else "–",
                  verdict(None if v is None else v >= 3) + (f" (short by {3 / v:.1f}×)" if v and v < 3 else "")))
    cpus = [(rat(c, "server_cpu_us_per_op"), c) for c in wcells if rat(c, "server_cpu_us_per_op")]
    bestc = min(cpus, default=(None, None))
    allc = ", ".join(f"{c[0]} {c[1]}×{c[2]} {x:.2f}×" for x, c in cpus)
    v = bestc[0]
    trows.append(("server CPU per write (3 servers summed) ≤ 1/4 of Apache's",
                  f"best {v:.2f}× ({bestc[1][0]} {bestc[1][1]}×{bestc[1][2]}); all: {allc}" if v else "–",
                  verdict(None if v is None else v <= 0.25) + (f" (over by {v / 0.25:.1f}×)" if v and v > 0.25 else "")))
    for pl in ("leader", "follower"):
        c = ("create", 1, 1, pl)
        p50 = get("zoocore", c, "latency_us", "p50")
        if p50 and floor_leader:
            fl = floor_leader + (rt if pl == "follower" else 0)
            trows.append((f"1 client × 1 outstanding create p50, client on the {pl}, close to the floor "
                          "(taken here as ≤ 1.5× it)",
                          f"{p50:,} us vs floor {fl} us → {p50 / fl:.2f}× (Apache: "
                          f"{fmt(get('zookeeper', c, 'latency_us', 'p50'))} us)",
                          verdict(p50 / fl <= 1.5) + (f" (over by {p50 - fl:,.0f} us)" if p50 / fl > 1.5 else "")))
    if med_fail:
        a, b = med_fail.get("zoocore"), med_fail.get("zookeeper")
        trows.append(("kill -9 leader → first acknowledged write, beside Apache's",
                      f"median {fmt(a)} ms vs {fmt(b)} ms" + (f" → {a / b:.2f}×" if a and b else ""),
                      "reported (no numeric target)"))
    w("## Targets")
    w("")
    w("| target | measured (this run) | verdict |")
    w("|---|---|---|")
    for t, m, v in trows:
        w(f"| {t} | {m} | {v} |")
    w("")
    notes = os.path.join(out_dir, "ensemble-notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip())
        w("")

    # Plots.
    w("## Plots")
    w("")
    groups = [(f"{c[0]} {c[1]}×{c[2]}", {sv: get(sv, c, "throughput") for sv in SERVERS})
              for c in cells if (c[1], c[2]) != (1, 1)]
    files["ensemble-throughput.svg"] = bar_chart("3-server ensemble: throughput (ops/s)", groups, "ops/s")
    w("![ensemble throughput](ensemble-throughput.svg)")
    w("")
    groups = [(f"{c[0]} {c[1]}×{c[2]} {c[3]}", {sv: get(sv, c, "server_cpu_us_per_op") for sv in SERVERS})
              for c in cells]
    files["ensemble-cpu.svg"] = bar_chart("3-server ensemble: server CPU per op (us, 3 servers)", groups, "us/op")
    w("![ensemble CPU per op](ensemble-cpu.svg)")
    w("")
    series = []
    for c in cells:
        if (c[1], c[2]) != (1, 1):
            continue
        for sv in SERVERS:
            curve = get(sv, c, "latency_us", "curve")
            if curve:
                dash = {("create", "leader"): "", ("create", "follower"): "6,3",
                        ("set", "leader"): "2,2", ("set", "follower"): "8,2,2,2"}.get((c[0], c[3]), "4,4")
                series.append((f"{sv} {c[0]} on {c[3]}", COLORS[sv], dash, [tuple(p) for p in curve]))
    svg = latency_chart("1 client × 1 outstanding write: latency by percentile", series)
    if svg:
        files["ensemble-latency-1x1.svg"] = svg
        w("![single-client write latency](ensemble-latency-1x1.svg)")
        w("")
    n = max([len(v) for v in fail.values()] or [0])
    if n:
        groups = [(f"repeat {i + 1}", {sv: (fail[sv][i]["first_write_ms"] if i < len(fail.get(sv, [])) else None)
                                       for sv in SERVERS}) for i in range(n)]
        files["ensemble-failover.svg"] = bar_chart("kill -9 leader → first acknowledged write", groups, "ms")
        w("![fail-over](ensemble-failover.svg)")
        w("")
    w("Raw rows of every ensemble run (one JSON line each, tagged with `run_id`): "
      "[ensemble-results.jsonl](ensemble-results.jsonl).")
    w("")
    with open(f"{out_dir}/ensemble.md", "w") as f:
        f.write("\n".join(lines))
    for name, content in files.items():
        with open(f"{out_dir}/{name}", "w") as f:
            f.write(content)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--ensemble":
        ensemble_report(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        main()
