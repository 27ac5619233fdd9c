#!/usr/bin/env bash
# Installs what scripts/test.sh needs besides Rust, and only what is missing:
#   Debian packages  zookeeper (server jar, zkCli.sh), zookeeper-bin (cli_mt),
#                    default-jre-headless (java), netcat-openbsd (nc),
#                    openssl (the TLS compat test's certificates),
#                    systemd-container (as root, where systemd is not PID 1:
#                    the package test's systemd container),
#                    python3 and python3-pip when python3 or its pip is absent;
#   Python packages  kazoo==2.11.0, pytest==9.2.0, prometheus-client==0.26.0,
#                    pure-sasl==0.6.2 (exact versions; prometheus-client is
#                    the Prometheus text-format parser tests/admin.rs checks
#                    /metrics with; pure-sasl is kazoo's SASL DIGEST-MD5
#                    client, for tests/compat/test_sasl.py), pyjks==20.0.0 (kazoo's
#                    test-harness extra that writes its JKS stores, for
#                    tests/compat/test_tls.py), pyOpenSSL==24.2.1 (what
#                    kazoo's harness signs its certificates with: the TLS
#                    compat test runs that code itself);
#   cargo-fuzz       (scripts/fuzz.sh, the fuzz step of scripts/test.sh):
#                    `cargo install --locked cargo-fuzz`, about a minute on
#                    2 cores; it works on stable Rust (docs/fuzzing.md).
#
# Debian packages are installed with apt-get as root, with `sudo -n apt-get`
# when sudo works without a password, and otherwise the script stops with the
# list of what to install. Python packages go through `python3 -m pip` (into
# the active venv/pyenv, or Debian's Python with --break-system-packages when
# PEP 668 refuses; see below). When everything is present it does nothing.
#
# Install output goes to a log that is printed only when a step fails.
# It honours the paths the compat tests honour: ZK_CLASSPATH, ZK_CLI_SH,
# ZK_CLI_MT, ZK_JAVA.
set -euo pipefail

readonly PYTHON_REQUIREMENTS=("kazoo==2.11.0" "pytest==9.2.0" "prometheus-client==0.26.0" "pure-sasl==0.6.2" "pyjks==20.0.0" "pyOpenSSL==24.2.1")

missing_debs=()
missing_pips=()

need_deb() {
    local pkg="$1"
    local p
    for p in "${missing_debs[@]+"${missing_debs[@]}"}"; do
        [ "$p" = "$pkg" ] && return 0
    done
    missing_debs+=("$pkg")
}

# The files the tests use, not dpkg's records: a ZooKeeper installed some
# other way (and pointed to by ZK_*) counts as present.
[ -f "${ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}" ] || need_deb zookeeper
[ -x "${ZK_CLI_SH:-/usr/share/zookeeper/bin/zkCli.sh}" ] || need_deb zookeeper
[ -x "${ZK_CLI_MT:-/usr/lib/zookeeper/bin/cli_mt}" ] || need_deb zookeeper-bin
if [ -n "${ZK_JAVA:-}" ]; then
    [ -x "$ZK_JAVA" ] || need_deb default-jre-headless
else
    command -v java >/dev/null 2>&1 || need_deb default-jre-headless
fi
command -v nc >/dev/null 2>&1 || need_deb netcat-openbsd
# tests/compat/test_tls.py makes its certificates with openssl.
command -v openssl >/dev/null 2>&1 || need_deb openssl
# scripts/test-package.sh boots a systemd container (systemd-nspawn) to run
# the package's service under systemd where systemd is not this machine's
# PID 1; only as root, the only user that test runs as.
if [ "$(id -u)" -eq 0 ] && [ ! -d /run/systemd/system ]; then
    command -v systemd-nspawn >/dev/null 2>&1 || need_deb systemd-container
fi

# Python: the interpreter, its pip, and the pinned packages.
python_note=""
if ! command -v python3 >/dev/null 2>&1; then
    need_deb python3
    need_deb python3-pip
    missing_pips=("${PYTHON_REQUIREMENTS[@]}")
