"""A smoothed n-gram language model over syscalls: how surprising is each next call?

Interpolated Witten-Bell smoothing (each order backs off to the one below in
proportion to how many distinct calls followed the context in training), down to an
add-half unigram over the whole syscall space, so a call never seen still gets a
finite cost. A sequence's score is its mean negative log-likelihood per call: a
length-free number, and a running sum per thread makes it incremental for live use.

Counting is vectorised: every order's n-grams are packed into int64 codes
(`sysgram.features.ngram_codes`), counted with `np.unique`, and looked up with
`np.searchsorted`; no Python loop runs per syscall.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from sysgram.features.sequences import (
    MAX_ORDER,
    SYMBOL_BITS,
    SYMBOL_LIMIT,
    Sequences,
    ngram_codes,
)

UNIGRAM_PSEUDOCOUNT = 0.5  # add-half over all SYMBOL_LIMIT symbols


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == q] for each q, 0 where q is not a key (keys sorted, unique)."""
    out = np.zeros(len(query), dtype=np.float64)
    if len(keys) == 0 or len(query) == 0:
        return out
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[at] == query
    out[hit] = values[at[hit]]
    return out


def _end_positions(seqs: Sequences, n: int) -> np.ndarray:
    """Global index of the last call of every n-gram `ngram_codes(seqs, n)` returns."""
    total = len(seqs.values) - n + 1
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    rows = seqs.row_of_position()[:total]
    starts = np.arange(total)
    keep = starts + n <= seqs.offsets[1:][rows]
    return starts[keep] + n - 1


class NgramLanguageModel(BaseEstimator):
    """Mean negative log-likelihood per call under an interpolated Witten-Bell n-gram LM."""

    def __init__(self, order: int = 6) -> None:
        self.order = order

    def fit(self, seqs: Sequences, y=None) -> NgramLanguageModel:
        if not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"order must be 1..{MAX_ORDER}, got {self.order}")
        if len(seqs) == 0 or len(seqs.values) == 0:
            raise ValueError("cannot fit a language model on zero calls")
        self.counts_: list[tuple[np.ndarray, np.ndarray]] = []  # per order: codes, counts
        self.contexts_: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # codes, c(h), T(h)
        for n in range(1, self.order + 1):
            codes, _ = ngram_codes(seqs, n)
            grams, counts = np.unique(codes, return_counts=True)
            self.counts_.append((grams, counts.astype(np.float64)))
            if n == 1:
                self.contexts_.append((np.zeros(0, np.int64), np.zeros(0), np.zeros(0)))
                continue
            ctx, inverse = np.unique(grams >> SYMBOL_BITS, return_inverse=True)
            total = np.bincount(inverse, weights=counts).astype(np.float64)
            distinct = np.bincount(inverse).astype(np.float64)
            self.contexts_.append((ctx, total, distinct))
        self.n_calls_ = float(self.counts_[0][1].sum())
        return self

    def log_prob(self, seqs: Sequences) -> np.ndarray:
        """Natural log-probability of every call given up to `order - 1` calls before it."""
        prob = np.zeros(len(seqs.values), dtype=np.float64)
        grams, counts = self.counts_[0]
        codes, _ = ngram_codes(seqs, 1)
        prob[:] = (_lookup(grams, counts, codes) + UNIGRAM_PSEUDOCOUNT) / (
            self.n_calls_ + UNIGRAM_PSEUDOCOUNT * SYMBOL_LIMIT
        )
        for n in range(2, self.order + 1):  # loop over orders, not calls
            codes, _ = ngram_codes(seqs, n)
            if len(codes) == 0:
                break
            at = _end_positions(seqs, n)
            grams, counts = self.counts_[n - 1]
            ctx, total, distinct = self.contexts_[n - 1]
            seen = _lookup(grams, counts, codes)
            history = codes >> SYMBOL_BITS
            c_h, t_h = _lookup(ctx, total, history), _lookup(ctx, distinct, history)
            lower = prob[at]
            # An unseen context keeps the lower order's estimate (c_h = t_h = 0).
            known = c_h > 0
            mixed = (seen + t_h * lower) / np.where(known, c_h + t_h, 1.0)
            prob[at] = np.where(known, mixed, lower)
        return np.log(prob)

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        """Mean negative log-likelihood per call of each sequence (higher = stranger)."""
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        nll = -self.log_prob(seqs)
        total = np.bincount(seqs.row_of_position(), weights=nll, minlength=len(seqs))
        return total / np.maximum(seqs.lengths, 1)
