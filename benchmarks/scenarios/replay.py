"""Replay a kept scenario run offline: the alert decision's variants on the same recordings.

    .venv/bin/python -m benchmarks.scenarios.replay RUN.json [--model lm-stream]
        [--min-events 1,2,3] [--out FILE]

RUN.json is what `python -m benchmarks.scenarios --record-watch --out RUN.json` wrote; its
work directories hold, per server, the profile each model trained (`store-MODEL`), the
recording of the watch period (`watch/`, every alert there is a false alarm) and of the
attack phase (`attacks/`). For each `--min-events` bar (`AlertPolicy.min_events`) this
scores both recordings with the stored profile, as `sysgram score` does, and counts:

- **false alarms**: alerting (process, 5 s period) pairs in the watch recording, the
  unit `watch` folds alerts into (its --aggregate period), windows and whole threads;
- **caught**: per attack, whether a window or thread of the attacked process tree
  alerted between the attack's start and the next attack's (the run's `span_ns`; runs
  made before spans were kept fall back to the whole attack phase, said in the output).

Whole threads are judged at their end as the offline `score` does, not as they run, and
a recorded thread is one stream across its execs (live, an exec starts a new stream: a
login shell's `ps` is judged alone there, with bash's calls before it here), so thread
verdicts differ from the live ones. Touched records are replayed against the profile's
sets (`--touched`, the default; roles as `train` gives them, from each recorded process's
`watched_parent`): a new item is an alert of its own, scope "touched". The live suite
(`python -m benchmarks.scenarios`) stays the measurement of record; this is for
comparing decisions on identical data, seconds per variant instead of a 40-minute run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.scenarios.attribution import descends_from
from sysgram.datasets import Dataset
from sysgram.datasets import format as fmt
from sysgram.datasets.log import scan
from sysgram.models.offline import thread_first_offset
from sysgram.models.policy import AlertPolicy, Novelty
from sysgram.models.store import ProfileStore
from sysgram.models.training_data import to_streams

PERIOD_NS = 5 * 10**9  # watch's default --aggregate period


@dataclass
class Flagged:
    """Above-threshold sequences of one recording with what the policy weighs."""

    pid: np.ndarray
    ts_ns: np.ndarray
    events: np.ndarray
    decisive: np.ndarray
    scope: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios.replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--model", default="lm-stream")
    p.add_argument("--min-events", default="1,2,3")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--no-touched", dest="touched", action="store_false",
                   help="leave the touched sets out (sequences only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = json.loads(args.run.read_text())
    bars = [int(k) for k in args.min_events.split(",")]
    rows = []
    for server in run["servers"]:
        work = Path(server.get("workdir", ""))
        if "error" in server or not (work / "watch").is_dir():
            print(f"replay: {server['server']}: no watch recording in {work}; skipped",
                  file=sys.stderr)
            continue
        rows.append(replay_server(server, work, args.model, bars, args.touched))
    command = "python -m benchmarks.scenarios.replay " + " ".join(argv or sys.argv[1:])
    document = {"command": command,
                "run": str(args.run), "model": args.model, "servers": rows}
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(markdown(document, bars))
    return 0


def replay_server(server: dict, work: Path, model: str, bars: list[int],
                  touched: bool = True) -> dict:
    loaded = ProfileStore(work / f"store-{model}").load(server["comm"])
    watch = flagged(loaded, Dataset.open(work / "watch"), work / "watch", touched=touched)
    attacked = flagged(loaded, Dataset.open(work / "attacks"), work / "attacks",
                       touched=touched)
    parents = process_parents(work / "attacks")
    out = {"server": server["server"], "watched_seconds": recording_seconds(work / "watch"),
           "bars": {}}
    for k in bars:
        out["bars"][str(k)] = verdicts(watch, attacked, server["attacks"], parents, k)
    return out


def verdicts(watch: list[Flagged], attacked: list[Flagged], attacks: list[dict],
             parents: dict[int, int], min_events: int) -> dict:
    """False alarms in the watch recording and attacks caught in the attack recording,
    under the alert decision with `min_events` (the run's attacks: `target_pid`, `span_ns`)."""
    policy = AlertPolicy(0.0, min_events=min_events)
    false = set()
    for f in watch:
        alarm = policy.novel_enough(_novelty(f))
        false |= {(f.scope, int(p), int(t // PERIOD_NS))
                  for p, t in zip(f.pid[alarm], f.ts_ns[alarm], strict=True)}
    caught = {}
    for attack in attacks:
        lo, hi = attack.get("span_ns") or (0, 1 << 63)
        hit = False
        for f in attacked:
            alarm = policy.novel_enough(_novelty(f)) & (f.ts_ns >= lo) & (f.ts_ns < hi)
            hit |= any(descends_from(int(p), attack["target_pid"], parents)
                       for p in np.unique(f.pid[alarm]))
        caught[attack["name"]] = hit
    return {"false_alarms": len(false),
            "false_alarms_by_scope": {s: sum(1 for f in false if f[0] == s)
                                      for s in ("window", "thread", "touched")},
            "caught": caught, "spans": all("span_ns" in a for a in attacks)}


def _novelty(f: Flagged) -> Novelty:
    return Novelty(f.events, f.decisive)


def flagged(loaded, data: Dataset, path: Path, clock=None,
            touched: bool = True) -> list[Flagged]:
    """The recording's windows and threads that score above their thresholds, and (with
    `touched`) its touched records new to the profile's sets (`clock`: event_clock(path),
    given when several profiles score one recording)."""
    profile = loaded.profile
    clock = clock or event_clock(path)
    streams = to_streams(data.threads, profile.arch_)
    windows = profile.windows(streams.pieces)
    scores = profile.score_windows(windows.seqs)
    rows = np.flatnonzero(AlertPolicy.for_windows(profile).above(scores))
    piece_first = streams.pieces.offsets[:-1] - thread_first_offset(streams)
    thread_of_window = streams.thread_of_piece[windows.source[rows]]
    starts = piece_first[windows.source[rows]] + windows.start[rows]
    out = [_flag(profile, windows.seqs.take(rows), streams, thread_of_window,
                 starts + profile.window_ - 1, clock, "window")]
    thread_profile = loaded.thread_profile
    policy = AlertPolicy.for_threads(thread_profile) if thread_profile is not None else None
    if policy is not None:
        above = np.flatnonzero(policy.above(thread_profile.score_threads(streams.pieces)))
        ends = piece_first[above] + streams.pieces.lengths[above] - 1
        out.append(_flag(thread_profile, streams.pieces.take(above), streams,
                         streams.thread_of_piece[above], ends, clock, "thread"))
    if touched and getattr(loaded, "touched", None) is not None:
        out.append(touched_flagged(loaded.touched, data))
    return out


def touched_flagged(sets, data: Dataset) -> Flagged:
    """The recording's touched records that are new to `sets`, as live `watch` judges
    them (each on its own: a new item alerts whatever the window around it scores)."""
    from sysgram.models.touched import process_roles, with_roles

    verdict: dict[str, bool] = {}
    pids, times = [], []
    for record in with_roles(data.touched, process_roles(data.threads)):
        what = json.dumps({k: v for k, v in record.items()
                           if k not in ("tid", "pid", "ts_ns", "position", "fd")},
                          sort_keys=True, default=str)
        if what not in verdict:
            verdict[what] = bool(sets.new_items([record]))
        if verdict[what]:
            pids.append(int(record["pid"]))
            times.append(int(record.get("ts_ns") or 0))
    n = len(pids)
    return Flagged(np.array(pids, dtype=np.int64), np.array(times, dtype=np.int64),
                   np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), "touched")


def _flag(profile, seqs, streams, thread_rows, positions, clock, scope: str) -> Flagged:
    novelty = profile.novelty(seqs)
    threads = [streams.threads[i] for i in thread_rows]
    pid = np.array([t.pid for t in threads], dtype=np.int64)
    ts = np.array([clock(t.tid, int(p)) for t, p in zip(threads, positions, strict=True)],
                  dtype=np.int64)
    return Flagged(pid, ts, novelty.events, novelty.decisive, scope)


def event_clock(path: Path):
    """(tid, position in its trace) -> CLOCK_MONOTONIC ns of the events record holding it
    (its first call's time: within the recorder's 0.5 s flush)."""
    buf = (path / fmt.LOG_FILE).read_bytes()
    marks: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for rec in scan(buf).records:
        if rec.kind == fmt.EVENTS:
            marks[rec.tid].append((rec.position, rec.ts_ns))
    table = {tid: (np.array([m[0] for m in v]), np.array([m[1] for m in v]))
             for tid, v in marks.items()}

    def at(tid: int, position: int) -> int:
        pos, ts = table.get(tid, (np.zeros(1, np.int64), np.zeros(1, np.int64)))
        k = max(int(np.searchsorted(pos, position, side="right")) - 1, 0)
        return int(ts[k])

    return at


def process_parents(path: Path) -> dict[int, int]:
    buf = (path / fmt.LOG_FILE).read_bytes()
    parents = {}
    for rec in scan(buf).records:
        if rec.kind == fmt.THREAD_START:
            try:
                info = json.loads(bytes(buf[rec.offset:rec.offset + rec.length]))
            except ValueError:
                continue
            if isinstance(info, dict) and isinstance(info.get("ppid"), int):
                parents.setdefault(rec.pid, info["ppid"])
    return parents


def recording_seconds(path: Path) -> float:
    buf = (path / fmt.LOG_FILE).read_bytes()
    ts = [r.ts_ns for r in scan(buf).records if r.kind == fmt.EVENTS and r.ts_ns]
    return round((max(ts) - min(ts)) / 1e9, 1) if ts else 0.0


def markdown(document: dict, bars: list[int]) -> str:
    lines = ["| server | watched | " + " | ".join(f"min_events={k}: FA (window/thread/touched), "
                                                 "caught"
                                                 for k in bars) + " |",
             "|---|---|" + "---|" * len(bars)]
    for row in document["servers"]:
        cells = []
        for k in bars:
            b = row["bars"][str(k)]
            scope = b["false_alarms_by_scope"]
            caught = sum(b["caught"].values())
            missed = [n for n, c in b["caught"].items() if not c]
            cells.append(f"{b['false_alarms']} ({scope['window']}/{scope['thread']}/"
                         f"{scope['touched']}), "
                         f"{caught}/{len(b['caught'])}" + (f" missed {', '.join(missed)}"
                                                            if missed else ""))
        lines.append(f"| {row['server']} | {row['watched_seconds']:.0f} s | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