else
    # importlib.metadata reads the installed versions without importing them.
    # (An assignment, so that a failing python3 stops the script.)
    pip_report="$(python3 - "${PYTHON_REQUIREMENTS[@]}" <<'EOF'
import sys
from importlib import metadata
missing = []
for req in sys.argv[1:]:
    name, _, want = req.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have != want:
        missing.append(req)
print(" ".join(missing))
EOF
)"
    read -r -a missing_pips <<<"$pip_report"
    if [ "${#missing_pips[@]}" -gt 0 ] && ! python3 -m pip --version >/dev/null 2>&1; then
        # Debian's pip is a package; a pyenv or venv Python brings its own.
        if [ "$(readlink -f "$(command -v python3)")" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
            need_deb python3-pip
        else
            python_note="$(command -v python3) has no pip: run 'python3 -m ensurepip' (or use a Python that has one)"
        fi
    fi
fi

# cargo-fuzz, from crates.io through cargo itself (no root needed). Quiet
# unless it fails; measured at about 60 s on a 2-core machine.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (cargo install --locked cargo-fuzz)"
    fuzz_log="$(mktemp -t zoocore-cargo-fuzz.XXXXXX.log)"
    if ! cargo install --locked cargo-fuzz >"$fuzz_log" 2>&1; then
        echo "FAILED: cargo install --locked cargo-fuzz" >&2
        cat "$fuzz_log" >&2
        exit 1
    fi
    rm -f "$fuzz_log"
fi

if [ "${#missing_debs[@]}" -eq 0 ] && [ "${#missing_pips[@]}" -eq 0 ]; then
    exit 0
fi

# How to run apt-get, if we may.
apt_runner=()
if [ "${#missing_debs[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt_runner=(env)
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        apt_runner=(sudo -n env)
    fi
fi

cannot_install_debs=0
if [ "${#missing_debs[@]}" -gt 0 ] && [ "${#apt_runner[@]}" -eq 0 ]; then
    cannot_install_debs=1
fi
if [ "$cannot_install_debs" -eq 1 ] || [ -n "$python_note" ]; then
    {
        echo "scripts/test.sh needs what this machine lacks and cannot install it itself."
        if [ "$cannot_install_debs" -eq 1 ]; then
            if command -v apt-get >/dev/null 2>&1; then
                echo "Not root, and sudo is absent or asks for a password; as root, run:"
            else
                echo "No apt-get; install the equivalents of these Debian packages:"
            fi
            echo "  apt-get install -y --no-install-recommends ${missing_debs[*]}"
        fi
        [ -n "$python_note" ] && echo "  $python_note"
        if [ "${#missing_pips[@]}" -gt 0 ]; then
            echo "and then:"
            echo "  python3 -m pip install ${missing_pips[*]}"
        fi
        echo "Then run it again."
    } >&2
    exit 1
fi

install_log="$(mktemp -t zoocore-test-deps.XXXXXX.log)"

run_quietly() {
    if ! "$@" >>"$install_log" 2>&1; then
        echo "FAILED: $*" >&2
        cat "$install_log" >&2
        exit 1
    fi
}

if [ "${#missing_debs[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing_debs[*]} (log: $install_log)"
    run_quietly "${apt_runner[@]}" DEBIAN_FRONTEND=noninteractive apt-get update
    run_quietly "${apt_runner[@]}" DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing_debs[@]}"
fi

if [ "${#missing_pips[@]}" -gt 0 ]; then
    echo "==> installing Python packages: ${missing_pips[*]} (log: $install_log)"
    pip_args=(install --quiet --disable-pip-version-check "${missing_pips[@]}")
    # Debian's own pip refuses to touch its Python (PEP 668); a pyenv/venv
    # pip does not. Without root, pip falls back to a user install.
    if ! python3 -m pip "${pip_args[@]}" >>"$install_log" 2>&1; then
        run_quietly python3 -m pip "${pip_args[@]}" --break-system-packages
    fi
fi
rm -f "$install_log"
