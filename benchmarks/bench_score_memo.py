"""What `ScoreMemo` saves: window scoring per call on a real server's recorded windows.

usage: .venv/bin/python benchmarks/bench_score_memo.py WORKDIR [--poll-calls 2000]
           [--model lm-stream]
WORKDIR is one server's work directory of a kept scenario run (`python -m
benchmarks.scenarios --record-watch --keep`): its `watch/` recording (normal load) and the
profile in `store-MODEL/`. The recording's threads are cut into the windows `watch` would
score (the profile's length and stride), `--poll-calls` calls per thread at a time (one
poll's batch), and the batches scored twice each way, in turn: by the profile directly,
and through a fresh `ScoreMemo` (as `watch` does). Reports CPU ns per call (process time,
the lower of two passes) and the memo's hits and misses.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sysgram.datasets import Dataset
from sysgram.features.sequences import Sequences
from sysgram.features.windows import window_streams
from sysgram.models.store import ProfileStore
from sysgram.watch.scoring import ScoreMemo


def batches(streams: list[np.ndarray], length: int, stride: int, poll: int) -> list[Sequences]:
    """The streams' windows as `watch` places them, one batch per `poll` calls a thread."""
    windows = window_streams(Sequences.from_list(streams), length, stride)
    at = windows.start // poll
    return [windows.seqs.take(np.flatnonzero(at == k)) for k in np.unique(at).tolist()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--poll-calls", type=int, default=2000)
    ap.add_argument("--model", default="lm-stream")
    args = ap.parse_args(argv)
    store = ProfileStore(args.workdir / f"store-{args.model}")
    (name,) = store.names()
    profile = store.load(name).profile
    streams = [np.asarray(t.ids, np.uint16) for t in Dataset.open(args.workdir / "watch").threads]
    work = batches(streams, int(profile.window_), int(profile.stride_), args.poll_calls)
    calls = sum(len(b) for b in work) * int(profile.stride_)
    best: dict[str, float] = {}
    for arm in ("direct", "memo") * 2:
        memo = ScoreMemo(profile.score_windows)
        score = profile.score_windows if arm == "direct" else memo
        started = time.process_time()
        for batch in work:
            score(batch)
        best[arm] = min(best.get(arm, float("inf")), time.process_time() - started)
    print(f"{args.workdir.name}: {len(streams)} threads, {sum(map(len, streams)):,} calls, "
          f"{sum(len(b) for b in work):,} windows in {len(work)} batches")
    for arm, seconds in best.items():
        print(f"  {arm}: {seconds / calls * 1e9:.0f} ns per call")
    print(f"  memo: {memo.hits:,} windows remembered, {memo.misses:,} scored "
          f"({memo.hits / max(memo.hits + memo.misses, 1):.0%} remembered)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
