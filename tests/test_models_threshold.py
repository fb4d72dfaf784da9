"""Threshold calibration: one policy, honest about what the held-out windows can vouch for."""

import numpy as np
import pytest

from sysgram.models.threshold import calibrate


def test_empirical_quantile_when_the_rate_is_observable():
    scores = np.random.default_rng(0).normal(size=200_000)
    cal = calibrate(scores, 1e-3)
    assert cal.method == "empirical"
    assert cal.empirical_far == pytest.approx(1e-3, rel=0.15)


def test_extreme_value_fit_extrapolates_an_exponential_tail():
    rng = np.random.default_rng(1)
    cal = calibrate(rng.exponential(size=2000), 1e-4)
    assert cal.method == "gpd"
    # The true 1e-4 quantile of Exp(1) is ln(1e4) = 9.21; 2000 samples reach about 7.6.
    assert 7.0 < cal.threshold < 13.0
    assert cal.exceedances == 0
    assert cal.verifiable_far == pytest.approx(3 / 2000)
    # and the fit is roughly right: fresh samples exceed it rarely
    fresh = rng.exponential(size=200_000)
    assert np.mean(fresh > cal.threshold) < 5e-4


def test_never_below_the_highest_held_out_score():
    scores = np.concatenate([np.zeros(500), np.linspace(0, 1, 100)])
    cal = calibrate(scores, 1e-4)
    assert cal.threshold >= scores.max()


def test_degenerate_scores_get_max_plus_margin():
    cal = calibrate(np.ones(100), 1e-4)
    assert cal.method == "max+margin"
    assert cal.threshold > 1.0
    assert cal.exceedances == 0


def test_too_few_scores_refused():
    with pytest.raises(ValueError):
        calibrate(np.ones(10), 1e-4)


def test_identical_held_out_scores_leave_room_for_float32_noise():
    # A repetitive server gives held-out windows that all score the same; a window
    # identical to them, scored in another batch, may differ in the last float32 bits.
    from sysgram.models.threshold import calibrate

    scores = np.full(500, -169.0245)
    cal = calibrate(scores, 1e-4)
    noisy = -169.0245 + 1e-6 * 169  # float32 round-off, well above float64's
    assert cal.threshold > float(noisy) > scores.max()


def test_keep_reachable_decides_from_the_probe_scores():
    from sysgram.models.threshold import DegenerateScores, keep_reachable

    held = np.concatenate([np.linspace(0.0, 1.0, 998), [5.0, 9.0]])  # two rare high ones
    record = {"threshold": 10.0, "target_far": 1e-3}
    # Above both probes: kept.
    assert keep_reachable(4.0, record, held, 20.0, 6.0, "d") == (4.0, record)
    # The foreign probe under the threshold: lowered between 5.0 (the highest held-out
    # score below 8.0) and 8.0, whatever it costs in held-out windows above.
    cut, out = keep_reachable(10.0, record, held, 8.0, 8.0, "d")
    assert cut == 6.5 and out["lowered_to_reach"]["probe"] == "foreign"
    assert out["lowered_to_reach"]["held_out_above"] == 1
    # The spliced probe under it: lowered when no more held-out windows than the target
    # rate allows end above (1e-3 of 1,000: one)...
    cut, out = keep_reachable(10.0, record, held, 20.0, 7.0, "d")
    assert cut == 6.0 and out["lowered_to_reach"]["probe"] == "spliced"
    # ... else kept, and the finding recorded.
    cut, out = keep_reachable(10.0, record, held, 20.0, 0.5, "d")
    assert cut == 10.0 and out["spliced_below_threshold"]["held_out_above"] > 2
    with pytest.raises(DegenerateScores):
        keep_reachable(10.0, record, held, 0.0, 0.0, "d")
