"""A self-contained HTML report: ROC curves, score distributions, per-family table.

Plots are drawn with matplotlib's Agg backend (no display needed) and embedded as
base64 PNGs, so the report is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from sysgram.evaluation.corpus import EvalCorpus
from sysgram.evaluation.harness import MethodResult
from sysgram.evaluation.metrics import roc_points
from sysgram.evaluation.summary import METRIC_HEADERS, metric_cells

_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}.note{color:#555}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _roc_figure(corpus: EvalCorpus, results: list[MethodResult]) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in results:
        far, dr = roc_points(r.scores, corpus.labels)
        label = f"{r.name} (AUC {r.metrics.auc.value:.3f})"
        axes[0].plot(far, dr, label=label)
        axes[1].plot(np.maximum(far, 1e-4), dr, label=label)
    for ax in axes:
        ax.set_xlabel("false-alarm rate (normal traces)")
        ax.set_ylabel("detection rate (attack traces)")
        ax.grid(alpha=0.3)
    axes[0].plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes[0].set_title("ROC")
    axes[1].set_xscale("log")
    axes[1].set_xlim(1e-3, 1)
    axes[1].set_title("ROC, log false-alarm axis")
    axes[1].legend(loc="lower right", fontsize=8)
    out = _png(fig)
    plt.close(fig)
    return out


def _distribution_figure(corpus: EvalCorpus, r: MethodResult) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.2))
    families = np.array(corpus.families)
    bins = np.histogram_bin_edges(r.scores, bins=60)
    groups = [("normal", corpus.labels == 0)] + [
        (f, families == f) for f in corpus.attack_families()
    ]
    for name, mask in groups:
        ax.hist(r.scores[mask], bins=bins, density=True, histtype="step", linewidth=1.4,
                label=f"{name} ({int(mask.sum())})")
    ax.set_title(f"score distribution: {r.detector}")
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    out = _png(fig)
    plt.close(fig)
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='num'>{html.escape(c)}</td>" if i else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(corpus: EvalCorpus, results: list[MethodResult]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    methods = _table(
        ["method", "detector", *METRIC_HEADERS, "fit s", "score s"],
        [[r.name, r.detector, *metric_cells(r.metrics), f"{r.fit_seconds:.1f}",
          f"{r.score_seconds:.1f}"] for r in results],
    )
    family_rows = [
        [r.name, family, str(m.n_attack), *metric_cells(m)]
        for r in results for family, m in r.per_family.items()
    ]
    families = _table(["method", "family", "attacks", *METRIC_HEADERS], family_rows)
    plots = "".join(
        f"<img alt='scores of {html.escape(r.name)}' src='data:image/png;base64,"
        f"{_distribution_figure(corpus, r)}'>" for r in results
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in corpus.notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sysgram eval: {html.escape(corpus.name)}</title><style>{_STYLE}</style>"
        f"</head><body><h1>sysgram eval: {html.escape(corpus.name)}</h1>"
        f"<p>Fitted on {corpus.n_train_threads} normal training threads; scored "
        f"{corpus.n_normal} normal and {corpus.n_attack} attack traces, one score per trace. "
        "Intervals: 95 % stratified bootstrap. Detection at a false-alarm rate f counts "
        "attacks strictly above the (1 - f) quantile of normal scores.</p>"
        f"<h2>Methods</h2>{methods}"
        f"<h2>ROC curves</h2><img alt='ROC curves' src='data:image/png;base64,"
        f"{_roc_figure(corpus, results)}'>"
        f"<h2>Per attack family (each against all normals)</h2>{families}"
        f"<h2>Score distributions</h2>{plots}"
        + (f"<h2>Notes</h2><ul class='note'>{notes}</ul>" if notes else "")
        + "</body></html>"
    )


def write_html(corpus: EvalCorpus, results: list[MethodResult], path: Path) -> None:
    """Write the report atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(corpus, results), encoding="utf-8")
    tmp.replace(path)
