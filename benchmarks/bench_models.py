"""Speed of features and profiles on one core: the issue-3 goals, measured in one run.

    .venv/bin/python benchmarks/bench_models.py [--fit-windows 1000000] [--repeat 3] [--quick]

Goals: featurisation >= 1 M syscalls/s; fit on 1 M windows <= 60 s; scoring >= 100 k
windows/s with the default profile; and the profile's size on disk. The data is a
server-like stream: 300 code paths (4-40 calls each, walked on a Markov chain over 60
real syscall numbers) picked at random with Zipf weights, which gives a vocabulary in
the range of a real daemon's. Prints one JSON object and the
Markdown rows for benchmarks/README.md. Medians of --repeat runs. Rates use the process's
CPU time (BLAS pinned to one thread, so that is one core's time): on a machine shared with
other jobs wall time says more about the neighbours than about sysgram. Wall time is
reported next to it.
"""

from __future__ import annotations

import os

# One core: pin BLAS / OpenMP pools before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sysgram.features import NgramFeaturizer, Sequences, window_streams  # noqa: E402
from sysgram.features.synthetic import random_chain, random_paths, sample_paths  # noqa: E402
from sysgram.models import defaults  # noqa: E402
from sysgram.models.profile import Profile  # noqa: E402
from sysgram.models.store import ProfileStore  # noqa: E402
from sysgram.models.training import TrainedProfile  # noqa: E402

SYSCALLS = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 20, 21, 23, 24,
                     28, 32, 33, 39, 41, 42, 43, 44, 45, 46, 47, 49, 50, 51, 54, 55, 56, 57, 59,
                     60, 61, 62, 63, 72, 78, 79, 89, 96, 102, 186, 202, 204, 228, 230, 231, 232,
                     233, 257, 262])


