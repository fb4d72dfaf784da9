"""sysgram's extra detectors (n-gram LM, presence OCSVM, Fisher ensemble) and the defaults."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from test_eval import NORMAL, OTHER, sample

from sysgram.features import Sequences
from sysgram.features.sequences import SYMBOL_LIMIT
from sysgram.models import defaults
from sysgram.models.ensemble import FisherEnsemble, PresenceLM, tail_surprise
from sysgram.models.ngram_lm import NgramLanguageModel
from sysgram.models.presence import PresenceOCSVM
from sysgram.models.profile import Profile
from sysgram.models.registry import get_detector


@pytest.fixture(scope="module")
def data():
    train = Sequences.from_list(sample(NORMAL, 300, 1))
    normal = Sequences.from_list(sample(NORMAL, 100, 2))
    other = Sequences.from_list(sample(OTHER, 100, 3))
    return train, normal, other


def separation(det, data) -> float:
    """Fraction of (normal, other) pairs the detector orders correctly (the AUC)."""
    train, normal, other = data
    det.fit(train)
    a, b = det.score_samples(normal), det.score_samples(other)
    return float((a[:, None] < b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean())


@pytest.mark.parametrize("order", [1, 3, 6])
def test_language_model_is_a_distribution_over_the_next_call(order, data):
    lm = NgramLanguageModel(order=order).fit(data[0])
    for context in (data[0][0][:5], np.array([39, 38, 37, 36, 35])):  # seen / odd context
        seqs = Sequences.from_list(
            [np.r_[context, s].astype(np.uint16) for s in range(SYMBOL_LIMIT)])
        last = seqs.offsets[1:] - 1
        assert np.exp(lm.log_prob(seqs)[last]).sum() == pytest.approx(1.0, abs=1e-9)


def test_language_model_scores_are_mean_nll(data):
    lm = NgramLanguageModel(order=4).fit(data[0])
    seqs = data[1].take(np.arange(3))
    per_call = -lm.log_prob(seqs)
    expected = [per_call[seqs.offsets[i]:seqs.offsets[i + 1]].mean() for i in range(3)]
    assert lm.score_samples(seqs) == pytest.approx(expected)
    assert np.isfinite(lm.score_samples(Sequences.from_list([np.array([1000, 1001])])))[0]


@pytest.mark.parametrize("det", [NgramLanguageModel(), PresenceOCSVM(), PresenceLM(),
                                 FisherEnsemble(members=(NgramLanguageModel(order=2),))])
def test_detectors_separate_two_chains(det, data):
    assert separation(det, data) > 0.95


def test_presence_svm_learns_a_bounded_sample_of_distinct_rows(data):
    train = data[0]
    repeated = train.take(np.r_[np.arange(len(train)), np.arange(len(train))])
    det = PresenceOCSVM().fit(repeated)
    assert det.n_distinct_rows_ == len(train)  # duplicates merged into weights
    capped = PresenceOCSVM(max_rows=100).fit(train)
    assert capped.n_distinct_rows_ == 100


def test_tail_surprise_is_monotone_and_grows_past_the_reference():
    ref = np.arange(100.0)
    s = tail_surprise(ref, np.array([-5.0, 0.5, 50.0, 99.0, 200.0, 1e3]))
    assert np.all(np.diff(s) > 0)
    assert s[0] == pytest.approx(-np.log(100.5 / 101))  # bulk: empirical share
    assert s[2] == pytest.approx(-np.log(50.5 / 101))
    # Past the highest normal score the surprise keeps growing (exponential tail).
    assert s[4] > -np.log(0.5 / 101) and s[5] > s[4] + 5


def test_thread_threshold_is_reachable(data):
    """A rare-FAR threshold must not sit above every score the ensemble can give."""
    profile = Profile(**defaults.thread_profile_params()).fit(data[0])
    other = profile.score_threads(data[2])
    assert np.mean(other > profile.thread_threshold_) > 0.9
    assert np.mean(profile.score_threads(data[1]) > profile.thread_threshold_) < 0.05


def test_ensemble_needs_enough_sequences():
    with pytest.raises(ValueError, match="at least"):
        PresenceLM().fit(Sequences.from_list([np.arange(10)] * 6))


def test_ensemble_round_trips_through_joblib_and_clone(data):
    det = PresenceLM().fit(data[0])
    buf = io.BytesIO()
    joblib.dump(det, buf)
    buf.seek(0)
    again = joblib.load(buf)
    assert np.array_equal(again.score_samples(data[1]), det.score_samples(data[1]))
    assert clone(det).get_params() == det.get_params()


def test_every_extra_detector_loads_by_name(data):
    for name in defaults.EXTRA_DETECTORS:
        det = get_detector(name)
        assert det.fit(data[0]).score_samples(data[1]).dtype == np.float64


def test_thread_profile_sees_each_stream_whole(data):
    profile = Profile(**defaults.thread_profile_params()).fit(data[0])
    assert profile.detector_name_ == defaults.THREAD_DETECTOR
    assert len(profile.windows(data[1])) == len(data[1])
    whole = profile.detector_.score_samples(data[1])
    assert np.array_equal(profile.score_threads(data[1]), whole)
