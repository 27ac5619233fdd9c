#!/usr/bin/env bash
# The Debian package, end to end: build it (scripts/build-deb.sh --no-build:
# the release binary scripts/test.sh already built), install it with dpkg,
# check what it installed (binary, conffile, unit, the zoocore system user
# owning /var/lib/zoocore), start the service, check that `srvr` and `mntr`
# answer on 127.0.0.1:2181, stop it with SIGTERM, check it exited 0 and left
# the port free (a SO_REUSEADDR bind succeeds at once), then purge it.
#
# The service is started one of three ways, and the script says which:
#   systemctl  when systemd runs this machine (/run/systemd/system exists):
#              systemctl start / stop, exit status from systemd;
#   nspawn     when systemd is not PID 1 here but systemd-nspawn is installed
#              (scripts/setup-test-deps.sh installs it): this machine's own
#              root file system, under a throw-away overlay, is booted as a
#              systemd container with a private network, and this script runs
#              again inside it, where it takes the systemctl way: the real
#              unit, started and stopped by a real systemd (under nspawn's
#              seccomp filter and cgroups). Required when CI is set;
#   fallback   otherwise: the installed unit's ExecStart, run as its
#              User=/Group= in its WorkingDirectory= with its Environment= and
#              its LimitMEMLOCK= and LimitNOFILE= (prlimit + setpriv), all read
#              from the installed unit file, so the test runs what the unit says.
#
# Needs root (dpkg -i). Not root: skipped with a message, unless CI is set
# (then it fails). It refuses to run when a zoocore package is already
# installed (outside CI), or when something listens on port 2181.
#
#   scripts/test-package.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

readonly PACKAGE=zoocore
readonly UNIT=zoocore.service
readonly CLIENT_PORT=2181
readonly PROBE_ADDR=127.0.0.1
readonly START_TIMEOUT_S=30
readonly STOP_TIMEOUT_S=15

