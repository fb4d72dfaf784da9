"""Whole-stream scores kept up to date as a thread runs: the same score, incrementally.

A thread profile scores a thread's whole stream (`score_samples` on the stream as one
sequence). A server's long-lived threads never end, so that score must be computable as
the stream grows, in memory that does not grow with it. The detectors the thread profile
uses are built from statistics that accumulate exactly:

- `NgramLanguageModel`: mean negative log-likelihood per call = a running sum and a
  count; a call's probability depends on the `order - 1` calls before it, so a tail of
  that many calls carries the context from one piece of the stream to the next;
- `PresenceOCSVM`: which n-grams the stream holds = a set per order (a mask over the
  training vocabulary plus the set of unseen n-grams, whose size the unseen share needs,
  kept up to MAX_UNSEEN_KEPT per order, then counted); the SVM is re-run on the set only
  when the set has grown;
- `FisherEnsemble` (`presence-lm`): the sum of its members' tail surprises;
- `iforest`, `ocsvm`: their model on the two running features above.

`RunningScores` holds the state of many streams and updates every stream that received
calls in one vectorised batch (`update`), so the cost per call is array work, not Python.
`running_scores(detector)` gives one, or None for a detector without an exact running
form. `score(key)` equals `detector.score_samples` on the concatenated stream (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from sysgram.features.sequences import Sequences, ngram_codes
from sysgram.models.detectors import StackedDetector
from sysgram.models.ensemble import FisherEnsemble
from sysgram.models.ngram_lm import NgramLanguageModel
from sysgram.models.presence import PresenceOCSVM, normalize_rows


def _with_tails(tails: list[np.ndarray], pieces: list[np.ndarray]) -> Sequences:
    """One sequence per stream: its carried-over tail, then its new calls."""
    return Sequences.from_list([np.concatenate([t, p]) for t, p in zip(tails, pieces,
                                                                        strict=True)])


class _LanguageModelSums:
    """Running mean NLL per call of many streams under one `NgramLanguageModel`."""

    def __init__(self, model: NgramLanguageModel) -> None:
        self.model = model
        self.context = model.order - 1
        self.nll: dict[Hashable, float] = {}
        self.calls: dict[Hashable, int] = {}
        self.tail: dict[Hashable, np.ndarray] = {}

    def update(self, keys: list, pieces: list[np.ndarray]) -> None:
        tails = [self.tail.get(k, np.zeros(0, np.uint16)) for k in keys]
        seqs = _with_tails(tails, pieces)
        nll = -self.model.log_prob(seqs)
        # The tail's own calls were counted with the piece before: only the new ones count.
        position = np.arange(len(seqs.values)) - np.repeat(seqs.offsets[:-1], seqs.lengths)
        carried = np.repeat([len(t) for t in tails], seqs.lengths)
        fresh = position >= carried
        sums = np.bincount(seqs.row_of_position()[fresh], weights=nll[fresh],
                           minlength=len(keys))
        for i, key in enumerate(keys):  # loop over updated streams, not calls
            self.nll[key] = self.nll.get(key, 0.0) + float(sums[i])
            self.calls[key] = self.calls.get(key, 0) + len(pieces[i])
            self.tail[key] = seqs[i][-self.context:] if self.context else seqs[i][:0]

    def score(self, keys: list) -> np.ndarray:
        return np.array([self.nll.get(k, 0.0) / max(self.calls.get(k, 0), 1) for k in keys])

    def discard(self, key) -> None:
        for table in (self.nll, self.calls, self.tail):
            table.pop(key, None)


MAX_UNSEEN_KEPT = 1 << 14  # per stream and order; beyond, new unseen n-grams are counted


@dataclass
class _PresenceSet:
    known: list[np.ndarray]  # per order: mask over that order's training vocabulary
    unseen: list[set] = field(default_factory=list)  # per order: n-grams training never saw
    overflow: list[int] = field(default_factory=list)  # per order: unseen beyond the set's cap

    def size(self) -> tuple:
        return tuple(int(k.sum()) for k in self.known) + tuple(
            len(u) + o for u, o in zip(self.unseen, self.overflow, strict=True))

    def add_unseen(self, j: int, codes: np.ndarray) -> None:
        """Keep up to MAX_UNSEEN_KEPT distinct unseen n-grams; count (not keep) the rest, so
        memory stays bounded on a stream made of novelty (then the count is an upper bound:
        a repeated n-gram past the cap counts again)."""
        fresh = [c for c in codes.tolist() if c not in self.unseen[j]]
        room = max(MAX_UNSEEN_KEPT - len(self.unseen[j]), 0)
        self.unseen[j].update(fresh[:room])
        self.overflow[j] += max(len(fresh) - room, 0)


class _PresenceSets:
    """Running n-gram sets of many streams, scored by one `PresenceOCSVM`."""

    def __init__(self, model: PresenceOCSVM) -> None:
        self.model = model
        self.context = max(model.presence_orders) - 1
        self.sets: dict[Hashable, _PresenceSet] = {}
        self.tail: dict[Hashable, np.ndarray] = {}
        self.cached: dict[Hashable, float] = {}  # score of a set that has not grown since

    def _new_set(self) -> _PresenceSet:
        orders = self.model.presence_orders
        return _PresenceSet([np.zeros(len(v), dtype=bool) for v in self.model.vocabularies_],
                            [set() for _ in orders], [0 for _ in orders])

    def update(self, keys: list, pieces: list[np.ndarray]) -> None:
        tails = [self.tail.get(k, np.zeros(0, np.uint16)) for k in keys]
        seqs = _with_tails(tails, pieces)  # n-grams inside a tail come again: sets don't mind
        before = {k: self.sets[k].size() for k in keys if k in self.sets}
        for j, (n, vocab) in enumerate(zip(self.model.presence_orders,
                                           self.model.vocabularies_, strict=True)):
            codes, rows = ngram_codes(seqs, n)
            if len(codes) == 0:
                continue
            at = np.minimum(np.searchsorted(vocab, codes), max(len(vocab) - 1, 0))
            hit = vocab[at] == codes if len(vocab) else np.zeros(len(codes), dtype=bool)
            cut = np.searchsorted(rows, np.arange(len(keys) + 1))
            for i, key in enumerate(keys):  # loop over updated streams, not calls
                state = self.sets.setdefault(key, self._new_set())
                mine = slice(cut[i], cut[i + 1])
                state.known[j][at[mine][hit[mine]]] = True
                state.add_unseen(j, np.unique(codes[mine][~hit[mine]]))
        for i, key in enumerate(keys):
            state = self.sets.setdefault(key, self._new_set())
            self.tail[key] = seqs[i][-self.context:] if self.context else seqs[i][:0]
            if before.get(key) != state.size():  # the set grew: its score must be redone
                self.cached.pop(key, None)

    def _features(self, keys: list) -> sp.csr_matrix:
        """The rows `PresenceOCSVM._features` gives for the streams' whole n-gram sets."""
        blocks, unseen = [], []
        for j, vocab in enumerate(self.model.vocabularies_):
            known = sp.csr_matrix(np.array([self.sets[k].known[j] for k in keys],
                                           dtype=np.float64).reshape(len(keys), len(vocab)))
            blocks.append(normalize_rows(known))
            n_known = known.sum(axis=1).A1
            distinct = n_known + np.array([len(self.sets[k].unseen[j]) + self.sets[k].overflow[j]
                                           for k in keys])
            unseen.append(1.0 - n_known / np.maximum(distinct, 1))
        novelty = sp.csr_matrix(self.model.unseen_weight * np.column_stack(unseen))
        return sp.hstack([*blocks, novelty], format="csr")

    def score(self, keys: list) -> np.ndarray:
        for key in keys:  # a stream with no calls yet scores as the empty sequence does
            self.sets.setdefault(key, self._new_set())
        stale = [k for k in dict.fromkeys(keys) if k not in self.cached]
        if stale:
            fresh = -self.model.svm_.decision_function(self._features(stale))
            self.cached.update(zip(stale, fresh.astype(np.float64).tolist(), strict=True))
        return np.array([self.cached[k] for k in keys])

    def discard(self, key) -> None:
        for table in (self.sets, self.tail, self.cached):
            table.pop(key, None)


