"""Metrics on labelled scores with known answers: AUC, detection at FAR, intervals, ROC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sysgram.evaluation.metrics import (
    auc_of,
    compute_metrics,
    detection_at,
    far_key,
    roc_points,
)


def labelled(n_normal: int, n_attack: int, shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(size=n_normal), rng.normal(size=n_attack) + shift]
    labels = np.r_[np.zeros(n_normal), np.ones(n_attack)]
    return scores, labels


def test_perfect_separation_gives_auc_one_and_full_detection():
    scores, labels = labelled(500, 50, shift=100.0)
    m = compute_metrics(scores, labels, n_bootstrap=200)
    assert m.auc.value == 1.0
    assert (m.auc.low, m.auc.high) == (1.0, 1.0)
    assert {k: e.value for k, e in m.dr_at_far.items()} == {"0.01": 1.0, "0.05": 1.0,
                                                            "0.10": 1.0}


def test_inverted_scores_give_auc_zero():
    scores, labels = labelled(300, 30, shift=100.0)
    assert compute_metrics(-scores, labels, n_bootstrap=100).auc.value == 0.0


def test_shuffled_labels_give_auc_near_half():
    scores, labels = labelled(2000, 400, shift=3.0)
    shuffled = np.random.default_rng(1).permutation(labels)
    m = compute_metrics(scores, shuffled, n_bootstrap=300)
    assert abs(m.auc.value - 0.5) < 0.05
    assert m.auc.low < 0.5 < m.auc.high
    # At chance, detection at a false-alarm rate f is about f.
    assert abs(m.dr_at_far["0.10"].value - 0.10) < 0.05


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, 300).astype(float)  # many ties
    labels = rng.integers(0, 2, 300)
    ours = compute_metrics(scores, labels, n_bootstrap=100).auc.value
    assert ours == pytest.approx(roc_auc_score(labels, scores))


def test_all_tied_scores_give_half():
    assert auc_of(np.zeros(10), np.zeros(5))[0] == 0.5


def test_detection_counts_only_attacks_strictly_above_the_threshold():
    normal = np.arange(100, dtype=float)  # 0.95 quantile = 94.05
    attack = np.array([94.0, 94.05, 94.1, 200.0])
    assert detection_at(normal, attack, 0.05)[0] == 0.5
    # An attack tied with the whole normal tail is not detected.
    assert detection_at(np.ones(50), np.ones(5), 0.05)[0] == 0.0


def test_interval_contains_the_point_estimate_and_narrows_with_more_data():
    small = compute_metrics(*labelled(100, 20, 1.0), n_bootstrap=300)
    large = compute_metrics(*labelled(3000, 600, 1.0), n_bootstrap=300)
    for m in (small, large):
        assert m.auc.low <= m.auc.value <= m.auc.high
    assert (large.auc.high - large.auc.low) < (small.auc.high - small.auc.low)


def test_bootstrap_is_reproducible_with_a_seed():
    scores, labels = labelled(200, 40, 1.0)
    a = compute_metrics(scores, labels, n_bootstrap=200, seed=3).as_dict()
    b = compute_metrics(scores, labels, n_bootstrap=200, seed=3).as_dict()
    assert a == b


def test_far_keys_are_two_decimals():
    assert [far_key(f) for f in (0.01, 0.05, 0.1)] == ["0.01", "0.05", "0.10"]


def test_roc_points_run_from_origin_to_one_and_integrate_to_auc():
    scores, labels = labelled(400, 80, 1.5)
    far, dr = roc_points(scores, labels)
    assert (far[0], dr[0], far[-1], dr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(dr) >= 0)
    assert np.trapezoid(dr, far) == pytest.approx(roc_auc_score(labels, scores))


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        compute_metrics(np.array([1.0, np.nan]), np.array([0, 1]))
    with pytest.raises(ValueError):
        compute_metrics(np.array([1.0, 2.0]), np.array([0, 0]))
