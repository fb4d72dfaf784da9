"""The one place a threshold is derived: held-out normal scores -> a cut for a target FAR.

Policy (a window is anomalous when its score is strictly above the threshold):
- Enough held-out windows to see the target rate (n * target_far >= MIN_EXCEEDANCES):
  the empirical (1 - target_far) quantile.
- Fewer (the usual case: 1e-4 needs 100,000 held-out windows to observe 10 false
  alarms): an extreme-value fit. The top TAIL_FRACTION of scores (at least MIN_TAIL) are
  excesses over a high threshold u; a generalised Pareto distribution fitted to them
  extrapolates to the target rate (peaks over threshold). The result is never below the
  highest held-out score, since a rate below 1/n means no held-out window should alarm.
- A degenerate tail (too few distinct values to fit): the highest score plus a margin of
  MARGIN_FRACTION of the spread between the median and the maximum.

Whatever the method, the report says how many held-out windows exceed the threshold
(the empirical FAR) and the best FAR those windows can vouch for (about 3 / n, the
"rule of three" 95 % bound with no exceedances).

Then `keep_reachable` probes the result with what an attack looks like (the profile
scores the probes; this module decides):
- a window (or stream) made only of calls the binary never made must score above the
  threshold. A tail extrapolated from few held-out windows, or a rare normal job held out
  for calibration that scores at a saturating detector's ceiling, can put it above that
  score, and then nothing, however foreign, could alarm. The threshold is then lowered
  halfway between the highest held-out score below the probe's and the probe's
  (`lowered_to_reach`); held-out windows left above it are normal and hold no unseen
  n-gram, so the novelty rule keeps them quiet.
- normal windows with a few unseen calls spliced in should too: the threshold is lowered
  under their median score only when no more held-out windows than the target rate allows
  end above it, else the record keeps the finding (`spliced_below_threshold`).
- a foreign probe scoring like the lowest held-out score within float noise means the
  detector cannot tell anything apart: `DegenerateScores`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from sysgram.errors import UserError

MIN_EXCEEDANCES = 10
TAIL_FRACTION = 0.1
MIN_TAIL = 20
MIN_CALIBRATION = 50  # held-out windows below which no calibration is attempted
MARGIN_FRACTION = 0.1
NUMERIC_TOLERANCE = 1e-5  # relative; well above float32 noise in a score
_SHAPE_LIMIT = 0.5  # keep the fitted tail shape in a range where extrapolation is sane


@dataclass(frozen=True)
class Calibration:
    threshold: float
    method: str  # "empirical" | "gpd" | "max+margin"
    target_far: float
    n_calibration: int
    exceedances: int  # held-out windows scoring above the threshold
    empirical_far: float  # exceedances / n_calibration
    verifiable_far: float  # ~95 % upper bound on the FAR the held-out windows support
    tail_shape: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def calibrate(scores: np.ndarray, target_far: float) -> Calibration:
    """Threshold for `target_far` from held-out normal scores (see the module's policy)."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    n = len(scores)
    if n < MIN_CALIBRATION:
        raise ValueError(f"need at least {MIN_CALIBRATION} held-out scores, got {n}")
    if not 0 < target_far < 1:
        raise ValueError(f"target_far must be in (0, 1), got {target_far}")
    shape = None
    if n * target_far >= MIN_EXCEEDANCES:
        method, threshold = "empirical", float(np.quantile(scores, 1 - target_far))
    else:
        fitted = _pot_threshold(scores, target_far)
        if fitted is None:
            method, threshold = "max+margin", _max_plus_margin(scores)
        else:
            method, (threshold, shape) = "gpd", fitted
            threshold = max(threshold, float(scores.max()) + numeric_margin(scores))
    exceed = int(np.count_nonzero(scores > threshold))
    verifiable = 3 / n if exceed == 0 else _upper_rate(exceed, n)
    return Calibration(
        threshold=threshold,
        method=method,
        target_far=target_far,
        n_calibration=n,
        exceedances=exceed,
        empirical_far=exceed / n,
        verifiable_far=min(1.0, verifiable),
        tail_shape=shape,
    )


class DegenerateScores(UserError):
    """The detector scores attack-like windows like normal ones, within float noise."""

    def __init__(self, detector: str, reach: float, low: float) -> None:
        super().__init__(
            f"the {detector} detector scores windows of calls this binary never made "
            f"({reach:.6g}) no higher than its normal windows ({low:.6g}) beyond float "
            "noise, so no threshold can tell them apart; train with another --model."
        )


def keep_reachable(
    threshold: float, calibration: dict, cal_scores: np.ndarray, foreign: float,
    spliced: float, detector: str,
) -> tuple[float, dict]:
    """The threshold and calibration record after the probes (see the module's policy)."""
    from sysgram.models.policy import AlertPolicy

    cal_scores = np.asarray(cal_scores, dtype=np.float64)
    noise = numeric_margin(cal_scores)
    low = float(np.min(cal_scores))
    if foreign - low <= noise:
        raise DegenerateScores(detector, foreign, low)
    allowed = max(1, int(np.ceil(calibration["target_far"] * len(cal_scores))))
    for probe, value in (("foreign", foreign), ("spliced", spliced)):
        if AlertPolicy(threshold).above(value)[0]:
            continue
        below = cal_scores[cal_scores < value - noise]
        lowered = ((float(below.max()) if len(below) else low) + value) / 2
        above = int(np.count_nonzero(cal_scores > lowered))
        record = {"was": threshold, "probe": probe, "probe_score": value,
                  "held_out_above": above}
        if probe == "spliced" and above > allowed:
            calibration = {**calibration, "spliced_below_threshold": record}
            continue
        threshold = lowered
        calibration = {**calibration, "threshold": lowered, "lowered_to_reach": record}
    return threshold, calibration


def _pot_threshold(scores: np.ndarray, target_far: float) -> tuple[float, float] | None:
    """Peaks over threshold: fit a GPD to the upper tail and extrapolate to target_far."""
    from scipy import stats

    n = len(scores)
    k = max(MIN_TAIL, int(n * TAIL_FRACTION))
    ordered = np.sort(scores)
    u = ordered[n - k - 1] if k < n else ordered[0]
    excess = ordered[n - k :] - u
    if len(np.unique(excess)) < 5 or float(excess.max()) <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            xi, _, sigma = stats.genpareto.fit(excess, floc=0.0)
        except Exception:  # a failed optimiser means no usable fit; fall back
            return None
    if not (np.isfinite(xi) and np.isfinite(sigma) and sigma > 0):
        return None
    xi = float(np.clip(xi, -_SHAPE_LIMIT, _SHAPE_LIMIT))
    ratio = target_far * n / k  # exceedance probability wanted, relative to u's
    # GPD quantile; the shape -> 0 limit is the exponential tail.
    exponential = abs(xi) < 1e-6
    y = sigma * np.log(1 / ratio) if exponential else sigma / xi * (ratio ** (-xi) - 1)
    return float(u + y), xi


def _max_plus_margin(scores: np.ndarray) -> float:
    top, mid = float(scores.max()), float(np.median(scores))
    margin = MARGIN_FRACTION * (top - mid)
    return top + max(margin, numeric_margin(scores))


def numeric_margin(scores: np.ndarray) -> float:
    """How far apart two scores must be to differ by more than float noise."""
    # Detectors score in float32 for speed, and a window's score can move in the last
    # bits with the batch it is scored in (BLAS picks kernels by shape). A threshold
    # sitting exactly on the highest held-out score would turn that noise into alarms on
    # windows identical to training ones.
    return NUMERIC_TOLERANCE * (abs(float(scores.max())) + 1.0)


def _upper_rate(k: int, n: int) -> float:
    """Approximate one-sided 95 % upper bound on a rate seen k times in n (Wilson)."""
    z = 1.645
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre + spread) / (1 + z * z / n))