class RunningScores:
    """Whole-stream scores of many streams (by key), updated as their calls arrive.

    `add(key, ids)` queues calls; `update()` folds every queued piece in at once and
    returns the keys whose score may have changed; `score(keys)` reads them; `calls(key)`
    is the stream's length so far; `discard(key)` forgets a stream (its end).
    """

    def __init__(self, members: list, combine: Callable[[np.ndarray], np.ndarray]) -> None:
        self._members = members
        self._combine = combine  # (streams, members) raw scores -> the detector's score
        self._pending: dict[Hashable, list[np.ndarray]] = {}
        self._calls: dict[Hashable, int] = {}

    def add(self, key: Hashable, ids: np.ndarray) -> None:
        if len(ids):
            self._pending.setdefault(key, []).append(np.asarray(ids, dtype=np.uint16))

    def update(self) -> list:
        pending, self._pending = self._pending, {}
        if not pending:
            return []
        keys = list(pending)
        pieces = [p[0] if len(p) == 1 else np.concatenate(p) for p in pending.values()]
        for member in self._members:
            member.update(keys, pieces)
        for key, piece in zip(keys, pieces, strict=True):
            self._calls[key] = self._calls.get(key, 0) + len(piece)
        return keys

    def calls(self, key: Hashable) -> int:
        return self._calls.get(key, 0) + sum(len(p) for p in self._pending.get(key, ()))

    def score(self, keys: list) -> np.ndarray:
        """Each stream's whole-stream score so far (queued calls not yet folded in)."""
        if not keys:
            return np.zeros(0, dtype=np.float64)
        raw = np.column_stack([m.score(keys) for m in self._members])
        return np.asarray(self._combine(raw), dtype=np.float64)

    def discard(self, key: Hashable) -> None:
        self._pending.pop(key, None)
        self._calls.pop(key, None)
        for member in self._members:
            member.discard(key)

    @property
    def streams(self) -> int:
        return len(self._calls.keys() | self._pending.keys())


def _member(model) -> _LanguageModelSums | _PresenceSets | None:
    if isinstance(model, NgramLanguageModel):
        return _LanguageModelSums(model)
    if isinstance(model, PresenceOCSVM):
        return _PresenceSets(model)
    return None


def running_scores(detector) -> RunningScores | None:
    """Running whole-stream scores for a fitted detector, or None if it has no exact
    running form (its whole-stream score needs the stream itself). A detector that keeps
    a separate model for whole streams (`stream_model_`) is judged through that one."""
    detector = getattr(detector, "stream_model_", detector)
    if isinstance(detector, FisherEnsemble):
        members = [_member(m) for m in detector.members_]
        if any(m is None for m in members):
            return None
        return RunningScores(members, detector.fuse)
    if isinstance(detector, StackedDetector):  # iforest, ocsvm: their two features
        features = detector.features_
        return RunningScores([_LanguageModelSums(features.lm_), _PresenceSets(features.presence_)],
                             detector.score_features)
    member = _member(detector)
    return None if member is None else RunningScores([member], lambda raw: raw[:, 0])
