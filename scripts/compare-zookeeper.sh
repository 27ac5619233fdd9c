#!/usr/bin/env bash
# Side-by-side benchmark of zoocore and Apache ZooKeeper on this machine.
#
#   scripts/compare-zookeeper.sh            # full run (10 s cells, 3 repeats, 1M-znode memory test)
#   scripts/compare-zookeeper.sh --quick    # development run (2 s cells, 2 repeats, 100k znodes)
#   scripts/compare-zookeeper.sh --scale    # issue #9 at scale: RSS per znode (1M), bytes per watch
#                                           # (1M, shared and distinct paths), kill -9 restart (1M znodes
#                                           # + 100k-txn log tail), write tail during a snapshot (1M znodes,
#                                           # snapCount 20000), 10 MiB setData (jute.maxbuffer=16777216)
#                                           # -> DIR/scale-results.jsonl, DIR/scale.md
#   scale options: --znodes N (memory and restart runs, default 1000000)  --watch-paths N (paths per
#            session in the watch runs, 1,000 sessions: default 1000 -> 1M watches, 10000 -> 10M)
#            --snap-count N (default 250000, at least 220000 for the 100k tail; at 10M znodes use a
#            few million, or the run writes dozens of 1-2 GB snapshots)  --systems "LIST" (default "zoocore apache"; Apache at 10M
#            needs a heap of ~16 GB: --apache-heap 16g, or --systems zoocore)  --apache-heap SIZE (-Xmx for
#            Apache's JVM in every part; default: the JVM's own, a quarter of the RAM)  --keep-logs DIR (copy each server's
#            log there)  --scale-parts "LIST" (default "memory watches restart snaptail large")
#            --snaptail-znodes N (default --znodes)  --snaptail-duration S (default 60)  --snaptail-rate R
#            (setData/s, default 500)  --snaptail-snap-count N (default 20000; Apache keeps every snapshot:
#            at 1M znodes its preload leaves several GB of them until the run removes its dataDir)
#            --large-size BYTES (default 10485760)  --large-writes N (default 50)
#   scripts/compare-zookeeper.sh --ensemble # 3 zoocore servers, then 3 Apache servers (docs/benchmarks/ensemble.md)
#   scripts/compare-zookeeper.sh --tls      # plaintext vs TLS on each server (issue #11): both servers with a
#                                           # clientPort and a secureClientPort (ssl.clientAuth=need, PKI made
#                                           # here with openssl) -> DIR/tls-results.jsonl, DIR/tls.md
#   options: --repeats N  --duration S  --znodes N (memory test)  --out DIR (default docs/benchmarks)
#   ensemble options: --failovers N (kill-leader repeats, default 5)  --max-load L (wait until the
#            1-minute load is below L, default 1.5)  --load-wait S (at most S seconds, default 1200)
#            --keep-logs DIR (copy the members' server logs there)  --apache-first (order of the systems)
#
# Starts both servers on loopback ports it picks, with the same tickTime,
# snapCount and the same kind of dataDir (one directory on the real disk),
# runs the same workload matrix against each (alternating, each cell
# repeated, medians), measures the disk floor and loopback RTT, then writes
# DIR/README.md and SVG plots. Every server it starts is stopped by PID.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

quick=0
ensemble=0
scale=0
tls=0
snap_count=100000
failovers=5
max_load=1.5
load_wait=1200
keep_logs=""
apache_first=0
repeats=""
duration=""
out_dir="docs/benchmarks"
znodes_opt=""
snap_count_opt=""
watch_paths=1000
scale_systems="zoocore apache"
scale_parts="memory watches restart snaptail large"
snaptail_znodes=""
snaptail_duration=60
snaptail_rate=500
snaptail_snap_count=20000
large_size=$((10 << 20))
large_writes=50
# Set around a start_server call: lines added to zoo.cfg, options for Apache's JVM.
extra_cfg=""
apache_jvm_opts=""
apache_heap=""
command_line="scripts/compare-zookeeper.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --ensemble) ensemble=1 ;;
        --scale) scale=1 ;;
        --tls) tls=1 ;;
        --failovers) failovers="$2"; shift ;;
        --max-load) max_load="$2"; shift ;;
        --load-wait) load_wait="$2"; shift ;;
        --keep-logs) keep_logs="$2"; shift ;;
        --apache-first) apache_first=1 ;;
        --repeats) repeats="$2"; shift ;;
        --duration) duration="$2"; shift ;;
        --znodes) znodes_opt="$2"; shift ;;
        --snap-count) snap_count_opt="$2"; shift ;;
        --watch-paths) watch_paths="$2"; shift ;;
        --systems) scale_systems="$2"; shift ;;
        --apache-heap) apache_heap="$2"; shift ;;
        --scale-parts) scale_parts="$2"; shift ;;
        --snaptail-znodes) snaptail_znodes="$2"; shift ;;
        --snaptail-duration) snaptail_duration="$2"; shift ;;
        --snaptail-rate) snaptail_rate="$2"; shift ;;
        --snaptail-snap-count) snaptail_snap_count="$2"; shift ;;
        --large-size) large_size="$2"; shift ;;
        --large-writes) large_writes="$2"; shift ;;
        --out) out_dir="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$ensemble" = 1 ]; then
    # One pass per system (the ratios come from one run); moderate cells.
    if [ "$quick" = 1 ]; then duration="${duration:-3}"; warmup=0.5; else duration="${duration:-8}"; warmup=1; fi
    repeats=1; znodes=0; floor_s=3
