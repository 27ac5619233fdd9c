#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 10),
# one after the other, starting from its committed seed corpus
# (fuzz/corpus/<target>/, read-only here: what a run finds that is new goes
# to a scratch corpus under fuzz/target/, not into the repository).
#
#   scripts/fuzz.sh             # 10 s per target
#   scripts/fuzz.sh 600         # the long run (docs/fuzzing.md)
#   FUZZ_TARGETS="request txn" scripts/fuzz.sh 60
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 36000   # stop each at 10M inputs (or SECONDS)
#   FUZZ_DEV=1 scripts/fuzz.sh 5                # unoptimised build: compiles in far less
#                                               # time, runs slower (the CI smoke run)
#
# Stable Rust only: cargo-fuzz with `--sanitizer none` passes no -Z flag
# (only -Cpasses=sancov-module and -Cllvm-args=-sanitizer-coverage-*, which
# are stable), so no nightly and no RUSTC_BOOTSTRAP. Overflow checks and
# debug assertions are on (cargo-fuzz's default); AddressSanitizer is not
# (it needs nightly), which matters little for code without `unsafe`.
#
# libFuzzer's limits make the "no unbounded allocation, no hang" rule a
# failure: -rss_limit_mb (and the malloc limit, which follows it) and
# -timeout per input. A crash, an OOM or a timeout fails the script; the
# input is in fuzz/artifacts/<target>/ (reproduce with
# `cargo fuzz run --sanitizer none <target> <file>`).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

seconds="${1:-10}"
rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
timeout_s="${FUZZ_TIMEOUT_S:-10}"
# Inputs up to 64 KiB: room for a few files' worth of records and nodes.
max_len="${FUZZ_MAX_LEN:-65536}"
runs="${FUZZ_RUNS:--1}"
# cargo-fuzz builds release by default; --dev is the quick-to-build choice.
profile=()
[ -n "${FUZZ_DEV:-}" ] && profile=(--dev)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: run scripts/setup-test-deps.sh (or cargo install --locked cargo-fuzz)" >&2
    exit 1
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

echo "==> cargo fuzz build --sanitizer none ${profile[*]}"
cargo fuzz build --sanitizer none "${profile[@]}"

failed=()
for target in $targets; do
    scratch="fuzz/target/scratch-corpus/$target"
    mkdir -p "$scratch" "fuzz/artifacts/$target"
    echo "==> fuzz $target for ${seconds}s"
    log="fuzz/target/$target.log"
    # The scratch corpus comes first: libFuzzer writes new inputs there.
    rc=0
    cargo fuzz run --sanitizer none "${profile[@]}" "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -runs="$runs" -rss_limit_mb="$rss_limit_mb" -timeout="$timeout_s" \
        -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    # The start and end lines (inputs, coverage, exec/s) and any finding.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|ERROR|SUMMARY|Test unit written|panicked' "$log" || true
    if [ "$rc" -ne 0 ]; then
        echo "    $target FAILED (exit $rc; full log: $log)"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "==> fuzz: every target ran ${seconds}s without a finding"
