"""The alert policy, in one place: score -> classify (threshold and novelty) -> protected learning.

River's `ThresholdFilter` shape, kept apart from the model so `watch`, `score`, `eval`
and the demo make the same decision with whatever detector a profile holds (scores are
floats, higher = more anomalous):

- **above**: the score is strictly above the threshold, beyond float rounding
  (`TOLERANCE`: a profile whose normal windows all score one value would otherwise alarm
  on the last bits of a batched BLAS call).
- **anomalous** (the alert): above and, when the profile requires novelty (the default),
  the window holds enough that training never saw: at least `min_events` distinct
  minimal unseen n-grams (`Novelty.events`), or one new call of the decisive kind
  (`defaults.DECISIVE_SYSCALLS`: exec, connect, ptrace, ...). High scores made only of
  known n-grams were nearly all the false alarms on live servers, and most of the rest
  were one new transition between calls the server makes all the time; an attack brings
  several new calls and sequences of its own. A known call repeated back to back is pace,
  not an event (`NgramVocabulary.novel_events`). For a threaded binary, starting and ending
  a thread is not novel (`defaults.THREAD_LIFECYCLE_SYSCALLS`, the profile's `threaded_`).
- **learnable** (`watch --learn`): neither above nor holding anything unseen. A window
  that scored high is never learned (the profile must not learn the attack it should
  report), and neither is one holding unseen n-grams: learning those would wear the
  novelty rule away.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models import defaults

TOLERANCE = 1e-6  # relative margin above the threshold that still counts as "at" it


@dataclass(frozen=True)
class Novelty:
    """What each sequence holds that training never saw, as the policy weighs it."""

    events: np.ndarray  # distinct minimal unseen n-grams (a new call counts once)
    decisive: np.ndarray  # holds a new call of defaults.DECISIVE_SYSCALLS


def decisive_syscalls(arch: str | None) -> np.ndarray:
    """The numbers of `defaults.DECISIVE_SYSCALLS` in `arch`'s table (those it has)."""
    return _numbers(arch, defaults.DECISIVE_SYSCALLS)


def thread_lifecycle_syscalls(arch: str | None) -> np.ndarray:
    """The numbers of `defaults.THREAD_LIFECYCLE_SYSCALLS` in `arch`'s table."""
    return _numbers(arch, defaults.THREAD_LIFECYCLE_SYSCALLS)


def splicing_syscalls(arch: str | None) -> np.ndarray:
    """The numbers of `defaults.SPLICING_SYSCALLS` in `arch`'s table (those it has)."""
    return _numbers(arch, defaults.SPLICING_SYSCALLS)


def event_wait_syscalls(arch: str | None) -> np.ndarray:
    """The numbers of `defaults.EVENT_WAIT_SYSCALLS` in `arch`'s table (those it has)."""
    return _numbers(arch, defaults.EVENT_WAIT_SYSCALLS)


@functools.cache
def _numbers(arch: str | None, names: tuple[str, ...]) -> np.ndarray:
    from sysgram.syscalls import table

    numbers = {name: nr for nr, name in table(arch).items()}  # tables differ per arch
    return np.array(sorted(numbers[n] for n in names if n in numbers), dtype=np.int64)


class PolicyProfile(Protocol):
    """What the policy needs of a profile: its thresholds, its novelty rule and test."""

    threshold_: float
    thread_threshold_: float | None
    require_novelty: bool

    def novelty(self, seqs: Sequences) -> Novelty: ...


@dataclass(frozen=True)
class Verdicts:
    """One classified batch: scores and the two decisions the policy makes on them."""

    scores: np.ndarray
    above: np.ndarray  # score above the threshold (never learned from)
    anomalous: np.ndarray  # the alert decision

    @property
    def flagged(self) -> np.ndarray:
        return np.flatnonzero(self.anomalous)


@dataclass(frozen=True)
class AlertPolicy:
    threshold: float
    require_novelty: bool = True
    min_events: int = defaults.MIN_NOVEL_EVENTS

    @classmethod
    def for_windows(cls, profile: PolicyProfile, threshold: float | None = None) -> AlertPolicy:
        """The window policy of a fitted profile (`threshold` overrides the calibrated one)."""
        cut = profile.threshold_ if threshold is None else threshold
        return cls(float(cut), bool(profile.require_novelty))

    @classmethod
    def for_threads(cls, profile: PolicyProfile) -> AlertPolicy | None:
        """The whole-thread policy of a fitted profile; None when it has no thread threshold."""
        if profile.thread_threshold_ is None:
            return None
        return cls(float(profile.thread_threshold_), bool(profile.require_novelty))

    @property
    def cut(self) -> float:
        return self.threshold + TOLERANCE * max(abs(self.threshold), 1e-12)

    def above(self, scores: np.ndarray | float) -> np.ndarray:
        return np.atleast_1d(np.asarray(scores, dtype=np.float64)) > self.cut

    def classify(
        self, profile: PolicyProfile, scores: np.ndarray, seqs: Sequences | None
    ) -> Verdicts:
        """Above and anomalous for each scored sequence; novelty is only looked up for the
        rows above the threshold (it costs a vocabulary lookup per n-gram). Without `seqs`
        only the score decides."""
        scores = np.atleast_1d(np.asarray(scores, dtype=np.float64))
        above = scores > self.cut
        anomalous = above.copy()
        if self.require_novelty and seqs is not None and above.any():
            rows = np.flatnonzero(above)
            anomalous[rows] = self.novel_enough(profile.novelty(seqs.take(rows)))
        return Verdicts(scores, above, anomalous)

    def novel_enough(self, novelty: Novelty) -> np.ndarray:
        """The novelty bar an above-threshold sequence must clear to be an alert."""
        return novelty.decisive | (novelty.events >= self.min_events)

    def learnable(self, profile: PolicyProfile, verdicts: Verdicts, seqs: Sequences) -> np.ndarray:
        """Rows that may be learned: scored at or below the threshold and hold nothing new."""
        rows = np.flatnonzero(~verdicts.above)
        if len(rows):
            rows = rows[profile.novelty(seqs.take(rows)).events == 0]
        return rows
