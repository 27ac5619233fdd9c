#!/usr/bin/env bash
# Host tuning for zoocore; see tuning/README.md. Default is a dry run that
# prints each change and why; --apply makes them (root). Never run in CI.
set -euo pipefail

mode=dry
cores=""
log_dev=""
log_mount=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) mode=dry ;;
        --apply) mode=apply ;;
        --cores) cores="$2"; shift ;;
        --log-dev) log_dev="$2"; shift ;;
        --log-mount) log_mount="$2"; shift ;;
        -h|--help) sed -n '2,3p' "$0"; echo "usage: $0 [--dry-run|--apply] [--cores LIST] [--log-dev NAME] [--log-mount DIR]"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$mode" = apply ] && [ "$(id -u)" != 0 ]; then
    echo "--apply needs root" >&2; exit 1
fi

ncpu="$(nproc --all)"
if [ -z "$cores" ]; then
    cores=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)
fi
# Expand LIST (e.g. 2-5,8) into CPU numbers.
expand() {
    local part out=()
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ "$part" == *-* ]]; then out+=($(seq "${part%-*}" "${part#*-}")); else out+=("$part"); fi
    done
    echo "${out[@]}"
}
shard_cpus=($(expand "$cores"))
other_cpus=()
for c in $(seq 0 $((ncpu - 1))); do
    [[ " ${shard_cpus[*]} " == *" $c "* ]] || other_cpus+=("$c")
done
housekeeping="$(IFS=,; echo "${other_cpus[*]:-0}")"

say() { printf '\n# %s\n' "$*"; }
# run WHY CMD...: prints the command; runs it with --apply.
run() {
    echo "  $*"
    if [ "$mode" = apply ]; then "$@" || echo "  (failed: $*)" >&2; fi
}
write() { # FILE VALUE (skipped when VALUE is already the selected one)
    local now; now="$(cat "$1" 2>/dev/null || true)"
    if [ "$now" = "$2" ] || [[ "$now" == *"[$2]"* ]]; then echo "  $1 already $2"; return 0; fi
    echo "  echo '$2' > $1   (now: $(cat "$1" 2>/dev/null | tr '\n' ' ' || echo '?'))"
    if [ "$mode" = apply ]; then echo "$2" >"$1" 2>/dev/null || echo "  (failed: $1)" >&2; fi
}

echo "zoocore host tuning ($mode run): shard CPUs ${shard_cpus[*]}, housekeeping CPUs $housekeeping"

say "Shards: one worker shard per CPU in zoocore's affinity mask; the commit shard shares the last one."
echo "  start:   taskset -c $cores zoocore server --config zoo.cfg"
echo "  zoo.cfg: zoocore.shards=${#shard_cpus[@]}"
echo "  optional (kernel command line, reboot): isolcpus=$cores nohz_full=$cores rcu_nocbs=$cores"

say "IRQs away from the shard CPUs (irqbalance would move them back)."
if command -v systemctl >/dev/null && systemctl is-active --quiet irqbalance 2>/dev/null; then
    run systemctl stop irqbalance
fi
for irq in /proc/irq/[0-9]*; do
    [ -w "$irq/smp_affinity_list" ] || [ "$mode" = dry ] || continue
    [ -e "$irq/smp_affinity_list" ] || continue
    cur="$(cat "$irq/smp_affinity_list" 2>/dev/null || true)"
    [ "$cur" = "$housekeeping" ] && continue
    echo "  echo $housekeeping > $irq/smp_affinity_list   (now: $cur)"
    if [ "$mode" = apply ]; then echo "$housekeeping" >"$irq/smp_affinity_list" 2>/dev/null || true; fi
done

say "Locked memory for io_uring buffers (glommio executors fail to start under a 64 KiB limit). Now: $(ulimit -l)"
echo "  /etc/security/limits.d/zoocore.conf:  zookeeper - memlock unlimited"
echo "  systemd unit:                         LimitMEMLOCK=infinity"
echo "  interactive shell:                    ulimit -l unlimited"

say "Transparent huge pages: no compaction stalls in page faults."
write /sys/kernel/mm/transparent_hugepage/enabled madvise
write /sys/kernel/mm/transparent_hugepage/defrag defer+madvise

if [ -n "$log_mount" ]; then
    say "Log filesystem at $log_mount: noatime; keep write barriers (durability is the device flush)."
    opts="$(findmnt -no OPTIONS --target "$log_mount" 2>/dev/null || echo '?')"
    mnt="$(findmnt -no TARGET --target "$log_mount" 2>/dev/null || echo "$log_mount")"
    echo "  now: $opts"
    if [[ "$opts" == *nobarrier* || "$opts" == *barrier=0* ]]; then
        echo "  WARNING: barriers are off; fdatasync does not reach stable media. Remove nobarrier/barrier=0."
    fi
    echo "  /etc/fstab: add noatime to the options of the filesystem mounted on $mnt"
    [[ "$opts" == *noatime* ]] || run mount -o remount,noatime "$mnt"
else
    say "Log filesystem: give --log-mount DIR to check/remount it with noatime."
fi

if [ -n "$log_dev" ]; then
    sched=/sys/block/$log_dev/queue/scheduler
    if [[ "$log_dev" == nvme* ]]; then
        say "I/O scheduler none for NVMe $log_dev (hardware queues; a scheduler only adds latency)."
        write "$sched" none
    else
        say "$log_dev is not NVMe: keep mq-deadline (now: $(cat "$sched" 2>/dev/null || echo '?'))."
    fi
else
    say "I/O scheduler: give --log-dev NAME (e.g. nvme0n1) to set 'none' on an NVMe log device."
fi

[ "$mode" = dry ] && printf '\n(dry run: nothing changed; --apply to apply as root)\n'
exit 0
