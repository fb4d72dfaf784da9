"""The live window profile on real data (ADFA-LD dev split): calibrated, and it detects."""

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sysgram.datasets import read_adfa
from sysgram.models.profile import Profile
from sysgram.models.training_data import to_streams

ADFA = os.environ.get("SYSGRAM_ADFA_DIR")


@pytest.mark.adfa
@pytest.mark.slow
@pytest.mark.skipif(not ADFA, reason="SYSGRAM_ADFA_DIR is not set")
def test_window_profile_on_adfa_dev_split():
    traces = read_adfa(Path(ADFA))
    train = [t for t in traces if t.split == "train"]
    test = [t for t in traces if t.split != "train"]
    profile = Profile(arch="i386", target_far=1e-2).fit(to_streams(train, "i386").pieces)
    # Held-out *normal traces*: their windows alarm at about the calibrated rate.
    normal = to_streams([t for t in test if t.label == "normal"], "i386").pieces
    window_scores = profile.score_windows(profile.windows(normal).seqs)
    assert np.mean(profile.is_anomalous(window_scores)) < 3 * profile.target_far
    # One score per trace (the max over its windows) separates attacks from normal traces.
    scores = profile.score_threads(to_streams(test, "i386").pieces)
    labels = [t.label == "attack" for t in test]
    assert roc_auc_score(labels, scores) > 0.75
