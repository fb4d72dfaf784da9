"""Dataset format speed and size: writer, reader, ADFA-LD parse / import / export.

Run: .venv/bin/python benchmarks/bench_datasets.py [--adfa DIR]
Prints one line per measurement (median of a few repeats, all in this one run) and the
goals they are checked against. Short on purpose: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sysgram.datasets import Dataset, DatasetWriter, export_adfa, import_adfa, read_adfa  # noqa: E402

REPEATS = 3
THREADS = 8
FLUSHES = 20  # a 10 s recording at the recorder's 0.5 s flush
IDS_PER_THREAD_PER_FLUSH = 60_000  # 8 threads x 20 x 60k = 9.6 M syscalls


def median_time(fn, repeats: int = REPEATS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def write_recording(path: Path, chunks: list[np.ndarray]) -> tuple[float, float]:
    """(CPU seconds of append + flush, wall seconds of close) for one recording."""
    w = DatasetWriter(path, arch="x86_64", source="record")
    for tid in range(THREADS):
        w.start_thread(1000 + tid, pid=1000, comm="bench")
    cpu = time.process_time()
    for flush in range(FLUSHES):
        for tid in range(THREADS):
            # The collector hands over several runs per thread between flushes.
            for piece in np.array_split(chunks[(flush + tid) % len(chunks)], 6):
                w.append(1000 + tid, piece, ts_ns=flush)
        w.flush()
    cpu = time.process_time() - cpu
    wall = time.perf_counter()
    w.close()  # fsyncs everything once
    return cpu, time.perf_counter() - wall


def bench_recording(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 450, IDS_PER_THREAD_PER_FLUSH).astype(np.uint16) for _ in range(4)]
    total = THREADS * FLUSHES * IDS_PER_THREAD_PER_FLUSH
    runs = [write_recording(tmp / f"rec{i}", chunks) for i in range(REPEATS)]
    cpu_s = statistics.median(r[0] for r in runs)
    close_s = statistics.median(r[1] for r in runs)
    path = tmp / "rec0"
    size = (path / "chunks.log").stat().st_size
    read_s, ds = median_time(lambda: Dataset.open(path))
    assert sum(len(t.ids) for t in ds.threads) == total
    return [
        f"writer append+flush: {total / 1e6:.1f} M syscalls, {cpu_s:.3f} s CPU = "
        f"{cpu_s / total * 1e9:.1f} ns/syscall (goal: small beside the collector's ~17 ns)",
        f"writer close (one fsync of {size / 1e6:.0f} MB): {close_s:.3f} s wall",
        f"size: {size / total:.4f} bytes/syscall (goal: about 2)",
        f"reader: {read_s:.3f} s = {read_s / total * 1e9:.1f} ns/syscall",
    ]


def bench_small_runs(tmp: Path, run_length: int = 100, calls: int = 50_000) -> str:
    """CPU per append() call when the collector hands over short runs (the costly case)."""
    ids = np.arange(run_length, dtype=np.uint16)
    times = []
    for rep in range(REPEATS):
        w = DatasetWriter(tmp / f"small{rep}", arch="x86_64", source="record")
        for tid in range(THREADS):
            w.start_thread(tid, pid=1)
        start = time.process_time()
        for i in range(calls):
            w.append(i % THREADS, ids, ts_ns=i + 1)
        w.flush()
        times.append(time.process_time() - start)
        w.close()
    per_call = statistics.median(times) / calls
    return (f"writer with {run_length}-id runs: {per_call * 1e6:.2f} us CPU per append() = "
            f"{per_call / run_length * 1e9:.1f} ns/syscall (Python call overhead dominates)")


def bench_adfa(src: Path, tmp: Path) -> list[str]:
    parse_s, traces = median_time(lambda: read_adfa(src))
    n = sum(len(t.ids) for t in traces)
    runs = iter(range(REPEATS))
    import_s, _ = median_time(lambda: import_adfa(src, tmp / f"imp{next(runs)}"))
    ds = Dataset.open(tmp / "imp0")
    runs = iter(range(REPEATS))
    export_s, _ = median_time(lambda: export_adfa(ds, tmp / f"exp{next(runs)}"))
    return [
        f"adfa parse: {len(traces)} traces, {n / 1e6:.2f} M syscalls in {parse_s:.3f} s "
        "(goal: well under 1-2 s)",
        f"adfa import (parse + write dataset + reopen): {import_s:.3f} s",
        f"adfa export ({len(traces)} files): {export_s:.3f} s",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared/datasets/adfa-ld-dev"
    default = os.environ.get("SYSGRAM_ADFA_DIR", str(shared))
    parser.add_argument("--adfa", default=default, help="ADFA-LD dev split (skipped if missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = bench_recording(Path(tmp))
        lines.append(bench_small_runs(Path(tmp)))
        if Path(args.adfa).is_dir():
            lines += bench_adfa(Path(args.adfa), Path(tmp))
        else:
            lines.append(f"adfa: skipped ({args.adfa} not found)")
    print(f"datasets benchmark (median of {REPEATS}, one run)")
    for line in lines:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
