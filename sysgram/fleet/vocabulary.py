"""The pooled vocabulary: every n-gram any host saw, and on how many hosts it was seen.

A `PooledVocabulary` is an `NgramVocabulary` (the profile's novelty test and explanations
use it unchanged) built by merging the vocabularies of many partitions instead of fitting
on one batch; it also keeps, per n-gram and per syscall, the number of hosts that saw it,
so an alert can say "seen on 1 of 40 hosts" rather than only "never seen".
"""

from __future__ import annotations

import numpy as np

from sysgram.features import NgramVocabulary, Sequences
from sysgram.features.sequences import SYMBOL_LIMIT, ngram_codes


class PooledVocabulary(NgramVocabulary):
    """Learned: symbols_, alphabet_, codes_ (as NgramVocabulary), symbol_hosts_ and
    hosts_ (per order, aligned with codes_): hosts that saw each; n_hosts_."""

    @classmethod
    def merge(cls, orders: tuple[int, ...], per_host: dict[str, dict]) -> PooledVocabulary:
        """`per_host[host] = {"symbols": array, "codes": {n: sorted array}}` -> pooled."""
        vocab = cls(tuple(orders))
        hosts = list(per_host.values())
        vocab.symbols_, vocab.symbol_hosts_ = _count([h["symbols"] for h in hosts])
        vocab.alphabet_ = np.zeros(SYMBOL_LIMIT + 1, dtype=np.int64)
        vocab.alphabet_[vocab.symbols_] = np.arange(1, len(vocab.symbols_) + 1)
        vocab.codes_, vocab.hosts_ = {}, {}
        for n in vocab.orders:
            vocab.codes_[n], vocab.hosts_[n] = _count([h["codes"][n] for h in hosts])
        vocab.n_hosts_ = len(hosts)
        return vocab

    def hosts_seen(self, codes: np.ndarray, n: int) -> np.ndarray:
        """For each order-`n` code, how many hosts saw it (0: never seen anywhere)."""
        codes = np.asarray(codes, dtype=np.int64)
        known = self.codes_[n]
        if not len(known):
            return np.zeros(len(codes), dtype=np.int64)
        pos = np.minimum(np.searchsorted(known, codes), len(known) - 1)
        return np.where(known[pos] == codes, self.hosts_[n][pos], 0)

    def rarest(self, seqs: Sequences, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, hosts) of the distinct order-`n` n-grams in `seqs`, rarest first."""
        codes = np.unique(ngram_codes(seqs, n)[0])
        hosts = self.hosts_seen(codes, n)
        order = np.argsort(hosts, kind="stable")
        return codes[order], hosts[order]


def _count(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Union of sets of distinct ints, and in how many of the sets each one is."""
    if not sets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    values, counts = np.unique(np.concatenate([np.asarray(s, np.int64) for s in sets]),
                               return_counts=True)
    return values, counts.astype(np.int64)
