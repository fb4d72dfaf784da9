"""Whole-thread verdicts: each thread's stream scored whole by the thread profile at its end.

The window profile judges 64-call windows as they complete; the thread profile (fitted
by `train` when the training had enough threads: the detector `eval` measures) judges a
thread's whole stream, which on ADFA-LD separates attacks far better than any roll-up of
window scores. A stream ends at the thread's exit, at an exec (the old program's part)
and at a loss (the part before it: no verdict spans missing events). The alert decision
is `AlertPolicy.for_threads` of the thread profile (above its thread threshold and
something training never saw), the one `score` uses for whole streams too.

Memory is bounded: a thread keeps at most MAX_STREAM_CALLS calls; a longer stream gets
no whole-stream verdict (counted; its windows are still scored one by one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models.policy import AlertPolicy
from sysgram.watch.alerts import ProcessContext

MAX_STREAM_CALLS = 1 << 15  # 64 KiB of ids per thread at most


@dataclass
class EndedStream:
    tid: int
    ctx: ProcessContext
    ts_ns: int
    ids: np.ndarray


@dataclass
class VerdictStats:
    streams_scored: int = 0
    streams_anomalous: int = 0
    streams_too_long: int = 0  # no verdict: longer than MAX_STREAM_CALLS

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Stream:
    pieces: list[np.ndarray] = field(default_factory=list)
    calls: int = 0
    too_long: bool = False


class ThreadVerdicts:
    def __init__(self, profile: object, max_calls: int = MAX_STREAM_CALLS) -> None:
        self.profile = profile
        policy = AlertPolicy.for_threads(profile)
        if policy is None:
            raise ValueError("a thread profile without a thread threshold judges no stream")
        self.policy = policy
        self.threshold = policy.threshold
        self.max_calls = max_calls
        self.stats = VerdictStats()
        self._streams: dict[int, _Stream] = {}
        self._ended: list[EndedStream] = []

    @classmethod
    def of(cls, thread_profile: object | None) -> ThreadVerdicts | None:
        """Verdicts by `thread_profile`, when there is one with a thread threshold."""
        if thread_profile is None or AlertPolicy.for_threads(thread_profile) is None:
            return None
        return cls(thread_profile)

    @property
    def buffered(self) -> int:
        """Calls held for threads whose stream has not ended yet."""
        return sum(s.calls for s in self._streams.values() if not s.too_long)

    def add(self, tid: int, ids: np.ndarray) -> None:
        stream = self._streams.setdefault(tid, _Stream())
        if stream.too_long:
            return
        stream.calls += len(ids)
        if stream.calls > self.max_calls:   # give up on this stream; free what it held
            stream.too_long, stream.pieces = True, []
            return
        stream.pieces.append(ids)

    def end(self, tid: int, ctx: ProcessContext, ts_ns: int) -> None:
        """The stream of `tid` ends here (exit, exec or loss): queue it for scoring."""
        stream = self._streams.pop(tid, None)
        if stream is None or stream.calls == 0:
            return
        if stream.too_long:
            self.stats.streams_too_long += 1
            return
        ids = stream.pieces[0] if len(stream.pieces) == 1 else np.concatenate(stream.pieces)
        self._ended.append(EndedStream(tid, ctx, ts_ns, ids))

    def score(self) -> list[tuple[EndedStream, float]]:
        """Score every ended stream in one batch; the anomalous ones with their scores."""
        ended, self._ended = self._ended, []
        if not ended:
            return []
        seqs = Sequences.from_list([e.ids for e in ended])
        scores = self.profile.score_threads(seqs)
        flagged = self.policy.classify(self.profile, scores, seqs).flagged
        self.stats.streams_scored += len(ended)
        self.stats.streams_anomalous += len(flagged)
        return [(ended[k], float(scores[k])) for k in flagged.tolist()]
