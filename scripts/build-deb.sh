#!/usr/bin/env bash
# Builds the zoocore Debian package (target/debian/zoocore_<version>_<arch>.deb)
# with cargo-deb, from [package.metadata.deb] in Cargo.toml and the files in
# packaging/debian/ (systemd unit, default zoo.cfg, maintainer scripts).
#
#   scripts/build-deb.sh              # cargo build --release, then package it
#   scripts/build-deb.sh --no-build   # package target/release/zoocore as it is
#                                     # (CI: the binary scripts/test.sh built)
#
# Installs cargo-deb (the pinned version below, from crates.io, with
# `cargo install --locked`) when it is missing or another version. The binary
# is stripped in the package (the release profile keeps debug info for
# profiling). The .deb's path is the last line printed on stdout.
set -euo pipefail

readonly CARGO_DEB_VERSION="3.8.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

build_args=()
for arg in "$@"; do
    case "$arg" in
        --no-build) build_args+=(--no-build) ;;
        *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
    esac
done

have_version="$(cargo deb --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have_version" != "$CARGO_DEB_VERSION" ]; then
    echo "==> cargo install cargo-deb $CARGO_DEB_VERSION (found: ${have_version:-none})" >&2
    install_log="$(mktemp -t zoocore-cargo-deb.XXXXXX.log)"
    if ! cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >"$install_log" 2>&1; then
        cat "$install_log" >&2
        echo "FAILED: cargo install cargo-deb --locked --version $CARGO_DEB_VERSION" >&2
        exit 1
    fi
    rm -f "$install_log"
fi

if [ "${#build_args[@]}" -gt 0 ]; then
    target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
    if [ ! -x "$target_dir/release/zoocore" ]; then
        echo "--no-build, but $target_dir/release/zoocore is missing: run cargo build --release first" >&2
        exit 1
    fi
fi

echo "==> cargo deb -p zoocore --strip ${build_args[*]}" >&2
# cargo-deb prints the package's path on stdout; its progress goes to stderr.
deb_path="$(cargo deb -p zoocore --strip "${build_args[@]+"${build_args[@]}"}" | tail -n 1)"
if [ ! -f "$deb_path" ]; then
    echo "cargo deb did not report a package file (got: $deb_path)" >&2
    exit 1
fi
echo "$deb_path"
