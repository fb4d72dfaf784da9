"""Between a profile and the engine: score a batch, classify it by the alert policy, learn.

The decision itself is `sysgram.models.policy.AlertPolicy` (the one `score`, `eval` and
the demo use too); this module holds what the engine needs of a profile (`WatchedProfile`,
which test fakes implement) and the learning hook of `watch --learn`. Batched: the engine
hands over every new window of a poll at once.

Scores are remembered by window content (`ScoreMemo`): a server makes the same windows
all day, and a profile does not change while it is watched (`--learn` refits only at
exit), so a window scored once needs no scoring again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models.distinct import sequence_hashes
from sysgram.models.policy import AlertPolicy, PolicyProfile, Verdicts

# Distinct windows remembered per generation (two generations: at most 2 x this many,
# about 10 MB of dict entries). A busy server's steady state fits in a few thousand.
MEMO_WINDOWS = 1 << 16


class WatchedProfile(PolicyProfile, Protocol):
    """What `watch` needs of a window profile (a fitted `Profile` is one)."""

    window_: int
    stride_: int
    arch_: str

    def score_windows(self, seqs: Sequences) -> np.ndarray: ...

    def new_syscalls(self, seqs: Sequences) -> list[list[int]]: ...

    def explain(self, window_ids: np.ndarray) -> dict: ...


class ScoreMemo:
    """`score(windows)`, computed once per distinct window content over the whole watch.

    Keys are the 64-bit content hashes `score_distinct` already relies on (a collision
    would give one window another's score; odds about n^2 / 2^65). Two generations keep
    it bounded and recent: lookups promote from the old one, and when the current one
    holds `size` windows it becomes the old one (what has not recurred since is dropped).
    """

    def __init__(self, score: Callable[[Sequences], np.ndarray], size: int = MEMO_WINDOWS) -> None:
        self.score = score
        self.size = size
        self._current: dict[int, float] = {}
        self._old: dict[int, float] = {}
        self.hits = 0  # windows whose score was remembered
        self.misses = 0  # windows scored (distinct within their batch)

    def __call__(self, windows: Sequences) -> np.ndarray:
        if len(windows) == 0:
            return np.zeros(0, dtype=np.float64)
        keys, first, inverse = np.unique(sequence_hashes(windows), return_index=True,
                                         return_inverse=True)
        known = np.array([self._recall(k) for k in keys.tolist()], dtype=np.float64)
        missing = np.flatnonzero(np.isnan(known))
        if len(missing):
            known[missing] = np.asarray(self.score(windows.take(first[missing])),
                                        dtype=np.float64)
            for key, score in zip(keys[missing].tolist(), known[missing].tolist(), strict=True):
                self._remember(key, score)
        self.misses += len(missing)
        self.hits += len(windows) - len(missing)
        return known[inverse.reshape(-1)]

    def _recall(self, key: int) -> float:
        score = self._current.get(key)
        if score is None:
            score = self._old.get(key)
            if score is None:
                return float("nan")
            self._remember(key, score)
        return score

    def _remember(self, key: int, score: float) -> None:
        if len(self._current) >= self.size:
            self._old, self._current = self._current, {}
        self._current[key] = score


class Learner(Protocol):
    def learn(self, tid: int, windows: Sequences) -> None: ...


class ThresholdScorer:
    """Scores windows with a profile and classifies them by its alert policy."""

    def __init__(
        self, profile: WatchedProfile, threshold: float | None = None,
        learner: Learner | None = None,
    ) -> None:
        self.profile = profile
        self.policy = AlertPolicy.for_windows(profile, threshold)
        self.learner = learner  # None: no learning
        self.memo = ScoreMemo(profile.score_windows)
        self.learned_windows = 0
        self.learning_refused = 0  # windows not learned: above the threshold or novel

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    def classify(self, windows: Sequences) -> Verdicts:
        scores = self.memo(windows)
        return self.policy.classify(self.profile, scores, windows)

    def learn(self, windows: Sequences, verdicts: Verdicts, tids: np.ndarray) -> None:
        """Hand the learner each thread's learnable windows (in time order, per thread)."""
        if self.learner is None or len(windows) == 0:
            return
        rows = self.policy.learnable(self.profile, verdicts, windows)
        self.learning_refused += len(windows) - len(rows)
        for tid in np.unique(tids[rows]).tolist():
            mine = rows[tids[rows] == tid]
            self.learner.learn(int(tid), windows.take(mine))
            self.learned_windows += len(mine)
