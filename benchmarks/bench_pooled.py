"""Pooled versus per-host profiles on a kept scenario run (issue #15).

    .venv/bin/python benchmarks/bench_pooled.py [RUN.json] [--hosts 6] [--slice auto|15s]
        [--servers nginx,memcached] [--out FILE] [--work DIR]

RUN.json is what `python -m benchmarks.scenarios --record-watch --keep --out RUN.json`
wrote (default benchmarks/results/scenarios-s6b.json); its servers' work directories must
still exist. For each server:

1. **Hosts**: the 90 s training recording (`train/`) cut into --hosts disjoint time slices
   of --slice each from its first events record on (default: its events, first to last,
   shared out evenly: 14.2-15.0 s each in run B); each slice becomes a sysgram dataset
   of its own (`slices/hN`), a "host" whose recording was short. An events record goes to
   the slice holding its timestamp (the time of its first call; records are flushed at
   least every 0.5 s, so slice edges are that fine), touched records and notes likewise.
   A thread already running when its slice begins gets a thread start there marked
   `created: false` (what `sysgram record` writes for a thread it found running).
2. **Per-host profiles**: the default detector trained on one slice through
   `sysgram train --proc COMM --from SLICE` (the command's own function, in this process),
   once per slice.
3. **Pooled profiles**: every slice exported with `sysgram export --format parquet --host hN`
   (`export_parquet`) into one root, one host partition each, and trained through the
   fleet path, `sysgram train --proc COMM --from ROOT` (small data: in this process, no
   cluster). The fleet path pools the programs a server's processes exec (sshd's
   sessions, gunicorn's `sh`/`getent`) into the server binary's build, as the dataset
   path does; the server binary's own profile is the one scored.
   Beside it, the same slices pooled through the dataset path, `sysgram train --proc COMM
   --from h0 ... --from hN` (one profile for the whole process tree, as per-host ones).
4. **Reference**: the default detector trained on the whole training recording, as the
   suite trained it (`sysgram train --from train/`).
5. **Scoring** (`benchmarks/scenarios/replay.py`, as `sysgram score` does): every profile
   on the watch recording (`watch/`, 10 minutes of normal load: every alert is a false
   alarm, counted as alerting (process, 5 s period) pairs, windows and whole threads) and
   on the attack recording (`attacks/`: caught when a window or thread of the attacked
   process tree alerts within the attack's span), under the default alert decision.

Limits: one real host only, so the "hosts" are slices of one machine's recording under
one load: as alike as hosts can be (the best case for pooling; real hosts differ in
configuration and traffic). Touched records are replayed against each profile's sets
(replay.py: the pooled fleet profile's sets pool every slice's records, with host counts;
since 2026-12-06 20:59 `export` carries them, before it the fleet path learned none),
whole threads are judged at their end, and the fleet path
fits no whole-thread profile (a per-host or reference profile may have one). The pooled
profile's streams are cut at the slice edges and into the fleet's sample chunks.

Prints Markdown tables (per server, and totals) and writes the JSON document to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
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
def train(comm: str, sources: list[Path], store: Path, sha256: str | None = None) -> dict:
    """`sysgram train --proc COMM --from SOURCE... --store STORE` in this process: what it
    printed, how long it took, and the loaded profile (or the error that stopped it).

    The fleet path fits one profile per build under a name: when the recordings hold
    several builds, it saves them as COMM@SHA256-PREFIX; the one loaded then is
    `sha256`'s, the server binary's own (what would be installed as COMM's profile)."""
    from sysgram.commands.train import train as train_command

    out = io.StringIO()
    started = time.perf_counter()
    loaded, error = None, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            train_command(proc=[comm], sources=[str(s) for s in sources], store=str(store))
    except UserError as err:
        error = err.message
    made = sorted(p.name.removesuffix(".profile") for p in Path(store).glob("*.profile"))
    if error is None:
        name = comm if comm in made or sha256 is None else f"{comm}@{sha256[:12]}"
        try:
            loaded = ProfileStore(store).load(name)
        except UserError as err:
            error = err.message
    out_doc = {"loaded": loaded, "error": error,
               "seconds": round(time.perf_counter() - started, 1),
               "output": out.getvalue().splitlines()}
    if made != [comm]:
        out_doc["profiles"] = made
        out_doc["loaded_name"] = name if loaded is not None else None
    return out_doc


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
def bench_server(server: dict, hosts: int, slice_s: float | None, work: Path) -> dict:
    comm, src = server["comm"], Path(server["workdir"])
    here = work / server["server"]
    here.mkdir(parents=True)
    first, last = first_event_ns(src / "train")
    span = (last - first) / 1e9
    if slice_s is None:                 # auto: the recording's events shared out evenly
        slice_s = (last + 1 - first) / 1e9 / hosts
    elif hosts * slice_s > span + 1.0:
        raise UserError(f"{server['server']}: the training recording spans {span:.1f} s; "
                        f"--hosts {hosts} x --slice {slice_s:g}s does not fit in it.")
    slices = [here / "slices" / f"h{k}" for k in range(hosts)]
    counts = write_slices(src / "train", slices, first, math.ceil(slice_s * 1e9))
    recordings = Recordings.open(server, src)
    rows = {}

    def row(kind: str, trained: dict, **extra) -> dict:
        loaded = trained.pop("loaded")
        out = {"kind": kind, **extra, **trained}
        if loaded is not None:
            out["profile"] = describe(loaded)
            out["scores"] = recordings.score(loaded)
        return out

    rows["per_host"] = [row("per-host", train(comm, [path], here / f"store-{path.name}"),
                            host=path.name, slice_counts=c)
                        for path, c in zip(slices, counts, strict=True)]
    full = train(comm, [src / "train"], here / "store-full")
    sha = full["loaded"].header.get("binary", {}).get("sha256") if full["loaded"] else None
    rows["full"] = row("full", full, train_seconds=round(span, 1))
    exported = export_hosts(slices, here / "parquet")
    rows["pooled"] = row("pooled", train(comm, [here / "parquet"], here / "store-pooled", sha),
                         exported=exported)
    rows["pooled_datasets"] = row("pooled-datasets",
                                  train(comm, slices, here / "store-pooled-datasets"))
    rows["suite"] = _suite_row(src, comm, rows["full"], recordings)
    return {"server": server["server"], "comm": comm, "train_span_seconds": round(span, 1),
            "slice_seconds": round(slice_s, 2), "attacks": server["attacks"],
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
def _range(values: list[float]) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{med:g} ({min(values):g}–{max(values):g})"


POOLED = (("pooled", "pooled, fleet path (`train --from ROOT`)"),
          ("pooled_datasets", "pooled, dataset path (`train --from h0 ... --from hN`)"),
          ("full", "one host, the whole recording"))


def summary(doc: dict) -> dict:
    """Over every server. Per-host: the sum over servers of each server's median (and of
    its minimum and maximum) over the per-host profiles that could be fitted; the others:
    sums over the servers where the profile was fitted."""
    out = {"watched_seconds": sum(s["watched_seconds"] for s in doc["servers"]),
           "attacks": sum(len(s["attacks"]) for s in doc["servers"])}
    per_host = {"false_alarms": [0, 0, 0], "caught": [0, 0, 0], "not_fitted": 0}
    for s in doc["servers"]:
        fitted = [r["scores"] for r in s["per_host"] if "scores" in r]
        per_host["not_fitted"] += len(s["per_host"]) - len(fitted)
        for key, field_ in (("false_alarms", "false_alarms"), ("caught", "caught_count")):
            values = [f[field_] for f in fitted]
            if values:
                for i, v in enumerate((statistics.median(values), min(values), max(values))):
                    per_host[key][i] += v
    out["per_host"] = per_host
    for kind, _ in POOLED:
        scored = [s[kind]["scores"] for s in doc["servers"] if "scores" in s[kind]]
        out[kind] = {"false_alarms": sum(x["false_alarms"] for x in scored),
                     "caught": sum(x["caught_count"] for x in scored),
                     "attacks": sum(x["attacks"] for x in scored),
                     "servers": len(scored),
                     "watched_seconds": sum(s["watched_seconds"] for s in doc["servers"]
                                            if "scores" in s[kind])}
    return out


def markdown(doc: dict) -> str:
    h = doc["hosts"]
    lines = ["| server | profile | false alarms while watching | 95 % bound per hour | "
             "attacks caught |", "|---|---|---|---|---|"]
    for s in doc["servers"]:
        fitted = [r["scores"] for r in s["per_host"] if "scores" in r]
        missing = len(s["per_host"]) - len(fitted)
        n_att = len(s["attacks"])
        note = f"; {missing} of {h} could not be fitted" if missing else ""
        lines.append(
            f"| {s['server']} | per-host, one {s['slice_seconds']:.1f} s slice each: "
            f"median (range) over {len(fitted)} profiles{note} | "
            f"{_range([f['false_alarms'] for f in fitted])} | "
            f"{_range([f['false_alarms_per_hour_95_upper'] for f in fitted])} | "
            f"{_range([f['caught_count'] for f in fitted])} / {n_att} |")
        for kind, label in POOLED:
            r = s[kind]
            if "profiles" in r and r.get("loaded_name"):
                label += (f" (the fleet path made {len(r['profiles'])} profiles, one per "
                          f"executable; scored: the server binary's, {r['loaded_name']})")
            sc = r.get("scores")
            if sc is None:
                lines.append(f"| {s['server']} | {label} | not fitted: {r['error']} | – | – |")
                continue
            lines.append(f"| {s['server']} | {label} | {sc['false_alarms']} | "
                         f"≤ {sc['false_alarms_per_hour_95_upper']:g} | "
                         f"{sc['caught_count']} / {sc['attacks']} |")
    lines += ["", *learned(doc)]
    t = doc["summary"]
    hours = t["watched_seconds"] / 3600
    ph = t["per_host"]
    fa, caught = ph["false_alarms"], ph["caught"]
    lines += ["", f"Over every server ({hours:.2f} h watched, {t['attacks']} attacks; per-host: "
              "the sum of each server's median (minimum–maximum) over its per-host "
              f"profiles; {ph['not_fitted']} per-host profiles could not be fitted):", "",
              "| profile | false alarms | per hour | 95 % bound per hour | caught |",
              "|---|---|---|---|---|",
              f"| per-host (one slice) | {fa[0]:g} ({fa[1]:g}–{fa[2]:g}) | "
              f"{fa[0] / hours:.1f} ({fa[1] / hours:.1f}–{fa[2] / hours:.1f}) | "
              f"≤ {upper_rate_95(int(fa[0]), t['watched_seconds']):.1f} | "
              f"{caught[0]:g} ({caught[1]:g}–{caught[2]:g}) / {t['attacks']} |"]
    for kind, label in POOLED:
        x = t[kind]
        if not x["servers"]:
            continue
        hrs = x["watched_seconds"] / 3600
        where = ("" if x["servers"] == len(doc["servers"])
                 else f" ({x['servers']} servers, {hrs:.2f} h)")
        lines.append(f"| {label}{where} | {x['false_alarms']} | {x['false_alarms'] / hrs:.1f} | "
                     f"≤ {upper_rate_95(x['false_alarms'], x['watched_seconds']):.1f} | "
                     f"{x['caught']} / {x['attacks']} |")
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
        cells.append(_range([float(f"{r['profile']['threshold']:.3g}") for r in fitted]))
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
    p.add_argument("--slice", default="auto",
                   help="each slice's length, e.g. 15s; default auto: the training "
                   "recording's events (first to last) shared out evenly over --hosts")
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
        slice_s = None if args.slice == "auto" else parse_seconds(args.slice)
    except UserError as err:
        print(f"bench_pooled: --slice: {err.message}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="sysgram-pooled-"))
    started = time.time()
    doc = {"command": "python benchmarks/bench_pooled.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
           "run": str(args.run), "run_command": run.get("command"), "hosts": args.hosts,
           "slice": args.slice, "min_events": MIN_EVENTS, "servers": []}
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
