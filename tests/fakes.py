"""Test fakes that conform to the watch engine's `WatchedProfile` Protocol.

They score without a detector (the share of a window's calls outside a trained set), so
engine tests run the engine's real policy on scores they can predict.
"""

from __future__ import annotations

import numpy as np

from sysgram.models.policy import Novelty, decisive_syscalls
from sysgram.syscalls import table

READ, WRITE, OPENAT, CLOSE = 0, 1, 257, 3


class FakeProfile:
    """Score = fraction of a window's calls outside the trained set {read, write, openat, close};
    novel = a call outside that set or a pair (2-gram) outside the trained pairs. A
    `WatchedProfile`: the engine's real policy decides on these scores."""

    window_ = 4
    stride_ = 2
    arch_ = "x86_64"
    threshold_ = 0.4
    thread_threshold_ = None
    require_novelty = True
    known = np.array([READ, WRITE, OPENAT, CLOSE])
    pairs = {(READ, WRITE), (WRITE, OPENAT), (OPENAT, CLOSE), (CLOSE, READ)}

    def score_windows(self, seqs):
        novel = ~np.isin(seqs.values, self.known)
        per_row = np.add.reduceat(novel.astype(float), seqs.offsets[:-1]) if len(seqs) else []
        return np.asarray(per_row) / np.maximum(seqs.lengths, 1)

    def novelty(self, seqs):
        """Events: distinct calls outside the set plus distinct unknown pairs of known
        calls; decisive: a new call of the real decisive kind (execve, connect, ...)."""
        decisive_calls = set(decisive_syscalls(self.arch_).tolist())
        events, decisive = [], []
        for w in (seqs[k].tolist() for k in range(len(seqs))):
            new = {x for x in w if x not in self.known}
            pairs = {p for p in zip(w[:-1], w[1:], strict=True)
                     if p not in self.pairs and not new & set(p)}
            events.append(len(new) + len(pairs))
            decisive.append(bool(new & decisive_calls))
        return Novelty(np.array(events, dtype=np.int64), np.array(decisive, dtype=bool))

    def new_syscalls(self, seqs):
        return [[int(x) for x in dict.fromkeys(seqs[k].tolist()) if x not in self.known]
                for k in range(len(seqs))]

    def explain(self, window):
        own = table(self.arch_)
        names = own.names(window)
        new = [own.name(x) for x in dict.fromkeys(int(v) for v in window) if x not in self.known]
        grams = [names[k : k + 2] for k in range(len(names) - 1)
                 if int(window[k]) not in self.known or int(window[k + 1]) not in self.known]
        return {"syscalls": names, "unseen_ngrams": {"2": grams}, "new_syscalls": new}
