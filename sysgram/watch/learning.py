"""`watch --learn`: keep the windows that scored normal, refit and save the profile on exit.

The detectors (IsolationForest, one-class SVM on n-gram maps) have no cheap exact
incremental update, so learning is batched: windows that scored normal are kept (bounded,
and the overflow counted), and on exit the profile is refitted with the same parameters
on its training streams plus these windows, recalibrated, and saved through the store.
Windows that scored anomalous are never passed here (the engine filters them).
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences

# Windows kept for learning: 200,000 windows of 64 calls is 25 MB of uint16.
MAX_LEARN_WINDOWS = 200_000


class WindowLearner:
    def __init__(self, profile: object, max_windows: int = MAX_LEARN_WINDOWS) -> None:
        self.profile = profile
        self.max_windows = max_windows
        self._parts: list[Sequences] = []
        self.kept = 0
        self.overflow = 0  # normal windows not kept because the buffer was full

    def learn(self, normal: Sequences) -> None:
        room = self.max_windows - self.kept
        if room < len(normal):
            self.overflow += len(normal) - max(room, 0)
            normal = normal.take(np.arange(max(room, 0)))
        if len(normal):
            self._parts.append(normal)
            self.kept += len(normal)

    def windows(self) -> Sequences:
        values = [p.values for p in self._parts]
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for part in self._parts:
            offsets.append(part.offsets[1:] - part.offsets[0] + base)
            base += int(part.offsets[-1] - part.offsets[0])
        if not values:
            return Sequences(np.zeros(0, dtype=np.uint16), np.zeros(1, dtype=np.int64))
        return Sequences(np.concatenate(values).astype(np.uint16), np.concatenate(offsets))

    def refit(self, old_traces: Sequences | None) -> tuple[object, Sequences]:
        """A profile with the same parameters fitted on old streams + learned windows."""
        from sklearn.base import clone

        new = self.windows()
        traces = new if old_traces is None else _concat(old_traces, new)
        return clone(self.profile).fit(traces), traces


def _concat(a: Sequences, b: Sequences) -> Sequences:
    values = np.concatenate((np.asarray(a.values, dtype=np.uint16), b.values))
    offsets = np.concatenate((a.offsets, b.offsets[1:] + a.offsets[-1]))
    return Sequences(values, offsets)