started_at=$SECONDS
step() { echo "==> [test-package +$((SECONDS - started_at))s] $*"; }
fail() { echo "test-package: FAILED: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    [ -n "${CI:-}" ] && fail "CI is set but this is not root: the package test needs root (dpkg -i)"
    echo "test-package: skipped: needs root (dpkg -i, a system user); run scripts/test-package.sh as root"
    exit 0
fi

build_package() {
    step "building the package (scripts/build-deb.sh --no-build)"
    deb_path="$(scripts/build-deb.sh --no-build | tail -n 1)"
    echo "    $deb_path ($(du -k "$deb_path" | cut -f1) KiB)"
}

# ---------------------------------------------------------------- nspawn
# Boots this machine's root file system as a systemd container and runs this
# script inside it. Everything the container writes goes to a tmpfs overlay,
# dropped at the end; the repository is bound in (writable: build-deb.sh
# writes target/debian) at the same path.
readonly CONTAINER_BOOT_TIMEOUT_S=60
run_in_systemd_container() {
    local scratch merged nspawn_pid="" leader="" rc=0
    scratch="$(mktemp -d -t zoocore-nspawn.XXXXXX)"
    merged="$scratch/merged"
    container_cleanup() {
        if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
            # SIGRTMIN+4 asks systemd to power off.
            kill -s SIGRTMIN+4 "$leader" 2>/dev/null || true
            local deadline=$((SECONDS + 20))
            while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$nspawn_pid" 2>/dev/null; do sleep 0.2; done
        fi
        if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
            # Killing the container's PID 1 ends every process in it.
            [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null || true
            kill -KILL "$nspawn_pid" 2>/dev/null || true
            wait "$nspawn_pid" 2>/dev/null || true
        fi
        umount "$merged" 2>/dev/null || umount -l "$merged" 2>/dev/null || true
        umount "$scratch" 2>/dev/null || umount -l "$scratch" 2>/dev/null || true
        rmdir "$scratch" 2>/dev/null || true
    }
    trap container_cleanup EXIT
    mount -t tmpfs -o mode=0700 zoocore-nspawn "$scratch"
    mkdir -p "$scratch/upper" "$scratch/work" "$merged"
    mount -t overlay zoocore-nspawn -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$merged"
    step "booting a systemd container from this machine's root (systemd-nspawn, overlay on tmpfs, private network)"
    # The container's own limits bound what its systemd can give the unit
    # (it has no CAP_SYS_RESOURCE): those the unit asks for.
    local unit_src="$repo_root/packaging/debian/$UNIT" memlock nofile
    memlock="$(sed -n 's/^LimitMEMLOCK=//p' "$unit_src" | tail -n 1)"
    nofile="$(sed -n 's/^LimitNOFILE=//p' "$unit_src" | tail -n 1)"
    # --keep-unit --register=no: no host systemd or machined to ask.
    systemd-nspawn --quiet --directory="$merged" --keep-unit --register=no --private-network \
        --rlimit="MEMLOCK=${memlock:-infinity}" --rlimit="NOFILE=${nofile:-1048576}" \
        --bind="$repo_root" --machine="zoocore-pkg-$$" --boot >"$scratch/console.log" 2>&1 </dev/null &
    nspawn_pid=$!
    local deadline=$((SECONDS + CONTAINER_BOOT_TIMEOUT_S)) p
    while [ "$SECONDS" -lt "$deadline" ] && [ -z "$leader" ]; do
        kill -0 "$nspawn_pid" 2>/dev/null || break
        # The container's PID 1: nspawn's child, once it is systemd.
        leader="$(pgrep -P "$nspawn_pid" -x systemd || true)"
        [ -n "$leader" ] || sleep 0.2
    done
    if [ -n "$leader" ]; then
        local state=""
        # Until its manager answers (its socket appears a moment after
        # PID 1 starts) and the boot is over.
        while [ "$SECONDS" -lt "$deadline" ]; do
            state="$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)"
            case "$state" in
                running|degraded|maintenance|stopping|offline) break ;;
            esac
            sleep 0.3
        done
        echo "    container PID 1 is $leader; its system is $state"
        # Degraded (a unit of this machine's own image that failed in a
        # container) still runs units; starting or stopping would not.
        case "$state" in
            running|degraded) ;;
            *) leader_state_bad=1 ;;
        esac
    fi
    if [ -z "$leader" ] || [ -n "${leader_state_bad:-}" ]; then
        tail -n 30 "$scratch/console.log" >&2 || true
        rc=1
        echo "test-package: the systemd container did not boot" >&2
    else
        nsenter -t "$leader" -a env -i PATH="$PATH" HOME="${HOME:-/root}" CI="${CI:-}" \
            CARGO_HOME="${CARGO_HOME:-}" RUSTUP_HOME="${RUSTUP_HOME:-}" \
            ZOOCORE_PACKAGE_TEST_IN_CONTAINER=1 ZOOCORE_PACKAGE_DEB="$deb_path" \
            "$repo_root/scripts/test-package.sh" || rc=$?
    fi
    container_cleanup
    trap - EXIT
    return "$rc"
}

if [ ! -d /run/systemd/system ] && [ -z "${ZOOCORE_PACKAGE_TEST_IN_CONTAINER:-}" ] \
    && [ -z "${ZOOCORE_PACKAGE_TEST_NO_CONTAINER:-}" ]; then
    if command -v systemd-nspawn >/dev/null 2>&1; then
        # Here: the container's network is private (no crates.io for cargo-deb).
        build_package
        if run_in_systemd_container; then
            step "passed (nspawn): the package's service ran under systemd in a systemd container"
            exit 0
        fi
        fail "the package test in the systemd container failed (above)"
    fi
    [ -n "${CI:-}" ] && fail "CI is set but systemd-nspawn is missing (scripts/setup-test-deps.sh installs systemd-container)"
    echo "test-package: NOTE: systemd is not PID 1 and systemd-nspawn is missing: using the fallback (no systemd)"
fi
[ -n "${ZOOCORE_PACKAGE_TEST_IN_CONTAINER:-}" ] && [ ! -d /run/systemd/system ] \
    && fail "inside the container, but systemd does not run it"

if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q "installed"; then
    if [ -z "${CI:-}" ]; then
        fail "a $PACKAGE package is already installed here; this test would replace and purge it (dpkg --purge $PACKAGE first)"
    fi
    step "a $PACKAGE package is installed (left by an earlier run): purging it"
    dpkg --purge "$PACKAGE" >/dev/null
