#!/usr/bin/env bash
# Reproduces the numbers in docs/storage.md "Measurements".
# Usage: scripts/storage-measurements.sh [BIN_DIR] [WORK_DIR]
set -u
BIN=${1:-target/release}
WORK=${2:-/var/tmp/zc-measure}
PORT=2191
ZC=$BIN/zoocore
BENCH=$BIN/zoocore-bench
PID=

cfg() { # logSync snapCount
  mkdir -p "$WORK/data"
  cat > "$WORK/zoo.cfg" <<CFG
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
zoocore.logSync=$1
snapCount=$2
maxClientCnxns=0
CFG
}
ruok() { # bash's /dev/tcp: no 1 s linger as with nc -q1
  { exec 3<>/dev/tcp/127.0.0.1/$PORT; } 2>/dev/null || return 1
  printf ruok >&3; local r; read -r -t 2 r <&3; exec 3<&-; [ "$r" = imok ]
}
start() { # prints the time from exec to the first 'imok'
  local t0; t0=$(date +%s%N)
  "$ZC" server --config "$WORK/zoo.cfg" 2>>"$WORK/server.log" & PID=$!
  until ruok; do sleep 0.005; done
  echo "ruok after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null; }
fresh() { stop 2>/dev/null; rm -rf "$WORK/data"; }

echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo; uname -r; df -T "$WORK" | tail -1

echo "== sync-bench"
mkdir -p "$WORK/sync"
for i in 1 2 3; do "$ZC" sync-bench --dir "$WORK/sync" --rounds 3; done

for mode in fdatasync dsync; do
  echo "== $mode: single session create latency (1x1, 5 s)"
  rm -rf "$WORK/data"; cfg $mode 100000; start
  "$BENCH" run create --server 127.0.0.1:$PORT --sessions 1 --outstanding 1 --duration 5 --server-pid $PID --quiet
  echo "== $mode: 32 sessions x 64 outstanding create throughput (5 s)"
  "$BENCH" run create --server 127.0.0.1:$PORT --sessions 32 --outstanding 64 --duration 5 --server-pid $PID --quiet
  echo "mntr:"; echo mntr | nc -q1 127.0.0.1 $PORT 2>/dev/null | grep -i -E 'fsync|batch|sync' || true
  stop
done

echo "== snapshot impact: 300k znodes, then 1x1 create p99 with snapshots off (snapCount 10M) vs frequent (snapCount 2000)"
rm -rf "$WORK/data"; cfg fdatasync 10000000; start
"$BENCH" memory --server 127.0.0.1:$PORT --znodes 300000 --server-pid $PID --settle 0 | tail -3
for snap in 10000000 2000; do
  stop; cfg fdatasync $snap; start
  n0=$(grep -c 'snapshot written' "$WORK/server.log")
  "$BENCH" run create --server 127.0.0.1:$PORT --sessions 1 --outstanding 1 --duration 5 --server-pid $PID --quiet
  sleep 2; echo "snapshots written during the run: $(( $(grep -c 'snapshot written' "$WORK/server.log") - n0 ))"
done
stop; grep 'snapshot written' "$WORK/server.log" | tail -2

echo "== restart with 1M znodes"
rm -rf "$WORK/data"; : > "$WORK/server.log"; cfg fdatasync 100000; start
"$BENCH" memory --server 127.0.0.1:$PORT --znodes 1000000 --server-pid $PID --settle 0 | tail -3
sleep 3; stop
ls -la "$WORK/data/zoocore" | tail -5
for i in 1 2 3; do start; stop; done
grep -E 'loaded snapshot|recovered' "$WORK/server.log" | tail -6
