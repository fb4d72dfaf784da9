"""Identical sequences, handled once: scoring each distinct sequence once, and sampling
distinct sequences with their counts for fitting.

Normal behaviour repeats itself: a server scores the same windows all day, and a
one-class model gains little from the millionth copy of one window. A 64-bit content
hash (vectorised) tells sequences apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sysgram.features.sequences import Sequences

# Sequences scored at once: bounds memory for batches of any size.
SCORE_CHUNK = 1 << 16


def score_distinct(seqs: Sequences, score: Callable[[Sequences], np.ndarray]) -> np.ndarray:
    """`score(seqs)`, computed in chunks and once per distinct sequence.

    A server repeats its windows all day: each chunk is deduplicated by a 64-bit content
    hash first. A collision (odds about n^2 / 2^65 for n distinct windows) would give one
    window another's score.
    """
    out = np.empty(len(seqs), dtype=np.float64)
    for lo in range(0, len(seqs), SCORE_CHUNK):
        chunk = seqs.slice(lo, min(lo + SCORE_CHUNK, len(seqs)))
        keys = sequence_hashes(chunk)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        distinct = chunk.take(first) if len(first) < len(chunk) else chunk
        scores = np.asarray(score(distinct), dtype=np.float64)
        out[lo : lo + len(chunk)] = scores[inverse] if len(first) < len(chunk) else scores
    return out


def distinct_sample(
    seqs: Sequences, limit: int, random_state: int | None
) -> tuple[Sequences, np.ndarray]:
    """At most `limit` sequences drawn at random, duplicates merged, with their counts."""
    index = np.arange(len(seqs))
    if len(seqs) > limit:
        index = np.sort(np.random.default_rng(random_state).choice(len(seqs), limit,
                                                                   replace=False))
    keys = sequence_hashes(seqs, index)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return seqs.take(index[first]), counts.astype(np.float64)


def sequence_hashes(seqs: Sequences, index: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash of each chosen sequence's content and length (vectorised); all of
    them when `index` is None."""
    if index is None:
        index = np.arange(len(seqs))
    with np.errstate(over="ignore"):  # uint64 products wrap around, as a hash wants
        return _wrapping_hashes(seqs, index)


def _wrapping_hashes(seqs: Sequences, index: np.ndarray) -> np.ndarray:
    sub = seqs if len(index) == len(seqs) else seqs.take(index)
    lengths = sub.lengths
    equal = len(sub) and len(sub.values) == len(sub) * int(lengths[0])
    width = int(lengths[0]) if equal else 0
    pos = np.arange(width) if equal else (
        np.arange(len(sub.values)) - np.repeat(sub.offsets[:-1], lengths))
    # An odd multiplier per position, then an xor-shift: order and content both count.
    mult = np.uint64(0x9E3779B97F4A7C15) * (pos.astype(np.uint64) * np.uint64(2) + np.uint64(1))
    if equal:
        mixed = (sub.values.reshape(len(sub), width).astype(np.uint64) + np.uint64(1)) * mult
        mixed ^= mixed >> np.uint64(29)
        lengths = np.full(len(sub), width, dtype=np.uint64)
        return mixed.sum(axis=1, dtype=np.uint64) ^ (lengths * np.uint64(0xBF58476D1CE4E5B9))
    mixed = (sub.values.astype(np.uint64) + np.uint64(1)) * mult
    mixed ^= mixed >> np.uint64(29)
    out = np.zeros(len(sub), dtype=np.uint64)
    filled = lengths > 0
    if filled.any():  # uint64 sums wrap around, which is what a hash wants
        out[filled] = np.add.reduceat(mixed, sub.offsets[:-1][filled])
    return out ^ (lengths.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