fi

# Answers four-letter word $1 on 127.0.0.1:2181 (the server closes after it).
four_letter() {
    printf '%s' "$1" | nc -w 5 "$PROBE_ADDR" "$CLIENT_PORT" 2>/dev/null || true
}

port_answers() { nc -z -w 1 "$PROBE_ADDR" "$CLIENT_PORT" 2>/dev/null; }

port_answers && fail "something already listens on $PROBE_ADDR:$CLIENT_PORT (the packaged zoo.cfg uses port $CLIENT_PORT)"

server_pid=""
installed_by_us=0
log_file="$(mktemp -t zoocore-package.XXXXXX.log)"
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ "$installed_by_us" -eq 1 ]; then
        dpkg --purge "$PACKAGE" >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ -s "$log_file" ]; then
        echo "--- zoocore's log ($log_file) ---" >&2
        tail -n 40 "$log_file" >&2
    fi
    rm -f "$log_file"
}
trap cleanup EXIT

if [ -n "${ZOOCORE_PACKAGE_DEB:-}" ]; then
    deb_path="$ZOOCORE_PACKAGE_DEB"
    step "the package built outside the container: $deb_path"
else
    build_package
fi

step "installing it (dpkg -i)"
installed_by_us=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb_path" >"$log_file" 2>&1 || { cat "$log_file" >&2; fail "dpkg -i"; }
: >"$log_file"

step "checking what it installed"
[ -x /usr/bin/zoocore ] || fail "/usr/bin/zoocore missing"
/usr/bin/zoocore --version >/dev/null || fail "/usr/bin/zoocore --version"
dpkg-query -W -f='${Conffiles}\n' "$PACKAGE" | grep -q "/etc/zoocore/zoo.cfg" || fail "/etc/zoocore/zoo.cfg is not a conffile"
unit_file=""
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    [ -f "$dir/$UNIT" ] && unit_file="$dir/$UNIT" && break
done
[ -n "$unit_file" ] || fail "$UNIT not installed"
echo "    unit: $unit_file"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$unit_file" || fail "systemd-analyze verify $unit_file"
    echo "    systemd-analyze verify: ok"
fi

# One setting of the [Service] section (the last one wins, as in systemd).
unit_value() {
    awk -v key="$1" '
        /^\[/ { in_service = ($0 == "[Service]") }
        in_service && index($0, key "=") == 1 { value = substr($0, length(key) + 2) }
        END { print value }
    ' "$unit_file"
}
unit_user="$(unit_value User)"
unit_group="$(unit_value Group)"
unit_exec="$(unit_value ExecStart)"
unit_workdir="$(unit_value WorkingDirectory)"
unit_env="$(unit_value Environment)"
unit_memlock="$(unit_value LimitMEMLOCK)"
unit_nofile="$(unit_value LimitNOFILE)"
echo "    User=$unit_user Group=$unit_group LimitMEMLOCK=$unit_memlock LimitNOFILE=$unit_nofile"
echo "    ExecStart=$unit_exec"
[ -n "$unit_user" ] && [ -n "$unit_exec" ] && [ -n "$unit_memlock" ] && [ -n "$unit_nofile" ] \
    || fail "the unit lacks User=, ExecStart=, LimitMEMLOCK= or LimitNOFILE="
grep -q "^Restart=on-failure$" "$unit_file" || fail "the unit has no Restart=on-failure"

user_uid="$(id -u "$unit_user")" || fail "user $unit_user missing"
[ "$user_uid" -lt 1000 ] || fail "user $unit_user (uid $user_uid) is not a system user"
data_owner="$(stat -c %U /var/lib/zoocore)" || fail "/var/lib/zoocore missing"
[ "$data_owner" = "$unit_user" ] || fail "/var/lib/zoocore is owned by $data_owner, not $unit_user"
grep -q "^dataDir=/var/lib/zoocore$" /etc/zoocore/zoo.cfg || fail "zoo.cfg's dataDir is not /var/lib/zoocore"

wait_serving() {
    local deadline=$((SECONDS + START_TIMEOUT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if four_letter srvr | grep -q "^Zxid:"; then
            return 0
        fi
        if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.2
    done
    return 1
}

# systemd's limit syntax -> prlimit's ("infinity" -> "unlimited"; K/M/G
# suffixes -> bytes, for LimitMEMLOCK).
prlimit_value() {
    local v="$1"
    case "$v" in
        infinity) echo unlimited ;;
        *[Kk]) echo $(( ${v%?} * 1024 )) ;;
        *[Mm]) echo $(( ${v%?} * 1024 * 1024 )) ;;
        *[Gg]) echo $(( ${v%?} * 1024 * 1024 * 1024 )) ;;
        *) echo "$v" ;;
    esac
}

