"""Whole-thread verdicts: each thread's stream scored whole by the thread profile.

The window profile judges 64-call windows as they complete; the thread profile (fitted
by `train` when the training had enough threads: the detector `eval` measures) judges a
thread's whole stream, which on ADFA-LD separates attacks far better than any roll-up of
window scores. A stream ends at the thread's exit, at an exec (the old program's part)
and at a loss (the part before it: no verdict spans missing events). The alert decision
is `AlertPolicy.for_threads` of the thread profile (above its thread threshold and
something training never saw), the one `score` uses for whole streams too.

Long-lived threads (a server's) are judged as they run: when the thread profile's
detector has a running form (`sysgram.models.running`: the same whole-stream score,
updated incrementally), a stream is judged each time its length passes a multiple of
RUNNING_MIN_CALLS (as the "running" roll-up `eval` measures it), and alerts at most
once. Memory is bounded: a thread keeps at most `max_calls` calls (the whole stream
while it fits, for an exact end verdict and its explanation; beyond, only its last
EXPLAIN_CALLS calls, for the explanation). A
detector without a running form gives a longer stream no verdict (counted; its windows
are still scored one by one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models.defaults import RUNNING_CHECK_CALLS as RUNNING_MIN_CALLS
from sysgram.models.policy import AlertPolicy, PolicyProfile
from sysgram.models.running import running_scores
from sysgram.watch.alerts import ProcessContext

MAX_STREAM_CALLS = 1 << 15  # 64 KiB of ids per thread at most
EXPLAIN_CALLS = 4096  # calls kept past max_calls: what a running alert explains


@dataclass
class EndedStream:
    """A stream judged: ended, or (`running`) still going. `ids` is the whole stream, or
    its last calls when it was longer than the verdicts keep; `calls` its length."""

    tid: int
    ctx: ProcessContext
    ts_ns: int
    ids: np.ndarray
    calls: int = -1
    running: bool = False

    def __post_init__(self) -> None:
        if self.calls < 0:
            self.calls = len(self.ids)


@dataclass
class VerdictStats:
    streams_scored: int = 0
    streams_anomalous: int = 0
    streams_too_long: int = 0  # no verdict: longer than max_calls, and no running form
    running_checks: int = 0  # judgements of streams still running
    running_anomalous: int = 0  # of those, alerts (at most one per stream)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Stream:
    pieces: list[np.ndarray] = field(default_factory=list)
    calls: int = 0  # in the stream so far
    held: int = 0  # in `pieces`
    whole: bool = True  # `pieces` hold the whole stream
    ctx: ProcessContext | None = None
    ts_ns: int = 0
    alerted: bool = False  # a running verdict already alerted on this stream
    checks: int = 0  # multiples of RUNNING_MIN_CALLS it has been judged at while running

    def recent(self) -> np.ndarray:
        return self.pieces[0] if len(self.pieces) == 1 else np.concatenate(self.pieces)


class ThreadProfile(PolicyProfile, Protocol):
    """What the verdicts need of a whole-thread profile (models.profile.Profile is one)."""

    detector_: object | None  # its fitted detector: judged while running if it has a form

    def score_threads(self, seqs: Sequences) -> np.ndarray: ...


class ThreadVerdicts:
    def __init__(self, profile: ThreadProfile, max_calls: int = MAX_STREAM_CALLS) -> None:
        self.profile = profile
        policy = AlertPolicy.for_threads(profile)
        if policy is None:
            raise ValueError("a thread profile without a thread threshold judges no stream")
        self.policy = policy
        self.threshold = policy.threshold
        self.max_calls = max_calls
        self.stats = VerdictStats()
        self.running = running_scores(profile.detector_)
        self._streams: dict[int, _Stream] = {}
        self._ended: list[EndedStream] = []
        self._ended_scores: list[float | None] = []  # None: score the whole ids

    @classmethod
    def of(cls, thread_profile: ThreadProfile | None) -> ThreadVerdicts | None:
        """Verdicts by `thread_profile`, when there is one with a thread threshold."""
        if thread_profile is None or AlertPolicy.for_threads(thread_profile) is None:
            return None
        return cls(thread_profile)

    @property
    def buffered(self) -> int:
        """Calls held for threads whose stream has not ended yet."""
        return sum(s.held for s in self._streams.values())

    def add(self, tid: int, ids: np.ndarray, ctx: ProcessContext | None = None,
            ts_ns: int = 0) -> None:
        stream = self._streams.setdefault(tid, _Stream())
        stream.calls += len(ids)
        stream.ctx, stream.ts_ns = ctx or stream.ctx, max(ts_ns, stream.ts_ns)
        if self.running is not None:
            self.running.add(tid, ids)
        elif not stream.whole:
            return
        stream.pieces.append(ids)
        stream.held += len(ids)
        if stream.held > self.max_calls:
            stream.whole = False
            keep = min(EXPLAIN_CALLS, self.max_calls) if self.running is not None else 0
            self._trim(stream, keep)

    @staticmethod
    def _trim(stream: _Stream, keep: int) -> None:
        """Keep about the last `keep` calls (whole pieces; the last piece always)."""
        while stream.pieces and stream.held - len(stream.pieces[0]) >= keep and (
                keep == 0 or len(stream.pieces) > 1):
            stream.held -= len(stream.pieces.pop(0))

    def end(self, tid: int, ctx: ProcessContext, ts_ns: int) -> None:
        """The stream of `tid` ends here (exit, exec or loss): queue it for scoring."""
        stream = self._streams.pop(tid, None)
        if stream is None or stream.calls == 0:
            self._forget(tid)
            return
        if stream.alerted:  # judged anomalous while running: one alert per stream
            pass
        elif stream.whole:
            self._queue(EndedStream(tid, ctx, ts_ns, stream.recent()), None)
        elif self.running is not None:
            self.running.update()
            score = float(self.running.score([tid])[0])
            self._queue(EndedStream(tid, ctx, ts_ns, stream.recent(), stream.calls), score)
        elif self.running is None:
            self.stats.streams_too_long += 1
        self._forget(tid)

    def _queue(self, ended: EndedStream, score: float | None) -> None:
        self._ended.append(ended)
        self._ended_scores.append(score)

    def _forget(self, tid: int) -> None:
        if self.running is not None:
            self.running.discard(tid)

    def score(self) -> list[tuple[EndedStream, float]]:
        """Judge every ended stream, and every long stream still running that received
        calls; the anomalous ones with their scores."""
        ended, given = self._ended, self._ended_scores
        self._ended, self._ended_scores = [], []
        ended += self._running_candidates()
        given += [None] * (len(ended) - len(given))
        if not ended:
            return []
        seqs = Sequences.from_list([e.ids for e in ended])
        scores = self._scores(ended, given, seqs)
        flagged = self.policy.classify(self.profile, scores, seqs).flagged
        running = np.array([e.running for e in ended])
        self.stats.streams_scored += int(np.count_nonzero(~running))
        self.stats.streams_anomalous += int(np.count_nonzero(~running[flagged]))
        self.stats.running_checks += int(np.count_nonzero(running))
        self.stats.running_anomalous += int(np.count_nonzero(running[flagged]))
        for k in flagged.tolist():
            if ended[k].running:
                self._streams[ended[k].tid].alerted = True
        return [(ended[k], float(scores[k])) for k in flagged.tolist()]

    def _running_candidates(self) -> list[EndedStream]:
        if self.running is None:
            return []
        out = []
        for tid in self.running.update():
            stream = self._streams.get(tid)
            if stream is None or stream.alerted:
                continue
            checks = stream.calls // RUNNING_MIN_CALLS  # judged each time it passes a multiple
            if checks > stream.checks:
                stream.checks = checks
                out.append(EndedStream(tid, stream.ctx, stream.ts_ns, stream.recent(),
                                       stream.calls, running=True))
        return out

    def _scores(self, ended: list[EndedStream], given: list[float | None],
                seqs: Sequences) -> np.ndarray:
        """Whole ended streams scored in one batch; running ones read from their state."""
        scores = np.array([np.nan if g is None else g for g in given], dtype=np.float64)
        running = [k for k, e in enumerate(ended) if e.running]
        if running:
            scores[running] = self.running.score([ended[k].tid for k in running])
        whole = np.flatnonzero(np.isnan(scores))
        if len(whole):
            scores[whole] = self.profile.score_threads(seqs.take(whole))
        return scores
