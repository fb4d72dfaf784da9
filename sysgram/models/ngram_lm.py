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

from sysgram.features.sequences import (
    MAX_ORDER,
    SYMBOL_BITS,
    SYMBOL_LIMIT,
    Sequences,
    ngram_codes,
)
from sysgram.models.estimator import Estimator

UNIGRAM_PSEUDOCOUNT = 0.5  # add-half over all SYMBOL_LIMIT symbols
CHILD_TABLE_LIMIT = 1 << 22  # entries per order of the window path's trie (16 MiB of int32)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == q] for each q, 0 where q is not a key (keys sorted, unique)."""
    out = np.zeros(len(query), dtype=np.float64)
    if len(keys) == 0 or len(query) == 0:
        return out
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[at] == query
    out[hit] = values[at[hit]]
    return out


def _find(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, found) of each query in sorted unique `keys`."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return at, keys[at] == query


def _end_positions(seqs: Sequences, n: int) -> np.ndarray:
    """Global index of the last call of every n-gram `ngram_codes(seqs, n)` returns."""
    total = len(seqs.values) - n + 1
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    rows = seqs.row_of_position()[:total]
    starts = np.arange(total)
    keep = starts + n <= seqs.offsets[1:][rows]
    return starts[keep] + n - 1


class NgramLanguageModel(Estimator):
    """Mean negative log-likelihood per call under an interpolated Witten-Bell n-gram LM."""

    def __init__(self, order: int = 6) -> None:
        self.order = order

    def fit(self, seqs: Sequences, y=None) -> NgramLanguageModel:
        if not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"order must be 1..{MAX_ORDER}, got {self.order}")
        if len(seqs) == 0 or len(seqs.values) == 0:
            raise ValueError("cannot fit a language model on zero calls")
        self.__dict__.pop("_unigram_cache", None)
        self.__dict__.pop("_context_cache", None)
        self.__dict__.pop("_child_cache", None)
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

    def _unigram(self, values: np.ndarray) -> np.ndarray:
        table = self.__dict__.get("_unigram_cache")
        if table is None:  # derived state, dense over every symbol: one gather per call
            grams, counts = self.counts_[0]
            table = np.zeros(SYMBOL_LIMIT, dtype=np.float64)
            table[grams] = counts
            table = (table + UNIGRAM_PSEUDOCOUNT) / (
                self.n_calls_ + UNIGRAM_PSEUDOCOUNT * SYMBOL_LIMIT)
            self.__dict__["_unigram_cache"] = table
        return table[values.astype(np.int64)]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_unigram_cache", None)
        state.pop("_context_cache", None)
        state.pop("_child_cache", None)
        return state

    def log_prob(self, seqs: Sequences) -> np.ndarray:
        """Natural log-probability of every call given up to `order - 1` calls before it."""
        if len(seqs) and len(seqs.values) == len(seqs) * int(seqs.lengths[0]):
            return self._log_prob_equal(seqs.values.reshape(len(seqs), -1)).reshape(-1)
        prob = self._unigram(seqs.values)
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

    def _log_prob_equal(self, x: np.ndarray) -> np.ndarray:
        """`log_prob` of equal-length sequences as rows of a 2-D array (windows).

        Same arithmetic, laid out in 2-D, with one search per order: the n-grams of order
        n are the (n-1)-grams extended by one call, and an n-gram's context *is* the
        (n-1)-gram found by the previous order's search, so the context counts are read
        from tables aligned with that order's n-grams (`_context_counts`).
        """
        x = x.astype(np.int64)
        prob = self._unigram(x)
        aligned = self._context_counts()
        compact, columns, children = self._child_tables()
        symbol = compact[x]  # each call's index among the training symbols (unseen: last)
        code = x
        at, found = _find(self.counts_[0][0], code.reshape(-1))
        for n in range(2, min(self.order, x.shape[1]) + 1):  # loop over orders only
            total, distinct = aligned[n - 2]
            width = x.shape[1] - n + 1
            ctx_at = at.reshape(code.shape)[:, :width].reshape(-1)
            ctx_found = found.reshape(code.shape)[:, :width].reshape(-1)
            c_h = np.where(ctx_found, total[ctx_at], 0.0).reshape(-1, width)
            t_h = np.where(ctx_found, distinct[ctx_at], 0.0).reshape(-1, width)
            code = (code[:, :-1] << SYMBOL_BITS) | x[:, n - 1:]
            grams, counts = self.counts_[n - 1]
            if children[n - 2] is not None:  # a gather instead of a search
                child = children[n - 2][ctx_at * columns + symbol[:, n - 1:].reshape(-1)]
                found = ctx_found & (child >= 0)
                at = np.where(found, child, 0)
            else:
                at, found = _find(grams, code.reshape(-1))
            seen = np.where(found, counts[at], 0.0).reshape(code.shape)
            lower = prob[:, n - 1:]
            mixed = (seen + t_h * lower) / np.where(c_h > 0, c_h + t_h, 1.0)
            prob[:, n - 1:] = np.where(c_h > 0, mixed, lower)
        return np.log(prob)

    def _child_tables(self) -> tuple[np.ndarray, int, list[np.ndarray | None]]:
        """A trie over the training n-grams, as dense tables: per order n >= 2, the index
        of n-gram (h, s) in `counts_[n - 1]` at [index of h in `counts_[n - 2]`, s], -1 if
        absent; symbols compacted to the ones training saw (plus one for any other).
        An order whose table would exceed CHILD_TABLE_LIMIT entries gets None (searched).
        Derived state, cached, never pickled."""
        cached = self.__dict__.get("_child_cache")
        if cached is None:
            symbols = self.counts_[0][0]
            compact = np.full(SYMBOL_LIMIT, len(symbols), dtype=np.int64)
            compact[symbols] = np.arange(len(symbols))
            columns = len(symbols) + 1
            tables: list[np.ndarray | None] = []
            for n in range(2, self.order + 1):
                parents, grams = self.counts_[n - 2][0], self.counts_[n - 1][0]
                if len(parents) * columns > CHILD_TABLE_LIMIT:
                    tables.append(None)
                    continue
                # An n-gram's first n-1 calls are themselves a training (n-1)-gram.
                parent = np.searchsorted(parents, grams >> SYMBOL_BITS)
                table = np.full(len(parents) * columns, -1, dtype=np.int32)
                table[parent * columns + compact[grams & (SYMBOL_LIMIT - 1)]] = np.arange(
                    len(grams))
                tables.append(table)
            cached = self.__dict__["_child_cache"] = (compact, columns, tables)
        return cached

    def _context_counts(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per order m < `order`: c(h) and T(h) of each m-gram as a context (0 if never one),
        aligned with `counts_[m - 1]`'s n-grams. Derived state, cached, never pickled."""
        cached = self.__dict__.get("_context_cache")
        if cached is None:
            cached = []
            for m in range(1, self.order):
                grams = self.counts_[m - 1][0]
                ctx, total, distinct = self.contexts_[m]
                cached.append((_lookup(ctx, total, grams), _lookup(ctx, distinct, grams)))
            self.__dict__["_context_cache"] = cached
        return cached

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        """Mean negative log-likelihood per call of each sequence (higher = stranger)."""
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        nll = -self.log_prob(seqs)
        total = np.bincount(seqs.row_of_position(), weights=nll, minlength=len(seqs))
        return total / np.maximum(seqs.lengths, 1)
