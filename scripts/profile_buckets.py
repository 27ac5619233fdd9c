#!/usr/bin/env python3
"""Groups the self shares of `perf report --no-children --sort dso,symbol
--stdio` into the buckets docs/benchmarks/targets-notes.md reports (the first
pattern a symbol matches wins; any other symbol of the zoocore binary counts
as zoocore's own work), then lists the largest symbols left in "other".

    scripts/profile_buckets.py /tmp/zoocore-profile-8x64/report.txt
"""
import re
import sys

BUCKETS = [
    ("kernel scheduling, context switches, wake-ups", r"finish_task_switch|_raw_spin_(un)?lock|smp_call_function|pv_|__schedule|schedule|try_to_wake_up|ttwu|enqueue_|dequeue_|pick_next|update_curr|queued_spin|__switch_to|psi_|select_task_rq|set_next_entity|update_load|native_sched|resched|idle|cpuidle|do_idle|wake_up|futex|tick_|hrtimer|rcu"),
    ("io_uring submit/complete, glommio reactor", r"io_uring|io_submit|io_issue|io_wq|io_worker|io_cqring|io_req|io_poll|io_read|io_write|io_fsync|glommio|__io_|eventfd|_io_uring|submit_one_event"),
    ("clock reads", r"clock_gettime|vdso|ktime_get|read_tsc|kvm_clock"),
    ("syscall entry/exit", r"entry_SYSCALL|syscall_exit|do_syscall|syscall_return|__x64_sys|__sys_|exit_to_user|syscall_enter"),
    ("block layer, virtio, ext4, fdatasync", r"iowrite|virt|blk_|ext4|jbd2|fdatasync|bio|nvme|fsync|iomap|file_write|filemap|generic_perform|dio"),
    ("allocation, zeroing, copying", r"malloc|free|memset|memcpy|memmove|_int_|cfree|drop_slow|alloc|clear_page|__rust_dealloc|__rust_alloc|realloc|copy_user|rep_movs|page_fault|exc_page|do_anonymous|zap_|folio"),
    ("data tree (zoocore::tree, imbl)", r"zoocore::tree|imbl|TreePath|ordset|OrdSet|btree"),
    ("TCP stack", r"tcp_|ip_|__dev_queue|net_|skb|sock|loopback|netif|inet_|__napi|process_backlog|dst_|__ip|__tcp|nf_"),
    ("jute, request handling, crc32c, other zoocore", r"zoocore|crc32|jute|core::|alloc::|std::|hashbrown|bytes::"),
]
ZOOCORE_BUCKET = BUCKETS[-1][0]


def main():
    totals = {name: 0.0 for name, _ in BUCKETS}
    other, other_symbols = 0.0, []
    for line in open(sys.argv[1]):
        m = re.match(r"^\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*(-\s+-\s*)?$", line)
        if not m:
            continue
        share, dso, symbol = float(m.group(1)), m.group(2), m.group(3)
        for name, pattern in BUCKETS:
            if re.search(pattern, symbol) or (name == ZOOCORE_BUCKET and dso.startswith("zoocore")):
                totals[name] += share
                break
        else:
            other += share
            other_symbols.append((share, dso, symbol))
    print("| bucket | share of samples |")
    print("|---|---:|")
    for name, _ in BUCKETS:
        print(f"| {name} | {totals[name]:.1f} % |")
    print(f"| other | {other:.1f} % |")
    print("largest in other:")
    for share, dso, symbol in sorted(other_symbols, reverse=True)[:12]:
        print(f"  {share:5.2f} %  {dso}  {symbol[:80]}")


if __name__ == "__main__":
    main()
