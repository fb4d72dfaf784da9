"""Pooled versus per-host profiles on a kept scenario run (issue #15).

    .venv/bin/python benchmarks/bench_pooled.py [RUN.json] [--hosts 6] [--slice 15s]
        [--servers nginx,memcached] [--out FILE] [--work DIR]

RUN.json is what `python -m benchmarks.scenarios --record-watch --keep --out RUN.json`
wrote (default benchmarks/results/scenarios-s6b.json); its servers' work directories must
still exist. For each server:

1. **Hosts**: the 90 s training recording (`train/`) cut into --hosts disjoint time slices
   of --slice each, from its first events record on; each slice becomes a sysgram dataset
   of its own (`slices/hN`), a "host" whose recording was short. An events record goes to
   the slice holding its timestamp (the time of its first call; records are flushed at
   least every 0.5 s, so slice edges are that fine), touched records and notes likewise.
   A thread already running when its slice begins gets a thread start there marked
   `created: false` (what `sysgram record` writes for a thread it found running).
2. **Per-host profiles**: the default detector trained on one slice through
   `sysgram train --proc COMM --from SLICE` (the command's own function, in this process),
   once per slice.
3. **Pooled profile**: every slice exported with `sysgram export --format parquet --host hN`
   (`export_parquet`) into one root, one host partition each, and trained through the
   fleet path, `sysgram train --proc COMM --from ROOT` (small data: in this process, no
   cluster).
4. **Reference**: the default detector trained on the whole training recording, as the
   suite trained it (`sysgram train --from train/`).
5. **Scoring** (`benchmarks/scenarios/replay.py`, as `sysgram score` does): every profile
   on the watch recording (`watch/`, 10 minutes of normal load: every alert is a false
   alarm, counted as alerting (process, 5 s period) pairs, windows and whole threads) and
   on the attack recording (`attacks/`: caught when a window or thread of the attacked
   process tree alerts within the attack's span), under the default alert decision.

Limits: one real host only, so the "hosts" are slices of one machine's recording under
one load: as alike as hosts can be (the best case for pooling; real hosts differ in
configuration and traffic). Touched sets are not replayed (the live suite catches some
attacks only through them), whole threads are judged at their end, and the fleet path
fits no whole-thread profile (a per-host or reference profile may have one). The pooled
profile's streams are cut at the slice edges and into the fleet's sample chunks.

Prints Markdown tables (per server, and totals) and writes the JSON document to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scenarios.attribution import upper_rate_95  # noqa: E402
from benchmarks.scenarios.replay import (  # noqa: E402
    event_clock,
    flagged,
    process_parents,
    recording_seconds,
    verdicts,
)
from benchmarks.scenarios.slicing import first_event_ns, write_slices  # noqa: E402
from sysgram.datasets import Dataset  # noqa: E402
from sysgram.errors import UserError  # noqa: E402
from sysgram.models.policy import AlertPolicy  # noqa: E402
from sysgram.models.store import ProfileStore  # noqa: E402

DEFAULT_RUN = ROOT / "benchmarks" / "results" / "scenarios-s6b.json"


# -- 2-4. training, through the commands' own code -----------------------------------------
def train(comm: str, source: Path, store: Path) -> dict:
    """`sysgram train --proc COMM --from SOURCE --store STORE` in this process: what it
    printed, how long it took, and the loaded profile (or the error that stopped it)."""
    from sysgram.commands.train import train as train_command

    out = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            train_command(proc=[comm], sources=[str(source)], store=str(store))
        loaded = ProfileStore(store).load(comm)
        error = None
    except UserError as err:
        loaded, error = None, err.message
    return {"loaded": loaded, "error": error, "seconds": round(time.perf_counter() - started, 1),
            "output": out.getvalue().splitlines()}


def export_hosts(slices: list[Path], root: Path) -> list[dict]:
    """`sysgram export --format parquet --host hN SLICE ROOT` for every slice."""
    from sysgram.datasets.parquet import export_parquet

    return [export_parquet(Dataset.open(path), root, host=path.name) for path in slices]


def describe(loaded) -> dict:
    profile = loaded.profile
    summary = profile.training_summary_
    return {"detector": profile.detector_name_, "threshold": profile.calibration_["threshold"],
            "fit_windows": summary.get("fit_windows"),
            "distinct_syscalls": summary.get("distinct_syscalls"),
            "distinct_ngrams": summary.get("distinct_ngrams"),
            "thread_profile": loaded.thread_profile is not None,
            "fleet": loaded.header.get("fleet")}


# -- 5. scoring ----------------------------------------------------------------------------
@dataclass
class Recordings:
    """One server's watch and attack recordings, opened once for every profile."""

    server: dict
    watch: Dataset
    attacks: Dataset
    watch_clock: object
    attacks_clock: object
    parents: dict
    watched_seconds: float

    @classmethod
    def open(cls, server: dict, work: Path) -> Recordings:
        return cls(server, Dataset.open(work / "watch"), Dataset.open(work / "attacks"),
                   event_clock(work / "watch"), event_clock(work / "attacks"),
                   process_parents(work / "attacks"), recording_seconds(work / "watch"))

    def score(self, loaded) -> dict:
        watch = flagged(loaded, self.watch, self.watch.path, self.watch_clock)
        attacked = flagged(loaded, self.attacks, self.attacks.path, self.attacks_clock)
        got = verdicts(watch, attacked, self.server["attacks"], self.parents, MIN_EVENTS)
        fa = got["false_alarms"]
        return {**got, "false_alarms_per_hour": round(fa * 3600 / self.watched_seconds, 1),
                "false_alarms_per_hour_95_upper": round(upper_rate_95(fa, self.watched_seconds),
                                                        1),
                "caught_count": sum(got["caught"].values()), "attacks": len(got["caught"])}