elif [ "$tls" = 1 ]; then
    # Twelve cells a repeat (2 servers x 2 transports x 3 workloads).
    if [ "$quick" = 1 ]; then repeats="${repeats:-2}"; duration="${duration:-2}"; warmup=0.5
    else repeats="${repeats:-3}"; duration="${duration:-8}"; warmup=2; fi
    znodes=0; floor_s=2
elif [ "$quick" = 1 ]; then
    repeats="${repeats:-2}"; duration="${duration:-2}"; warmup=0.5; znodes=100000; floor_s=2
else
    repeats="${repeats:-3}"; duration="${duration:-10}"; warmup=2; znodes=1000000; floor_s=5
fi
znodes="${znodes_opt:-$znodes}"

# --- prerequisites -------------------------------------------------------------
zk_jar=/usr/share/java/zookeeper.jar
if ! command -v java >/dev/null || [ ! -f "$zk_jar" ]; then
    echo "==> installing Apache ZooKeeper from Debian"
    apt-get update -qq && apt-get install -y -qq zookeeper
fi
zk_version="$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)"

echo "==> cargo build --release --workspace"
cargo build --release --workspace
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
zoocore_bin="$target_dir/release/zoocore"
bench_bin="$target_dir/release/zoocore-bench"

# One work directory on the real disk (not tmpfs), holding both dataDirs.
work="$(mktemp -d /var/tmp/zoocore-compare.XXXXXX)"
results="$work/results.jsonl"
: >"$results"

server_pids=()
stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    for pid in "${server_pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ruok() { # port
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"ruok"); s.settimeout(2)
sys.exit(0 if s.recv(16) == b"imok" else 1)
EOF
}

# Settings both servers get. Both make every write batch durable before
# replying: Apache fsyncs its transaction log (forceSync=yes, its default),
# zoocore fdatasyncs its O_DIRECT log (group commit; docs/storage.md).
common_cfg() { # dataDir port
    cat <<EOF
tickTime=2000
dataDir=$1
clientPort=$2
clientPortAddress=127.0.0.1
snapCount=$snap_count
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
EOF
}

# The command line that starts a standalone server of this kind on DIR/zoo.cfg
# (also what `zoocore-bench restart` runs after its kill -9).
server_cmd() { # kind dir
    if [ "$1" = apache ]; then
        echo "java ${apache_heap:+-Xmx$apache_heap }$apache_jvm_opts -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist='*'" \
            "-Dlog4j.configuration=file:/etc/zookeeper/conf_example/log4j.properties" \
            "-cp $zk_jar:/etc/zookeeper/conf_example org.apache.zookeeper.server.ZooKeeperServerMain $2/zoo.cfg"
    else
        echo "$zoocore_bin server --config $2/zoo.cfg"
    fi
}

# Starts a server; sets $port and $pid.
start_server() { # kind name
    local kind="$1" name="$2" dir="$work/$2"
    mkdir -p "$dir/data"
    port="$(free_port)"
    common_cfg "$dir/data" "$port" >"$dir/zoo.cfg"
    if [ "$kind" = apache ]; then echo "forceSync=yes" >>"$dir/zoo.cfg"; fi
    if [ -n "$extra_cfg" ]; then printf '%s\n' "$extra_cfg" >>"$dir/zoo.cfg"; fi
    launch_and_wait "$name" "$dir" "$(server_cmd "$kind" "$dir")"
}

# Starts `cmd` (logging to DIR/server.log), records its PID in $pid and
# server_pids, and waits until it answers ruok on $port; stops the script
# with the log when it dies or takes 30 s.
launch_and_wait() { # name dir cmd
    local name="$1" dir="$2" cmd="$3"
    sh -c "exec $cmd" >"$dir/server.log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    for _ in $(seq 300); do
        if ruok "$port"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start; log:" >&2
    cat "$dir/server.log" >&2
    exit 1
}

# --- ensemble mode ---------------------------------------------------------------
# Three zoocore servers, then three Apache ZooKeeper servers (QuorumPeerMain),
# one system at a time on this 2-core machine, the same workloads and client
# load against each; writes DIR/ensemble.md + ensemble-*.svg and appends the
# raw rows (tagged with a run id) to DIR/ensemble-results.jsonl.

# Distinct ports below the ephemeral range: a leader binds its quorum port
# only once elected, and an ephemeral port can be taken meanwhile by any
# outgoing connection.
ensemble_ports() { # count
    python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    p = random.randrange(10000, low - 1)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    held.append(s); ports.append(p)
print(" ".join(map(str, ports)))
PY
}

