#!/usr/bin/env bash
# Counts the instructions a fresh zoocore server spends per write under a fixed
# create workload, with callgrind (repeatable on a shared machine, unlike time).
#
#   scripts/profile-instructions.sh [CREATES] [SESSIONS] [OUTSTANDING] [OUT_DIR]
#
# Defaults: 4000 creates, 8 sessions x 64 outstanding, 100-byte values (about
# 3 minutes under callgrind on the 2-core VM).
# The server runs under `valgrind --tool=callgrind`; counters are zeroed after a
# warm-up of 2000 creates and dumped right after the measured creates, so start-up
# and shutdown are not counted.
#
# Valgrind 3.19 holds its big lock across io_uring_enter, so a parked glommio
# executor would stall every other thread: the script sets
# ZOOCORE_PROFILE_SPIN_INSTEAD_OF_PARK (src/server/mod.rs) and the executors poll
# instead of parking. That polling is not the server's work, so only what runs
# inside glommio's task queues (every task: connections, commit shard, workers)
# and the log thread is counted (--toggle-collect). Not counted: glommio's
# reactor (io_uring submissions and completions, shared-channel polling) and the
# kernel. Batches are larger under valgrind than natively (the server runs ~50x
# slower), so per-batch costs weigh less here than in a native run.
# Prints instructions per write (counted total / CREATES) and the top inclusive
# functions (callgrind_annotate of the dump, in OUT_DIR).
# Needs valgrind and a built release tree ($CARGO_TARGET_DIR or target/); ZOOCORE_BIN
# names another server binary (to compare two builds).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
creates="${1:-4000}"; sessions="${2:-8}"; outstanding="${3:-64}"
out="${4:-/tmp/zoocore-instr-${sessions}x${outstanding}}"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
server_bin="${ZOOCORE_BIN:-$target_dir/release/zoocore}"
mkdir -p "$out"
rm -f "$out"/callgrind.out*
work="$(mktemp -d /var/tmp/zoocore-instr.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
maxSessionTimeout=120000
dataDir=$work/data
clientPort=$port
clientPortAddress=127.0.0.1
snapCount=10000000
maxClientCnxns=0
4lw.commands.whitelist=*
admin.enableServer=false
zoocore.shards=2
CFG
ZOOCORE_PROFILE_SPIN_INSTEAD_OF_PARK=1 valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    --toggle-collect='*LocalExecutor::run_task_queues' --toggle-collect='*log_writer::run_log_thread' \
    "$server_bin" server --config "$work/zoo.cfg" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; cp "$work/server.log" "$out/" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do
    [ "$(echo ruok | nc -q1 127.0.0.1 "$port" 2>/dev/null)" = imok ] && break
    sleep 0.2
done
bench() {
    "$target_dir/release/zoocore-bench" run create --server "127.0.0.1:$port" \
        --sessions "$sessions" --outstanding "$outstanding" --threads 4 --value-size 100 \
        --ops "$1" --warmup 0 --session-timeout-ms 120000 --quiet
}
bench 2000 >"$out/warmup.txt"
callgrind_control -z "$pid" >/dev/null
bench "$creates" >"$out/bench.txt"
callgrind_control -d "$pid" >/dev/null
sleep 1
files=$(ls "$out"/callgrind.out.*.* 2>/dev/null || true)
[ -n "$files" ] || { echo "no callgrind dump in $out" >&2; exit 1; }
total=0
for f in $files; do
    n=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
    total=$((total + ${n:-0}))
done
echo "creates measured: $creates (${sessions} sessions x ${outstanding} outstanding)"
echo "server instructions in tasks and the log thread: $total"
echo "instructions per write: $((total / creates))"
callgrind_annotate --inclusive=yes $files 2>/dev/null | head -60 >"$out/inclusive.txt" || true
callgrind_annotate $files 2>/dev/null | head -60 >"$out/self.txt" || true
echo "--- top inclusive ($out/inclusive.txt)"; sed -n '1,45p' "$out/inclusive.txt"
