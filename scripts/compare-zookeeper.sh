#!/usr/bin/env bash
# Side-by-side benchmark of zoocore and Apache ZooKeeper on this machine.
#
#   scripts/compare-zookeeper.sh            # full run (10 s cells, 3 repeats, 1M-znode memory test)
#   scripts/compare-zookeeper.sh --quick    # development run (2 s cells, 2 repeats, 100k znodes)
#   options: --repeats N  --duration S  --znodes N (memory test)  --out DIR (default docs/benchmarks)
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
repeats=""
duration=""
out_dir="docs/benchmarks"
znodes_opt=""
command_line="scripts/compare-zookeeper.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --repeats) repeats="$2"; shift ;;
        --duration) duration="$2"; shift ;;
        --znodes) znodes_opt="$2"; shift ;;
        --out) out_dir="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
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
snapCount=100000
maxClientCnxns=0
4lw.commands.whitelist=*
EOF
}

# Starts a server; sets $port and $pid.
start_server() { # kind name
    local kind="$1" name="$2" dir="$work/$2"
    mkdir -p "$dir/data"
    port="$(free_port)"
    common_cfg "$dir/data" "$port" >"$dir/zoo.cfg"
    if [ "$kind" = apache ]; then
        echo "forceSync=yes" >>"$dir/zoo.cfg"
        java -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist='*' \
            -Dlog4j.configuration=file:/etc/zookeeper/conf_example/log4j.properties \
            -cp "$zk_jar:/etc/zookeeper/conf_example" org.apache.zookeeper.server.ZooKeeperServerMain \
            "$dir/zoo.cfg" >"$dir/server.log" 2>&1 &
    else
        "$zoocore_bin" server --config "$dir/zoo.cfg" >"$dir/server.log" 2>&1 &
    fi
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

# --- floors ----------------------------------------------------------------------
echo "==> disk floor and loopback RTT"
"$bench_bin" disk-floor --dir "$work" --duration "$floor_s" --json >>"$results"
"$bench_bin" rtt --duration "$floor_s" --json >>"$results"

# --- workload matrix ---------------------------------------------------------------
start_server zoocore zoocore; zoocore_port=$port; zoocore_pid=$pid
start_server apache zookeeper; zk_port=$port; zk_pid=$pid
echo "==> zoocore pid $zoocore_pid port $zoocore_port; Apache ZooKeeper pid $zk_pid port $zk_port"

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
done
stop_pid "$zoocore_pid"
stop_pid "$zk_pid"

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
