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
    # Validation traces (normal, but recorded apart from the training ones) alarm above
    # the calibrated rate: the price of behaviour the training traces never showed, which
    # calibration on held-out training threads cannot see. Measured 6.6 % for a 1 % target
    # with the default's language-model window score (3.2 % with the earlier ocsvm, which
    # caught far less: docs/evaluation.md); this bound catches a calibration way off.
    normal = to_streams([t for t in test if t.label == "normal"], "i386").pieces
    window_scores = profile.score_windows(profile.windows(normal).seqs)
    assert np.mean(profile.is_anomalous(window_scores)) < 10 * profile.target_far
    # One score per trace, by the default roll-up (each thread's stream so far, as the
    # live verdicts read it): the issue #12 goal is AUC >= 0.88 (measured 0.885); the max
    # over windows stays far below (a long normal trace always holds some odd window).
    pieces = to_streams(test, "i386")
    assert len(pieces.pieces) == len(test)  # ADFA traces have no losses: one piece each
    labels = [t.label == "attack" for t in test]
    assert roc_auc_score(labels, profile.score_threads(pieces.pieces)) > 0.87
    mean = clone(profile).set_params(rollup="mean").fit(to_streams(train, "i386").pieces)
    assert roc_auc_score(labels, mean.score_threads(pieces.pieces)) > 0.72
