"""Live scoring in river's shape: per-thread windows -> score -> threshold policy -> learn.

- `sysgram.features.ThreadStream` (the watcher's too) carries one thread's last calls
  between pieces of its stream and yields the windows an offline pass would; a loss
  (`gap`) ends the segment, so no window ever spans missing events.
- `StreamScorer` keeps a stream per thread and scores all threads' new windows in one
  batched detector call (`score_pending`), or one window at a time (`score_one`).
- `ThresholdPolicy` decides what alarms; it is separate from the model so the watcher
  can change it (a margin, a different threshold) without touching the profile.
- `learn_one` only updates the novelty state (seen n-grams), and refuses windows that
  scored anomalous: a profile never learns the attack it should report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysgram.features import NoveltyTracker, Sequences, ThreadStream


@dataclass(frozen=True)
class ThresholdPolicy:
    """The cut: `threshold + margin`, and the profile's alert decision around it.

    `above` is the score alone (what "scored anomalous" means for learning: such a
    window is never learned from); `is_anomalous` is the alert decision, which the
    profile may narrow further (by default: something in the window must be new).
    """

    threshold: float
    margin: float = 0.0
    profile: object | None = None

    @classmethod
    def from_profile(cls, profile, margin: float = 0.0,
                     threshold: float | None = None) -> ThresholdPolicy:
        cut = float(profile.threshold_ if threshold is None else threshold)
        return cls(cut, margin, profile)

    @property
    def cut(self) -> float:
        return self.threshold + self.margin

    def above(self, scores: np.ndarray | float) -> np.ndarray:
        return np.asarray(scores) > self.cut

    def is_anomalous(self, scores: np.ndarray | float, seqs: Sequences | None = None) -> np.ndarray:
        decide = getattr(self.profile, "is_anomalous", None)
        if decide is None or seqs is None:
            return self.above(scores)
        return decide(np.atleast_1d(np.asarray(scores, dtype=np.float64)), seqs, threshold=self.cut)


@dataclass
class ScoredWindows:
    """New windows of one thread with their scores and verdicts."""

    tid: int
    windows: Sequences
    scores: np.ndarray
    anomalous: np.ndarray


@dataclass
class StreamStats:
    windows_scored: int = 0
    windows_anomalous: int = 0
    windows_learned: int = 0
    learning_refused: int = 0  # windows not learned because they scored anomalous
    gaps: int = 0
    events_lost: int = 0
    windows_unscored: int = 0  # windows that would have spanned a loss
    threads: int = 0


def _batch(pieces: list, window: int) -> Sequences:
    """Queued windows as one batch: full ones are 2-D arrays, closing ones may be short."""
    if all(isinstance(p, np.ndarray) and p.ndim == 2 for p in pieces):
        return Sequences.from_windows(np.concatenate(pieces))
    rows = [row for p in pieces for row in p]  # rare: a thread ended with a short window
    return Sequences.from_list(rows)


class StreamScorer:
    """Scores many threads' live streams with one profile; batched across threads."""

    def __init__(self, profile, policy: ThresholdPolicy | None = None) -> None:
        self.profile = profile
        self.policy = policy or ThresholdPolicy.from_profile(profile)
        self.window, self.stride = profile.window_, profile.stride_
        self.novelty = NoveltyTracker(profile.orders_, dict(profile.vocabulary_.codes_))
        self.stats = StreamStats()
        self._threads: dict[int, ThreadStream] = {}
        self._pending: dict[int, list] = {}   # per thread: (n, window) arrays or last windows

    def _stream(self, tid: int) -> ThreadStream:
        if tid not in self._threads:
            self._threads[tid] = ThreadStream(self.window, self.stride)
            self.stats.threads += 1
        return self._threads[tid]

    def push(self, tid: int, ids: np.ndarray) -> None:
        """Queue a piece of thread `tid`'s stream; its windows are scored by score_pending."""
        self._queue(tid, self._stream(tid).feed(ids))

    def gap(self, tid: int, lost: int) -> None:
        """Events of `tid` were lost here: close the segment so no window spans the loss."""
        self.stats.gaps += 1
        self.stats.events_lost += int(lost)
        if tid in self._threads:
            self._queue(tid, self._threads[tid].gap(lost))

    def end(self, tid: int) -> None:
        """The thread exited: queue its closing window, forget its state."""
        stream = self._threads.pop(tid, None)
        if stream is not None:
            self._queue(tid, stream.close())

    def _queue(self, tid: int, cut) -> None:
        self.stats.windows_unscored += cut.unscored
        pending = self._pending.setdefault(tid, [])
        if len(cut.windows):
            pending.append(cut.windows)
        if cut.last is not None:
            pending.append(cut.last[None, :] if len(cut.last) == self.window else [cut.last])

    def score_pending(self) -> list[ScoredWindows]:
        """Score every queued window of every thread in one detector call."""
        tids, pieces = [], []
        for tid, queued in self._pending.items():  # loop over threads' queued batches
            for windows in queued:
                pieces.append(windows)
                tids.append(np.full(len(windows), tid, dtype=np.int64))
        self._pending.clear()
        if not pieces:
            return []
        batch = _batch(pieces, self.window)
        scores = self.profile.score_windows(batch)
        alarms = self.policy.is_anomalous(scores, batch)
        self.stats.windows_scored += len(scores)
        self.stats.windows_anomalous += int(alarms.sum())
        tid_arr = np.concatenate(tids)
        # Stable sort by thread keeps each thread's windows in time order.
        order = np.argsort(tid_arr, kind="stable")
        bounds = np.flatnonzero(np.diff(tid_arr[order])) + 1
        return [ScoredWindows(int(tid_arr[idx[0]]), batch.take(idx), scores[idx], alarms[idx])
                for idx in np.split(order, bounds)]  # one entry per thread

    def score_one(self, window_ids: np.ndarray) -> float:
        """Score a single window (slower than batching; for tests and tools)."""
        return float(self.profile.score_windows(Sequences.from_list([window_ids]))[0])

    def learn_one(self, window_ids: np.ndarray, score: float | None = None) -> bool:
        """Add a window's n-grams to the novelty state unless it scores anomalous."""
        if score is None:
            score = self.score_one(window_ids)
        if bool(self.policy.above(score)):  # scored anomalous: never learned from
            self.stats.learning_refused += 1
            return False
        self.novelty.update(Sequences.from_list([window_ids]))
        self.stats.windows_learned += 1
        return True

    def learn_many(self, scored: ScoredWindows) -> int:
        """Batched learn_one over scored windows; returns how many were learned."""
        ok = np.flatnonzero(~self.policy.above(scored.scores))
        self.stats.learning_refused += int(len(scored.anomalous) - len(ok))
        if len(ok):
            self.novelty.update(scored.windows.take(ok))
            self.stats.windows_learned += len(ok)
        return len(ok)