# Removes a PID (killed and reaped) from the cleanup list.
forget_pid() {
    local keep=() p
    for p in "${server_pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    server_pids=("${keep[@]}")
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Appends one {"kind":"load",...} row: the load averages at this point.
load_row() { # what
    python3 - "$1" "$(loadavg)" >>"$results" <<'PY'
import json, sys
l = [float(x) for x in sys.argv[2].split()]
print(json.dumps({"kind": "load", "at": sys.argv[1], "load1": l[0], "load5": l[1], "load15": l[2]}))
PY
}

# Waits (up to $load_wait s) for the 1-minute load to drop below $max_load.
wait_for_quiet_machine() {
    local waited=0
    while awk -v m="$max_load" '{exit !($1 >= m)}' /proc/loadavg; do
        if [ "$waited" -ge "$load_wait" ]; then
            echo "==> load still $(loadavg) after ${waited}s; measuring anyway" >&2
            return 0
        fi
        echo "==> load $(loadavg) >= $max_load; waiting ($waited s so far)"
        sleep 15
        waited=$((waited + 15))
    done
    echo "==> load $(loadavg): starting"
}

# Member i (1-based) of system $1: its dir, zoo.cfg and myid.
write_member() { # kind sid servers_text client_port
    local kind="$1" sid="$2" dir="$work/$1-s$2"
    mkdir -p "$dir/data"
    echo "$sid" >"$dir/data/myid"
    # One text for both kinds (Apache ignores zoocore.*); both have an
    # AdminServer on 0.0.0.0:8080 by default, turned off here.
    {
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$dir/data"
        echo "clientPort=$4"
        echo "clientPortAddress=127.0.0.1"
        echo "snapCount=100000"
        echo "maxClientCnxns=0"
        echo "4lw.commands.whitelist=*"
        echo "admin.enableServer=false"
        echo "forceSync=yes"
        printf '%s' "$3"
    } >"$dir/zoo.cfg"
}

# Starts member sid of system kind (its zoo.cfg written); sets $pid.
spawn_member() { # kind sid
    local kind="$1" sid="$2" dir="$work/$1-s$2"
    if [ "$kind" = apache ]; then
        # Default JVM options (as the standalone comparison) with the heap
        # bounded, since three JVMs share the machine.
        (cd "$dir" && exec java -Xmx1g -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist='*' \
            -Dlog4j.configuration=file:/etc/zookeeper/conf_example/log4j.properties \
            -cp "$zk_jar:/etc/zookeeper/conf_example" org.apache.zookeeper.server.quorum.QuorumPeerMain \
            "$dir/zoo.cfg" >>"$dir/server.log" 2>&1) &
    else
        "$zoocore_bin" server --config "$dir/zoo.cfg" >>"$dir/server.log" 2>&1 &
    fi
    pid=$!
    server_pids+=("$pid")
}

# The disk as each log path sees it at this moment: zoocore's (O_DIRECT
# rewrites of preallocated blocks) and Apache's (page-cache appends into a
# sparse padded file, so each fdatasync also commits a block allocation to
# the journal this filesystem shares with everything else on the machine).
disk_floors() { # label
    "$bench_bin" disk-floor --dir "$work" --duration 2 --json --label "$1" >>"$results"
    "$bench_bin" disk-floor --dir "$work" --duration 2 --sparse-append --json --label "$1" >>"$results"
}

# Runs every ensemble measurement against one system.
measure_ensemble() { # kind label
    local kind="$1" label="$2" ports i sid servers_text="" addrs=() pids=()
    disk_floors "before $label"
    read -r -a ports <<<"$(ensemble_ports 9)"
    for i in 0 1 2; do
        servers_text+="server.$((i + 1))=127.0.0.1:${ports[3 * i + 1]}:${ports[3 * i + 2]}"$'\n'
    done
    for i in 0 1 2; do
        sid=$((i + 1))
        write_member "$kind" "$sid" "$servers_text" "${ports[3 * i]}"
        addrs+=("127.0.0.1:${ports[3 * i]}")
    done
    for sid in 1 2 3; do
        spawn_member "$kind" "$sid"
        pids+=("$pid")
    done
    local all; all="$(IFS=,; echo "${addrs[*]}")"
    local all_pids; all_pids="$(IFS=,; echo "${pids[*]}")"
    echo "==> $label ensemble: members $all, pids $all_pids"
    local settled
    if ! settled="$("$bench_bin" ensemble-wait --server "$all" --timeout 90 --json --label "$label")"; then
        for sid in 1 2 3; do echo "--- $kind s$sid ---" >&2; tail -30 "$work/$kind-s$sid/server.log" >&2; done
        exit 1
    fi
    echo "$settled" >>"$results"
    local leader; leader="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["leader_index"])' "$settled")"
    local follower=$(( (leader + 1) % 3 ))
    echo "==> $label: leader is server.$((leader + 1)); follower probe on server.$((follower + 1))"
    sleep 2 # let the JVMs finish starting before the first measured window
    load_row "$label start"

    ens_cell() { # placement workload sessions outstanding
        local target="$all"
        [ "$1" = leader ] && target="${addrs[$leader]}"
        [ "$1" = follower ] && target="${addrs[$follower]}"
        local threads=$(( $3 < 3 ? $3 : 3 ))
        echo "==> $label: $2 ${3}x$4 on $1"
        "$bench_bin" run "$2" --server "$target" --server-pid "$all_pids" --sessions "$3" --outstanding "$4" \
            --threads "$threads" --value-size 100 --keys 10000 --duration "$duration" --warmup "$warmup" \
            --quiet --json --label "$label:$1" >>"$results" || echo "   (failed: $label $2 ${3}x$4 on $1)" >&2
    }
    # Not measured: warms both systems (the JVMs' JIT above all) before the first cell.
    "$bench_bin" run create --server "$all" --sessions 6 --outstanding 16 --threads 3 --duration 3 --warmup 0 \
        --quiet --json >/dev/null || true
    ens_cell all create 6 8
    ens_cell all create 6 64
    ens_cell all set 6 64
    ens_cell all get 6 64
    ens_cell leader create 1 1
    ens_cell follower create 1 1
    ens_cell leader set 1 1
    ens_cell follower set 1 1
    load_row "$label after workloads"

    # Kill -9 the leader, time the first acknowledged write elsewhere, bring
    # the killed member back, wait until all three agree, repeat.
    local rep row killed killed_pid
    for rep in $(seq "$failovers"); do
        "$bench_bin" ensemble-wait --server "$all" --same-zxid --timeout 90 --json >/dev/null ||
            { echo "   ($label did not settle before fail-over $rep)" >&2; break; }
        if ! row="$("$bench_bin" failover --server "$all" --server-pid "$all_pids" --json --label "$label")"; then
            echo "   (fail-over $rep failed on $label)" >&2
            break
        fi
        echo "$row" >>"$results"
        killed="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["killed_index"])' "$row")"
        killed_pid="${pids[$killed]}"
        echo "==> $label fail-over $rep/$failovers: server.$((killed + 1)) killed, first write after $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["first_write_ms"]))' "$row") ms"
        wait "$killed_pid" 2>/dev/null || true
        forget_pid "$killed_pid"
        spawn_member "$kind" "$((killed + 1))"
        pids[$killed]="$pid"
        all_pids="$(IFS=,; echo "${pids[*]}")"
    done
    "$bench_bin" ensemble-wait --server "$all" --same-zxid --timeout 90 --json --label "$label:end" >>"$results" || true
    load_row "$label end"
    for pid in "${pids[@]}"; do stop_pid "$pid"; forget_pid "$pid"; done
    if [ -n "$keep_logs" ]; then
        mkdir -p "$keep_logs"
        for sid in 1 2 3; do cp "$work/$kind-s$sid/server.log" "$keep_logs/$kind-s$sid.log"; done
    fi
}

run_ensemble_comparison() {
    wait_for_quiet_machine
    model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    mem_kib="$(grep MemTotal /proc/meminfo | awk '{print $2}')"
    python3 - "$(nproc)" "$model" "$(uname -r)" "$mem_kib" "$command_line" "$zk_version" "$quick" \
        "$failovers" "$duration" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$max_load" >>"$results" <<'PY'
import json, sys, time
a = sys.argv[1:]
print(json.dumps({"kind": "machine", "mode": "ensemble", "nproc": int(a[0]), "model": a[1], "kernel": a[2],
                  "mem_gib": round(int(a[3]) / 1048576, 1), "command": a[4], "zk_version": a[5],
                  "quick": a[6] == "1", "failovers": int(a[7]), "duration": float(a[8]), "commit": a[9],
                  "max_load": float(a[10]), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
PY
    load_row "start"
    echo "==> disk floor and loopback RTT"
    "$bench_bin" disk-floor --dir "$work" --duration "$floor_s" --json >>"$results"
    "$bench_bin" disk-floor --dir "$work" --duration "$floor_s" --buffered --json >>"$results"
    "$bench_bin" rtt --duration "$floor_s" --json >>"$results"
    if [ "$apache_first" = 1 ]; then
        measure_ensemble apache zookeeper
        measure_ensemble zoocore zoocore
    else
        measure_ensemble zoocore zoocore
        measure_ensemble apache zookeeper
    fi
    echo "==> disk floors again (after the runs)"
    disk_floors after
    load_row "end"

    mkdir -p "$out_dir"
    local run_id; run_id="$(date +%Y%m%dT%H%M%S)-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    python3 - "$run_id" "$results" >>"$out_dir/ensemble-results.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[2]):
    if line.strip().startswith("{"):
        row = json.loads(line)
        row["run_id"] = sys.argv[1]
        print(json.dumps(row, separators=(",", ":")))
PY
    python3 "$repo_root/scripts/bench_report.py" --ensemble "$out_dir/ensemble-results.jsonl" "$out_dir"
    echo "==> wrote $out_dir/ensemble.md (run $run_id)"
}

if [ "$ensemble" = 1 ]; then
    run_ensemble_comparison
    exit 0
fi

# --- scale mode (issue #9) ---------------------------------------------------------
# Fresh servers per measurement, zoocore then Apache: RSS per znode at 1M,
# RSS per watch at 1M watches over 1,000 sessions (every session on the same
# 1,000 paths; then every watch on a path of its own), and kill -9 restart
# with 1M znodes and a 100k-txn log tail (snapCount 250000: a snapshot every
# 125k-250k txns, so the tail can be topped up to 100k); then the setData
# tail while snapshots of 1M znodes are written (snapCount 20000,
# docs/storage.md) and 10 MiB setData against the disk's floor for the same
# bytes (jute.maxbuffer=16777216). --scale-parts picks which of them run.
run_scale() {
    local scale_znodes="${znodes_opt:-1000000}" kind label name snapdir row shape
    local watch_sessions=1000 watch_count
    watch_count=$((watch_sessions * watch_paths))
    snap_count="${snap_count_opt:-250000}"
    local part
    for part in $scale_parts; do
        case "$part" in memory | watches | restart | snaptail | large) ;;
            *) echo "--scale-parts: unknown part $part (memory watches restart snaptail large)" >&2; exit 2 ;;
        esac
    done
    has_part() { case " $scale_parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
    # A snapshot comes every snapCount/2 .. snapCount txns: below 220000 the
    # restart's 100k-110k tail may never be reached (the bench would write
    # until it gives up, filling the disk with snapshots and 64 MiB logs).
    if has_part restart && [ "$snap_count" -lt 220000 ]; then
        echo "--snap-count $snap_count: at least 220000 for the restart's 100k-txn tail" >&2
        exit 2
    fi
    # After each stopped server: its log to --keep-logs DIR if given, its
    # dataDir removed (snapshots of ~1-2 GB each at 10M; the disk is shared).
    scale_server_done() {
        if [ -n "$keep_logs" ]; then mkdir -p "$keep_logs" && cp "$work/$name/server.log" "$keep_logs/$name.log" || true; fi
        rm -rf "$work/$name/data"
    }
    local snaptail_n="${snaptail_znodes:-$scale_znodes}"
    python3 - "$scale_znodes" "$watch_sessions" "$watch_paths" "$snap_count" "$scale_systems" "$scale_parts" \
        "$snaptail_n" "$snaptail_snap_count" "$snaptail_rate" "$snaptail_duration" "$large_size" "$large_writes" \
        >>"$results" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({"kind": "scale-config", "znodes": int(a[0]), "watch_sessions": int(a[1]), "watch_paths": int(a[2]),
                  "watches": int(a[1]) * int(a[2]), "snap_count": int(a[3]), "systems": a[4].split(),
                  "parts": a[5].split(), "snaptail_znodes": int(a[6]), "snaptail_snap_count": int(a[7]),
                  "snaptail_rate": int(a[8]), "snaptail_duration": float(a[9]), "large_size": int(a[10]),
                  "large_writes": int(a[11])}))
PY
    for kind in $scale_systems; do
        case "$kind" in zoocore | apache) ;; *) echo "--systems: unknown system $kind" >&2; exit 2 ;; esac
        label=zoocore; [ "$kind" = apache ] && label=zookeeper
        if has_part memory; then
            name="scale-mem-$kind"; start_server "$kind" "$name"; sleep 2
            echo "==> scale: memory, $scale_znodes znodes on $label"
            "$bench_bin" memory --server "127.0.0.1:$port" --server-pid "$pid" --znodes "$scale_znodes" --value-size 100 \
                --settle 2 --json --label "$label" >>"$results" || echo "   (memory failed on $label)" >&2
            stop_pid "$pid"
            scale_server_done
        fi
        for shape in shared distinct; do
            has_part watches || break
            name="scale-watch-$shape-$kind"; start_server "$kind" "$name"; sleep 2
            echo "==> scale: $watch_count watches ($shape paths) on $label"
            local extra=(); [ "$shape" = distinct ] && extra=(--distinct)
            # zoocore: also a wchc and a wchp of all the watches, timed, with a get probe meanwhile.
            [ "$kind" = zoocore ] && extra+=(--dump-probe)
            "$bench_bin" watches --server "127.0.0.1:$port" --server-pid "$pid" --sessions "$watch_sessions" \
                --paths "$watch_paths" \
                "${extra[@]}" --json --label "$label" >>"$results" || echo "   (watches failed on $label)" >&2
            stop_pid "$pid"
            scale_server_done
        done
        if has_part restart; then
            name="scale-restart-$kind"; start_server "$kind" "$name"; sleep 2
            snapdir="$work/$name/data/zoocore"; [ "$kind" = apache ] && snapdir="$work/$name/data/version-2"
            echo "==> scale: kill -9 restart, $scale_znodes znodes + 100k-txn tail on $label"
            if row="$("$bench_bin" restart --server "127.0.0.1:$port" --server-pid "$pid" --snapshot-dir "$snapdir" \
                --znodes "$scale_znodes" --tail 100000 --start-cmd "$(server_cmd "$kind" "$work/$name")" \
                --log "$work/$name/server.log" --json --label "$label")"; then
                echo "$row" >>"$results"
                pid="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["new_pid"])' "$row")"
                server_pids+=("$pid")
                echo "   $row"
                if [ "$kind" = zoocore ]; then
                    grep -E 'loaded snapshot|recovered' "$work/$name/server.log" | tail -2 | sed 's/\x1b\[[0-9;]*m//g'
                fi
            else
                echo "   (restart failed on $label)" >&2
            fi
            stop_pid "$pid"
            scale_server_done
        fi
        if has_part snaptail; then
            # docs/storage.md's method: snapCount 20000 (a snapshot every 10k-20k txns).
            local saved_snap_count="$snap_count"
            snap_count="$snaptail_snap_count"
            name="scale-snaptail-$kind"; start_server "$kind" "$name"; sleep 2
            snap_count="$saved_snap_count"
            snapdir="$work/$name/data/zoocore"; [ "$kind" = apache ] && snapdir="$work/$name/data/version-2"
            echo "==> scale: write tail during snapshots, $snaptail_n znodes, $snaptail_rate setData/s for" \
                "${snaptail_duration}s, snapCount $snaptail_snap_count on $label"
            if row="$("$bench_bin" snapshot-tail --server "127.0.0.1:$port" --snapshot-dir "$snapdir" \
                --znodes "$snaptail_n" --rate "$snaptail_rate" --duration "$snaptail_duration" --json \
                --label "$label")"; then
                echo "$row" >>"$results"
                echo "   $row"
            else
                echo "   (snapshot-tail failed on $label)" >&2
            fi
            stop_pid "$pid"
            scale_server_done
        fi
        if has_part large; then
            # Values up to jute.maxbuffer: Apache reads it as a system property, zoocore from zoo.cfg.
            extra_cfg="jute.maxbuffer=16777216"
            [ "$kind" = apache ] && { extra_cfg=""; apache_jvm_opts="-Djute.maxbuffer=16777216"; }
            name="scale-large-$kind"; start_server "$kind" "$name"; sleep 2
            extra_cfg=""; apache_jvm_opts=""
            echo "==> scale: $large_writes setData of $large_size bytes on $label"
            if row="$("$bench_bin" large-values --server "127.0.0.1:$port" --server-pid "$pid" --dir "$work/$name/data" \
                --size "$large_size" --writes "$large_writes" --json --label "$label")"; then
                echo "$row" >>"$results"
                python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("   setData p50 %.1f ms, floor p50 %.1f ms, RSS growth after first %s" % (r["set_latency_us"]["p50"]/1e3, r["floor_latency_us"]["p50"]/1e3, r["rss_growth_after_first"]))' "$row"
            else
                echo "   (large-values failed on $label)" >&2
            fi
            stop_pid "$pid"
            scale_server_done
        fi
    done
    mkdir -p "$out_dir"
    local run_id; run_id="$(date +%Y%m%dT%H%M%S)-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    python3 - "$run_id" "$results" >>"$out_dir/scale-results.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[2]):
    if line.strip().startswith("{"):
        row = json.loads(line)
        row["run_id"] = sys.argv[1]
        print(json.dumps(row, separators=(",", ":")))
