"""Collector overhead and throughput, measured in one run against an untraced baseline.

usage: .venv/bin/python benchmarks/bench_collector.py [--reps 5] [--calls 2000000]
Needs root and bcc. Reports (medians of --reps repetitions of a tight getppid() loop):
  - slowdown of the loop while traced (goal <= 1.6x, ~100 ns per traced syscall)
  - delivered / generated events at full rate (goal: all, at >= 3 M events/s)
  - user-space CPU of the collector per event (goal <= 25 ns; getrusage of its process)
  - extra cost per syscall of an untargeted process (goal <= 90 ns)
  - time from `sysgram record` start to its `attached` line (goal <= 1 s)
The collector runs in its own process (this file with --serve) so its CPU is its own;
its syscall hook is taken off for the baseline runs, interleaved with the traced ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN_SOURCE = ROOT / "tests" / "workloads" / "spin.c"
GOALS = {"traced_ratio": 1.6, "cpu_ns_per_event": 25.0, "untargeted_extra_ns": 90.0,
         "attach_s": 1.0, "rate_meps": 3.0}


def serve(comm: str) -> None:
    """Collector process driven by lines on stdin; answers each with one JSON line.

    on / off: attach / detach the syscall hook; mark: CPU seconds and events so far;
    stop: final counts and collector statistics.
    """
    import queue
    import threading

    import numpy as np

    from sysgram.collector import Collector, TargetSpec, ThreadEvents
    from sysgram.syscalls import table

    getppid = table().number("getppid")
    counts = {"events": 0, "getppid": 0}
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin],
                     daemon=True).start()

    def take(items) -> None:
        for item in items:
            if isinstance(item, ThreadEvents):
                counts["events"] += len(item.ids)
                counts["getppid"] += int(np.count_nonzero(item.ids == getppid))

    def answer(payload: dict) -> None:
        print(json.dumps(payload), flush=True)

    with Collector(TargetSpec(comm)) as collector:
        answer({"attached": True})
        while True:
            take(collector.poll(0.05).items)
            try:
                command = commands.get_nowait()
            except queue.Empty:
                continue
            if command in ("on", "off"):
                collector.program.set_syscall_hook(command == "on")
                answer({"hook": command})
            elif command == "mark":
                answer({"cpu_s": _cpu_seconds(), **counts})
            elif command == "stop":
                break
        collector.stop()
        take(collector.poll(0).items)
        answer({**counts, "stats": collector.stats().as_dict()})


class CollectorProcess:
    """A benchmark script's `--serve COMM` collector, spoken to over stdin/stdout.

    By default this script in this tree; `script` and `tree` run another (bench_touched.py
    serves its own, and times another checkout's program beside this one's).
    """

    def __init__(self, comm: str, script: Path | None = None, tree: Path = ROOT) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen([sys.executable, str(script or __file__), "--serve", comm],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=tree, env=env)
        if "attached" not in self._read():
            raise SystemExit(f"the collector of {tree} did not attach; run `sysgram doctor`.")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the collector process died; run `sysgram doctor`.")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> dict:
        result = self.ask("stop")
        self.proc.wait(timeout=30)
        return result


def drained(collector: CollectorProcess, command: str = "mark", counter: str = "events") -> dict:
    """Wait until the collector delivers nothing new (two answers 0.15 s apart agree)."""
    last = collector.ask(command)
    while True:
        time.sleep(0.15)
        now = collector.ask(command)
        if now[counter] == last[counter]:
            return now
        last = now


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The measured loops run on the last CPU, every one of them: costs of a few tens of ns
# move with the CPU (and its caches) a loop lands on.
LOOP_CPU = max(os.sched_getaffinity(0))


def spin(binary: Path, calls: int) -> tuple[float, float]:
    """(wall, thread CPU) ns per getppid() call of one run of the spin workload.

    The CPU time is what each call cost the looping thread itself (the BPF program runs
    in its context), so it stays meaningful on a machine other people are loading too.
    """
    out = subprocess.run([str(binary), str(calls)], check=True, capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {LOOP_CPU}))
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


EMPTY_HOOK = """
import sys
from bcc import BPF
bpf = BPF(text="int empty(void *ctx) { return 0; }")
fn = bpf.load_func(b"empty", BPF.RAW_TRACEPOINT)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "on":
        bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"empty")
    else:
        bpf.detach_raw_tracepoint(tp=b"sys_enter")
    print("ok", flush=True)
