"""Built-in detectors: n-gram features of sequences -> anomaly score (higher = stranger).

Contract (docs/design.md §5): a scikit-learn-style estimator; `__init__` stores
parameters only, `fit(seqs)` learns on normal sequences and returns self, learned state
ends in `_`, `score_samples(seqs)` returns float64 scores where higher is more anomalous.
A sequence is a window or a whole thread trace (`sysgram.features.Sequences`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDOneClassSVM

from sysgram.features import NgramFeaturizer, Sequences

# Windows featurised at once when scoring: bounds memory for batches of any size.
SCORE_CHUNK = 1 << 16


class NgramDetector(BaseEstimator):
    """Shared featurisation (`orders`, `weighting`, `normalize`, `unseen_weight`) and sampling.

    The vocabulary is always learned from every training sequence. The model itself is
    fitted on at most `max_windows` of them, drawn at random, with identical sequences
    merged into one row weighted by its count: normal behaviour repeats itself, and a
    one-class boundary gains little from the millionth copy of the same window.
    """

    def _featurizer(self) -> NgramFeaturizer:
        return NgramFeaturizer(
            orders=tuple(self.orders),
            weighting=self.weighting,
            normalize=self.normalize,
            unseen_weight=self.unseen_weight,
        )

    def _fit_features(self, seqs: Sequences):
        """(features, sample weights, the sampled sequences) for fitting the model."""
        if len(seqs) == 0:
            raise ValueError("cannot fit a detector on zero sequences")
        self.featurizer_ = self._featurizer().fit(seqs)
        sample, weights = distinct_sample(seqs, self.max_windows, self.random_state)
        self.n_fit_windows_ = len(seqs)
        self.n_distinct_fitted_ = len(sample)
        return self.featurizer_.transform(sample), weights, sample

    def _scores(self, x) -> np.ndarray:
        raise NotImplementedError

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        """Anomaly score per sequence (higher = more anomalous); see `score_distinct`."""
        return score_distinct(seqs, lambda distinct: self._scores(self.featurizer_.transform(
            distinct)))


def score_distinct(seqs: Sequences, score: Callable[[Sequences], np.ndarray]) -> np.ndarray:
    """`score(seqs)`, computed in chunks and once per distinct sequence.

    A server repeats its windows all day: each chunk is deduplicated by a 64-bit content
    hash first. A collision (odds about n^2 / 2^65 for n distinct windows) would give one
    window another's score.
    """
    out = np.empty(len(seqs), dtype=np.float64)
    for lo in range(0, len(seqs), SCORE_CHUNK):
        chunk = seqs.slice(lo, min(lo + SCORE_CHUNK, len(seqs)))
        keys = _sequence_hashes(chunk, np.arange(len(chunk)))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        distinct = chunk.take(first) if len(first) < len(chunk) else chunk
        scores = np.asarray(score(distinct), dtype=np.float64)
        out[lo : lo + len(chunk)] = scores[inverse] if len(first) < len(chunk) else scores
    return out


def _row_square_norms(x) -> np.ndarray:
    squares = x.data * x.data
    if x.shape[0] and bool(np.all(np.diff(x.indptr) > 0)):  # no empty row: reduceat is exact
        return np.add.reduceat(squares, x.indptr[:-1]).astype(np.float32)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    return np.bincount(rows, weights=squares, minlength=x.shape[0]).astype(np.float32)


def distinct_sample(
    seqs: Sequences, limit: int, random_state: int | None
) -> tuple[Sequences, np.ndarray]:
    """At most `limit` sequences drawn at random, duplicates merged, with their counts."""
    index = np.arange(len(seqs))
    if len(seqs) > limit:
        index = np.sort(np.random.default_rng(random_state).choice(len(seqs), limit,
                                                                   replace=False))
    keys = _sequence_hashes(seqs, index)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return seqs.take(index[first]), counts.astype(np.float64)


def _sequence_hashes(seqs: Sequences, index: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each chosen sequence's content and length (vectorised)."""
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


class IForestDetector(NgramDetector):
    """IsolationForest on n-gram vectors (the design card's detector), made novelty-aware.

    Naively, the unseen-n-gram columns are zero on every training row (the vocabulary
    was fitted on them), so the forest never splits on them and ends up isolating rows
    with many rare calls instead of novel ones: at or below chance on real data. Here the
    training rows' unseen fractions are computed out of fold (each half of the windows
    against a vocabulary of the other half), so novelty is a feature the forest can use.
    """

    def __init__(
        self,
        orders: tuple[int, ...] = (1, 2, 3),
        weighting: str = "binary",
        normalize: bool = True,
        unseen_weight: float = 1.0,
        n_estimators: int = 100,
        max_samples: int | str = "auto",
        max_windows: int = 100_000,
        random_state: int | None = 0,
    ) -> None:
        self.orders = orders
        self.weighting = weighting
        self.normalize = normalize
        self.unseen_weight = unseen_weight
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_windows = max_windows
        self.random_state = random_state

    def fit(self, seqs: Sequences, y=None) -> IForestDetector:
        x, weights, sample = self._fit_features(seqs)
        x = _with_out_of_fold_novelty(x, sample, self)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
        ).fit(x.tocsc(), sample_weight=weights)
        return self

    def _scores(self, x) -> np.ndarray:
        return -self.forest_.score_samples(x)


