"""The live window profile on real data (ADFA-LD dev split): calibrated, and it detects."""


import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from sysgram.datasets import read_adfa
from sysgram.models.profile import Profile
from sysgram.models.training_data import to_streams


@pytest.mark.adfa
@pytest.mark.slow
def test_window_profile_on_adfa_dev_split(adfa_dev_split):
    traces = read_adfa(adfa_dev_split)
    train = [t for t in traces if t.split == "train"]
    test = [t for t in traces if t.split != "train"]
    profile = Profile(arch="i386", target_far=1e-2).fit(to_streams(train, "i386").pieces)
    # Validation traces (normal, but recorded apart from the training ones) alarm at the
    # order of the calibrated rate: measured 3.2 % for a 1 % target, the price of
    # behaviour the training traces never showed. Calibration on held-out training
    # threads cannot see that shift; this bound catches a calibration that is way off.
    normal = to_streams([t for t in test if t.label == "normal"], "i386").pieces
    window_scores = profile.score_windows(profile.windows(normal).seqs)
    assert np.mean(profile.is_anomalous(window_scores)) < 5 * profile.target_far
    # One score per trace. The max over windows barely beats chance here (0.59: a long
    # normal trace always holds some odd window, see docs/evaluation.md); the mean of the
    # window scores does much better (0.76).
    pieces = to_streams(test, "i386")
    assert len(pieces.pieces) == len(test)  # ADFA traces have no losses: one piece each
    labels = [t.label == "attack" for t in test]
    assert roc_auc_score(labels, profile.score_threads(pieces.pieces)) > 0.55
    mean = clone(profile).set_params(rollup="mean").fit(to_streams(train, "i386").pieces)
    assert roc_auc_score(labels, mean.score_threads(pieces.pieces)) > 0.72
