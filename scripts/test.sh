#!/usr/bin/env bash
# The project's test command: install the test dependencies that are missing
# (scripts/setup-test-deps.sh: Apache ZooKeeper, its C client, a JRE, nc,
# kazoo and pytest), build the release binary, run every Rust test, then the
# fuzz targets for 5 s each from their committed corpus, unoptimised
# (scripts/fuzz.sh: about a minute plus their first build), then the
# third-party-client compatibility tests against that binary: once against a
# single server, then (for zoocore) again against a 3-member zoocore ensemble
# (ZK_SERVER=zoocore-ensemble, about a minute more). After the Rust tests, as
# root (CI), the Debian package made from that binary: built, installed, its
# service started, asked srvr, stopped with SIGTERM, purged
# (scripts/test-package.sh: about 40 s, in a systemd container where systemd is
# not PID 1, plus about a minute the first time to
# install cargo-deb; skipped with a message when not root).
#
#   scripts/test.sh                       # zoocore (default), then zoocore-ensemble
#   ZK_SERVER=apache scripts/test.sh      # compat tests against Apache ZooKeeper only
#   ZK_SERVER=zoocore-ensemble scripts/test.sh   # the ensemble run only
#   scripts/test.sh -k kazoo              # extra args go to pytest
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
export ZOOCORE_BIN="${ZOOCORE_BIN:-$target_dir/release/zoocore}"

echo "==> test dependencies (scripts/setup-test-deps.sh)"
scripts/setup-test-deps.sh

echo "==> cargo build --release"
cargo build --release

echo "==> cargo test --release"
cargo test --release

# Every decoder that reads outside bytes, 5 s per target (fuzz/, docs/fuzzing.md);
# an unoptimised build, which compiles in much less time than a release one.
echo "==> fuzz targets (FUZZ_DEV=1 scripts/fuzz.sh 5)"
FUZZ_DEV=1 scripts/fuzz.sh 5

# Before pytest, so the compat tests' summary stays the run's last word.
echo "==> the Debian package (scripts/test-package.sh)"
scripts/test-package.sh

echo "==> pytest tests/compat (ZK_SERVER=${ZK_SERVER:-zoocore})"
python3 -m pytest -q -p no:cacheprovider tests/compat "$@"

if [ "${ZK_SERVER:-zoocore}" = "zoocore" ]; then
    echo "==> pytest tests/compat (ZK_SERVER=zoocore-ensemble)"
    ZK_SERVER=zoocore-ensemble python3 -m pytest -q -p no:cacheprovider tests/compat "$@"
fi
