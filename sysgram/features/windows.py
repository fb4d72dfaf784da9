"""Sliding windows over many thread streams at once, and cutting streams at losses.

`window_streams` is the batch form of `sliding_windows`: same window placement (every
`stride` calls, the last one aligned to the end, a short stream gives one short window),
computed for every stream of a `Sequences` batch without a Python loop per stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysgram.features.sequences import Sequences

# Windows gathered per chunk when some are short: bounds the temporary index arrays.
_GATHER_CHUNK = 1 << 16


@dataclass(frozen=True)
class Windows:
    """Windows of a batch of streams: `seqs[k]` comes from stream `source[k]`."""

    seqs: Sequences
    source: np.ndarray  # int64, stream index of each window, non-decreasing
    start: np.ndarray  # int64, position of the window's first call inside its stream

    def __len__(self) -> int:
        return len(self.seqs)


def window_counts(lengths: np.ndarray, length: int, stride: int) -> np.ndarray:
    """How many windows each stream of `lengths` calls gives."""
    lengths = np.asarray(lengths, dtype=np.int64)
    over = np.maximum(lengths - length, 0)
    full = over // stride + 1 + (over % stride != 0)
    return np.where(lengths == 0, 0, np.where(lengths <= length, 1, full))


def window_streams(streams: Sequences, length: int, stride: int) -> Windows:
    """Every window of every stream, in stream order then time order."""
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length}, {stride}")
    lengths = streams.lengths
    counts = window_counts(lengths, length, stride)
    source = np.repeat(np.arange(len(streams), dtype=np.int64), counts)
    first = np.zeros(len(streams) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    k = np.arange(len(source), dtype=np.int64) - first[:-1][source]
    start = np.minimum(k * stride, np.maximum(lengths[source] - length, 0))
    win_len = np.minimum(lengths[source], length)
    global_start = streams.offsets[:-1][source] + start
    if len(source) == 0 or bool(np.all(win_len == length)):
        seqs = _gather_full(streams.values, global_start, length)
    else:
        seqs = _gather_ragged(streams.values, global_start, win_len)
    return Windows(seqs, source, start)


def _gather_full(values: np.ndarray, starts: np.ndarray, length: int) -> Sequences:
    if len(starts) == 0:
        return Sequences(values[:0], np.zeros(1, dtype=np.int64))
    view = np.lib.stride_tricks.sliding_window_view(values, length)
    return Sequences.from_windows(view[starts])


def _gather_ragged(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> Sequences:
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=values.dtype)
    for lo in range(0, len(starts), _GATHER_CHUNK):  # loop over chunks of windows
        hi = min(lo + _GATHER_CHUNK, len(starts))
        n = lengths[lo:hi]
        row = np.repeat(np.arange(hi - lo), n)
        pos = np.arange(offsets[lo], offsets[hi]) - offsets[lo:hi][row]
        out[offsets[lo] : offsets[hi]] = values[starts[lo:hi][row] + pos]
    return Sequences(out, offsets)


def split_at_gaps(streams: Sequences, gaps: list[np.ndarray]) -> tuple[Sequences, np.ndarray]:
    """Cut each stream where events were lost, so no window spans a loss.

    `gaps[i]` is stream i's (k, 2) array of [position, events lost]. Returns the pieces
    and, for each piece, the stream it came from. Empty pieces are dropped.
    """
    cuts = []
    for i, g in enumerate(gaps):  # loop over streams, not calls
        if len(g):
            pos = np.asarray(g, dtype=np.int64)[:, 0]
            cuts.append(streams.offsets[i] + np.clip(pos, 0, streams.lengths[i]))
    bounds = np.unique(np.concatenate([streams.offsets, *cuts]))
    piece_source = np.searchsorted(streams.offsets, bounds[:-1], side="right") - 1
    keep = np.diff(bounds) > 0
    starts, ends = bounds[:-1][keep], bounds[1:][keep]
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    # Pieces tile the streams in order, so the values need no copy.
    return Sequences(streams.values, offsets), piece_source[keep]
