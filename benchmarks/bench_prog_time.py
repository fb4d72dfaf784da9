"""What sysgram's syscall hook costs per call, as the kernel itself times it (bpf_stats).

usage: .venv/bin/python benchmarks/bench_prog_time.py [--reps 5] [--calls 400000]
           [--tree TREE] [--json]
Needs root and bcc. With `kernel.bpf_stats_enabled` on (switched back off at the end),
the kernel adds up each BPF program's run time and run count. Two loops of targeted
processes run under one collector, rep by rep:
  - getppid(): a call whose arguments are never read (the hook's plain path);
  - open()+close() of one 40-byte path: the open's path is read, and the kernel folds
    repeats of it (the default), or, in a second collector, hands every open over.
Reported: ns per sys_enter run (medians of --reps), and from them ns per open
(2 x the open+close average minus the getppid one, as close takes the plain path).
bpf_stats times each run with two clock reads, so every figure includes ~20-40 ns of
that; compare the figures of one run with each other. `--tree TREE` measures another
sysgram checkout's program the same way (its Collector, its kernel code).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
_RUN_TIME_OFFSET = 192           # in struct bpf_prog_info: run_time_ns, then run_cnt


@contextlib.contextmanager
def bpf_stats_on() -> Iterator[None]:
    """The kernel's per-program run time and count, on while inside (then as before)."""
    before = STATS.read_text().strip()
    STATS.write_text("1")
    try:
        yield
    finally:
        STATS.write_text(before)


def run_time(prog_fd: int, bpf_nr: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) the kernel holds for a loaded program (read with the
    measured tree's own bpf_prog_info call, which it uses for recursion misses)."""
    from sysgram.collector.program import (
        _BPF_OBJ_GET_INFO_BY_FD,
        _LIBC,
        _PROG_INFO_SIZE,
        _InfoAttr,
    )

    buf = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    attr = _InfoAttr(prog_fd, _PROG_INFO_SIZE, ctypes.addressof(buf))
    if _LIBC.syscall(bpf_nr, _BPF_OBJ_GET_INFO_BY_FD, ctypes.byref(attr), ctypes.sizeof(attr)):
        raise SystemExit("BPF_OBJ_GET_INFO_BY_FD failed: run as root.")
    raw = buf.raw[_RUN_TIME_OFFSET:_RUN_TIME_OFFSET + 16]
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


def measure(reps: int, calls: int, work: Path) -> dict:
    from sysgram.collector import Collector, TargetSpec
    from sysgram.syscalls import table

    bpf_nr = table().number("bpf")
    spin, opener = work / "sgpt_spin", work / "sgpt_open"
    for exe, source in ((spin, "spin.c"), (opener, "openloop.c")):
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "tests/workloads" / source)],
                       check=True)
    path = work / ("p" * 40)
    path.write_text("x")
    loops = {"getppid": [str(spin), str(calls)],
             "open_close": [str(opener), str(calls // 2), str(path)]}
    out: dict[str, list[float]] = {"getppid": [], "open_close": [], "open_close_no_fold": []}
    for _ in range(reps):
        for fold, arms in ((1.0, ("getppid", "open_close")), (0.0, ("open_close",))):
            with Collector([TargetSpec(spin.name), TargetSpec(opener.name)],
                           open_repeat_s=fold) as collector:
                fn = collector.program.bpf.funcs[b"raw_tracepoint__sys_enter"]
                for arm in arms:
                    collector.poll(0.1)
                    t0, n0 = run_time(fn.fd, bpf_nr)
                    subprocess.run(loops[arm], check=True, capture_output=True)
                    t1, n1 = run_time(fn.fd, bpf_nr)
                    collector.poll(0.2)          # drain before the next loop
                    out[arm if fold else f"{arm}_no_fold"].append((t1 - t0) / max(n1 - n0, 1))
    med = {f"{k}_ns_per_run": statistics.median(v) for k, v in out.items()}
    for key in ("open_close", "open_close_no_fold"):
        med[f"{key.replace('open_close', 'open')}_ns"] = (
            2 * med[f"{key}_ns_per_run"] - med["getppid_ns_per_run"])
    return med | {"runs": {k: [round(x, 1) for x in v] for k, v in out.items()}}


def report(r: dict) -> str:
    return "\n".join([
        "sys_enter per run (kernel's bpf_stats, medians): "
        f"getppid {r['getppid_ns_per_run']:.1f} ns, "
        f"open+close {r['open_close_ns_per_run']:.1f} ns (repeats folded), "
        f"{r['open_close_no_fold_ns_per_run']:.1f} ns (every open handed over)",
        f"per open: {r['open_ns']:.0f} ns folded, {r['open_no_fold_ns']:.0f} ns handed over",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400_000)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the sysgram checkout whose collector and program to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    with bpf_stats_on(), tempfile.TemporaryDirectory(prefix="sgb-progtime-") as tmp:
        result = measure(args.reps, args.calls, Path(tmp))
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
