"""Ragged batches of syscall sequences, and n-gram codes over them, fully vectorised.

A `Sequences` batch holds many variable-length sequences (windows, whole thread
traces) as one flat array plus offsets, like a CSR matrix's rows. Every detector takes
one, so windows of a live stream, a recording's threads and a corpus's traces share one
code path and no Python loop runs per syscall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Syscall numbers fit in 10 bits on every table we use (< 1024); n-gram codes pack one
# number per 10 bits, so orders up to 6 fit in an int64.
SYMBOL_BITS = 10
SYMBOL_LIMIT = 1 << SYMBOL_BITS
MAX_ORDER = 6


@dataclass(frozen=True)
class Sequences:
    """`len(offsets) - 1` sequences; sequence i is `values[offsets[i]:offsets[i+1]]`."""

    values: np.ndarray  # integer syscall numbers, any int dtype
    offsets: np.ndarray  # int64, starts with 0, non-decreasing, ends with len(values)

    @classmethod
    def from_list(cls, seqs: list[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = (
            np.concatenate([np.asarray(s, dtype=np.uint16) for s in seqs])
            if seqs
            else np.zeros(0, dtype=np.uint16)
        )
        return cls(values, offsets)

    @classmethod
    def concat(cls, parts: list[Sequences | np.ndarray]) -> Sequences:
        """One batch of every part's sequences, in order (a 2-D array is its rows, a 1-D
        array one sequence)."""
        batches = [
            p if isinstance(p, Sequences)
            else cls.from_windows(p) if p.ndim == 2 else cls.from_list([p])
            for p in parts
        ]
        if not batches:
            return cls.from_list([])
        bases = np.cumsum([0] + [len(b.values) for b in batches[:-1]])
        offsets = np.concatenate(
            [np.zeros(1, dtype=np.int64)]
            + [b.offsets[1:] - b.offsets[0] + base for b, base in zip(batches, bases, strict=True)]
        )
        values = np.concatenate([np.asarray(b.values, dtype=np.uint16) for b in batches])
        return cls(values, offsets.astype(np.int64))

    @classmethod
    def from_windows(cls, windows: np.ndarray) -> Sequences:
        """From a 2-D (n_windows, length) array of equal-length windows."""
        n, length = windows.shape
        return cls(np.ascontiguousarray(windows).reshape(-1), np.arange(n + 1) * length)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, index: np.ndarray) -> Sequences:
        """A new batch with the sequences at `index` (vectorised gather)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.lengths
        if len(self) and len(self.values) == len(self) * int(lengths[0]) and bool(
            np.all(lengths == lengths[0])
        ):  # equal lengths (windows): a 2-D row gather, no per-value index
            rows = self.values.reshape(len(self), -1)[index]
            return Sequences.from_windows(rows)
        starts, lengths = self.offsets[index], lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Position k of the output reads values[starts[row] + (k - offsets[row])].
        row = np.repeat(np.arange(len(index)), lengths)
        gather = starts[row] + (np.arange(offsets[-1]) - offsets[row])
        return Sequences(self.values[gather], offsets)

    def slice(self, lo: int, hi: int) -> Sequences:
        """Sequences lo..hi-1 as a view (no copy of the values)."""
        offsets = self.offsets[lo : hi + 1]
        return Sequences(self.values[offsets[0] : offsets[-1]], offsets - offsets[0])

    def chunks(self, max_values: int):
        """Consecutive slices holding at most about `max_values` values each (>= 1 sequence)."""
        lo = 0
        while lo < len(self):
            limit = self.offsets[lo] + max_values
            hi = max(lo + 1, int(np.searchsorted(self.offsets, limit, side="right")) - 1)
            yield self.slice(lo, hi)
            lo = hi

    def row_of_position(self) -> np.ndarray:
        """For each value, the index of the sequence it belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)


def max_by_group(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The maximum of `values` in each of `n_groups` groups (-inf for an empty group): the
    roll-up of window scores to threads, and of piece scores to threads."""
    out = np.full(n_groups, -np.inf)
    np.maximum.at(out, np.asarray(group, dtype=np.int64), np.asarray(values, dtype=np.float64))
    return out


def ngram_codes(seqs: Sequences, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All n-grams inside each sequence as int64 codes, with the sequence each belongs to.

    Returns (codes, rows). An n-gram never spans two sequences. Code = the n numbers
    packed SYMBOL_BITS apart, first call in the highest bits.
    """
    if not 1 <= n <= MAX_ORDER:
        raise ValueError(f"n-gram order must be 1..{MAX_ORDER}, got {n}")
    values = seqs.values.astype(np.int64, copy=False)
    if values.size and int(values.max()) >= SYMBOL_LIMIT:
        raise ValueError(f"syscall number >= {SYMBOL_LIMIT} cannot be encoded")
    total = len(values) - n + 1
    if total <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes = np.zeros(total, dtype=np.int64)
    for k in range(n):  # loop over the order (<= 6), not over syscalls
        codes = (codes << SYMBOL_BITS) | values[k : k + total]
    rows = seqs.row_of_position()[:total]
    # Keep n-grams whose last element is still in the same sequence as their first.
    ends = seqs.offsets[1:][rows]
    keep = np.arange(total) + n <= ends
    return codes[keep], rows[keep]


def decode_ngram(code: int, n: int) -> tuple[int, ...]:
    """The syscall numbers of an n-gram code, first call first."""
    mask = SYMBOL_LIMIT - 1
    return tuple((int(code) >> (SYMBOL_BITS * (n - 1 - k))) & mask for k in range(n))


def sliding_windows(ids: np.ndarray, length: int, stride: int) -> Sequences:
    """Windows of `length` every `stride` calls over one thread's stream.

    A stream shorter than `length` gives one short window (so short-lived threads are
    still scored); otherwise the last window is aligned to the end of the stream.
    """
    ids = np.asarray(ids)
    if len(ids) == 0:
        return Sequences(np.zeros(0, dtype=np.uint16), np.zeros(1, dtype=np.int64))
    if len(ids) <= length:
        return Sequences(ids, np.array([0, len(ids)], dtype=np.int64))
    starts = np.arange(0, len(ids) - length + 1, stride)
    if starts[-1] != len(ids) - length:
        starts = np.append(starts, len(ids) - length)
    view = np.lib.stride_tricks.sliding_window_view(ids, length)[starts]
    return Sequences.from_windows(view)