PY
    python3 "$repo_root/scripts/scale_report.py" "$out_dir/scale-results.jsonl" "$out_dir"
}

# --- machine -------------------------------------------------------------------
model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem_kib="$(grep MemTotal /proc/meminfo | awk '{print $2}')"
python3 - "$(nproc)" "$model" "$(uname -r)" "$mem_kib" "$command_line" "$zk_version" "$quick" \
    "$repeats" "$duration" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >>"$results" <<'EOF'
import json, sys
a = sys.argv[1:]
print(json.dumps({"kind": "machine", "nproc": int(a[0]), "model": a[1], "kernel": a[2],
                  "mem_gib": round(int(a[3]) / 1048576, 1), "command": a[4], "zk_version": a[5],
                  "quick": a[6] == "1", "repeats": int(a[7]), "duration": float(a[8]), "commit": a[9]}))
EOF

# --- TLS mode (issue #11) ---------------------------------------------------------
# One zoocore and one Apache server, each with a plaintext clientPort and a
# secureClientPort (ssl.clientAuth=need, PEM key and trust stores), and the
# same cells over each port: create 8x64, get 8x64 (closed loop), create 1x1
# (latency). Apache runs NettyServerCnxnFactory (its TLS needs it), which
# then serves its plaintext port too.

# Debian's zookeeper.jar names netty-handler but not netty-codec, which
# Netty's SslHandler needs (tests/compat/test_tls.py has the same note).
netty_codec_jar=/usr/share/java/netty-codec.jar
# The suite both servers are pinned to (Java name; zoocore takes the same).
tls_suite=TLS_AES_128_GCM_SHA256

