"""Built-in detectors: the design card's IsolationForest and one-class SVM, made to work.

Contract (docs/design.md §5): a scikit-learn-style estimator; `__init__` stores
parameters only, `fit(seqs)` learns on normal sequences and returns self, learned state
ends in `_`, `score_samples(seqs)` returns float64 scores where higher is more anomalous.

Built naively on n-gram vectors, both fail on real data: every training row holds only
n-grams of the vocabulary (fitted on those very rows), so novelty is invisible in sample;
the forest isolates rows with many rare calls instead, and the kernel machine saturates
far from its support (ADFA-LD dev windows: AUC 0.26 and 0.57). Here each sequence is
described by two numbers that carry novelty and rarity (`DetectorFeatures`): its mean
surprise per call under an n-gram language model (an unseen call or transition is
expensive, a rare one costly) and the score of a one-class SVM on which calls and 3-grams
it holds (`PresenceOCSVM`). For the training rows both are computed **out of fold** (K
contiguous blocks, each scored by models fitted on the other blocks), so the training
rows carry the surprise a *new* normal sequence has, and the one-class model learns how
much of it is normal. New sequences are scored by models fitted on everything.

The forest sees the features one-sided (`one_sided`): values below the out-of-fold
median are raised to it, so only "more surprising than usual" can be isolated (a forest
isolates both tails, and an unusually *ordinary* sequence is no threat). Measured on
the ADFA-LD dev split, whole traces: forest 0.834 two-sided, 0.887 one-sided; the SVM
0.866 two-sided, 0.716 one-sided (`benchmarks/bench_eval.py --variants`).

Given the training streams (`fit(windows, streams=...)`, by `Profile`), each also learns
a second model of its own kind on whole streams (`stream_model_`, `score_streams`), which
the "running" roll-up and the live thread verdicts read (`sysgram.models.running`).

scikit-learn is imported by fitting only. The one-class SVM is kept as its numpy decision
function and the scaler as its mean and scale, so an `ocsvm` profile scores without it;
an `iforest` profile keeps scikit-learn's forest, and loading one imports scikit-learn.
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models import defaults
from sysgram.models.distinct import score_distinct
from sysgram.models.estimator import Estimator, clone
from sysgram.models.ngram_lm import NgramLanguageModel
from sysgram.models.presence import PresenceOCSVM
from sysgram.models.rbf import RBFDecision

MIN_PER_FOLD = 20  # fewer sequences than n_folds * this: fewer folds


class DetectorFeatures:
    """(mean NLL per call under an n-gram LM, presence one-class SVM score) per sequence."""

    def __init__(self, lm_order: int) -> None:
        self.lm_order = lm_order

    def fit(self, seqs: Sequences) -> DetectorFeatures:
        self.lm_ = NgramLanguageModel(self.lm_order).fit(seqs)
        self.presence_ = PresenceOCSVM(unseen_weight=0.0).fit(seqs)
        return self

    def transform(self, seqs: Sequences) -> np.ndarray:
        return np.column_stack([self.lm_.score_samples(seqs), self.presence_.score_samples(seqs)])

    @classmethod
    def out_of_fold(cls, seqs: Sequences, lm_order: int, n_folds: int) -> np.ndarray:
        """Each sequence's features by models fitted on the other contiguous blocks
        (windows of one stream are contiguous and overlap: a block keeps them together)."""
        folds = max(2, min(n_folds, len(seqs) // MIN_PER_FOLD))
        bounds = np.linspace(0, len(seqs), folds + 1).astype(np.int64)
        out = np.zeros((len(seqs), 2))
        index = np.arange(len(seqs))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):  # loop over folds
            rest = np.concatenate([index[:lo], index[hi:]])
            out[lo:hi] = cls(lm_order).fit(seqs.take(rest)).transform(seqs.slice(lo, hi))
        return out


class StackedDetector(Estimator):
    """Shared fit: out-of-fold features of (a sample of) the sequences, then `_fit_model`."""

    def fit(self, seqs: Sequences, y=None, streams: Sequences | None = None):
        if len(seqs) < 2:
            raise ValueError("a detector needs at least 2 sequences to fit")
        if len(seqs) > self.max_windows:  # a random sample, kept in order (blocks stay)
            keep = np.sort(np.random.default_rng(self.random_state).choice(
                len(seqs), self.max_windows, replace=False))
            seqs = seqs.take(keep)
        self.features_ = DetectorFeatures(self.lm_order).fit(seqs)
        x = DetectorFeatures.out_of_fold(seqs, self.lm_order, self.n_folds)
        self.floor_ = np.median(x, axis=0) if self.one_sided else np.full(x.shape[1], -np.inf)
        self.ceiling_ = x.max(axis=0)
        self.spread_ = np.maximum(x.std(axis=0), 1e-9)
        self._fit_model(np.maximum(x, self.floor_))
        if streams is not None and len(streams) >= defaults.MIN_STREAMS:
            self.stream_model_ = clone(self).fit(streams)
        return self

    def _fit_model(self, x: np.ndarray) -> None:
        raise NotImplementedError

    def score_features(self, x: np.ndarray) -> np.ndarray:
        """Score of rows of `DetectorFeatures` (higher = stranger): the model's, plus how
        far each feature lies beyond the highest out-of-fold training value, in standard
        deviations. Both models saturate outside their support (a forest isolates any far
        point at the same depth; an RBF kernel decays to 0), which would leave a window
        with ten unseen calls scoring as one with two; the excess keeps the score growing."""
        excess = np.maximum(x - self.ceiling_, 0.0) / self.spread_
        return self._model_scores(x) + excess.sum(axis=1)

    def _model_scores(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        return score_distinct(seqs, lambda s: self.score_features(self.features_.transform(s)))

    def score_streams(self, seqs: Sequences) -> np.ndarray:
        """Whole streams: by the stream model when there is one."""
        return getattr(self, "stream_model_", self).score_samples(seqs)


class IForestDetector(StackedDetector):
    """IsolationForest on one-sided out-of-fold LM surprise and presence-SVM score."""

    def __init__(self, lm_order: int = 6, n_folds: int = 5, one_sided: bool = True,
                 n_estimators: int = 200, max_samples: int | str = "auto",
                 max_windows: int = 20_000, random_state: int | None = 0) -> None:
        self.lm_order = lm_order
        self.n_folds = n_folds
        self.one_sided = one_sided
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_windows = max_windows
        self.random_state = random_state

    def _fit_model(self, x: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest  # the forest is kept: scoring needs it

        self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                       max_samples=self.max_samples,
                                       random_state=self.random_state).fit(x)

    def _model_scores(self, x: np.ndarray) -> np.ndarray:
        return -self.forest_.score_samples(np.maximum(x, self.floor_)).astype(np.float64)


class OCSVMDetector(StackedDetector):
    """RBF one-class SVM on standardised out-of-fold LM surprise and presence-SVM score.

    Beyond `max_rows` training rows a random sample is learnt (the fit is quadratic).
    """

    def __init__(self, lm_order: int = 6, n_folds: int = 5, one_sided: bool = False,
                 nu: float = 0.05, gamma: float | str = "scale", max_rows: int = 5000,
                 max_windows: int = 20_000, random_state: int | None = 0) -> None:
        self.lm_order = lm_order
        self.n_folds = n_folds
        self.one_sided = one_sided
        self.nu = nu
        self.gamma = gamma
        self.max_rows = max_rows
        self.max_windows = max_windows
        self.random_state = random_state

    def _fit_model(self, x: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM  # training only: scoring runs without sklearn

        # StandardScaler's transform, kept as two arrays (a constant column stays as is).
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale_ = np.where(std > 10 * np.finfo(np.float64).eps, std, 1.0)
        z = self._standardise(x)
        if len(z) > self.max_rows:
            rng = np.random.default_rng(self.random_state)
            z = z[rng.choice(len(z), self.max_rows, replace=False)]
        svm = OneClassSVM(nu=self.nu, gamma=self.gamma).fit(z)
        self.svm_ = RBFDecision.from_svm(svm)  # what scoring needs, without sklearn

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def _model_scores(self, x: np.ndarray) -> np.ndarray:
        z = self._standardise(np.maximum(x, self.floor_))
        return -self.svm_.decision_function(z).astype(np.float64)


BUILTIN_DETECTORS: dict[str, type[Estimator]] = {
    "iforest": IForestDetector,
    "ocsvm": OCSVMDetector,
}
