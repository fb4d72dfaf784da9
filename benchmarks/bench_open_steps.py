"""Where a folded open's kernel time goes: a bare sys_enter program, one step added at a time.

usage: .venv/bin/python benchmarks/bench_open_steps.py [--reps 5] [--opens 200000] [--json]
Needs root and bcc. Each step is its own small program on raw_syscalls:sys_enter that
does what sysgram's `touch_open` (bpf/touched.bpf.c) does, up to that step, for the
openat() calls of one process (`tests/workloads/openloop.c`, 40-byte path):
  0 the filter alone (this process, openat)   1 + read the six argument registers
  2 + look up the per-CPU scratch record       3 + zero its 256-byte path
  4 + read the path from user memory           5 + read the clock
  6 + look the fold table up                   7 + compare the whole path
Reported: the kernel's bpf_stats run time per open (the program's total over the loop,
divided by the opens; the loop's close() calls and other processes' syscalls only pass
the filter), medians of --reps, steps interleaved rep by rep. A step's cost is the
difference from the step before. Not sysgram's program: its steps, in isolation, to see
which one is worth removing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_prog_time import bpf_stats_on, run_time  # noqa: E402

STEPS = ["filter", "argument registers", "scratch record", "zero the path",
         "read the path (user memory)", "clock", "fold table lookup", "compare the path"]

PROGRAM = r"""
#include <linux/ptrace.h>
struct rec { u64 ts; u32 tid, tgid; u64 a0, a1; u32 flags, pad; char path[256]; };
struct rkey { u32 tid, mix; };
BPF_PERCPU_ARRAY(scratch, struct rec, 1);
BPF_TABLE("lru_hash", struct rkey, struct rec, recent, 8192);
BPF_PERCPU_ARRAY(repeats, u64, 1);

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((pid_tgid >> 32) != TGID || ctx->args[1] != NR_OPENAT)
        return 0;
#if STEP >= 1
    u64 block[8] = {};                      /* r10 r9 r8 ax cx dx si di, as sysgram reads them */
    bpf_probe_read_kernel(block, sizeof(block),
                          (void *)(ctx->args[0] + offsetof(struct pt_regs, r10)));
    u64 path = block[6];
#endif
#if STEP >= 2
    u32 zero = 0;
    struct rec *r = scratch.lookup(&zero);
    if (!r)
        return 0;
#endif
#if STEP >= 3
    u64 *w = (u64 *)r->path;
#pragma unroll
    for (int i = 0; i < 32; i++)
        w[i] = 0;
#endif
#if STEP >= 4
    bpf_probe_read_user_str(r->path, sizeof(r->path), (void *)path);
#endif
#if STEP >= 5
    r->ts = bpf_ktime_get_ns();
#endif
#if STEP >= 6
    struct rkey key = {.tid = (u32)pid_tgid, .mix = (u32)((w[0] * 0x9E3779B97F4A7C15ull) >> 32)};
    struct rec *last = recent.lookup(&key);
    if (!last) {
        recent.update(&key, r);
        return 0;
    }
#endif
#if STEP >= 7
    u64 diff = 0;
#pragma unroll
    for (int i = 0; i < 32; i++)
        diff |= ((u64 *)last->path)[i] ^ w[i];
    if (diff == 0) {
        u64 *n = repeats.lookup(&zero);
        if (n)
            (*n)++;
    }
#endif
    return 0;
}
"""


def measure(reps: int, opens: int, work: Path) -> dict:
    from bcc import BPF

    from sysgram.syscalls import table

    syscalls = table()
    bpf_nr, openat_nr = syscalls.number("bpf"), syscalls.number("openat")
    loop = work / "sgos_open"
    subprocess.run(["gcc", "-O2", "-o", str(loop), str(ROOT / "tests/workloads/openloop.c")],
                   check=True)
    path = work / ("p" * 40)
    path.write_text("x")
    per_open: dict[int, list[float]] = {step: [] for step in range(len(STEPS))}
    for _ in range(reps):
        for step in per_open:
            # The loop waits on stdin, so the program filters on its pid before it opens.
            proc = subprocess.Popen(["/bin/sh", "-c", f'read go; exec "{loop}" {opens} "{path}"'],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            bpf = BPF(text=PROGRAM, cflags=[f"-DTGID={proc.pid}", f"-DNR_OPENAT={openat_nr}",
                                            f"-DSTEP={step}"])
            try:
                fd = bpf.funcs[b"raw_tracepoint__sys_enter"].fd
                t0, _ = run_time(fd, bpf_nr)
                proc.communicate(b"go\n", timeout=120)
                t1, _ = run_time(fd, bpf_nr)
            finally:
                bpf.cleanup()
            per_open[step].append((t1 - t0) / opens)
    return {"ns_per_open": {STEPS[s]: statistics.median(v) for s, v in per_open.items()},
            "runs": {STEPS[s]: [round(x, 1) for x in v] for s, v in per_open.items()}}


def report(r: dict) -> str:
    lines, before = [], None
    for name, ns in r["ns_per_open"].items():
        step = "" if before is None else f"  ({ns - before:+.0f})"
        lines.append(f"{name:>28}: {ns:6.1f} ns per open{step}")
        before = ns
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--opens", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with bpf_stats_on(), tempfile.TemporaryDirectory(prefix="sgb-opensteps-") as tmp:
        result = measure(args.reps, args.opens, Path(tmp))
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