class OCSVMDetector(NgramDetector):
    """One-class SVM with an RBF kernel, approximated so it scales to millions of windows.

    A Nystroem map (`n_components` landmarks) turns the RBF kernel into a dense linear
    feature space; SGDOneClassSVM then solves the one-class problem in linear time. The
    score is the negated decision function, so higher means further outside the support.
    128 landmarks: on ADFA-LD dev (64/16 windows) 128, 256 and 512 give trace AUCs of
    0.764 / 0.762 / 0.777 (mean roll-up), and the kernel cost grows linearly with them.
    """

    def __init__(
        self,
        orders: tuple[int, ...] = (1, 2, 3),
        weighting: str = "binary",
        normalize: bool = True,
        unseen_weight: float = 1.0,
        nu: float = 0.05,
        gamma: float = 1.0,
        n_components: int = 128,
        max_iter: int = 20,
        max_windows: int = 100_000,
        random_state: int | None = 0,
    ) -> None:
        self.orders = orders
        self.weighting = weighting
        self.normalize = normalize
        self.unseen_weight = unseen_weight
        self.nu = nu
        self.gamma = gamma
        self.n_components = n_components
        self.max_iter = max_iter
        self.max_windows = max_windows
        self.random_state = random_state

    def fit(self, seqs: Sequences, y=None) -> OCSVMDetector:
        x, weights, _ = self._fit_features(seqs)
        self.__dict__.pop("_landmark_cache", None)
        self.__dict__.pop("_folded_cache", None)
        self.kernel_map_ = Nystroem(
            kernel="rbf",
            gamma=self.gamma,
            n_components=min(self.n_components, x.shape[0]),
            random_state=self.random_state,
        ).fit(x)
        z = self._rbf(x) @ self.kernel_map_.normalization_.T.astype(np.float32)
        self.svm_ = SGDOneClassSVM(
            nu=self.nu, max_iter=self.max_iter, tol=None, random_state=self.random_state
        ).fit(z, sample_weight=weights)
        return self

    def _scores(self, x) -> np.ndarray:
        """-(decision function), computed as sklearn would but fused and in float32.

        Nystroem: z = rbf(x, landmarks) @ N.T; SGD: f = z @ w - offset. Folding
        v = N.T @ w leaves one sparse x dense product against the landmarks and one
        matrix-vector product: about 3x faster than the two sklearn steps.
        """
        v = self.__dict__.get("_folded_cache")
        if v is None:
            v = self.kernel_map_.normalization_.T @ np.ravel(self.svm_.coef_)
            v = self.__dict__["_folded_cache"] = v.astype(np.float64)
        # The kernel row is float32 (fast, per-element), but the weighted sum over
        # landmarks is done in float64: its terms cancel, and a float32 sum would let a
        # window's score depend on the batch it is scored in (BLAS picks kernels by shape).
        return float(self.svm_.offset_[0]) - self._rbf(x).astype(np.float64) @ v

    def _rbf(self, x) -> np.ndarray:
        """RBF kernel between rows of `x` and the landmarks, float32, (rows, components)."""
        lt, lsq = self._landmarks()
        x32 = x.astype(np.float32)
        k = np.asarray(x32 @ lt)  # in place from here: -gamma * squared distance, then exp
        k *= -2.0
        k += _row_square_norms(x32)[:, None]
        k += lsq[None, :]
        np.maximum(k, 0.0, out=k)
        k *= -self.gamma
        np.exp(k, out=k)
        return k

    def _landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense float32 landmarks (features x components) and their squared norms.

        Cached on first use and never pickled: it is derived state, and dense.
        (Keeping only the features the landmarks use was measured slower: the
        filtering costs more than the smaller table saves.)
        """
        cached = self.__dict__.get("_landmark_cache")
        if cached is None:
            landmarks = self.kernel_map_.components_
            dense = landmarks.toarray() if hasattr(landmarks, "toarray") else landmarks
            lsq = (dense.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
            cached = (np.ascontiguousarray(dense.T, dtype=np.float32), lsq)
            self.__dict__["_landmark_cache"] = cached
        return cached

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_landmark_cache", None)
        state.pop("_folded_cache", None)
        return state


def _with_out_of_fold_novelty(x: sp.csr_matrix, seqs: Sequences, det: NgramDetector):
    """`x` with its unseen-fraction columns recomputed out of fold (two contiguous halves)."""
    n = len(seqs)
    if n < 4:
        return x
    cols = det.featurizer_.unseen_columns()
    fractions = np.zeros((n, len(cols)))
    halves = (np.arange(n // 2), np.arange(n // 2, n))
    for this, other in (halves, halves[::-1]):
        fold = det._featurizer().fit(seqs.take(other))
        fractions[this] = fold.unseen_fractions(seqs.take(this))
    keep = np.ones(x.shape[1])
    keep[cols] = 0.0
    novelty = sp.csr_matrix(
        (fractions.ravel(), (np.repeat(np.arange(n), len(cols)), np.tile(cols, n))),
        shape=x.shape,
    )
    return sp.csr_matrix(x.multiply(keep[None, :])) + novelty


BUILTIN_DETECTORS: dict[str, type[BaseEstimator]] = {
    "iforest": IForestDetector,
    "ocsvm": OCSVMDetector,
}
