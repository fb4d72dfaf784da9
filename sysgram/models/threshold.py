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
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

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
