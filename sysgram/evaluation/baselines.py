"""Reference detectors the harness runs beside sysgram's, on whole traces.

- STIDE (Forrest et al., 1996; Warrender et al., 1999): the fraction of a trace's
  n-grams (n = 6) never seen in training, counted by occurrence.
- The naive IsolationForest: TF-IDF of 1-3-gram counts per trace, fitted vocabulary,
  default forest. It sits at or below chance on ADFA-LD (it isolates traces that use
  many distinct calls, and attacks use fewer); it is kept to show why the card's
  detector needs the work in sysgram/models/.
Both follow the detector contract (fit on normal sequences, higher = more anomalous).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.feature_extraction.text import TfidfTransformer

from sysgram.features.sequences import Sequences, ngram_codes


class Stide(BaseEstimator):
    """Fraction of n-grams (by occurrence) absent from the training set of n-grams."""

    def __init__(self, n: int = 6) -> None:
        self.n = n

    def fit(self, seqs: Sequences, y=None) -> Stide:
        self.known_ = np.unique(ngram_codes(seqs, self.n)[0])
        return self

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        codes, rows = ngram_codes(seqs, self.n)
        unseen = ~np.isin(codes, self.known_, assume_unique=False)
        total = np.bincount(rows, minlength=len(seqs))
        novel = np.bincount(rows, weights=unseen, minlength=len(seqs))
        # A trace shorter than n has no n-gram: nothing is known to be novel.
        return novel / np.maximum(total, 1)


def count_matrix(seqs: Sequences, orders: tuple[int, ...], vocab: list[np.ndarray]):
    """Counts of each order's vocabulary n-grams per sequence, blocks side by side."""
    blocks = []
    for n, v in zip(orders, vocab, strict=True):
        codes, rows = ngram_codes(seqs, n)
        at = np.minimum(np.searchsorted(v, codes), max(len(v) - 1, 0))
        hit = v[at] == codes if len(v) else np.zeros(len(codes), bool)
        blocks.append(sp.csr_matrix((np.ones(int(hit.sum())), (rows[hit], at[hit])),
                                    shape=(len(seqs), len(v))))
    return sp.hstack(blocks, format="csr")


class NaiveIForest(BaseEstimator):
    """IsolationForest on trace TF-IDF n-gram counts, as the design card reads naively."""

    def __init__(self, orders: tuple[int, ...] = (1, 2, 3), n_estimators: int = 100,
                 random_state: int | None = 0) -> None:
        self.orders = orders
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, seqs: Sequences, y=None) -> NaiveIForest:
        self.vocab_ = [np.unique(ngram_codes(seqs, n)[0]) for n in self.orders]
        counts = count_matrix(seqs, self.orders, self.vocab_)
        self.tfidf_ = TfidfTransformer().fit(counts)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                       random_state=self.random_state)
        self.forest_.fit(self.tfidf_.transform(counts))
        return self

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        x = self.tfidf_.transform(count_matrix(seqs, self.orders, self.vocab_))
        return -self.forest_.score_samples(x).astype(np.float64)


BASELINES: dict[str, type[BaseEstimator]] = {"stide": Stide, "iforest-naive": NaiveIForest}