# CA, server certificate (SAN IP:127.0.0.1) and a client certificate, EC P-256.
make_pki() { # dir
    local d="$1" new_key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    mkdir -p "$d"
    openssl req -x509 "${new_key[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -subj "/CN=zoocore bench CA" \
        -days 2 2>/dev/null
    local name
    for name in server client; do
        openssl req "${new_key[@]}" -keyout "$d/$name.key" -out "$d/$name.csr" -subj "/O=zoocore-bench/CN=$name" \
            2>/dev/null
        { echo "basicConstraints=CA:FALSE"
          [ "$name" = server ] && echo "subjectAltName=IP:127.0.0.1,DNS:localhost"; } >"$d/$name.ext"
        openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -out "$d/$name.crt" -days 2 -extfile "$d/$name.ext" 2>/dev/null
    done
    # The PEM key store both servers read: the private key and the chain.
    cat "$d/server.key" "$d/server.crt" "$d/ca.pem" >"$d/server.pem"
}

# Starts a server with both ports; sets $port, $secure_port and $pid.
start_tls_server() { # kind name pki_dir
    local kind="$1" name="$2" pki="$3" dir="$work/$2"
    mkdir -p "$dir/data"
    port="$(free_port)"
    secure_port="$(free_port)"
    while [ "$secure_port" = "$port" ]; do secure_port="$(free_port)"; done
    {
        common_cfg "$dir/data" "$port"
        echo "secureClientPort=$secure_port"
        echo "secureClientPortAddress=127.0.0.1"
        echo "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory"
        echo "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider"
        echo "ssl.keyStore.location=$pki/server.pem"
        echo "ssl.keyStore.type=PEM"
        echo "ssl.trustStore.location=$pki/ca.pem"
        echo "ssl.trustStore.type=PEM"
        echo "ssl.clientAuth=need"
        # The same protocol and suite on both (left alone, Apache 3.8 picks
        # TLS 1.2 with AES-128-GCM and zoocore TLS 1.3 with AES-256-GCM).
        echo "ssl.protocol=TLSv1.3"
        echo "ssl.enabledProtocols=TLSv1.3"
        echo "ssl.ciphersuites=$tls_suite"
        if [ "$kind" = apache ]; then echo "forceSync=yes"; fi
    } >"$dir/zoo.cfg"
    local cmd; cmd="$(server_cmd "$kind" "$dir")"
    if [ "$kind" = apache ]; then cmd="${cmd/-cp $zk_jar:/-cp $zk_jar:$netty_codec_jar:}"; fi
    launch_and_wait "$name" "$dir" "$cmd"
}

