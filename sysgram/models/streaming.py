"""Live scoring in river's shape: per-thread windows -> score -> threshold policy -> learn.

- `ThreadWindower` carries one thread's last calls between pieces of its stream and
  yields the same windows an offline pass would (every `stride` calls, a short window for
  a thread that never reached `window` calls, the last one aligned to the stream's end).
  A loss (`gap`) ends the current segment: no window ever spans missing events.
- `StreamScorer` keeps a windower per thread and scores all threads' new windows in one
  batched detector call (`score_pending`), or one window at a time (`score_one`).
- `ThresholdPolicy` decides what alarms; it is separate from the model so the watcher
  can change it (a margin, a different threshold) without touching the profile.
- `learn_one` only updates the novelty state (seen n-grams), and refuses windows that
  scored anomalous: a profile never learns the attack it should report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgram.features import NoveltyTracker, Sequences


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


class ThreadWindower:
    """One thread's sliding-window state across pieces of its stream."""

    def __init__(self, window: int, stride: int) -> None:
        self.window, self.stride = window, stride
        self.buffer = np.zeros(0, dtype=np.uint16)
        self.buffer_start = 0  # stream position of buffer[0] within the current segment
        self.seen = 0  # calls in the current segment
        self.next_start = 0  # segment position where the next full window starts
        self.last_end = 0  # segment position just past the last window given out

    def push(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add calls; return the new full windows (k, window) and their end positions."""
        ids = np.asarray(ids, dtype=np.uint16)
        self.buffer = np.concatenate([self.buffer, ids]) if len(self.buffer) else ids.copy()
        self.seen += len(ids)
        w, s = self.window, self.stride
        if self.seen < self.next_start + w:
            return np.zeros((0, w), dtype=np.uint16), np.zeros(0, dtype=np.int64)
        starts = np.arange(self.next_start, self.seen - w + 1, s)
        view = np.lib.stride_tricks.sliding_window_view(self.buffer, w)
        windows = view[starts - self.buffer_start].copy()
        self.next_start = int(starts[-1]) + s
        self.last_end = int(starts[-1]) + w
        self._trim()
        return windows, starts + w

    def _trim(self) -> None:
        # Keep the last `window` calls (for the end-aligned final window) and anything a
        # future window starting at next_start needs.
        keep_from = min(self.next_start, max(self.seen - self.window, 0))
        cut = keep_from - self.buffer_start
        if cut > 0:
            self.buffer = self.buffer[cut:]
            self.buffer_start = keep_from

    def finish(self) -> np.ndarray | None:
        """The segment's closing window (short or end-aligned), if one is due; then reset."""
        last = None
        if 0 < self.seen < self.window:
            last = self.buffer.copy()
        elif self.seen >= self.window and self.last_end < self.seen:
            last = self.buffer[len(self.buffer) - self.window :].copy()
        self.__init__(self.window, self.stride)
        return last


@dataclass
class ScoredWindows:
    """New windows of one thread with their scores and verdicts."""

    tid: int
    windows: Sequences
    end: np.ndarray  # calls of the thread's current segment seen at each window's end
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
    threads: int = 0


def _batch(pieces: list, window: int) -> Sequences:
    """Queued windows as one batch: full ones are 2-D arrays, closing ones may be short."""
    if all(isinstance(p, np.ndarray) and p.ndim == 2 for p in pieces):
        return Sequences.from_windows(np.concatenate(pieces))
    rows = [row for p in pieces for row in p]  # rare: a thread ended with a short window
    return Sequences.from_list(rows)


@dataclass
class _Pending:
    windows: list[np.ndarray] = field(default_factory=list)
    ends: list[np.ndarray] = field(default_factory=list)


class StreamScorer:
    """Scores many threads' live streams with one profile; batched across threads."""

    def __init__(self, profile, policy: ThresholdPolicy | None = None) -> None:
        self.profile = profile
        self.policy = policy or ThresholdPolicy.from_profile(profile)
        self.window, self.stride = profile.window_, profile.stride_
        self.novelty = NoveltyTracker(profile.orders_, dict(profile.vocabulary_.codes_))
        self.stats = StreamStats()
        self._threads: dict[int, ThreadWindower] = {}
        self._pending: dict[int, _Pending] = {}

    def _windower(self, tid: int) -> ThreadWindower:
        if tid not in self._threads:
            self._threads[tid] = ThreadWindower(self.window, self.stride)
            self.stats.threads += 1
        return self._threads[tid]

    def push(self, tid: int, ids: np.ndarray) -> None:
        """Queue a piece of thread `tid`'s stream; its windows are scored by score_pending."""
        windows, ends = self._windower(tid).push(ids)
        if len(windows):
            pending = self._pending.setdefault(tid, _Pending())
            pending.windows.append(windows)
            pending.ends.append(ends)

    def gap(self, tid: int, lost: int) -> None:
        """Events of `tid` were lost here: close the segment so no window spans the loss."""
        self.stats.gaps += 1
        self.stats.events_lost += int(lost)
        self._close_segment(tid)

    def end(self, tid: int) -> None:
        """The thread exited: queue its closing window, forget its state."""
        self._close_segment(tid)
        self._threads.pop(tid, None)

    def _close_segment(self, tid: int) -> None:
        windower = self._threads.get(tid)
        if windower is None:
            return
        seen = windower.seen
        last = windower.finish()
        if last is not None:
            pending = self._pending.setdefault(tid, _Pending())
            pending.windows.append(last[None, :] if len(last) == self.window else [last])
            pending.ends.append(np.array([seen]))

    def score_pending(self) -> list[ScoredWindows]:
        """Score every queued window of every thread in one detector call."""
        if not self._pending:
            return []
        tids, pieces, ends = [], [], []
        for tid, pending in self._pending.items():  # loop over threads' queued batches
            for windows, end in zip(pending.windows, pending.ends, strict=True):
                pieces.append(windows)
                tids.append(np.full(len(windows), tid, dtype=np.int64))
                ends.append(end)
        self._pending.clear()
        batch = _batch(pieces, self.window)
        scores = self.profile.score_windows(batch)
        alarms = self.policy.is_anomalous(scores, batch)
        self.stats.windows_scored += len(scores)
        self.stats.windows_anomalous += int(alarms.sum())
        tid_arr, end_arr = np.concatenate(tids), np.concatenate(ends)
        # Stable sort by thread keeps each thread's windows in time order.
        order = np.argsort(tid_arr, kind="stable")
        bounds = np.flatnonzero(np.diff(tid_arr[order])) + 1
        out = []
        for idx in np.split(order, bounds):  # one entry per thread
            out.append(ScoredWindows(int(tid_arr[idx[0]]), batch.take(idx), end_arr[idx],
                                     scores[idx], alarms[idx]))
        return out

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
