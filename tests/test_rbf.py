"""The numpy RBF scorer kept after fitting gives sklearn's OneClassSVM decision values."""

import pickle

import numpy as np
import pytest
from sklearn.svm import OneClassSVM

from sysgram.features import Sequences, window_streams
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.detectors import DetectorFeatures, OCSVMDetector
from sysgram.models.presence import PresenceOCSVM, _merge_identical_rows
from sysgram.models.rbf import RBFDecision

TOLERANCE = 1e-9


def _windows(chain_seed: int, symbols: int, n_streams: int, seed: int) -> Sequences:
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(symbols), np.random.default_rng(chain_seed))
    streams = Sequences.from_list([sample_chain(chain, 1500, rng) for _ in range(n_streams)])
    return window_streams(streams, 32, 8).seqs


@pytest.fixture(scope="module")
def presence():
    """A fitted presence SVM, the sklearn SVM fitted as it fits one, and rows to score:
    its training rows, fresh normal rows and rows of another chain (novel calls)."""
    normal = _windows(1, 40, 8, seed=0)
    model = PresenceOCSVM(unseen_weight=1.0).fit(normal)
    rows, weights = _merge_identical_rows(model._features(normal))
    svm = OneClassSVM(nu=model.nu, gamma=2.0 / len(model.presence_orders))
    svm.fit(rows, sample_weight=weights)
    probes = [model._features(s) for s in
              (normal, _windows(1, 40, 2, seed=7), _windows(2, 60, 2, seed=5))]
    return model, svm, probes


def test_sparse_scorer_matches_sklearn(presence):
    _, svm, probes = presence
    scorer = RBFDecision.from_svm(svm)
    for x in probes:
        expected = svm.decision_function(x)
        assert np.abs(scorer.decision_function(x) - expected).max() < TOLERANCE
    assert scorer.n_support == len(svm.support_)


def test_presence_model_keeps_the_scorer_not_the_svm(presence):
    model, svm, probes = presence
    assert isinstance(model.svm_, RBFDecision)
    other = probes[-1]
    assert np.abs(model.svm_.decision_function(other) - svm.decision_function(other)).max() \
        < TOLERANCE
    assert (np.median(-model.svm_.decision_function(other))
            > np.median(-model.svm_.decision_function(probes[1])))


def test_dense_scorer_matches_sklearn_with_gamma_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2)) * [1.0, 3.0]
    svm = OneClassSVM(nu=0.05, gamma="scale").fit(x)
    probe = np.vstack([x[:50], rng.normal(size=(50, 2)) * 6, x[:1]])
    scorer = RBFDecision.from_svm(svm)
    assert np.abs(scorer.decision_function(probe) - svm.decision_function(probe)).max() \
        < TOLERANCE


def test_scorer_survives_pickling(presence):
    _, svm, probes = presence
    scorer = RBFDecision.from_svm(svm)
    twin = pickle.loads(pickle.dumps(scorer))
    assert np.array_equal(twin.decision_function(probes[2]), scorer.decision_function(probes[2]))
    assert "_sv_squares" not in pickle.dumps(scorer).decode("latin-1")


def test_only_rbf_kernels_are_taken():
    svm = OneClassSVM(kernel="linear").fit(np.random.default_rng(0).normal(size=(50, 2)))
    with pytest.raises(ValueError, match="RBF"):
        RBFDecision.from_svm(svm)


def test_ocsvm_detector_scores_as_a_scaler_and_svm_would():
    """`ocsvm` keeps its scaler as mean and scale, its SVM as the scorer: same scores as
    StandardScaler + OneClassSVM fitted on the same rows."""
    from sklearn.preprocessing import StandardScaler

    normal = _windows(1, 40, 8, seed=0)
    det = OCSVMDetector(max_rows=10_000).fit(normal)
    fitted_on = np.maximum(DetectorFeatures.out_of_fold(normal, det.lm_order, det.n_folds),
                           det.floor_)
    x = np.maximum(det.features_.transform(_windows(2, 60, 2, seed=5)), det.floor_)
    scaler = StandardScaler().fit(fitted_on)
    svm = OneClassSVM(nu=det.nu, gamma=det.gamma).fit(scaler.transform(fitted_on))
    expected = -svm.decision_function(scaler.transform(x))
    assert np.abs(det._model_scores(x) - expected).max() < 1e-6