MIN_EVENTS = AlertPolicy(0.0).min_events   # the default alert decision's


# -- one server ----------------------------------------------------------------------------
def bench_server(server: dict, hosts: int, slice_s: float, work: Path) -> dict:
    comm, src = server["comm"], Path(server["workdir"])
    here = work / server["server"]
    here.mkdir(parents=True)
    first, last = first_event_ns(src / "train")
    span = (last - first) / 1e9
    if hosts * slice_s > span + 1.0:
        raise UserError(f"{server['server']}: the training recording spans {span:.1f} s; "
                        f"--hosts {hosts} x --slice {slice_s:g}s does not fit in it.")
    slices = [here / "slices" / f"h{k}" for k in range(hosts)]
    counts = write_slices(src / "train", slices, first, int(slice_s * 1e9))
    recordings = Recordings.open(server, src)
    rows = {}

    def row(kind: str, trained: dict, **extra) -> dict:
        loaded = trained.pop("loaded")
        out = {"kind": kind, **extra, **trained}
        if loaded is not None:
            out["profile"] = describe(loaded)
            out["scores"] = recordings.score(loaded)
        return out

    rows["per_host"] = [row("per-host", train(comm, path, here / f"store-{path.name}"),
                            host=path.name, slice_counts=c)
                        for path, c in zip(slices, counts, strict=True)]
    exported = export_hosts(slices, here / "parquet")
    rows["pooled"] = row("pooled", train(comm, here / "parquet", here / "store-pooled"),
                         exported=exported)
    rows["full"] = row("full", train(comm, src / "train", here / "store-full"),
                       train_seconds=round(span, 1))
    rows["suite"] = _suite_row(src, comm, rows["full"], recordings)
    return {"server": server["server"], "comm": comm, "train_span_seconds": round(span, 1),
            "watched_seconds": recordings.watched_seconds, **rows}


def _suite_row(src: Path, comm: str, full: dict, recordings: Recordings) -> dict | None:
    """The profile the suite itself trained on the whole recording with the same detector,
    scored the same way: a check that the reference row reproduces the run's training."""
    detector = (full.get("profile") or {}).get("detector")
    store = src / f"store-{detector}"
    if detector is None or not store.is_dir():
        return None
    try:
        loaded = ProfileStore(store).load(comm)
    except UserError as err:
        return {"kind": "suite", "error": err.message}
    return {"kind": "suite", "store": str(store), "profile": describe(loaded),
            "scores": recordings.score(loaded)}


# -- the report ----------------------------------------------------------------------------
def _fa(s: dict) -> str:
    return f"{s['false_alarms']} (≤ {s['false_alarms_per_hour_95_upper']:g}/h)"


