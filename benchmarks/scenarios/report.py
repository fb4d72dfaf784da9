"""The suite's Markdown tables for benchmarks/README.md, from its JSON document.

    .venv/bin/python -m benchmarks.scenarios.report benchmarks/results/scenarios.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def markdown(doc: dict) -> str:
    models = doc["models"]
    lines = ["### Attacks: caught (seconds from the attack's first call to the alert)", "",
             "| server | attack | shape | worked | tree events | " + " | ".join(models) + " |",
             "|---|---|---|---|---:|" + "---|" * len(models)]
    for s in doc["servers"]:
        if "error" in s:
            lines.append(f"| {s['server']} | **did not run**: {s['error']} |")
            continue
        for a in s["attacks"]:
            cells = [_caught(s["models"][m]["attacks"][a["name"]]) for m in models]
            lines.append(f"| {s['server']} | {a['name']} | {a['shape']} | "
                         f"{'yes' if a['succeeded'] else 'NO'} | {a['tree']['events']:,} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"### False alarms while watching ({doc['watch_seconds']:g} s per server "
              "under load): count, and the 95 % upper bound per hour", "",
              "| server | version | load | done while watched | " + " | ".join(models) + " |",
              "|---|---|---|---:|" + "---|" * len(models)]
    for s in doc["servers"]:
        if "error" in s:
            continue
        cells = [f"{s['models'][m]['false_alarms']} (≤ "
                 f"{s['models'][m]['false_alarms_per_hour_95_upper']:g}/h)" for m in models]
        load = s["load"].replace("|", "\\|")  # a shell pipe in a command list
        lines.append(f"| {s['server']} | {s['version']} | {load} | "
                     f"{s['load_completed_while_watched']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", *by_scope(doc), "", *per_model(doc)])


def by_scope(doc: dict) -> list[str]:
    """What raised each false alarm: a window, a whole thread, or a touched item (runs
    made before the harness counted scopes have no such table)."""
    ran = [s for s in doc["servers"] if "error" not in s]
    if not any("false_alarms_by_scope" in s["models"][m] for s in ran for m in doc["models"]):
        return []
    models = doc["models"]
    lines = ["### False alarms by what raised them (window / thread / touched)", "",
             "| server | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for s in ran:
        cells = []
        for m in models:
            scopes = s["models"][m].get("false_alarms_by_scope") or {}
            cells.append(" / ".join(str(scopes.get(k, 0)) for k in ("window", "thread",
                                                                     "touched")))
        lines.append(f"| {s['server']} | " + " | ".join(cells) + " |")
    return lines


def per_model(doc: dict) -> list[str]:
    """One row per model over every server: attacks caught (by shape), time to alert,
    false alarms over all the watching."""
    ran = [s for s in doc["servers"] if "error" not in s]
    hours = sum(s["watched_seconds"] for s in ran) / 3600
    shapes = sorted({a["shape"] for s in ran for a in s["attacks"]})
    lines = ["### Per model, over every server", "",
             "| model | caught | " + " | ".join(shapes) + " | median / max time to alert | "
             f"false alarms (in {hours:.2f} h) |",
             "|---|---:|" + "---:|" * len(shapes) + "---|---:|"]
    for m in doc["models"]:
        got = [(a["shape"], s["models"][m]["attacks"][a["name"]]) for s in ran
               for a in s["attacks"]]
        times = [d["seconds_to_alert"] for _, d in got if d["caught"]]
        by_shape = [f"{sum(d['caught'] for sh, d in got if sh == shape)} / "
                    f"{sum(sh == shape for sh, _ in got)}" for shape in shapes]
        timing = (f"{statistics.median(times):.2f} s / {max(times):.1f} s" if times else "–")
        alarms = sum(s["models"][m]["false_alarms"] for s in ran)
        lines.append(f"| {m} | {len(times)} / {len(got)} | " + " | ".join(by_shape)
                     + f" | {timing} | {alarms} |")
    return lines



def _caught(d: dict) -> str:
    if not d["caught"]:
        return "missed"
    return f"{d['seconds_to_alert']:.2f} s"


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
