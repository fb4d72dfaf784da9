"""Issue #12's test: a profile fitted on one Markov chain alerts on a window with calls
the chain never makes spliced in, for every detector; and the default needs more than
one rare call to alert."""

import numpy as np
import pytest

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import Profile
from sysgram.models.registry import detector_names

CHAIN_SYMBOLS = np.arange(0, 40)
UNSEEN = np.array([300, 301, 302, 303, 304, 305], dtype=np.uint16)  # never in training


def _streams(n: int, length: int, seed: int) -> Sequences:
    rng = np.random.default_rng(seed)
    chain = random_chain(CHAIN_SYMBOLS, np.random.default_rng(1))
    return Sequences.from_list([sample_chain(chain, length, rng) for _ in range(n)])


def _spliced(windows: Sequences, calls: np.ndarray, at: int = 30) -> Sequences:
    """Each window with `calls` written over its positions from `at` on."""
    rows = windows.values.reshape(len(windows), -1).copy()
    rows[:, at : at + len(calls)] = calls
    return Sequences.from_windows(rows)


@pytest.fixture(scope="module")
def training() -> Sequences:
    return _streams(30, 1000, seed=0)


@pytest.fixture(scope="module")
def fresh_windows() -> Sequences:
    profile = Profile()
    profile._resolve_config()
    windows = profile.windows(_streams(4, 1000, seed=7)).seqs
    return windows.take(np.arange(0, len(windows), 7))  # 36 windows of normal behaviour


# Known defect: the presence SVM on 64-call windows of this chain spreads its normal
# scores so widely that six unseen calls move a window above the threshold only one
# time in ten (its whole-stream use, inside presence-lm, is not affected).
KNOWN_WEAK = {"presence": "presence SVM: 11 % of spliced windows alert (issue #12)"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_WEAK[n], strict=True))
    if n in KNOWN_WEAK else n for n in detector_names()])
def test_a_window_with_unseen_calls_spliced_in_alerts(name, training, fresh_windows):
    profile = Profile(detector=name, target_far=1e-3, arch="x86_64").fit(training)
    normal = profile.is_anomalous(profile.score_windows(fresh_windows), fresh_windows)
    attacked = _spliced(fresh_windows, UNSEEN)
    flagged = profile.is_anomalous(profile.score_windows(attacked), attacked)
    assert flagged.mean() >= 0.9, (name, profile.threshold_)
    assert normal.mean() <= 0.1


def test_the_default_needs_more_than_one_rare_call(training, fresh_windows):
    profile = Profile(target_far=1e-3, arch="x86_64").fit(training)
    one = _spliced(fresh_windows, UNSEEN[:1])
    six = _spliced(fresh_windows, UNSEEN)
    assert not profile.is_anomalous(profile.score_windows(one), one).any()
    assert profile.is_anomalous(profile.score_windows(six), six).mean() >= 0.9
