"""Where a saturated nginx's CPU goes: untraced, an empty hook, the collector, watched.

usage: .venv/bin/python benchmarks/bench_cpu_split.py [--reps 3] [--seconds 8] [--json]
Needs root and bcc; installs nginx, wrk and perf (linux-perf) if missing. nginx serves
its file to wrk on the same cores (as in bench_daemon's nginx part) under four arms,
rotated per rep: untraced, an empty program on raw_syscalls:sys_enter (the floor), the collector
alone (nothing scored) and `sysgram watch --all` (nginx's profile trained live first).
During each arm's wrk run, `perf record -a` samples every CPU; the samples are grouped:

  - sysgram, user space: the collector's or watcher's process (comm python*/sysgram);
  - BPF programs and helpers: bcc's programs (`bpf_prog_*`) and the helpers, maps and
    ring buffers they call;
  - the kernel's tracepoint path: the raw tracepoint dispatch, the syscall entry/exit
    work it switches on, and the syscall-exit tracepoints' handler;
  - everything else: nginx, wrk and the kernel's own work for them (including idle).

Each group is reported as CPU microseconds per request (its share of the samples times
the CPUs, over the rate), medians over reps, and how much each arm adds to untraced.
The machine is saturated, so what an arm adds per request is what the rate loses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_daemon import (  # noqa: E402
    CollectorOnly,
    HookFloor,
    _loaded_watcher,
    _rotated,
    _wrk,
    served_nginx,
    train_nginx,
)

GROUPS = ("sysgram user space", "BPF programs and helpers", "kernel tracepoint path",
          "everything else")

# Kernel symbols of the tracepoint machinery a syscall passes once anything is attached
# to a syscall tracepoint (prefixes). Syscall tracepoints may fault, so newer kernels run
# them under tasks-trace RCU (rcu_read_*_trace*).
TRACEPOINT_PATH = ("bpf_trace_run", "__bpf_trace_", "syscall_trace_enter", "syscall_exit_work",
                   "trace_call_bpf", "__bpf_prog_enter", "__bpf_prog_exit", "perf_syscall_",
                   "perf_trace_", "trace_sys_", "rcu_read_unlock_trace", "rcu_read_lock_trace")
# What BPF programs run: the programs themselves (bpf_prog_*) and the helpers, maps and
# rings they use.
BPF_WORK = ("bpf_", "__bpf_ringbuf", "__htab_", "htab_", "lookup_nulls_elem_raw",
            "copy_from_user_nofault", "copy_from_kernel_nofault", "strncpy_from_user_nofault",
            "pcpu_freelist_", "__pcpu_freelist_")
NOT_BPF_WORK = ("bpf_lsm_", "bpf_trace_run")      # the host's LSM hooks; the dispatch


def group_of(comm: str, symbol: str) -> str:
    """The group one sample belongs to, from its command and its `[k] name` symbol."""
    if comm.startswith(("python", "sysgram")):
        return GROUPS[0]
    kernel = symbol.startswith("[k] ")
    name = symbol[4:] if kernel or symbol.startswith("[.] ") else symbol
    if kernel and name.startswith(TRACEPOINT_PATH):
        return GROUPS[2]
    if kernel and name.startswith(BPF_WORK) and not name.startswith(NOT_BPF_WORK):
        return GROUPS[1]
    return GROUPS[3]


def parse_report(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """Samples per group, and per kernel symbol of "everything else", from
    `perf report -q -n -t ';' --sort comm,sym` output."""
    samples = dict.fromkeys(GROUPS, 0)
    others: dict[str, int] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(";")]
        if len(fields) != 4 or not fields[1].isdigit():
            continue
        group, n = group_of(fields[2], fields[3]), int(fields[1])
        samples[group] += n
        if group == GROUPS[3] and fields[3].startswith("[k] "):
            others[fields[3][4:]] = others.get(fields[3][4:], 0) + n
    return samples, others


def profiled(measure, seconds: int, out: Path) -> tuple[float, tuple[dict, dict]]:
    """`measure()` (a wrk run of `seconds`) while perf samples every CPU: its rate and
    `parse_report`'s samples."""
    perf = subprocess.Popen(["perf", "record", "-a", "-F", "999", "-q", "-o", str(out),
                             "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rate = measure()
    finally:
        perf.wait(timeout=seconds + 60)
    report = subprocess.run(["perf", "report", "-i", str(out), "--stdio", "--no-children",
                             "--sort", "comm,sym", "-g", "none", "-q", "-n", "-t", ";"],
                            check=True, capture_output=True, text=True).stdout
    out.unlink()
    return rate, parse_report(report)


def us_per_request(rate: float, samples: dict[str, int], total: int) -> dict[str, float]:
    """CPU microseconds per request of each key: its share of all CPUs over the rate."""
    cpus = os.cpu_count() or 1
    return {key: 1e6 * cpus * n / max(total, 1) / rate for key, n in samples.items()}


def _ensure_perf() -> None:
    if shutil.which("perf") is None:
        print("installing linux-perf with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "linux-perf"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL, check=False)
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed; install linux-perf (Debian) or "
                         "linux-tools-$(uname -r) (Ubuntu).")


def run(reps: int, seconds: int) -> dict:
    _ensure_perf()
    per_arm: dict[str, list[dict[str, float]]] = {}
    symbols: dict[str, list[dict[str, float]]] = {}     # "everything else", by symbol
    with tempfile.TemporaryDirectory(prefix="sgb-split-") as tmp, served_nginx() as port:
        work = Path(tmp)                                 # 0700: the store, perf's data
        store = work / "nginx-store"
        train_nginx(port, store)

        def wrk() -> float:
            return _wrk(port, seconds)

        def arm(name: str, start=None, floor: HookFloor | None = None):
            def measure() -> float:
                proc = start() if start else None
                try:
                    rate, (samples, others) = profiled(
                        (lambda: floor.run(wrk)) if floor else wrk, seconds,
                        work / f"{name}.data")
                finally:
                    if proc:
                        proc.stop()
                total = sum(samples.values())
                per_arm.setdefault(name, []).append(
                    {"rate": rate, **us_per_request(rate, samples, total)})
                symbols.setdefault(name, []).append(us_per_request(rate, others, total))
                return rate
            return measure

        with HookFloor() as floor:
            _rotated(reps, {
                "untraced": arm("untraced"),
                "hook_floor": arm("hook_floor", floor=floor),
                "collected": arm("collected", lambda: CollectorOnly("nginx")),
                "watched": arm("watched", lambda: _loaded_watcher(store)),
            })
    for runs in per_arm.values():     # each arm ran once per rep: ratios rep by rep
        for r, untraced in zip(runs, per_arm["untraced"], strict=True):
            r["ratio"] = r["rate"] / untraced["rate"]
    return {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            | {"runs": runs, "grown": _grown(symbols[name], symbols["untraced"])}
            for name, runs in per_arm.items()}


def _grown(arm: list[dict[str, float]], untraced: list[dict[str, float]],
           top: int = 5) -> list[tuple[str, float]]:
    """The kernel symbols of "everything else" that grew most against untraced: median
    CPU µs per request added, over reps."""
    names = set().union(*arm, *untraced)
    added = {s: statistics.median(a.get(s, 0.0) - u.get(s, 0.0)
                                  for a, u in zip(arm, untraced, strict=True)) for s in names}
    return sorted(added.items(), key=lambda kv: -kv[1])[:top]


def report(result: dict) -> str:
    base = result["untraced"]
    lines = [f"{'arm':<11} {'req/s':>8} {'of untraced':>11}  "
             + "  ".join(f"{g:>26}" for g in GROUPS) + "  (CPU µs per request; +added)"]
    for name, r in result.items():
        cells = []
        for g in GROUPS:
            added = "" if name == "untraced" else f" ({r[g] - base[g]:+.2f})"
            cells.append(f"{r[g]:>17.2f}{added:>9}")
        lines.append(f"{name:<11} {r['rate']:>8,.0f} {100 * r['ratio']:>10.1f}%  "
                     + "  ".join(cells))
    for name, r in result.items():
        if name != "untraced":
            grown = ", ".join(f"{s} {us:+.2f}" for s, us in r["grown"])
            lines.append(f"  {name}, most grown in everything else (µs/request): {grown}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.reps, args.seconds)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
