"""Run detectors on an `EvalCorpus`: fit on normal training streams, one score per test trace.

sysgram's own detector is driven exactly as the product drives it: a `Profile` (the
defaults `train` uses, or `--model NAME`) fitted on the training streams, and trace
scores from `Profile.score_threads` (its roll-up). Baselines (STIDE, the naive
IsolationForest) are fitted on whole training traces and score whole test traces.
Every method is timed and measured with the same metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sysgram.errors import UserError
from sysgram.evaluation.baselines import BASELINES
from sysgram.evaluation.corpus import EvalCorpus
from sysgram.evaluation.metrics import Metrics, compute_metrics
from sysgram.features.sequences import max_by_group

SYSGRAM = "sysgram"


@dataclass
class MethodResult:
    """Scores and metrics of one method on one corpus."""

    name: str  # "sysgram", "stide", "iforest-naive"
    detector: str  # what ran, e.g. "presence-lm (window 8192/8192, roll-up whole)"
    config: dict
    scores: np.ndarray  # one per test trace
    metrics: Metrics
    per_family: dict[str, Metrics]
    fit_seconds: float
    score_seconds: float
    extra: dict = field(default_factory=dict)


def trace_scores(piece_scores: np.ndarray, owner: np.ndarray, n_traces: int) -> np.ndarray:
    """A trace's score is its worst (highest) piece; traces with no piece get -inf."""
    return max_by_group(piece_scores, owner, n_traces)


def measure(corpus: EvalCorpus, scores: np.ndarray, n_bootstrap: int, seed: int = 0
            ) -> tuple[Metrics, dict[str, Metrics]]:
    """Overall metrics, and each attack family against all normals."""
    overall = compute_metrics(scores, corpus.labels, n_bootstrap=n_bootstrap, seed=seed)
    normal = corpus.labels == 0
    families = np.array(corpus.families)
    per_family = {}
    for family in corpus.attack_families():
        keep = normal | (families == family)
        per_family[family] = compute_metrics(scores[keep], corpus.labels[keep],
                                             n_bootstrap=n_bootstrap, seed=seed)
    return overall, per_family


def run_sysgram(corpus: EvalCorpus, model: str | None = None, windows: bool = False,
                n_bootstrap: int = 1000) -> MethodResult:
    """Fit a Profile on the training streams; score test traces through its roll-up.

    By default the thread profile (`defaults.thread_profile_params`: whole streams);
    `windows=True` evaluates the live window profile (`Profile()` defaults) instead.
    """
    from sysgram.models.defaults import STREAM_WINDOW, thread_profile_params
    from sysgram.models.profile import NotEnoughData, Profile

    params = {} if windows else thread_profile_params()
    if model:
        params["detector"] = model
    profile = Profile(**params)
    start = time.perf_counter()
    try:
        profile.fit(corpus.train)
    except NotEnoughData as exc:
        if windows:
            raise
        raise UserError(
            f"only {exc.have} normal training threads, and the thread profile needs at "
            f"least {exc.need} (it learns and calibrates on whole threads); record more "
            "threads, or evaluate the window profile with --windows."
        ) from None
    fitted = time.perf_counter()
    pieces = profile.score_threads(corpus.test)
    scores = trace_scores(pieces, corpus.test_owner, len(corpus.labels))
    scored = time.perf_counter()
    overall, per_family = measure(corpus, _finite(scores), n_bootstrap)
    alerted = _alerted(profile, corpus.test, pieces, windows)
    config = {"detector": profile.detector_name_, "window": profile.window_,
              "stride": profile.stride_, "rollup": profile.rollup_name_,
              "profile": "windows" if windows else "threads"}
    unit = ("whole thread streams" if profile.window_ >= STREAM_WINDOW else
            f"windows of {profile.window_} every {profile.stride_}")
    label = f"{profile.detector_name_} ({unit}, roll-up {profile.rollup_name_})"
    return MethodResult(SYSGRAM, label, config, scores, overall, per_family,
                        fitted - start, scored - fitted,
                        {"threshold": profile.threshold_ if windows else profile.thread_threshold_,
                         "alerts": _alert_counts(corpus, alerted)})


def _alerted(profile, test, piece_scores: np.ndarray, windows: bool) -> np.ndarray | None:
    """Per test piece: does sysgram alert on it? The alert policy decides, as `watch` does:
    on each window (window profile), or on the whole stream (thread profile)."""
    from sysgram.models.policy import AlertPolicy

    if windows:
        w = profile.windows(test)
        verdicts = AlertPolicy.for_windows(profile).classify(
            profile, profile.score_windows(w.seqs), w.seqs)
        return np.bincount(w.source, weights=verdicts.anomalous, minlength=len(test)) > 0
    policy = AlertPolicy.for_threads(profile)
    if policy is None:
        return None
    return policy.classify(profile, piece_scores, test).anomalous


def _alert_counts(corpus: EvalCorpus, alerted: np.ndarray | None) -> dict | None:
    """Test traces alerted at the calibrated threshold: false alarms and detections."""
    if alerted is None:
        return None
    per_trace = np.bincount(corpus.test_owner, weights=alerted,
                            minlength=len(corpus.labels)) > 0
    return {"false_alarms": int(np.count_nonzero(per_trace & (corpus.labels == 0))),
            "normal": corpus.n_normal,
            "detected": int(np.count_nonzero(per_trace & (corpus.labels == 1))),
            "attacks": corpus.n_attack}


def run_baseline(corpus: EvalCorpus, name: str, n_bootstrap: int = 1000) -> MethodResult:
    """A baseline from `BASELINES`, on whole traces (pieces between losses)."""
    detector = BASELINES[name]()
    start = time.perf_counter()
    detector.fit(corpus.train)
    fitted = time.perf_counter()
    pieces = detector.score_samples(corpus.test)
    scores = trace_scores(pieces, corpus.test_owner, len(corpus.labels))
    scored = time.perf_counter()
    overall, per_family = measure(corpus, _finite(scores), n_bootstrap)
    params = detector.get_params()
    label = f"{name} ({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"
    return MethodResult(name, label, params, scores, overall, per_family,
                        fitted - start, scored - fitted)


def _finite(scores: np.ndarray) -> np.ndarray:
    """-inf (a trace with nothing scorable) ranks below everything, as the least anomalous."""
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() - 1.0) if len(finite) else 0.0
    return np.where(np.isfinite(scores), scores, floor)


def run_all(corpus: EvalCorpus, model: str | None = None, windows: bool = False,
            baselines: tuple[str, ...] = tuple(BASELINES), n_bootstrap: int = 1000
            ) -> list[MethodResult]:
    """sysgram's detector first, then each baseline."""
    results = [run_sysgram(corpus, model, windows, n_bootstrap=n_bootstrap)]
    results += [run_baseline(corpus, b, n_bootstrap=n_bootstrap) for b in baselines]
    return results
