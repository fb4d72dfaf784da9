"""Synthetic syscall streams with known structure, for tests and benchmarks.

`random_chain` makes a sparse Markov chain over syscall numbers; `sample_chain` draws a
stream from it without a Python loop per call: each step is a map state -> next state
(all states share one uniform draw, a valid coupling), and the prefix composition of
those maps is computed by doubling (Hillis-Steele scan) in log2(length) array steps.
"""

from __future__ import annotations

import numpy as np


def random_chain(
    symbols: np.ndarray | int, rng: np.random.Generator, successors: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, P): each state moves to `successors` random states with random weights."""
    symbols = np.arange(symbols) if np.isscalar(symbols) else np.asarray(symbols)
    a = len(symbols)
    p = np.zeros((a, a))
    for i in range(a):  # loop over states, not calls
        nxt = rng.choice(a, size=min(successors, a), replace=False)
        p[i, nxt] = rng.dirichlet(np.ones(len(nxt)))
    return symbols, p


def sample_chain(
    chain: tuple[np.ndarray, np.ndarray], length: int, rng: np.random.Generator
) -> np.ndarray:
    """A uint16 stream of `length` calls from the chain, starting in a random state."""
    symbols, p = chain
    a = len(symbols)
    if length <= 0:
        return np.zeros(0, dtype=np.uint16)
    u = rng.random(length - 1)
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    step = np.empty((length - 1, a), dtype=np.int32)
    for s in range(a):  # loop over states: the map of every step at once
        step[:, s] = np.minimum(np.searchsorted(cum[s], u, side="right"), a - 1)
    # prefix[t] = step[t] o step[t-1] o ... o step[0]
    prefix = step
    d = 1
    while d < len(prefix):
        composed = np.take_along_axis(prefix[d:], prefix[:-d], axis=1)
        prefix = np.concatenate([prefix[:d], composed])
        d *= 2
    x0 = int(rng.integers(a))
    states = np.concatenate([[x0], prefix[:, x0]])
    return symbols[states].astype(np.uint16)


def random_paths(
    chain: tuple[np.ndarray, np.ndarray], n_paths: int, rng: np.random.Generator,
    min_length: int = 4, max_length: int = 40,
) -> list[np.ndarray]:
    """`n_paths` code paths (short call sequences) walked on the chain."""
    lengths = rng.integers(min_length, max_length + 1, n_paths)
    return [sample_chain(chain, int(n), rng) for n in lengths]


def sample_paths(
    paths: list[np.ndarray], length: int, rng: np.random.Generator, zipf: float = 1.2
) -> np.ndarray:
    """A stream of about `length` calls: code paths picked at random (Zipf-like weights),
    one after the other, as a server's request loop does. Fully vectorised."""
    from sysgram.features.sequences import Sequences

    batch = Sequences.from_list(paths)
    weights = 1.0 / np.arange(1, len(paths) + 1) ** zipf
    weights /= weights.sum()
    mean = float(weights @ batch.lengths)
    picks = rng.choice(len(paths), size=int(length / mean) + 2, p=weights)
    return batch.take(picks).values[:length].astype(np.uint16)
