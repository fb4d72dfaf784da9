"""`sysgram watch`: alert latency, throughput while scoring, memory through a fork storm.

usage: .venv/bin/python benchmarks/bench_watch.py [--attacks 15] [--skip-kernel]
Reports, all measured in one run:
  - engine (no kernel): user CPU per syscall of WatchEngine with the default profile
    (windowing + batched scoring + alerts), and the syscalls/s that makes on one core
    (goal: >= 1 M/s on <= 1 core);
  - latency (kernel): `sysgram watch --json` on the victim workload trained with the real
    `sysgram train`; time from the attack's first syscall (CLOCK_MONOTONIC stamped by the
    victim) to the alert line read from watch's stdout (goal: p99 <= 1 s);
  - live throughput (kernel): `sysgram watch` on a tight getppid() loop; syscalls/s
    delivered and scored, user+system CPU of the watch process in cores, events lost;
  - fork storm (kernel): RSS of the `sysgram watch` process through two storms of 10,000
    short-lived processes, and its per-thread state afterwards (summary line).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "tests" / "workloads"
SYSGRAM = [sys.executable, "-m", "sysgram"]


def build(source: str, name: str, tmp: Path) -> Path:
    out = tmp / name
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(out), str(WORKLOADS / f"{source}.c")],
                   check=True)
    return out


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}"[:15]


# -- engine alone -------------------------------------------------------------------------
class _NullProfile:
    """Scores every window 0: isolates the engine's own cost (windowing, batching)."""

    window_, stride_, threshold_, arch_ = 64, 16, 1.0, "x86_64"
    thread_threshold_, require_novelty = None, True

    def score_windows(self, seqs) -> np.ndarray:
        return np.zeros(len(seqs))

    def novelty(self, seqs):
        from sysgram.models.policy import Novelty

        return Novelty(np.zeros(len(seqs), dtype=np.int64), np.zeros(len(seqs), dtype=bool))

    def new_syscalls(self, seqs) -> list[list[int]]:
        return [[] for _ in range(len(seqs))]


