"""The threshold policy between a profile and the engine: score, decide, maybe learn.

River's streaming shape (design §5): score → threshold policy (kept apart from the
model) → optional learning, and never from a window that scored anomalous. Batched: the
engine hands over every new window of a poll at once.
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models.streaming import ThresholdPolicy

# A window scoring the threshold itself up to float rounding is not above it: a profile
# whose normal windows all score one value (a saturated detector, a degenerate held-out
# tail) would otherwise alarm on rounding noise from one batch to the next.
_RELATIVE_TOLERANCE = 1e-6


def _tolerance(threshold: float) -> float:
    return _RELATIVE_TOLERANCE * max(abs(threshold), 1e-12)


class ThresholdScorer:
    """Scores windows with a profile; anomalous means score above the threshold."""

    def __init__(
        self, profile: object, threshold: float | None = None, learner: object | None = None
    ) -> None:
        self.profile = profile
        cut = float(profile.threshold_ if threshold is None else threshold)
        self.policy = ThresholdPolicy.from_profile(profile, margin=_tolerance(cut), threshold=cut)
        self.learner = learner  # has learn(Sequences); None: no learning
        self.learned_windows = 0

    @property
    def learn_enabled(self) -> bool:
        return self.learner is not None

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    def score(self, windows: Sequences) -> np.ndarray:
        return np.asarray(self.profile.score_windows(windows), dtype=np.float64)

    def is_anomalous(self, scores: np.ndarray, windows: Sequences | None = None) -> np.ndarray:
        """The alert decision (the profile's: above the threshold and something new)."""
        return self.policy.is_anomalous(scores, windows)

    def above(self, scores: np.ndarray) -> np.ndarray:
        """Scored anomalous (whatever the novelty): such windows are never learned from."""
        return self.policy.above(scores)

    def new_syscalls(self, windows: Sequences, rows: np.ndarray) -> list[list[int]] | None:
        """Per window of `rows`: syscall numbers training never saw (None: not known)."""
        vocabulary = getattr(self.profile, "vocabulary_", None)
        known = getattr(vocabulary, "symbols_", None)
        if known is None:
            return None
        picked = windows.take(rows)
        novel = ~np.isin(picked.values, known)
        row_of = picked.row_of_position()
        out: list[list[int]] = [[] for _ in range(len(rows))]
        for row, nr in zip(row_of[novel].tolist(), picked.values[novel].tolist(), strict=True):
            if nr not in out[row]:
                out[row].append(nr)
        return out

    def learn(self, normal: Sequences) -> None:
        """Learn from windows that scored normal (the caller never passes anomalous ones)."""
        if self.learner is None or len(normal) == 0:
            return
        self.learner.learn(normal)
        self.learned_windows += len(normal)
