"""What reading paths and peers in the kernel costs, against an untraced baseline, one run.

usage: .venv/bin/python benchmarks/bench_touched.py [--reps 5] [--calls 200000]
       [--baseline TREE]   (TREE: a checkout without touched capture, e.g. main before it)
Needs root and bcc. Reports (medians of --reps repetitions, interleaved):
  - an open()+close() loop on a 40-byte path traced with its path, over its untraced
    time (goal <= 2x), and every open delivered (0 lost)
  - the same loop under another name while the target is traced (untargeted: goal, no
    measurable extra cost over the untraced loop)
  - delivered / generated opens: of the tight loops (~1.5 M opens/s, more than the
    Python reader can take: the rest are counted as lost) and of loops paced at rates a
    busy server opens files at (goal: all)
  - with --baseline: the getppid loop (syscalls whose arguments are not read) traced by
    the baseline tree's program and by this one, interleaved (goal: the same within noise)
The collector runs in its own process (this file with --serve); its syscall hook is
taken off for the baseline runs.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "workloads" / "openloop.c"
SPIN = ROOT / "tests" / "workloads" / "spin.c"
GOALS = {"open_ratio": 2.0}
PACED_RATES = (10_000.0, 50_000.0, 200_000.0)   # opens per second
PACED_S = 2.0
PATH_NAME = "p" * 40
LOOP_CPU = max(os.sched_getaffinity(0))

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_collector import CollectorProcess, drained  # noqa: E402


def serve(comm: str) -> None:
    """Collector process: on / off / count / stop lines on stdin, one JSON line each."""
    from sysgram.collector import Collector, TargetSpec, Touched

    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin],
                     daemon=True).start()
    opens = 0

    def count(items) -> int:     # the loop's own opens (not the loader's)
        return sum(1 for i in items if isinstance(i, Touched) and i.kind == "open"
                   and i.path.endswith(PATH_NAME))

    # Every open handed on (no repeat folding): this measures what the pipeline delivers.
    with Collector(TargetSpec(comm), open_repeat_s=0) as collector:
        print(json.dumps({"attached": True}), flush=True)
        while True:
            opens += count(collector.poll(0.05).items)
            try:
                command = commands.get_nowait()
            except queue.Empty:
                continue
            if command in ("on", "off"):
                collector.program.set_syscall_hook(command == "on")
            elif command == "count":
                pass
            elif command == "stop":
                collector.stop()
                opens += count(collector.poll(0).items)
                print(json.dumps({"opens": opens, "stats": collector.stats().as_dict()}),
                      flush=True)
                return
            print(json.dumps({"opens": opens}), flush=True)


def loop(binary: Path, *args: object) -> float:
    """Thread CPU ns per call (or pair) of one run of a workload, pinned to the last CPU."""
    out = subprocess.run([str(binary), *map(str, args)], check=True, capture_output=True,
                         text=True, preexec_fn=lambda: os.sched_setaffinity(0, {LOOP_CPU}))
    return float(out.stdout.split()[1])


def build_pair(work: Path, source: Path, prefix: str) -> tuple[Path, Path]:
    """The workload compiled, as two copies: a target name and another (untargeted)."""
    compiled = work / source.stem
    subprocess.run(["gcc", "-O2", "-o", str(compiled), str(source)], check=True)
    target, other = work / f"{prefix}_target", work / f"{prefix}_other"
    shutil.copy2(compiled, target)
    shutil.copy2(compiled, other)
    return target, other


def opens_drained(collector: CollectorProcess) -> dict:
    """Wait until the collector has delivered every open of the loop."""
    return drained(collector, "count", "opens")


def getppid_ab(reps: int, calls: int, baseline: Path) -> dict:
    """The getppid loop traced by the baseline tree's program and by this one, interleaved.

    Both collectors are loaded at once; only one has its syscall hook on at a time, so
    each traced run pays exactly one program, and the machine's drifting load hits both.
    """
    work = Path(tempfile.mkdtemp(prefix="sgbench-ab-"))
    try:
        target, other = build_pair(work, SPIN, "sgab")
        trees = {name: CollectorProcess(target.name, tree / "benchmarks" / "bench_collector.py",
                                        tree)
                 for name, tree in (("baseline", baseline), ("this", ROOT))}
        for collector in trees.values():
            collector.ask("off")
        runs: dict[str, list[float]] = {name: [] for name in (
            "untraced", "baseline", "this", "baseline_untargeted", "this_untargeted")}
        for _ in range(reps):
            runs["untraced"].append(loop(target, calls))
            for name, collector in trees.items():
                collector.ask("on")
                runs[name].append(loop(target, calls))
                collector.ask("mark")                 # drained enough: its rounds are short
                runs[f"{name}_untargeted"].append(loop(other, calls))
                collector.ask("off")
        lost = {name: c.stop()["stats"]["lost"] for name, c in trees.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(v) for name, v in runs.items()}
    return {"getppid_ns": medians, "lost": lost,
            "baseline_ratio": medians["baseline"] / medians["untraced"],
            "this_ratio": medians["this"] / medians["untraced"]}


def measure(reps: int, calls: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sgbench-touched-"))
    try:
        target, other = build_pair(work, SOURCE, "sgt")
        path = work / PATH_NAME
        path.write_text("x")
        collector = CollectorProcess(target.name, Path(__file__).resolve(), ROOT)
        base, traced, untargeted = [], [], []
        for _ in range(reps):
            collector.ask("off")
            base.append(loop(other, calls, path))
            collector.ask("on")
            traced.append(loop(target, calls, path))
            opens_drained(collector)        # the untargeted loop must not share the CPU with it
            untargeted.append(loop(other, calls, path))
        tight = opens_drained(collector)["opens"]
        # Paced: the rates a busy server opens files at; every record must arrive.
        paced = {}
        for rate in PACED_RATES:
            before = opens_drained(collector)["opens"]
            loop(target, int(rate * PACED_S), path, rate)
            paced[rate] = opens_drained(collector)["opens"] - before
        final = collector.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_ns, traced_ns, other_ns = (statistics.median(x) for x in (base, traced, untargeted))
    return {
        "baseline_ns": base_ns, "traced_ns": traced_ns, "open_ratio": traced_ns / base_ns,
        "untargeted_ns": other_ns, "untargeted_extra_ns": other_ns - base_ns,
        "opens": reps * calls, "delivered": tight,
        "paced": {str(int(rate)): {"opens": int(rate * PACED_S), "delivered": n}
                  for rate, n in paced.items()},
        "lost_touched": final["stats"]["lost_touched"], "lost": final["stats"]["lost"],
        "load_avg": os.getloadavg()[0], "reps": reps, "calls": calls,
    }


def report(r: dict) -> str:
    ok = r["open_ratio"] <= GOALS["open_ratio"]
    return "\n".join([
        f"load average during the run: {r['load_avg']:.1f} on {os.cpu_count()} CPUs; costs are "
        f"the looping thread's CPU time, medians of {r['reps']} x {r['calls']:,} pairs",
        f"open+close untraced:     {r['baseline_ns']:.0f} ns/pair",
        f"traced with paths:       {r['traced_ns']:.0f} ns/pair = {r['open_ratio']:.2f}x  "
        f"{'meets goal' if ok else 'MISSES goal'} (<= {GOALS['open_ratio']}x)",
        f"opens delivered:         {r['delivered']:,} / {r['opens']:,} of the tight loops "
        f"(~{1e9 / r['traced_ns'] / 1e6:.1f} M opens/s); {r['lost_touched']:,} touched records "
        f"lost in all, {r['lost']} syscall events lost",
        *(f"paced {int(rate):>7,} opens/s: {p['delivered']:,} / {p['opens']:,} delivered"
          for rate, p in ((float(k), v) for k, v in r["paced"].items())),
        f"untargeted process:      {r['untargeted_ns']:.0f} ns/pair "
        f"({r['untargeted_extra_ns']:+.0f} ns over untraced)",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--serve", metavar="COMM", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also time the getppid loop traced by TREE's program (a checkout "
                             "without touched capture) against this one's, interleaved")
    parser.add_argument("--getppid-calls", type=int, default=2_000_000)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if os.geteuid() != 0:
        print("bench_touched: needs root (BPF); skipped.", file=sys.stderr)
        return 0
    results = measure(args.reps, args.calls)
    print(report(results))
    if args.baseline:
        ab = getppid_ab(args.reps, args.getppid_calls, args.baseline.resolve())
        results["getppid_ab"] = ab
        ns = ab["getppid_ns"]
        print(f"getppid loop (no arguments read), medians of {args.reps} x "
              f"{args.getppid_calls:,} calls, interleaved: untraced {ns['untraced']:.0f} ns, "
              f"traced by {args.baseline} {ns['baseline']:.0f} ns ({ab['baseline_ratio']:.2f}x), "
              f"by this tree {ns['this']:.0f} ns ({ab['this_ratio']:.2f}x); lost {ab['lost']}; "
              f"an untargeted loop meanwhile: {ns['baseline_untargeted']:.0f} ns under the "
              f"baseline's hook, {ns['this_untargeted']:.0f} ns under this one's")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
