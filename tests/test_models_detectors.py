"""Detector contract and registry: scikit-learn style, higher score = more anomalous."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
)

from sysgram.errors import UserError
from sysgram.features import Sequences, window_streams
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import Profile
from sysgram.models.registry import detector_names, get_detector, get_rollup, rollup_names

BUILTIN = ["iforest", "ocsvm"]


def _chain_windows(chain_seed, n_streams, length, seed):
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(40), np.random.default_rng(chain_seed))
    streams = Sequences.from_list([sample_chain(chain, length, rng) for _ in range(n_streams)])
    return window_streams(streams, 32, 8).seqs


@pytest.fixture(scope="module")
def normal():
    return _chain_windows(1, 8, 1500, seed=0)


def test_registry_lists_builtins_and_refuses_unknown_names():
    assert set(BUILTIN) <= set(detector_names())
    with pytest.raises(UserError, match="unknown detector"):
        get_detector("nope")
    with pytest.raises(UserError, match="no parameter"):
        get_detector("ocsvm", bogus=1)
    assert {"max", "mean", "whole", "running"} <= set(rollup_names())
    with pytest.raises(UserError, match="unknown roll-up"):
        get_rollup("nope")


@pytest.mark.parametrize("name", BUILTIN)
def test_sklearn_checks_that_apply(name):
    det = get_detector(name)
    check_parameters_default_constructible(name, det)
    check_no_attributes_set_in_init(name, det)
    check_get_params_invariance(name, det)


@pytest.mark.parametrize("name", BUILTIN)
def test_contract(name, normal):
    det = get_detector(name, random_state=0)
    assert not [k for k in vars(det) if k.endswith("_")]  # nothing learned before fit
    assert det.fit(normal) is det
    scores = det.score_samples(normal)
    assert scores.dtype == np.float64 and scores.shape == (len(normal),)
    twin = clone(det)
    assert twin.get_params() == det.get_params()
    assert not hasattr(twin, "features_")
    # Deterministic with a fixed random_state.
    assert np.allclose(twin.fit(normal).score_samples(normal), scores)


@pytest.mark.parametrize("name", BUILTIN)
def test_another_chain_scores_higher(name, normal):
    det = get_detector(name).fit(normal)
    other = _chain_windows(2, 2, 1500, seed=5)
    fresh = _chain_windows(1, 2, 1500, seed=6)
    assert np.median(det.score_samples(other)) > np.percentile(det.score_samples(fresh), 99)


def test_a_profile_is_itself_a_detector(normal):
    profile = Profile(window=16, stride=8).fit(normal)
    assert profile.score_samples(normal).shape == (len(normal),)


@pytest.mark.parametrize("name", BUILTIN)
def test_duplicate_windows_are_scored_once_and_identically(name, normal):
    det = get_detector(name).fit(normal)
    repeated = normal.take(np.array([3, 1, 3, 3, 0, 1] * 5))
    direct = det.score_features(det.features_.transform(repeated))
    assert np.allclose(det.score_samples(repeated), direct)


def test_lm_stream_with_too_few_sequences_for_a_stream_model_still_fits_and_scores():
    """A handful of distinct windows (a tiny or very repetitive binary) is too few for the
    stream model's folds: the window model scores streams instead (it raised before)."""
    from sysgram.models.lm_stream import LMStreamDetector

    rng = np.random.default_rng(0)
    base = rng.integers(0, 20, 64).astype(np.uint16)
    windows = Sequences.from_list([np.roll(base, k) for k in range(6)] * 5)
    detector = LMStreamDetector().fit(windows)
    assert detector.stream_model_ is None and detector.stream_reference_scores() is None
    streams = Sequences.from_list([np.tile(base, 4), rng.integers(200, 230, 256)])
    normal, foreign = detector.score_streams(streams)
    assert np.isfinite([normal, foreign]).all() and foreign > normal
