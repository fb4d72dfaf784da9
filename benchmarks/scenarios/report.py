"""The suite's Markdown tables for benchmarks/README.md, from its JSON document."""

from __future__ import annotations


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
        lines.append(f"| {s['server']} | {s['version']} | {s['load']} | "
                     f"{s['load_completed_while_watched']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _caught(d: dict) -> str:
    if not d["caught"]:
        return "missed"
    return f"{d['seconds_to_alert']:.2f} s"