run_tls() {
    if ! command -v openssl >/dev/null; then
        echo "==> installing openssl"; apt-get install -y -qq openssl
    fi
    if [ ! -f "$netty_codec_jar" ]; then
        echo "$netty_codec_jar is missing (Debian package libnetty-java); Apache's TLS needs it" >&2
        exit 1
    fi
    local pki="$work/pki"
    make_pki "$pki"
    load_row "start"
    start_tls_server zoocore zoocore "$pki"; local zc_port=$port zc_secure=$secure_port zc_pid=$pid
    start_tls_server apache zookeeper "$pki"; local zk_port=$port zk_secure=$secure_port zk_pid=$pid
    echo "==> zoocore pid $zc_pid ports $zc_port/$zc_secure (TLS); Apache ZooKeeper pid $zk_pid ports $zk_port/$zk_secure (TLS)"
    local tls_args=(--tls-ca "$pki/ca.pem" --tls-cert "$pki/client.crt" --tls-key "$pki/client.key")

    tls_cell() { # label port pid transport workload sessions outstanding
        local threads=$(( $6 < 4 ? $6 : 4 )) extra=()
        [ "$4" = tls ] && extra=("${tls_args[@]}")
        "$bench_bin" run "$5" --server "127.0.0.1:$2" --server-pid "$3" --sessions "$6" --outstanding "$7" \
            --threads "$threads" --value-size 100 --keys 10000 --duration "$duration" --warmup "$warmup" \
            --quiet --json --label "$1:$4" "${extra[@]}" >>"$results" ||
            echo "   (failed: $1 $4 $5 $6x$7)" >&2
    }
    # One TLS session against each before measuring: a server that cannot
    # serve TLS fails here, not as twelve failed cells.
    local label p
    for label in zoocore zookeeper; do
        p=$zc_secure; [ "$label" = zookeeper ] && p=$zk_secure
        if ! "$bench_bin" run ping --server "127.0.0.1:$p" --duration 1 --warmup 0 --quiet --json "${tls_args[@]}" \
            >/dev/null; then
            echo "TLS does not work on $label (port $p); its log:" >&2
            tail -40 "$work/$label/server.log" >&2
            exit 1
        fi
    done
    # Not measured: warms both (the JVM's JIT above all) on both ports.
    for label in zoocore zookeeper; do
        if [ "$label" = zoocore ]; then tls_cell warm "$zc_port" "$zc_pid" plain create 4 16
        else tls_cell warm "$zk_port" "$zk_pid" plain create 4 16; fi
    done >/dev/null 2>&1

    local cells=("create 8 64" "get 8 64" "create 1 1") rep cell w s o system transport order
    for rep in $(seq "$repeats"); do
        for cell in "${cells[@]}"; do
            read -r w s o <<<"$cell"
            echo "==> rep $rep/$repeats: $w ${s}x$o"
            # Alternate which server and which transport go first, so drift hits all four alike.
            if [ $((rep % 2)) = 1 ]; then order="zoocore zookeeper"; else order="zookeeper zoocore"; fi
            for system in $order; do
                for transport in $([ $((rep % 2)) = 1 ] && echo "plain tls" || echo "tls plain"); do
                    if [ "$system" = zoocore ]; then
                        p=$zc_port; [ "$transport" = tls ] && p=$zc_secure
                        tls_cell zoocore "$p" "$zc_pid" "$transport" "$w" "$s" "$o"
                    else
                        p=$zk_port; [ "$transport" = tls ] && p=$zk_secure
                        tls_cell zookeeper "$p" "$zk_pid" "$transport" "$w" "$s" "$o"
                    fi
                done
            done
        done
    done
    load_row "end"
    stop_pid "$zc_pid"
    stop_pid "$zk_pid"
    mkdir -p "$out_dir"
    grep -v '"label":"warm:' "$results" >"$out_dir/tls-results.jsonl"
    python3 "$repo_root/scripts/tls_report.py" "$out_dir/tls-results.jsonl" "$out_dir"
    echo "==> wrote $out_dir/tls.md"
}

