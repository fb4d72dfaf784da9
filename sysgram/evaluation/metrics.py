"""Detection metrics for one score per trace: ROC-AUC and detection at fixed false alarms.

Conventions (fixed before any detector was compared, docs/evaluation.md):
- higher score = more anomalous; label 1 = attack, 0 = normal;
- AUC counts ties as half (the Mann-Whitney statistic);
- detection at a false-alarm rate f: the threshold is the (1 - f) quantile of the normal
  scores (numpy's linear interpolation) and an attack is detected when its score is
  strictly above it, so ties at the threshold never count as detections;
- 95 % intervals: percentile bootstrap, resampling normals and attacks separately
  (stratified), so every replicate keeps the corpus's class sizes.
All of it is vectorised over bootstrap replicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

FARS = (0.01, 0.05, 0.10)
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
BOOTSTRAP_CELLS = 4_000_000  # resampled scores held at once (~32 MB)


def far_key(far: float) -> str:
    """The JSON key of a false-alarm rate: "0.01", "0.05", "0.10"."""
    return f"{far:.2f}"


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape:
        raise ValueError("scores and labels must have the same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores[~labels], scores[labels]


def auc_of(normal: np.ndarray, attack: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row (last axis) of `normal` vs `attack` scores, ties as half."""
    normal, attack = np.atleast_2d(normal), np.atleast_2d(attack)
    n0, n1 = normal.shape[-1], attack.shape[-1]
    ranks = rankdata(np.concatenate([normal, attack], axis=-1), axis=-1)
    rank_sum = ranks[..., n0:].sum(axis=-1)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n0 * n1)


def detection_at(normal: np.ndarray, attack: np.ndarray, far: float) -> np.ndarray:
    """Fraction of attacks strictly above the (1 - far) quantile of normals, per row."""
    normal, attack = np.atleast_2d(normal), np.atleast_2d(attack)
    threshold = np.quantile(normal, 1 - far, axis=-1)
    return (attack > threshold[..., None]).mean(axis=-1)


@dataclass
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "ci95": [self.low, self.high]}


@dataclass
class Metrics:
    """AUC and detection rates with bootstrap intervals for one set of trace scores."""

    n_normal: int
    n_attack: int
    auc: Estimate
    dr_at_far: dict[str, Estimate] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "n_normal": self.n_normal,
            "n_attack": self.n_attack,
            "auc": self.auc.as_dict(),
            "dr_at_far": {k: v.as_dict() for k, v in self.dr_at_far.items()},
        }


def _interval(point: float, replicates: np.ndarray) -> Estimate:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Estimate(float(point), float(low), float(high))


def compute_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    fars: tuple[float, ...] = FARS,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Metrics:
    """AUC and detection at each FAR, with stratified percentile-bootstrap 95 % intervals."""
    normal, attack = _split(scores, labels)
    if len(normal) == 0 or len(attack) == 0:
        raise ValueError("metrics need at least one normal and one attack score")
    boot_auc, boot_dr = _bootstrap(normal, attack, fars, n_bootstrap, seed)
    auc = _interval(float(auc_of(normal, attack)[0]), boot_auc)
    drs = {
        far_key(f): _interval(float(detection_at(normal, attack, f)[0]), boot_dr[:, j])
        for j, f in enumerate(fars)
    }
    return Metrics(len(normal), len(attack), auc, drs)


def _bootstrap(normal: np.ndarray, attack: np.ndarray, fars: tuple[float, ...],
               n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """AUC and DR of each stratified replicate, in batches that bound memory."""
    rng = np.random.default_rng(seed)
    batch = max(1, BOOTSTRAP_CELLS // (len(normal) + len(attack)))
    aucs, drs = [], []
    for lo in range(0, n_bootstrap, batch):  # loop over batches of replicates
        k = min(batch, n_bootstrap - lo)
        boot_normal = normal[rng.integers(0, len(normal), (k, len(normal)))]
        boot_attack = attack[rng.integers(0, len(attack), (k, len(attack)))]
        aucs.append(auc_of(boot_normal, boot_attack))
        drs.append(np.column_stack([detection_at(boot_normal, boot_attack, f) for f in fars]))
    return np.concatenate(aucs), np.concatenate(drs)


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rate, detection rate) at every distinct threshold, from (0,0) to (1,1)."""
    normal, attack = _split(scores, labels)
    thresholds = np.unique(np.concatenate([normal, attack]))[::-1]
    sorted_normal, sorted_attack = np.sort(normal), np.sort(attack)
    far = (len(normal) - np.searchsorted(sorted_normal, thresholds, side="left")) / len(normal)
    dr = (len(attack) - np.searchsorted(sorted_attack, thresholds, side="left")) / len(attack)
    return np.concatenate([[0.0], far]), np.concatenate([[0.0], dr])
