#!/usr/bin/env bash
# Profiles a fresh zoocore server under one create workload with perf, and
# prints where the server's CPU goes plus its own log histograms (mntr).
#
#   scripts/profile-zoocore.sh SESSIONS OUTSTANDING [SECONDS] [OUT_DIR]
#
# Needs perf and a built release tree ($CARGO_TARGET_DIR or target/).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sessions="${1:?sessions}"; outstanding="${2:?outstanding}"; secs="${3:-8}"
out="${4:-/tmp/zoocore-profile-${sessions}x${outstanding}}"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
mkdir -p "$out"
work="$(mktemp -d /var/tmp/zoocore-profile.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
snapCount=100000
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
CFG
"$target_dir/release/zoocore" server --config "$work/zoo.cfg" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    [ "$(echo ruok | nc -q1 127.0.0.1 "$port" 2>/dev/null)" = imok ] && break
    sleep 0.1
done
threads=$(( sessions < 4 ? sessions : 4 ))
"$target_dir/release/zoocore-bench" run create --server "127.0.0.1:$port" --server-pid "$pid" \
    --sessions "$sessions" --outstanding "$outstanding" --threads "$threads" --value-size 100 \
    --duration "$((secs + 2))" --warmup 1 --quiet >"$out/bench.txt" &
bench=$!
sleep 1.5
perf record -q -g -o "$out/perf.data" -p "$pid" -- sleep "$secs" 2>/dev/null
wait "$bench"
echo mntr | nc -q1 127.0.0.1 "$port" | grep -E 'fsync|batch|commit_queue' >"$out/mntr.txt"
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^$' >"$out/report.txt"
perf report -i "$out/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep '%' >"$out/by-thread.txt"
cat "$out/bench.txt"
echo "--- server mntr"; cat "$out/mntr.txt"
echo "--- by thread"; head -20 "$out/by-thread.txt"
echo "--- top symbols (self)"; grep -E '^ +[0-9.]+%' "$out/report.txt" | head -40
echo "--- buckets"; python3 "$repo_root/scripts/profile_buckets.py" "$out/report.txt"