if [ "$tls" = 1 ]; then
    run_tls
    exit 0
fi

if [ "$scale" = 1 ]; then
    python3 -c 'import json; print(json.dumps({"kind": "load", "at": "start", "load1": float(open("/proc/loadavg").read().split()[0])}))' >>"$results"
    run_scale
    exit 0
fi

# --- floors ----------------------------------------------------------------------
echo "==> disk floor and loopback RTT"
"$bench_bin" disk-floor --dir "$work" --duration "$floor_s" --json >>"$results"
"$bench_bin" rtt --duration "$floor_s" --json >>"$results"

# --- workload matrix ---------------------------------------------------------------
# Fresh servers (empty dataDirs) for each repeat: a repeat's create cells add
# millions of znodes, and with snapCount 100000 and no autopurge (both
# servers' default) the snapshots of a tree that size fill tens of GB; three
# repeats on one pair of servers filled the disk and stopped both.
start_matrix_servers() { # rep
    start_server zoocore "zoocore-rep$1"; zoocore_port=$port; zoocore_pid=$pid
    start_server apache "zookeeper-rep$1"; zk_port=$port; zk_pid=$pid
    echo "==> rep $1: zoocore pid $zoocore_pid port $zoocore_port; Apache ZooKeeper pid $zk_pid port $zk_port"
}
stop_matrix_servers() { # rep
    stop_pid "$zoocore_pid"
    stop_pid "$zk_pid"
    rm -rf "$work/zoocore-rep$1/data" "$work/zookeeper-rep$1/data"
}

