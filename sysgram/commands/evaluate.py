"""`sysgram eval`: measure a detector on a labelled corpus, beside the baselines.

    sysgram eval DIR --format adfa-ld [--model NAME] [--json] [--report FILE.html]
    sysgram eval --format dataset --train DS --normal DS --attack DS [...]
    sysgram eval DS [DS...] --format dataset      (threads carry their own split/label)

The work happens in sysgram.evaluation; this module parses options and prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from sysgram.commands.common import say
from sysgram.errors import UserError
from sysgram.sanitize import printable

FORMATS = ("adfa-ld", "dataset")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)


PathList = list[Path] | None


def evaluate(
    paths: Annotated[PathList, typer.Argument(
        help="adfa-ld: the corpus folder. dataset: datasets whose threads carry a split "
             "(train) or a label (normal/attack).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="adfa-ld or dataset.")] = "adfa-ld",
    train: Annotated[PathList, typer.Option(
        "--train", help="Dataset of normal threads to fit on (repeatable).")] = None,
    normal: Annotated[PathList, typer.Option(
        "--normal", help="Dataset of normal threads to test (repeatable).")] = None,
    attack: Annotated[PathList, typer.Option(
        "--attack", help="Dataset of attack threads to test (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Detector name (default: sysgram's thread detector).")] = None,
    windows: Annotated[bool, typer.Option(
        "--windows", help="Evaluate the live window profile (train's window defaults and "
                          "roll-up) instead of the thread profile.")] = False,
    baselines: Annotated[bool, typer.Option(
        "--baselines/--no-baselines", help="Also run STIDE and the naive IsolationForest."
    )] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write an HTML report (ROC curves, distributions, families).")] = None,
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", help="Bootstrap replicates for the 95 % intervals.")] = 1000,
) -> None:
    """Fit on normal training threads, score each test trace, report AUC and detection rates."""
    from sysgram.evaluation.baselines import BASELINES
    from sysgram.evaluation.harness import run_all
    from sysgram.evaluation.report import write_html
    from sysgram.evaluation.summary import result_json

    if bootstrap < 100:
        raise UserError(f"--bootstrap {bootstrap} is too few for a 95 % interval; give 100 "
                        "or more.")
    started = time.perf_counter()
    corpus = _load(fmt, paths or [], train or [], normal or [], attack or [])
    if not as_json:
        say(f"fitting on {corpus.n_train_threads:,} normal threads; scoring "
             f"{corpus.n_normal:,} normal and {corpus.n_attack:,} attack traces")
    results = run_all(corpus, model, windows, tuple(BASELINES) if baselines else (),
                      n_bootstrap=bootstrap)
    seconds = time.perf_counter() - started
    if report is not None:
        _write_report(write_html, corpus, results, report)
    if as_json:
        print(json.dumps(result_json(corpus, results, seconds), indent=2))
        return
    print("\n".join(_format(corpus, results, seconds)))
    if report is not None:
        say(f"report written to {report}")


def _load(fmt: str, paths: list[Path], train: list[Path], normal: list[Path],
          attack: list[Path]):
    from sysgram.evaluation.corpus import load_adfa, load_datasets

    if fmt == "adfa-ld":
        if len(paths) != 1 or train or normal or attack:
            raise UserError("--format adfa-ld takes exactly one corpus folder and no "
                            "--train/--normal/--attack; give the folder holding "
                            "Training_Data_Master/.")
        return load_adfa(paths[0])
    if fmt == "dataset":
        return load_datasets(labelled=paths, train=train, normal=normal, attack=attack)
    # Raw: the CLI escapes a UserError's message once, when it prints it.
    raise UserError(f"unknown format '{fmt}'; use --format adfa-ld or "
                    "--format dataset.")


def _write_report(write_html, corpus, results, path: Path) -> None:
    try:
        write_html(corpus, results, path)
    except OSError as exc:
        raise UserError(f"cannot write the report to {path} ({exc.strerror or exc}); give "
                        "a writable path.") from None


def _format(corpus, results, seconds: float) -> list[str]:
    from sysgram.evaluation.summary import METRIC_HEADERS, metric_cells

    rows = [["method", *METRIC_HEADERS, "fit s", "score s"]]
    rows += [[r.name, *metric_cells(r.metrics), f"{r.fit_seconds:.1f}",
              f"{r.score_seconds:.1f}"] for r in results]
    main = results[0]
    fam_rows = [["family", "attacks", *METRIC_HEADERS]]
    fam_rows += [[f, str(m.n_attack), *metric_cells(m)] for f, m in main.per_family.items()]
    lines = [
        f"corpus     {printable(corpus.name)} ({corpus.arch}): {corpus.n_train_threads:,} "
        f"training threads, {corpus.n_normal:,} normal and {corpus.n_attack:,} attack "
        "test traces",
        f"sysgram    {printable(main.detector)}",
        *_alert_line(main.extra.get("alerts"), main.extra.get("threshold")),
        "",
        *_columns(rows),
        "",
        f"per attack family ({main.name}; each family against all normals):",
        *_columns(fam_rows),
        "",
        f"95 % bootstrap intervals in brackets; total {seconds:.1f} s.",
    ]
    lines += [f"note: {printable(n)}" for n in corpus.notes]
    return lines


def _alert_line(alerts: dict | None, threshold: float | None) -> list[str]:
    if not alerts:
        return ["alerts     none: the profile has no calibrated threshold for these traces"]
    return [f"alerts     at the calibrated threshold {threshold:.6g} (threshold and novelty, "
            f"as watch decides): {alerts['detected']:,} of {alerts['attacks']:,} attacks, "
            f"{alerts['false_alarms']:,} of {alerts['normal']:,} normal traces"]


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
            for r in rows]