def _range(values: list[float]) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{med:g} ({min(values):g}–{max(values):g})"


def summary(doc: dict) -> dict:
    """Per server and over every server: per-host median and range (over the slices),
    pooled and full-recording numbers."""
    per_slice_fa: dict[int, int] = defaultdict(int)
    per_slice_caught: dict[int, int] = defaultdict(int)
    unfitted = 0
    totals = {"pooled": [0, 0, 0], "full": [0, 0, 0]}   # false alarms, caught, attacks
    watched = sum(s["watched_seconds"] for s in doc["servers"])
    for s in doc["servers"]:
        for k, r in enumerate(s["per_host"]):
            if "scores" not in r:
                unfitted += 1
                continue
            per_slice_fa[k] += r["scores"]["false_alarms"]
            per_slice_caught[k] += r["scores"]["caught_count"]
        for kind in ("pooled", "full"):
            sc = s[kind].get("scores")
            if sc:
                totals[kind][0] += sc["false_alarms"]
                totals[kind][1] += sc["caught_count"]
                totals[kind][2] += sc["attacks"]
    return {"watched_seconds": watched, "per_host_total_false_alarms": dict(per_slice_fa),
            "per_host_total_caught": dict(per_slice_caught), "per_host_unfitted": unfitted,
            "pooled": totals["pooled"], "full": totals["full"]}


def markdown(doc: dict) -> str:
    h = doc["hosts"]
    lines = [f"| server | per-host ({h} profiles, {doc['slice_seconds']:g} s each): false "
             "alarms, median (range) | per-host: 95 % bound per hour, median (range) | "
             "per-host: caught, median (range) | pooled "
             f"({h} hosts x {doc['slice_seconds']:g} s, fleet path): false alarms | pooled: "
             "caught | one host, whole recording: false alarms | whole: caught |",
             "|---|---|---|---|---|---|---|---|"]
    for s in doc["servers"]:
        fitted = [r["scores"] for r in s["per_host"] if "scores" in r]
        missing = len(s["per_host"]) - len(fitted)
        note = f" ({missing} not fitted)" if missing else ""
        n_att = fitted[0]["attacks"] if fitted else 0
        cells = [_range([f["false_alarms"] for f in fitted]) + note,
                 _range([f["false_alarms_per_hour_95_upper"] for f in fitted]),
                 _range([f["caught_count"] for f in fitted]) + f" / {n_att}"]
        for kind in ("pooled", "full"):
            sc = s[kind].get("scores")
            cells += ([_fa(sc), f"{sc['caught_count']} / {sc['attacks']}"] if sc
                      else [f"not fitted: {s[kind]['error']}", "–"])
        lines.append(f"| {s['server']} | " + " | ".join(cells) + " |")
    lines += ["", *learned(doc)]
    t = doc["summary"]
    hours = t["watched_seconds"] / 3600
    fa = list(t["per_host_total_false_alarms"].values())
    caught = list(t["per_host_total_caught"].values())
    pooled, full = t["pooled"], t["full"]
    lines += ["", f"Over every server ({hours:.2f} h watched; per-host: each slice's profiles "
              "over all servers, median (range) over the slices):", "",
              "| profile | false alarms | per hour | 95 % bound per hour | caught |",
              "|---|---|---|---|---|",
              f"| per-host ({doc['slice_seconds']:g} s) | {_range(fa)} | "
              f"{_range([round(x / hours, 1) for x in fa])} | "
              f"{_range([round(upper_rate_95(x, t['watched_seconds']), 1) for x in fa])} | "
              f"{_range(caught)} / {pooled[2] or full[2]} |"]
    for name, (f, c, n) in (("pooled", pooled), ("whole recording", full)):
        lines.append(f"| {name} | {f} | {f / hours:.1f} | "
                     f"≤ {upper_rate_95(f, t['watched_seconds']):.1f}/h | "
                     f"{c} / {n} |")
    return "\n".join(lines)


