"""`sysgram score DATASET --proc NAME`: score a recording offline with a profile.

The verdicts are `sysgram.models.offline.score_threads`'s (the alert policy `watch` uses);
this module prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sysgram.commands.common import StoreOption, kernel_comm, warn


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def score(
    dataset: Annotated[Path, typer.Argument(help="The recording to score.")],
    proc: Annotated[str, typer.Option("--proc", help="Whose profile to score with.")],
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    windows_shown: Annotated[
        int, typer.Option("--top", help="Text output: how many of the worst windows to list.")
    ] = 10,
) -> None:
    """Score a recording offline with a profile: per window and per thread."""
    from sysgram.datasets import Dataset
    from sysgram.models.offline import score_threads
    from sysgram.models.store import ProfileStore
    from sysgram.models.training_data import unencodable_warning

    comm = kernel_comm(proc)
    loaded = ProfileStore(store).load(comm)
    for message in loaded.warnings:
        warn(message)
    data = Dataset.open(dataset)
    for message in data.warnings:
        warn(f"{dataset}: {message}")
    result = score_threads(loaded.profile, data.threads, loaded.thread_profile)
    if result["summary"]["unencodable_calls"]:
        warn(unencodable_warning(result["summary"]["unencodable_calls"], loaded.profile.arch_))
    if as_json:
        print(json.dumps(result, indent=1))
        return
    print("\n".join(_score_text(result, windows_shown)))


def _score_text(result: dict, top: int) -> list[str]:
    s = result["summary"]
    lines = [
        f"scored     {s['threads']:,} threads, {s['windows']:,} windows with threshold "
        f"{result['threshold']:.6g}: {s['anomalous_windows']:,} windows and "
        f"{s['anomalous_threads']:,} threads above",
    ]
    if s["lost_events"]:
        lines.append(f"losses     {s['lost_events']:,} events missing; windows never span them")
    for p in result["processes"]:
        mark = "  ALERT" if p["anomalous"] else ""
        score = "—" if p["score"] is None else f"{p['score']:.6g}"
        lines.append(f"process    pid {p['pid']}: {p['threads']} threads, {p['windows']:,} "
                     f"windows, {p['anomalous_threads']} threads above, score {score}{mark}")
    tp = result.get("thread_profile")
    if tp:
        cut = "none" if tp["threshold"] is None else f"{tp['threshold']:.6g}"
        lines.append(f"streams    each thread scored whole by {tp['detector']} (threshold {cut}): "
                     f"{tp['anomalous_threads']:,} threads above")
    lines.append("threads    tid      pid      windows  anomalous  score" +
                 ("        whole-stream score" if tp else ""))
    for t in result["threads"]:
        mark = "  ALERT" if t["anomalous"] else ""
        score = "—" if t["score"] is None else f"{t['score']:.6g}"
        line = (f"           {t['tid']:<8} {t['pid']:<8} {t['windows']:>7}  "
                f"{t['anomalous_windows']:>9}  {score}{mark}")
        if tp:
            whole = "—" if t["stream_score"] is None else f"{t['stream_score']:.6g}"
            line += f"  {whole}" + ("  ALERT" if t["stream_anomalous"] else "")
        lines.append(line)
    worst = sorted(result["windows"], key=lambda w: -w["score"])[:top]
    if worst:
        lines.append("worst windows")
    for w in worst:
        new = ", ".join(w["explain"]["new_syscalls"]) if w.get("explain") else ""
        lines.append(f"           tid {w['tid']} at call {w['start']}: {w['score']:.6g}"
                     + ("  ALERT" if w["anomalous"] else "") + (f"  new: {new}" if new else ""))
    return lines
