"""Results as plain data: the `--json` object and the rows of the terminal tables."""

from __future__ import annotations

from sysgram.evaluation.corpus import EvalCorpus
from sysgram.evaluation.harness import MethodResult
from sysgram.evaluation.metrics import FARS, Metrics, far_key


def _flat(m: Metrics) -> dict:
    """Point values at the top, 95 % intervals beside them."""
    return {
        "auc": m.auc.value,
        "auc_ci95": [m.auc.low, m.auc.high],
        "dr_at_far": {k: e.value for k, e in m.dr_at_far.items()},
        "dr_at_far_ci95": {k: [e.low, e.high] for k, e in m.dr_at_far.items()},
        "n_normal": m.n_normal,
        "n_attack": m.n_attack,
    }


def method_json(r: MethodResult) -> dict:
    return {
        "method": r.name,
        "detector": r.detector,
        "config": r.config,
        **_flat(r.metrics),
        "per_family": {f: _flat(m) for f, m in r.per_family.items()},
        "fit_seconds": round(r.fit_seconds, 3),
        "score_seconds": round(r.score_seconds, 3),
        **r.extra,
    }


def result_json(corpus: EvalCorpus, results: list[MethodResult], seconds: float) -> dict:
    """The `--json` object: sysgram's method at the top level, every method in `methods`."""
    main = method_json(results[0])
    return {
        **main,
        "corpus": {"name": corpus.name, "arch": corpus.arch,
                   "train_threads": corpus.n_train_threads,
                   "train_calls": int(corpus.train.offsets[-1]),
                   "test_calls": int(corpus.test.offsets[-1])},
        "methods": [method_json(r) for r in results],
        "notes": list(corpus.notes),
        "seconds": round(seconds, 3),
    }


def _ci(value: float, low: float, high: float, digits: int) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def metric_cells(m: Metrics) -> list[str]:
    """AUC and DR at each FAR, each with its interval."""
    cells = [_ci(m.auc.value, m.auc.low, m.auc.high, 3)]
    for far in FARS:
        e = m.dr_at_far[far_key(far)]
        cells.append(_ci(e.value, e.low, e.high, 2))
    return cells


METRIC_HEADERS = ["AUC [95% CI]"] + [f"DR@{int(f * 100)}% FAR" for f in FARS]