def learned(doc: dict) -> list[str]:
    """What each profile learned: calls, distinct syscalls and 3-grams, threshold."""
    def vocab(r: dict) -> tuple[int, int]:
        p = r["profile"]
        return p["distinct_syscalls"], max(p["distinct_ngrams"].values())

    lines = ["| server | calls per host, median | per-host: distinct syscalls / longest "
             "n-grams, median (range) | pooled | whole | per-host threshold, median (range) | "
             "pooled | whole |", "|---|---:|---|---|---|---|---|---|"]
    for s in doc["servers"]:
        fitted = [r for r in s["per_host"] if "profile" in r]
        calls = statistics.median(r["slice_counts"]["syscalls"] for r in s["per_host"])
        cells = [f"{calls:,.0f}",
                 _range([vocab(r)[0] for r in fitted]) + " / "
                 + _range([vocab(r)[1] for r in fitted])]
        cells += ["{} / {}".format(*vocab(s[k])) if "profile" in s[k] else "–"
                  for k in ("pooled", "full")]
        cells.append(_range([round(r["profile"]["threshold"], 3) for r in fitted]))
        cells += [f"{s[k]['profile']['threshold']:.3g}" if "profile" in s[k] else "–"
                  for k in ("pooled", "full")]
        lines.append(f"| {s['server']} | " + " | ".join(cells) + " |")
    return lines


# -- main ----------------------------------------------------------------------------------
def parse_seconds(text: str) -> float:
    from sysgram.commands.common import parse_duration

    return parse_duration(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/bench_pooled.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", type=Path, default=DEFAULT_RUN,
                   help="the kept scenario run's JSON (default: %(default)s)")
    p.add_argument("--hosts", type=int, default=6, help="slices (hosts); default 6")
    p.add_argument("--slice", default="15s", help="each slice's length; default 15s")
    p.add_argument("--servers", default=None, help="comma-separated (default: every server)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON document here")
    p.add_argument("--work", type=Path, default=None,
                   help="keep slices, Parquet and stores here (default: a temp dir, removed)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run = json.loads(args.run.read_text())
    except (OSError, ValueError) as exc:
        print(f"bench_pooled: cannot read the run {args.run} ({exc}).", file=sys.stderr)
        return 2
    servers = [s for s in run["servers"] if "error" not in s]
    if args.servers:
        wanted = args.servers.split(",")
        unknown = set(wanted) - {s["server"] for s in servers}
        if unknown:
            print(f"bench_pooled: {args.run} has no server {', '.join(sorted(unknown))}.",
                  file=sys.stderr)
            return 2
        servers = [s for s in servers if s["server"] in wanted]
    if not servers:
        print(f"bench_pooled: {args.run} holds no server that ran.", file=sys.stderr)
        return 2
    missing = [s["server"] for s in servers
               if not all((Path(s.get("workdir", "")) / d).is_dir()
                          for d in ("train", "watch", "attacks"))]
    if missing:
        print(f"bench_pooled: the work directory of {args.run} is gone or incomplete "
              f"({', '.join(missing)}: no train/, watch/ or attacks/ under "
              f"{Path(servers[0].get('workdir', '?')).parent}); rerun the suite with "
              "`python -m benchmarks.scenarios --record-watch --keep --out RUN.json` and "
              "give RUN.json.", file=sys.stderr)
        return 2
    if args.hosts < 1:
        print("bench_pooled: --hosts must be at least 1.", file=sys.stderr)
        return 2
    try:
        slice_s = parse_seconds(args.slice)
    except UserError as err:
        print(f"bench_pooled: --slice: {err.message}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="sysgram-pooled-"))
    started = time.time()
    doc = {"command": "python benchmarks/bench_pooled.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "run": str(args.run), "run_command": run.get("command"), "hosts": args.hosts,
           "slice_seconds": slice_s, "min_events": MIN_EVENTS, "servers": []}
    try:
        for server in servers:
            t = time.perf_counter()
            print(f"bench_pooled: {server['server']}...", file=sys.stderr, flush=True)
            doc["servers"].append(bench_server(server, args.hosts, slice_s, work))
            doc["servers"][-1]["wall_seconds"] = round(time.perf_counter() - t, 1)
    except UserError as err:
        print(f"bench_pooled: {err.message}", file=sys.stderr)
        return 2
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    doc["wall_seconds"] = round(time.time() - started, 1)
    doc["summary"] = summary(doc)
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