def bench_engine(seconds_of_traffic: float = 4.0, null: bool = False) -> dict:
    from sysgram.collector.items import ThreadEvents, ThreadStart
    from sysgram.features import Sequences
    from sysgram.models.profile import Profile
    from sysgram.syscalls import table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine

    rng = np.random.default_rng(0)
    alphabet = np.array([0, 1, 3, 5, 8, 9, 10, 11, 17, 18, 42, 44, 45, 202, 232, 257, 262])

    def stream(n: int) -> np.ndarray:
        # A Markov chain: each call mostly followed by one of two successors.
        nxt = rng.integers(0, len(alphabet), (len(alphabet), 2))
        state, out = 0, np.empty(n, dtype=np.uint16)
        choices = rng.integers(0, 2, n)
        jumps = rng.random(n) < 0.02
        for k in range(n):  # benchmark data, built once
            state = int(rng.integers(len(alphabet))) if jumps[k] else int(nxt[state, choices[k]])
            out[k] = alphabet[state]
        return out

    profile = (_NullProfile() if null
               else Profile().fit(Sequences.from_list([stream(40_000) for _ in range(8)])))
    engine = WatchEngine(ThresholdScorer(profile), WatchConfig("bench", warmup_s=0), table())
    # 1 M syscalls/s from 8 threads, drained every 20 ms in runs of 250 calls.
    per_drain, run = 20_000, 250
    traffic = stream(200_000)
    drains = []
    for d in range(int(seconds_of_traffic / 0.02)):
        items = [ThreadEvents(100 + (k // run) % 8, 100, traffic[(d * per_drain + k) % 190_000:]
                              [:run], d * 20_000_000) for k in range(0, per_drain, run)]
        drains.append(items)
    engine.ingest([ThreadStart(100 + t, 100, 1, "bench", None, None, 0) for t in range(8)])
    started = time.process_time()
    wall = time.perf_counter()
    for items in drains:
        engine.ingest(items)
    cpu = time.process_time() - started
    wall = time.perf_counter() - wall
    events = engine.stats.events
    return {"events": events, "windows": engine.stats.windows_scored, "cpu_s": cpu,
            "cpu_ns_per_event": cpu / events * 1e9, "events_per_core_s": events / cpu,
            "wall_s": wall, "anomalous_windows": engine.stats.anomalous_windows}


# -- live ---------------------------------------------------------------------------------
class Lines:
    def __init__(self, stream) -> None:
        self.q: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in iter(stream.readline, ""):
                self.q.put((time.monotonic(), line.rstrip("\n")))
            self.q.put((time.monotonic(), None))

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _, line = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return False
            if line == text:
                return True
        return False

    def all(self) -> list[tuple[float, str]]:
        out = []
        while not self.q.empty():
            at, line = self.q.get_nowait()
            if line is not None:
                out.append((at, line))
        return out


def train(comm: str, store: Path, duration: str) -> None:
    done = subprocess.run([*SYSGRAM, "train", "--proc", comm, "--duration", duration, "--store",
                           str(store)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sysgram train failed: {done.stderr.strip()[-500:]}")


def start_watch(comm: str, store: Path, *extra: str) -> tuple[subprocess.Popen, Lines, Lines]:
    watch = subprocess.Popen([*SYSGRAM, "watch", "--proc", comm, "--store", str(store), "--json",
                              *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = Lines(watch.stdout), Lines(watch.stderr)
    if not err.wait_for("attached", 30):
        raise SystemExit("sysgram watch did not attach; run `sysgram doctor`.")
    return watch, out, err


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def summary_numbers(err: Lines) -> str:
    return " | ".join(line.strip() for _, line in err.all() if line.startswith("  "))


def bench_latency(tmp: Path, attacks: int) -> dict:
    comm = unique("vict")
    victim_bin = build("victim", comm, tmp)
    store = tmp / "store"
    stamps = tmp / "stamps"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    victim = subprocess.Popen([str(victim_bin), str(server.getsockname()[1]), str(stamps)],
                              stdout=subprocess.DEVNULL)
    try:
        train(comm, store, "20s")
        watch, out, err = start_watch(comm, store, "--aggregate", "1s")
        time.sleep(3)  # past the warm-up
        quiet = len(out.all())
        for _ in range(attacks):
            victim.send_signal(signal.SIGUSR1)
            time.sleep(1.6)  # each attack in its own aggregation period
        time.sleep(1)
        stop(watch)
    finally:
        stop(victim)
        server.close()
    starts = [int(x) / 1e9 for x in stamps.read_text().split()]
    alerts = [(at, json.loads(line)) for at, line in out.all()]
    alerts = [(at, rec) for at, rec in alerts if rec["kind"] == "alert"]
    latencies = []
    for k, t0 in enumerate(starts):
        t1 = starts[k + 1] if k + 1 < len(starts) else float("inf")
        after = [at for at, _ in alerts if t0 <= at < t1]
        latencies.append(after[0] - t0 if after else float("inf"))
    lat = np.array(latencies)
    return {"attacks": len(starts), "detected": int(np.isfinite(lat).sum()),
            "p50_ms": float(np.median(lat) * 1e3), "p99_ms": float(np.quantile(lat, 0.99) * 1e3),
            "max_ms": float(lat.max() * 1e3), "alerts_before_attacks": quiet,
            "summary": summary_numbers(err)}


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_throughput(tmp: Path, seconds: float = 10.0) -> dict:
    comm = unique("spin")
    spin = build("spin", comm, tmp)
    store = tmp / "store"
    loop = subprocess.Popen([str(spin), "100000000000"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        train(comm, store, "5s")
        # No warm-up: every window is scored. CPU is sampled once attached (start-up and
        # profile loading excluded) until just before the duration ends.
        watch, out, err = start_watch(comm, store, "--warmup", "0", "--duration",
                                      f"{seconds + 1}s")
        t0, cpu0 = time.monotonic(), _cpu_of(watch.pid)
        time.sleep(seconds)
        t1, cpu1 = time.monotonic(), _cpu_of(watch.pid)
        watch.wait(timeout=60)
    finally:
        stop(loop)
    text = summary_numbers(err)
    events = int(text.split(" syscalls from")[0].split("|")[-1].replace(",", "").split()[-1])
    rate = events / (seconds + 1)
    cores = (cpu1 - cpu0) / (t1 - t0)
    return {"events": events, "events_per_s": rate, "watch_cpu_cores": cores,
            "cpu_ns_per_event": cores / max(rate, 1) * 1e9, "summary": text}


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_fork_storm(tmp: Path) -> dict:
    from sysgram.features import Sequences
    from sysgram.models.profile import Profile
    from sysgram.models.store import ProfileStore
    from sysgram.models.training import train_on_streams

    comm = unique("storm")
    storm = build("victim_forkstorm", comm, tmp)
    rng = np.random.default_rng(0)
    traces = Sequences.from_list([rng.choice([39, 110, 102, 1, 61, 56], 500) for _ in range(10)])
    ProfileStore(tmp / "store").save(train_on_streams(comm, traces, Profile()))
    watch, out, err = start_watch(comm, tmp / "store", "--warmup", "0")
    rss = {"attached": _rss_mib(watch.pid)}
    peak = rss["attached"]
    for k in (1, 2):
        runner = subprocess.Popen([str(storm), "10000", "64"], stdout=subprocess.DEVNULL)
        while runner.poll() is None:
            peak = max(peak, _rss_mib(watch.pid))
            time.sleep(0.1)
        time.sleep(6)  # drained, and a reap round for exits the kernel could not report
        rss[f"after storm {k}"] = _rss_mib(watch.pid)
    stop(watch)
    return {"rss_mib": rss, "peak_mib": peak, "summary": summary_numbers(err)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", type=int, default=15)
    parser.add_argument("--skip-kernel", action="store_true")
    parser.add_argument("--parts", default="engine,latency,throughput,storm",
                        help="comma-separated subset of engine,latency,throughput,storm")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "engine" in parts:
        report_engine()
    if args.skip_kernel or os.geteuid() != 0 or shutil.which("gcc") is None:
        print("kernel benchmarks skipped (need root, bcc and gcc)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o700)
        if "latency" in parts:
            report_latency(bench_latency(tmp, args.attacks))
        if "throughput" in parts:
            report_throughput(bench_throughput(tmp))
        if "storm" in parts:
            report_storm(bench_fork_storm(tmp))
    return 0


def report_engine() -> None:
    print("engine (no kernel), 1 M syscalls/s from 8 threads, default profile:", flush=True)
    engine = bench_engine()
    print(f"  {engine['events']:,} syscalls, {engine['windows']:,} windows scored: "
          f"{engine['cpu_ns_per_event']:.0f} ns CPU per syscall = "
          f"{engine['events_per_core_s'] / 1e6:.2f} M syscalls/s per core "
          f"(goal >= 1 M/s on <= 1 core)", flush=True)
    own = bench_engine(null=True)
    print(f"  of which the engine itself (windowing, batching; a profile scoring 0): "
          f"{own['cpu_ns_per_event']:.0f} ns per syscall", flush=True)


def report_latency(lat: dict) -> None:
    print(f"latency: {lat['detected']}/{lat['attacks']} attacks alerted; first syscall -> "
          f"alert p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max "
          f"{lat['max_ms']:.0f} ms (goal p99 <= 1000 ms); {lat['alerts_before_attacks']} "
          f"alerts in normal mode before\n  {lat['summary']}", flush=True)


def report_throughput(thr: dict) -> None:
    print(f"live throughput: {thr['events_per_s'] / 1e6:.2f} M syscalls/s traced and scored, "
          f"watch process {thr['watch_cpu_cores']:.2f} cores (user+sys), "
          f"{thr['cpu_ns_per_event']:.0f} ns CPU per syscall\n  {thr['summary']}", flush=True)


def report_storm(storm: dict) -> None:
    rss = ", ".join(f"{k} {v:.0f}" for k, v in storm["rss_mib"].items())
    print(f"fork storms (2 x 10,000 processes): watch RSS MiB: {rss}, peak "
          f"{storm['peak_mib']:.0f}\n  {storm['summary']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
