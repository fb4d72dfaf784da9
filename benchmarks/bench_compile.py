"""What bcc's compile of the kernel program costs: the critical path to `attached`.

usage: .venv/bin/python benchmarks/bench_compile.py [--reps 5] [--tree TREE ...] [--json]
Needs root and bcc. For each tree (default: this one; `--tree` takes other checkouts, for
example a git worktree of an older commit), in a fresh interpreter: the median time to
compile, load and attach sysgram's program (`sysgram.bpf.loader`), and the BPF
instructions of its `sys_enter` program. Then, for comparison, an empty program with the
same flags, and the same with `#include <linux/ptrace.h>` (the kernel header tree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sysgram.commands.doctor import TRIVIAL_PROGRAM as EMPTY  # noqa: E402

# Run in a child with PYTHONPATH set to the tree measured, so its sysgram is the one loaded.
_CHILD = """
import json, statistics, sys, time
from bcc import BPF
from sysgram.bpf import loader
reps, extra, empty = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
flags = loader.program_flags()

def timed(make):
    times, out = [], None
    for _ in range(reps):
        start = time.monotonic()
        b = make()
        times.append(time.monotonic() - start)
        if out is None:
            out = b
        else:
            b.cleanup()
    return statistics.median(times), times, out

result = {}
median, times, prog = timed(lambda: loader._compile(flags))
result["program_s"], result["program_runs"] = median, times
result["sys_enter_insns"] = len(prog.dump_func(b"raw_tracepoint__sys_enter")) // 8
prog.cleanup()
if extra:
    for name, text in (("empty_s", empty),
                       ("empty_ptrace_h_s", "#include <linux/ptrace.h>\\n" + empty)):
        median, _, b = timed(lambda: BPF(text=text.encode(), cflags=flags))
        b.cleanup()
        result[name] = median
print(json.dumps(result))
"""


def measure(tree: Path, reps: int, extra: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(reps), "1" if extra else "0", EMPTY],
                         env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tree", type=Path, action="append", default=None,
                        help="a sysgram checkout to measure (repeatable; default: this one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    results = {str(t): measure(t, args.reps, extra=i == 0) for i, t in enumerate(trees)}
    if args.json:
        print(json.dumps(results))
        return 0
    for tree, r in results.items():
        print(f"{tree}: compile, load and attach {r['program_s']:.2f} s (median of "
              f"{args.reps}), sys_enter {r['sys_enter_insns']:,} BPF instructions")
        if "empty_s" in r:
            print(f"  an empty program, same flags: {r['empty_s']:.2f} s; with "
                  f"#include <linux/ptrace.h>: {r['empty_ptrace_h_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