run_cell() { # label port pid workload sessions outstanding [rate]
    local threads=$(( $5 < 4 ? $5 : 4 ))
    local extra=()
    [ -n "${7:-}" ] && extra+=(--rate "$7")
    # Reads and writes pipeline freely on one session for both servers.
    [ "$4" = mixed ] && extra+=(--read-pct 90)
    "$bench_bin" run "$4" --server "127.0.0.1:$2" --server-pid "$3" --sessions "$5" --outstanding "$6" \
        --threads "$threads" --value-size 100 --keys 10000 --duration "$duration" --warmup "$warmup" \
        --quiet --json --label "$1" "${extra[@]}" >>"$results" ||
        echo "   (failed: $1 $4 $5x$6)" >&2
}

cells=()
for w in create set get mixed; do
    for s in 1 32; do
        for o in 1 64; do cells+=("$w $s $o"); done
    done
done
# The issue's reference points (8 sessions x 64 outstanding) and the server's minimal round trip.
cells+=("create 8 64" "get 8 64" "ping 1 1")
# Equal offered load (open loop, latency from the intended send time), below
# both servers' capacity: the tail-latency comparison.
cells+=("create 8 64 5000" "get 8 64 10000")

for rep in $(seq "$repeats"); do
    start_matrix_servers "$rep"
    for cell in "${cells[@]}"; do
        read -r w s o rate <<<"$cell"
        echo "==> rep $rep/$repeats: $w ${s}x$o${rate:+ at $rate ops/s}"
        # Alternate which server goes first, so drift hits both alike.
        if [ $((rep % 2)) = 1 ]; then
            run_cell zoocore "$zoocore_port" "$zoocore_pid" "$w" "$s" "$o" "$rate"
            run_cell zookeeper "$zk_port" "$zk_pid" "$w" "$s" "$o" "$rate"
        else
            run_cell zookeeper "$zk_port" "$zk_pid" "$w" "$s" "$o" "$rate"
            run_cell zoocore "$zoocore_port" "$zoocore_pid" "$w" "$s" "$o" "$rate"
        fi
    done
    stop_matrix_servers "$rep"
done

# --- memory: fresh servers, N znodes of 100 bytes ------------------------------------
for kind in zoocore apache; do
    name="mem-$kind"
    start_server "$kind" "$name"
    label=zoocore; [ "$kind" = apache ] && label=zookeeper
    echo "==> memory: $znodes znodes on $label"
    sleep 2 # let the JVM finish starting before the baseline reading
    "$bench_bin" memory --server "127.0.0.1:$port" --server-pid "$pid" --znodes "$znodes" --value-size 100 \
        --settle 2 --json --label "$label" >>"$results" || echo "   (memory run failed on $label)" >&2
    stop_pid "$pid"
done

mkdir -p "$out_dir"
cp "$results" "$out_dir/results.jsonl"
python3 "$repo_root/scripts/bench_report.py" "$results" "$out_dir"
echo "==> wrote $out_dir/README.md"