def streams_with_windows(n_windows: int, seed: int, threads: int = 50,
                         n_paths: int = 300) -> Sequences:
    """Streams from the chain giving about `n_windows` default windows."""
    rng = np.random.default_rng(seed)
    structure = np.random.default_rng(1)  # the same "binary" in every call
    paths = random_paths(random_chain(SYSCALLS, structure, successors=6), n_paths, structure)
    per_thread = max(defaults.DEFAULT_WINDOW, n_windows * defaults.DEFAULT_STRIDE // threads)
    return Sequences.from_list([sample_paths(paths, per_thread, rng) for _ in range(threads)])


def timed(fn, repeat: int = 1) -> tuple[float, float, object]:
    """(median CPU seconds, median wall seconds, last result) of `repeat` calls."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), result


def bench_features(repeat: int, n_windows: int) -> dict:
    streams = streams_with_windows(n_windows, seed=2)
    w, s = defaults.DEFAULT_WINDOW, defaults.DEFAULT_STRIDE
    windows = window_streams(streams, w, s).seqs
    featurizer = NgramFeaturizer(orders=tuple(defaults.DEFAULT_ORDERS)).fit(windows)
    t_win, w_win, _ = timed(lambda: window_streams(streams, w, s), repeat)
    t_feat, w_feat, x = timed(lambda: featurizer.transform(windows), repeat)
    calls = int(streams.offsets[-1])
    total = t_win + t_feat
    return {
        "wall_seconds": round(w_win + w_feat, 3),
        "stream_syscalls": calls,
        "windows": len(windows),
        "nnz_per_window": round(x.nnz / len(windows), 1),
        "seconds": round(total, 3),
        "stream_syscalls_per_s": round(calls / total),
        "window_syscalls_per_s": round(int(windows.offsets[-1]) / total),
        "windows_per_s": round(len(windows) / total),
    }


def bench_fit(n_windows: int) -> tuple[dict, Profile, Sequences]:
    streams = streams_with_windows(n_windows, seed=3)
    took, wall, profile = timed(lambda: Profile().fit(streams))
    return {
        "wall_seconds": round(wall, 2),
        "windows": profile.training_summary_["windows"],
        "fit_windows": profile.training_summary_["fit_windows"],
        "detector": profile.detector_name_,
        "seconds": round(took, 2),
        "windows_per_s": round(profile.training_summary_["windows"] / took),
        "calibration": profile.calibration_["method"],
    }, profile, streams


def bench_score(profile: Profile, repeat: int, n_windows: int, n_paths: int = 300) -> dict:
    from sysgram.models.distinct import sequence_hashes

    windows = profile.windows(streams_with_windows(n_windows, seed=4, n_paths=n_paths)).seqs
    distinct = len(np.unique(sequence_hashes(windows)))
    t, wall, _ = timed(lambda: profile.score_windows(windows), repeat)
    return {"windows": len(windows), "distinct_fraction": round(distinct / len(windows), 3),
            "seconds": round(t, 3), "wall_seconds": round(wall, 3),
            "windows_per_s": round(len(windows) / t)}


def bench_size(profile: Profile, streams: Sequences) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = ProfileStore(Path(tmp) / "p")
        with_data = store.save(TrainedProfile("a", profile, None, streams)).stat().st_size
        model_only = store.save(TrainedProfile("b", profile, None, None)).stat().st_size
        load, _, _ = timed(lambda: store.load("a"))
    return {"bytes_model": model_only, "bytes_with_training_data": with_data,
            "load_seconds": round(load, 3)}


def bench_running(streams: Sequences, calls: int = 2_000_000, threads: int = 8,
                  per_drain: int = 2_500) -> dict:
    """Live thread verdicts' cost: the thread profile's running whole-stream score
    (`sysgram.models.running`) fed `threads` long-lived threads, `per_drain` calls each per
    update (a 20 ms drain at 1 M syscalls/s), scored after every update."""
    from sysgram.models.running import running_scores

    thread_profile = Profile(**defaults.thread_profile_params()).fit(streams)
    running = running_scores(thread_profile.detector_)
    rng = np.random.default_rng(9)
    structure = np.random.default_rng(1)
    paths = random_paths(random_chain(SYSCALLS, structure, successors=6), 300, structure)
    data = sample_paths(paths, calls, rng)
    keys = list(range(threads))

    def feed() -> None:
        for lo in range(0, len(data), threads * per_drain):  # one drain per step
            for k in keys:
                start = lo + k * per_drain
                running.add(k, data[start : start + per_drain])
            running.update()
            running.score(keys)

    cpu, wall, _ = timed(feed)
    return {"detector": thread_profile.detector_name_, "calls": len(data), "threads": threads,
            "calls_per_update": per_drain, "ns_per_call": round(cpu / len(data) * 1e9),
            "wall_seconds": round(wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-windows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    fit_n = 50_000 if args.quick else args.fit_windows
    feat_n = score_n = 20_000 if args.quick else 200_000
    out = {"features": bench_features(args.repeat, feat_n)}
    out["fit"], profile, streams = bench_fit(fit_n)
    out["score"] = bench_score(profile, args.repeat, score_n)
    # A more repetitive server (fewer code paths): duplicate windows are scored once.
    out["score_repetitive"] = bench_score(profile, args.repeat, score_n, n_paths=20)
    out["size"] = bench_size(profile, streams)
    out["running"] = bench_running(streams_with_windows(20_000, seed=3, threads=300))
    print(json.dumps(out, indent=2))
    f, fit, sc, size = out["features"], out["fit"], out["score"], out["size"]
    print()
    print("| measure (one core, CPU time) | goal | measured |")
    print("|---|---|---|")
    print(f"| featurisation (windows + n-grams) | ≥ 1 M syscalls/s | "
          f"{f['stream_syscalls_per_s'] / 1e6:.2f} M stream syscalls/s "
          f"({f['window_syscalls_per_s'] / 1e6:.1f} M window syscalls/s, "
          f"{f['windows_per_s']:,} windows/s) |")
    print(f"| fit {fit['windows']:,} windows ({fit['detector']}) | ≤ 60 s | "
          f"{fit['seconds']} s ({fit['wall_seconds']} s wall) |")
    rep = out["score_repetitive"]
    print(f"| scoring, default profile | ≥ 100 k windows/s | {sc['windows_per_s']:,} windows/s "
          f"({sc['distinct_fraction']:.0%} distinct windows); {rep['windows_per_s']:,} "
          f"windows/s with {rep['distinct_fraction']:.0%} distinct |")
    run = out["running"]
    print(f"| live thread verdicts: running whole-stream score ({run['detector']}, "
          f"{run['threads']} threads, {run['calls_per_update']:,} calls each per update) | — | "
          f"{run['ns_per_call']} ns per call |")
    print(f"| profile on disk | — | {size['bytes_model'] / 1e6:.2f} MB model, "
          f"{size['bytes_with_training_data'] / 1e6:.1f} MB with training streams |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
