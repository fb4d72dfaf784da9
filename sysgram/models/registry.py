"""Detectors and thread roll-ups by name: the built-ins plus those named in defaults.py.

`sysgram.models.defaults.EXTRA_DETECTORS` / `EXTRA_ROLLUPS` map a name to
"module:attribute"; they are imported only when asked for, so a broken extra never
breaks the built-ins.

A roll-up is a function `rollup(profile, traces: Sequences) -> np.ndarray` giving one
score per trace (higher = more anomalous) from a fitted `Profile`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.models import defaults
from sysgram.models.detectors import BUILTIN_DETECTORS


def _extra(kind: str) -> dict[str, str]:
    return dict(getattr(defaults, kind, {}) or {})


def _load(spec: str):
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def detector_names() -> list[str]:
    return sorted(set(BUILTIN_DETECTORS) | set(_extra("EXTRA_DETECTORS")))


def detector_class(name: str):
    if name in BUILTIN_DETECTORS:
        return BUILTIN_DETECTORS[name]
    extra = _extra("EXTRA_DETECTORS")
    if name in extra:
        return _load(extra[name])
    raise UserError(f"unknown detector '{name}'; choose one of: {', '.join(detector_names())}.")


def get_detector(name: str, **params):
    """A new, unfitted detector; parameters it does not take are refused by name."""
    cls = detector_class(name)
    accepted = set(cls().get_params()) if hasattr(cls, "get_params") else set(params)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise UserError(
            f"detector '{name}' has no parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(accepted))}."
        )
    return cls(**params)


# --- roll-ups: window scores -> one score per thread -------------------------------------


def rollup_max(profile, traces: Sequences) -> np.ndarray:
    """The thread's worst window (a thread is anomalous if any window is)."""
    windows = profile.windows(traces)
    scores = profile.score_windows(windows.seqs)
    out = np.full(len(traces), -np.inf)
    np.maximum.at(out, windows.source, scores)
    return out


def rollup_mean(profile, traces: Sequences) -> np.ndarray:
    """The thread's average window score: a long normal thread's one odd window counts
    little (on ADFA-LD dev, ocsvm 64/16 windows: AUC 0.76 against 0.59 for the max)."""
    windows = profile.windows(traces)
    scores = profile.score_windows(windows.seqs)
    counts = np.bincount(windows.source, minlength=len(traces))
    sums = np.bincount(windows.source, weights=scores, minlength=len(traces))
    return np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)


def rollup_whole(profile, traces: Sequences) -> np.ndarray:
    """The detector applied to the whole thread as one sequence."""
    return profile.detector_.score_samples(traces)


BUILTIN_ROLLUPS: dict[str, Callable] = {
    "max": rollup_max, "mean": rollup_mean, "whole": rollup_whole,
}


def rollup_names() -> list[str]:
    return sorted(set(BUILTIN_ROLLUPS) | set(_extra("EXTRA_ROLLUPS")))


def get_rollup(name: str) -> Callable:
    if name in BUILTIN_ROLLUPS:
        return BUILTIN_ROLLUPS[name]
    extra = _extra("EXTRA_ROLLUPS")
    if name in extra:
        return _load(extra[name])
    raise UserError(f"unknown roll-up '{name}'; choose one of: {', '.join(rollup_names())}.")
