"""Between a profile and the engine: score a batch, classify it by the alert policy, learn.

The decision itself is `sysgram.models.policy.AlertPolicy` (the one `score`, `eval` and
the demo use too); this module holds what the engine needs of a profile (`WatchedProfile`,
which test fakes implement) and the learning hook of `watch --learn`. Batched: the engine
hands over every new window of a poll at once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models.policy import AlertPolicy, PolicyProfile, Verdicts


class WatchedProfile(PolicyProfile, Protocol):
    """What `watch` needs of a window profile (a fitted `Profile` is one)."""

    window_: int
    stride_: int
    arch_: str

    def score_windows(self, seqs: Sequences) -> np.ndarray: ...

    def new_syscalls(self, seqs: Sequences) -> list[list[int]]: ...

    def explain(self, window_ids: np.ndarray) -> dict: ...


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
        self.learned_windows = 0
        self.learning_refused = 0  # windows not learned: above the threshold or novel

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    def classify(self, windows: Sequences) -> Verdicts:
        scores = np.asarray(self.profile.score_windows(windows), dtype=np.float64)
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