"""


class EmptyHook:
    """An empty program on raw_syscalls:sys_enter: the floor every hooked syscall pays."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", EMPTY_HOOK], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def set(self, on: bool) -> None:
        self.proc.stdin.write("on\n" if on else "off\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def bcc_floor_s() -> float:
    """Seconds bcc takes to compile and load a trivial program here (the attach floor)."""
    code = ("import time; t = time.monotonic(); from bcc import BPF; "
            "BPF(text='RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }'); "
            "print(time.monotonic() - t)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout)


def time_to_attached(comm: str, out_dir: Path) -> float:
    started = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "sysgram"), "record", "--proc", comm,
                             "--duration", "0.2s", "--out", str(out_dir)],
                            stderr=subprocess.PIPE, text=True)
    elapsed = None
    for line in proc.stderr:
        if line.startswith("attached") and elapsed is None:
            elapsed = time.monotonic() - started
    proc.wait()
    if elapsed is None:
        raise SystemExit("`sysgram record` never printed its attached line.")
    return elapsed


def measure(reps: int, calls: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sgbench-"))
    try:
        compiled = work / "spin"
        subprocess.run(["gcc", "-O2", "-o", str(compiled), str(SPIN_SOURCE)], check=True)
        target, other = work / "sgb_target", work / "sgb_other"
        shutil.copy2(compiled, target)
        shutil.copy2(compiled, other)

        # Interleave the phases (hook off / on, rep by rep) so a load that drifts while
        # others use the machine hits baseline and traced runs alike.
        collector = CollectorProcess(target.name)
        empty = EmptyHook()
        base, traced, untargeted, hook_floor = [], [], [], []
        cpu_s = events = 0.0
        for _ in range(reps):
            collector.ask("off")
            base += [spin(target, calls), spin(other, calls)]
            empty.set(True)
            hook_floor.append(spin(other, calls))
            empty.set(False)
            collector.ask("on")
            before = collector.ask("mark")
            traced.append(spin(target, calls))
            after = drained(collector)       # the collector is idle again: it must not
            # share the caches with the untargeted loop while it decodes 2 M events
            cpu_s += after["cpu_s"] - before["cpu_s"]
            events += after["events"] - before["events"]
            untargeted.append(spin(other, calls))
        # Full rate: one traced loop per CPU at once, every event must still arrive.
        before = collector.ask("mark")
        burst_started = time.monotonic()
        loops = [subprocess.Popen([str(target), str(calls)], stdout=subprocess.DEVNULL)
                 for _ in range(os.cpu_count() or 1)]
        for loop in loops:
            loop.wait()
        burst_rate = len(loops) * calls / (time.monotonic() - burst_started) / 1e6
        time.sleep(0.1)
        after = collector.ask("mark")
        burst_cpu_ns = (after["cpu_s"] - before["cpu_s"]) * 1e9 / max(
            after["events"] - before["events"], 1)
        idle0 = collector.ask("mark")
        time.sleep(1.0)
        idle_cpu = collector.ask("mark")["cpu_s"] - idle0["cpu_s"]
        final = collector.stop()
        empty.close()

        attach = [time_to_attached("sgb_none", work / f"rec{i}") for i in range(3)]
        floor = [bcc_floor_s() for _ in range(3)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median_cpu(runs: list[tuple[float, float]]) -> float:
        return statistics.median(cpu for _, cpu in runs)

    base_ns, traced_ns, other_ns, floor_ns = (median_cpu(x) for x in
                                              (base, traced, untargeted, hook_floor))
    base_wall, traced_wall = (statistics.median(w for w, _ in x) for x in (base, traced))
    generated = reps * calls + (os.cpu_count() or 1) * calls
    return {
        "baseline_ns": base_ns,
        "traced_ns": traced_ns,
        "traced_ratio": traced_ns / base_ns,
        "traced_extra_ns": traced_ns - base_ns,
        "rate_meps": 1e3 / traced_ns,
        "burst_meps": burst_rate,
        "burst_cpu_ns_per_event": burst_cpu_ns,
        "baseline_wall_ns": base_wall,
        "traced_wall_ns": traced_wall,
        "traced_wall_ratio": traced_wall / base_wall,
        "bcc_floor_s": statistics.median(floor),
        "load_avg": os.getloadavg()[0],
        "generated": generated,
        "delivered": final["getppid"],
        "delivered_ratio": final["getppid"] / generated,
        "lost": final["stats"]["lost"],
        "cpu_ns_per_event": cpu_s * 1e9 / max(events, 1),
        "idle_cpu_ms_per_s": idle_cpu * 1e3,
        "untargeted_ns": other_ns,
        "untargeted_extra_ns": other_ns - base_ns,
        "empty_hook_extra_ns": floor_ns - base_ns,
        "attach_s": statistics.median(attach),
        "reps": reps,
        "calls": calls,
    }


def report(r: dict) -> str:
    def goal(ok: bool) -> str:
        return "meets goal" if ok else "MISSES goal"

    return "\n".join([
        f"load average during the run: {r['load_avg']:.1f} on {os.cpu_count()} CPUs; per-call "
        "costs are the looping thread's CPU time (wall time in brackets)",
        f"getppid loop untraced:   {r['baseline_ns']:.0f} ns/call [{r['baseline_wall_ns']:.0f}] "
        f"(medians of {r['reps']} x {r['calls']:,} calls, interleaved with the traced runs)",
        f"traced:                  {r['traced_ns']:.0f} ns/call [{r['traced_wall_ns']:.0f}] = "
        f"{r['traced_ratio']:.2f}x [{r['traced_wall_ratio']:.2f}x] "
        f"(+{r['traced_extra_ns']:.0f} ns)  {goal(r['traced_ratio'] <= GOALS['traced_ratio'])}",
        f"delivered / generated:   {r['delivered']:,} / {r['generated']:,} = "
        f"{r['delivered_ratio']:.4f}, {r['lost']} lost; one loop per CPU at once generated "
        f"{r['burst_meps']:.2f} M events/s (wall)  "
        f"{goal(r['delivered'] == r['generated'] and r['burst_meps'] >= GOALS['rate_meps'])}",
        f"collector CPU per event: {r['cpu_ns_per_event']:.1f} ns over the traced phase  "
        f"{goal(r['cpu_ns_per_event'] <= GOALS['cpu_ns_per_event'])} "
        f"(one loop per CPU: {r['burst_cpu_ns_per_event']:.1f} ns; idle: "
        f"{r['idle_cpu_ms_per_s']:.0f} ms CPU per s)",
        f"untargeted process:      {r['untargeted_ns']:.0f} ns/call "
        f"(+{r['untargeted_extra_ns']:.0f} ns per syscall)  "
        f"{goal(r['untargeted_extra_ns'] <= GOALS['untargeted_extra_ns'])} (an empty program "
        f"on the same hook: +{r['empty_hook_extra_ns']:.0f} ns)",
        f"start to attached:       {r['attach_s']:.2f} s (median of 3)  "
        f"{goal(r['attach_s'] <= GOALS['attach_s'])} (bcc alone compiling an empty program "
        f"here: {r['bcc_floor_s']:.2f} s)",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--serve", metavar="COMM", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if os.geteuid() != 0:
        print("bench_collector: needs root (BPF); skipped.", file=sys.stderr)
        return 0
    results = measure(args.reps, args.calls)
    print(report(results))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
