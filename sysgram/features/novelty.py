"""Novelty while learning: how many n-grams never seen before each block of windows brings.

A profile is stable when novelty stops, not after a fixed time: `train --until-stable`
watches this rate, and `profiles show` prints the curve.
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import SYMBOL_LIMIT, Sequences, ngram_codes

# The curve's unit: new n-grams per this many windows.
WINDOWS_PER_POINT = 1000
_DENSE_LIMIT = 1 << 24  # n-gram tables up to this many slots are counted, not sorted


def first_seen_window(seqs: Sequences, orders: tuple[int, ...]) -> np.ndarray:
    """For every distinct n-gram (all orders), the index of the first window holding it."""
    firsts = []
    for n in orders:  # loop over orders only
        codes, rows = ngram_codes(seqs, n)
        # rows are non-decreasing, so np.unique's first index is the earliest window.
        _, first = np.unique(codes, return_index=True)
        firsts.append(rows[first])
    return np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)


def novelty_curve(
    seqs: Sequences, orders: tuple[int, ...], per: int = WINDOWS_PER_POINT
) -> np.ndarray:
    """New n-grams in each consecutive block of `per` windows (last block may be partial)."""
    n_points = max(1, -(-len(seqs) // per))
    return np.bincount(first_seen_window(seqs, orders) // per, minlength=n_points)[:n_points]


def novelty_curve_of_streams(
    streams: Sequences, length: int, stride: int, orders: tuple[int, ...],
    per: int = WINDOWS_PER_POINT,
) -> np.ndarray:
    """`novelty_curve` of the streams' windows, computed on the streams themselves.

    Each window holds `stride`/`length` of its calls anew, so working on the streams reads
    every call once instead of length/stride times. An n-gram at position p first shows
    up in the stream's window k = ceil((p + n - length) / stride) (clamped to its windows).
    """
    from sysgram.features.windows import window_counts

    counts = window_counts(streams.lengths, length, stride)
    first_window = np.concatenate([[0], np.cumsum(counts)])[:-1]
    firsts = []
    for n in orders:
        codes, rows = _dense_codes(streams, n)
        first = _first_index(codes)
        row = rows[first]
        pos = first - np.searchsorted(rows, row)  # kept n-grams of a row are consecutive
        k = np.clip(-(-(pos + n - length) // stride), 0, counts[row] - 1)
        firsts.append(first_window[row] + k)
    total = int(counts.sum())
    n_points = max(1, -(-total // per))
    found = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
    return np.bincount(found // per, minlength=n_points)[:n_points]


def _dense_codes(streams: Sequences, n: int) -> tuple[np.ndarray, np.ndarray]:
    """N-gram codes over the streams' own compact alphabet (small, dense), and rows."""
    from sysgram.features.ngrams import compact_ngram_codes

    present = np.zeros(SYMBOL_LIMIT + 1, dtype=bool)
    present[np.minimum(streams.values, SYMBOL_LIMIT)] = True
    alphabet = np.cumsum(present) - 1  # symbol -> 0..A-1, in order
    base = int(present.sum())
    if base**n > _DENSE_LIMIT:
        return ngram_codes(streams, n)
    compact = alphabet[np.minimum(streams.values, SYMBOL_LIMIT)]
    return compact_ngram_codes(compact, streams, n, base)


def _first_index(codes: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct code (in no particular order)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    if int(codes.max()) < _DENSE_LIMIT:  # linear: a table of first positions
        table = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
        np.minimum.at(table, codes, np.arange(len(codes)))
        return table[table < len(codes)]
    return np.unique(codes, return_index=True)[1]


class NoveltyTracker:
    """Running set of seen n-grams, for live learning: how much is new in each batch."""

    def __init__(self, orders: tuple[int, ...], seen: dict[int, np.ndarray] | None = None):
        self.orders = tuple(orders)
        self.seen = {n: np.asarray(seen.get(n, []), dtype=np.int64) if seen else
                     np.zeros(0, dtype=np.int64) for n in self.orders}
        self.windows = 0
        self.new_total = 0

    def update(self, seqs: Sequences) -> int:
        """Add the windows' n-grams; return how many were new."""
        new = 0
        for n in self.orders:
            codes = np.unique(ngram_codes(seqs, n)[0])
            fresh = np.setdiff1d(codes, self.seen[n], assume_unique=True)
            if len(fresh):
                self.seen[n] = np.union1d(self.seen[n], fresh)
            new += len(fresh)
        self.windows += len(seqs)
        self.new_total += new
        return new

    def size(self) -> int:
        return int(sum(len(c) for c in self.seen.values()))
