"""`watch --learn`: keep the windows the policy lets learn, as per-thread streams.

The detectors have no cheap exact incremental update, so learning is batched: windows
the policy calls learnable (at or below the threshold, nothing unseen) are kept per thread
(bounded, the overflow counted) and stitched back into the thread streams they came
from: consecutive windows of a thread overlap by `window - stride` calls, and a window
that does not continue the last one (a refused window, a loss, an exec in between) starts
a new stream. On exit the training service refits the profile on its training streams
plus these streams. Streams, not windows, because calibration holds out whole threads:
one "thread" per window would make the hold-out a random split of overlapping windows,
and the threshold would be calibrated on data its detector was fitted on.
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences

# Calls kept for learning: 12.8 M calls (200,000 windows of 64) is 25 MB of uint16.
MAX_LEARN_CALLS = 12_800_000


class StreamLearner:
    def __init__(self, window: int, stride: int, max_calls: int = MAX_LEARN_CALLS) -> None:
        self.overlap = window - stride
        self.max_calls = max_calls
        self._open: dict[int, list[np.ndarray]] = {}  # per thread: pieces of its open stream
        self._tail: dict[int, np.ndarray] = {}  # per thread: last window kept
        self._done: list[np.ndarray] = []
        self.kept_windows = 0
        self.kept_calls = 0
        self.overflow = 0  # learnable windows not kept because the buffer was full

    def learn(self, tid: int, windows: Sequences) -> None:
        for k in range(len(windows)):  # per window: stitching compares its overlap
            self._add(tid, np.asarray(windows[k], dtype=np.uint16))

    def _add(self, tid: int, window: np.ndarray) -> None:
        tail = self._tail.get(tid)
        continues = (
            tail is not None and len(window) == len(tail) and self.overlap > 0
            and np.array_equal(tail[-self.overlap:], window[: self.overlap])
        )
        new_calls = window[self.overlap:] if continues else window
        if self.kept_calls + len(new_calls) > self.max_calls:
            self.overflow += 1
            self._close(tid)
            return
        if not continues:
            self._close(tid)
        self._open.setdefault(tid, []).append(new_calls)
        self._tail[tid] = window
        self.kept_calls += len(new_calls)
        self.kept_windows += 1

    def _close(self, tid: int) -> None:
        pieces = self._open.pop(tid, None)
        self._tail.pop(tid, None)
        if pieces:
            self._done.append(np.concatenate(pieces))

    def streams(self) -> Sequences:
        """Every learned stream, the open ones included."""
        for tid in list(self._open):
            self._close(tid)
        return Sequences.from_list(self._done)