# The limit to run with: the unit's ($1), unless this process may not raise
# its hard limit ($2, in units of $3 bytes) that far. Root in a container
# often lacks CAP_SYS_RESOURCE, and then neither systemd nor prlimit could
# give the unit's value; say so, and run with the hard limit.
capped_limit() {
    local want="$1" hard="$2" unit_bytes="$3" name="$4"
    if [ "$hard" = unlimited ] || can_raise_limits; then
        echo "$want"
        return
    fi
    local hard_bytes=$((hard * unit_bytes))
    if [ "$want" = unlimited ] || [ "$want" -gt "$hard_bytes" ]; then
        echo "    NOTE: $name=$want is above this machine's hard limit ($hard_bytes) and root here cannot raise it (no CAP_SYS_RESOURCE); running with $hard_bytes" >&2
        echo "$hard_bytes"
    else
        echo "$want"
    fi
}

# CAP_SYS_RESOURCE (bit 24) in the effective set lets root raise hard limits.
can_raise_limits() {
    local caps
    caps="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
    [ $(( (16#$caps >> 24) & 1 )) -eq 1 ]
}

# systemd's own test for "systemd runs this machine" (sd_booted).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    way=systemctl
else
    way=fallback
fi

if [ "$way" = systemctl ]; then
    step "starting the service: systemctl (systemd runs this machine)"
    systemctl daemon-reload
    systemctl restart "$UNIT"
    server_pid="$(systemctl show -p MainPID --value "$UNIT")"
    wait_serving || { journalctl -u "$UNIT" --no-pager -n 40 >&2 || true; fail "the service does not answer srvr"; }
    server_pid="$(systemctl show -p MainPID --value "$UNIT")"
else
    step "starting the service: fallback (systemd is not PID 1 here): the unit's ExecStart as $unit_user with its limits"
    memlock="$(capped_limit "$(prlimit_value "$unit_memlock")" "$(ulimit -H -l)" 1024 LimitMEMLOCK)"
    nofile="$(capped_limit "$(prlimit_value "$unit_nofile")" "$(ulimit -H -n)" 1 LimitNOFILE)"
    env_args=()
    [ -n "$unit_env" ] && read -r -a env_args <<<"$unit_env"
    read -r -a exec_args <<<"$unit_exec"
    (
        cd "${unit_workdir:-/}"
        exec prlimit --memlock="$memlock:$memlock" --nofile="$nofile:$nofile" -- \
            setpriv --reuid="$unit_user" --regid="${unit_group:-$unit_user}" --init-groups -- \
            env "${env_args[@]}" "${exec_args[@]}"
    ) >>"$log_file" 2>&1 </dev/null &
    server_pid=$!
    wait_serving || fail "the service does not answer srvr"
fi
echo "    pid $server_pid"

step "checking it: srvr, mntr, its user and limits"
srvr="$(four_letter srvr)"
echo "$srvr" | sed 's/^/    /'
echo "$srvr" | grep -q "^Mode: standalone$" || fail "srvr does not say Mode: standalone"
four_letter mntr | grep -q "^zk_server_state" || fail "mntr does not answer (4lw.commands.whitelist in zoo.cfg)"
[ "$(stat -c %U "/proc/$server_pid")" = "$unit_user" ] || fail "pid $server_pid does not run as $unit_user"
limits="$(cat "/proc/$server_pid/limits")"
if [ "$way" = systemctl ]; then
    # systemd, too, cannot raise a limit above the hard limit of a root
    # without CAP_SYS_RESOURCE (the systemd container here): it starts the
    # unit with that hard limit.
    memlock_want="$(capped_limit "$(prlimit_value "$unit_memlock")" "$(ulimit -H -l)" 1024 LimitMEMLOCK)"
    nofile_want="$(capped_limit "$(prlimit_value "$unit_nofile")" "$(ulimit -H -n)" 1 LimitNOFILE)"
else
    memlock_want="$memlock"
    nofile_want="$nofile"
fi
echo "$limits" | grep "^Max locked memory" | grep -qw -- "$memlock_want" \
    || fail "locked memory limit is not $memlock_want: $(echo "$limits" | grep '^Max locked memory')"
echo "$limits" | grep "^Max open files" | grep -qw -- "$nofile_want" \
    || fail "open files limit is not $nofile_want: $(echo "$limits" | grep '^Max open files')"
echo "    running as $unit_user; limits: $(echo "$limits" | grep -E '^Max (locked memory|open files)' | tr -s ' ' | tr '\n' ';')"
# The packaged zoo.cfg is understood whole: no key logged as ignored.
if grep -i "ignored" "$log_file" >/dev/null 2>&1; then
    fail "zoocore ignored part of /etc/zoocore/zoo.cfg: $(grep -i ignored "$log_file" | head -3)"
fi
[ -d /var/lib/zoocore/zoocore ] || fail "no zoocore store under /var/lib/zoocore"
[ "$(stat -c %U /var/lib/zoocore/zoocore)" = "$unit_user" ] || fail "/var/lib/zoocore/zoocore is not $unit_user's"

step "stopping it with SIGTERM"
stop_started=$SECONDS
if [ "$way" = systemctl ]; then
    systemctl stop "$UNIT"
    result="$(systemctl show -p Result --value "$UNIT")"
    status="$(systemctl show -p ExecMainStatus --value "$UNIT")"
    [ "$result" = success ] && [ "$status" = 0 ] || fail "systemctl stop: Result=$result ExecMainStatus=$status"
else
    kill -TERM "$server_pid"
    # Until it exits (a zombie, state Z, until `wait` reaps it), then its status.
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while [ "$SECONDS" -lt "$deadline" ] \
        && [ -e "/proc/$server_pid" ] && [ "$(awk '{print $3}' "/proc/$server_pid/stat" 2>/dev/null)" != Z ]; do
        sleep 0.1
    done
    if [ -e "/proc/$server_pid" ] && [ "$(awk '{print $3}' "/proc/$server_pid/stat" 2>/dev/null)" != Z ]; then
        fail "zoocore did not exit within ${STOP_TIMEOUT_S}s of SIGTERM"
    fi
    exit_status=0
    wait "$server_pid" || exit_status=$?
    [ "$exit_status" -eq 0 ] || fail "zoocore exited with status $exit_status after SIGTERM"
    grep -q "zoocore stopped" "$log_file" || fail "the log has no 'zoocore stopped'"
fi
server_pid=""
echo "    exited 0 after $((SECONDS - stop_started))s"
port_answers && fail "port $CLIENT_PORT still answers after the stop"
if command -v python3 >/dev/null 2>&1; then
    # As Apache ZooKeeper binds: SO_REUSEADDR, no SO_REUSEPORT.
    python3 - "$CLIENT_PORT" <<'EOF' || fail "a SO_REUSEADDR bind of port $CLIENT_PORT right after the stop"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.close()
EOF
    echo "    port $CLIENT_PORT free: a SO_REUSEADDR bind succeeds at once"
fi

step "purging the package"
dpkg --purge "$PACKAGE" >/dev/null
installed_by_us=0
[ ! -e /usr/bin/zoocore ] || fail "/usr/bin/zoocore left after purge"
[ ! -e /etc/zoocore ] || fail "/etc/zoocore left after purge"
[ ! -e /var/lib/zoocore ] || fail "/var/lib/zoocore left after purge"
[ ! -e "$unit_file" ] || fail "$unit_file left after purge"

step "passed ($way): the package installs, its service answers srvr and stops cleanly ($((SECONDS - started_at))s)"
