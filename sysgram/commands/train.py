"""`sysgram train`, `sysgram profiles list|show|rm` and `sysgram score`: profiles at the terminal.

The work happens in sysgram.models (Profile, ProfileStore) and sysgram.datasets; this
module parses options, shows progress and prints results.
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sysgram.commands.common import kernel_comm, parse_duration, stderr_is_tty
from sysgram.errors import UserError

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Profile store directory (default $SYSGRAM_STORE or "
                 "/var/lib/sysgram/profiles)."),
]


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("score")(score)
    group = typer.Typer(help="List, inspect and remove trained profiles.", no_args_is_help=True)
    group.command("list")(profiles_list)
    group.command("show")(profiles_show)
    group.command("rm")(profiles_rm)
    app.add_typer(group, name="profiles")


# -- terminal helpers --------------------------------------------------------------------
def printable(text: object) -> str:
    """`text` with control characters escaped, so names from disk cannot drive the terminal."""
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" or ch == " "
        else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in str(text)
    )


def say(message: str) -> None:
    print(f"sysgram: {printable(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"sysgram: warning: {printable(message)}", file=sys.stderr, flush=True)


def loud(message: str) -> None:
    text = f"sysgram: WARNING: {printable(message)}"
    if stderr_is_tty():
        text = f"\x1b[1;31m{text}\x1b[0m"
    print(text, file=sys.stderr, flush=True)


# -- sysgram train -----------------------------------------------------------------------
def train(
    proc: Annotated[str, typer.Option("--proc", help="Process name (as `ps -o comm` shows it).")],
    sources: Annotated[
        list[Path] | None,
        typer.Option("--from", help="Train from these recordings instead of live (repeatable)."),
    ] = None,
    duration: Annotated[
        str, typer.Option(help="Live: how long to record (the most, with --until-stable).")
    ] = "10m",
    model: Annotated[
        str | None, typer.Option("--model", help="Detector (default: the project's default).")
    ] = None,
    until_stable: Annotated[
        bool, typer.Option("--until-stable", help="Live: stop once novelty stays low.")
    ] = False,
    stable_rate: Annotated[
        float, typer.Option(help="--until-stable: new n-grams per 1,000 windows counted as low.")
    ] = 1.0,
    stable_for: Annotated[
        str, typer.Option(help="--until-stable: how long novelty must stay low.")
    ] = "60s",
    append: Annotated[
        bool, typer.Option("--append", help="Extend the existing profile with these recordings.")
    ] = False,
    window: Annotated[int | None, typer.Option(help="Window length in calls.")] = None,
    stride: Annotated[int | None, typer.Option(help="Calls between window starts.")] = None,
    target_far: Annotated[
        float, typer.Option(help="Target false alarms per window (default 1 in 10,000).")
    ] = 1e-4,
    store: StoreOption = None,
) -> None:
    """Learn a binary's profile, live or from recordings, and save it in the store."""
    from sysgram.models.profile import Profile
    from sysgram.models.store import ProfileStore
    from sysgram.syscalls import host_arch

    comm = kernel_comm(proc)
    profile_store = ProfileStore(store)
    profile_store.path(comm)  # a bad name fails before any recording
    previous = _previous(profile_store, comm, append)
    if sources:
        threads, arch, described = _threads_from_datasets(sources)
    else:
        if append:
            raise UserError("--append extends a profile with recordings; give them with --from.")
        threads, arch, described = _threads_live(
            comm, parse_duration(duration), until_stable, stable_rate, parse_duration(stable_for)
        )
    if previous is not None:
        arch = previous.profile.arch_
        params = previous.profile.get_params()
    else:
        params = {"detector": model, "window": window, "stride": stride, "target_far": target_far,
                  "arch": arch or host_arch()}
    _fit_and_save(profile_store, comm, Profile(**params), threads, described, previous)


def _previous(profile_store, comm: str, append: bool):
    if not append:
        return None
    loaded = profile_store.load(comm)
    for message in loaded.warnings:
        warn(message)
    if loaded.traces is None:
        raise UserError(f"the profile '{comm}' kept no training data to extend; retrain it "
                        "from all its recordings without --append.")
    return loaded


def _threads_from_datasets(paths: list[Path]) -> tuple[list, str, list[dict]]:
    from sysgram.datasets import Dataset

    threads, described, arch = [], [], None
    for path in paths:
        dataset = Dataset.open(path)
        for message in dataset.warnings:
            warn(f"{path}: {message}")
        arch = arch or dataset.arch
        normal = [t for t in dataset.threads if t.label != "attack"]
        skipped = len(dataset.threads) - len(normal)
        if skipped:
            say(f"{path}: left out {skipped:,} threads labelled as attacks.")
        threads.extend(normal)
        described.append({"kind": "dataset", "path": str(Path(path).resolve()),
                          "threads": len(normal), "syscalls": int(sum(len(t) for t in normal)),
                          "attack_threads_left_out": skipped})
    return threads, arch, described


def _threads_live(
    comm: str, duration: float, until_stable: bool, stable_rate: float, stable_for: float
) -> tuple[list, str, list[dict]]:
    from sysgram.collector import Collector, TargetSpec
    from sysgram.features import NoveltyTracker
    from sysgram.models import defaults
    from sysgram.models.streaming import ThreadWindower
    from sysgram.models.training_data import LiveRecording
    from sysgram.syscalls import host_arch

    arch = host_arch()
    recording = LiveRecording(arch)
    windowers: dict[int, ThreadWindower] = {}
    novelty = NoveltyTracker(tuple(defaults.DEFAULT_ORDERS))
    rate = _NoveltyRate()
    stable_since, stable = None, False
    with Collector(TargetSpec(comm)) as collector:
        started = time.monotonic()  # after attaching: compiling must not eat the duration
        say(f"recording '{comm}' for up to {duration:g}s"
            + (" (until novelty settles)" if until_stable else "") + "; Ctrl-C stops early.")
        try:
            while (now := time.monotonic()) - started < duration:
                drain = collector.poll(0.2)
                new_windows = []
                for tid, ids in recording.add(drain.items):
                    w = windowers.setdefault(
                        tid, ThreadWindower(defaults.DEFAULT_WINDOW, defaults.DEFAULT_STRIDE))
                    windows, _ = w.push(ids)
                    if len(windows):
                        new_windows.append(windows)
                if new_windows:
                    from sysgram.features import Sequences

                    batch = Sequences.from_windows(np.concatenate(new_windows))
                    rate.add(now, len(batch), novelty.update(batch))
                per_k = rate.per_thousand(now)
                _progress(now - started, duration, recording, novelty, per_k)
                if until_stable and novelty.windows >= 1000 and per_k is not None:
                    low = per_k < stable_rate
                    stable_since = (stable_since or now) if low else None
                    if stable_since is not None and now - stable_since >= stable_for:
                        stable = True
                        break
        except KeyboardInterrupt:
            say("stopped early by Ctrl-C; training on what was recorded.")
        stats = collector.stats()
    if stderr_is_tty():
        print(file=sys.stderr)
    if until_stable:
        if stable:
            say(f"novelty settled below {stable_rate:g} new n-grams per 1,000 windows for "
                f"{stable_for:g}s; stopped recording.")
        else:
            loud(f"novelty never settled below {stable_rate:g} new n-grams per 1,000 windows "
                 f"within {duration:g}s: the profile may miss normal behaviour and raise false "
                 "alarms; record longer (--duration) while the program does its usual work.")
    if stats.lost:
        warn(f"{stats.lost:,} events were lost while recording; windows never span a loss.")
    described = [{"kind": "live", "comm": comm, "seconds": round(time.monotonic() - started, 1),
                  "syscalls": recording.events, "lost": int(stats.lost),
                  "threads": len(recording.traces()), "stable": stable if until_stable else None}]
    if not recording.events:
        raise UserError(f"no process named '{comm}' made a system call while recording; start "
                        "it (check the name with `ps -o comm`) and train again.")
    return recording.traces(), arch, described


class _NoveltyRate:
    """New n-grams per 1,000 windows over the last SPAN seconds."""

    SPAN = 10.0

    def __init__(self) -> None:
        self.points: list[tuple[float, int, int]] = []

    def add(self, now: float, windows: int, new: int) -> None:
        self.points.append((now, windows, new))
        self.points = [p for p in self.points if now - p[0] <= self.SPAN]

    def per_thousand(self, now: float) -> float | None:
        windows = sum(p[1] for p in self.points)
        return 1000.0 * sum(p[2] for p in self.points) / windows if windows else None


def _progress(elapsed: float, duration: float, recording, novelty, per_k) -> None:
    if not stderr_is_tty():
        return
    width = 24
    done = int(width * min(elapsed / duration, 1.0))
    rate = "—" if per_k is None else f"{per_k:.1f}"
    line = (f"[{'#' * done}{'.' * (width - done)}] {elapsed:5.0f}s  {recording.events:,} calls  "
            f"{len(recording.threads):,} threads  {novelty.windows:,} windows  "
            f"novelty {rate}/1k windows")
    sys.stderr.write("\r\x1b[2K" + line)
    sys.stderr.flush()


def _fit_and_save(profile_store, comm: str, profile, threads: list, described: list[dict],
                  previous) -> None:
    from sysgram.models.store import profile_meta
    from sysgram.models.training_data import binary_identity, to_streams

    streams = to_streams(threads, profile.arch or "x86_64")
    pieces = streams.pieces
    if previous is not None:
        pieces = _concat(previous.traces, pieces)
        described = list((previous.header.get("training") or {}).get("sources") or []) + described
    if streams.lost_events:
        say(f"{streams.lost_events:,} events were lost in the recordings; threads are cut there.")
    say(f"fitting on {len(pieces):,} streams, {int(pieces.offsets[-1]):,} calls...")
    started = time.perf_counter()
    profile.fit(pieces)
    took = time.perf_counter() - started
    binary = binary_identity(threads, comm)
    if previous is not None and not binary.get("sha256"):
        binary = previous.header.get("binary") or binary
    path = profile_store.save(comm, profile, profile_meta(profile, binary=binary,
                                                          sources=described), pieces)
    print("\n".join(_fit_summary(profile, took, path)))


def _concat(a, b):
    from sysgram.features import Sequences

    offsets = np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]])
    return Sequences(np.concatenate([np.asarray(a.values, np.uint16),
                                     np.asarray(b.values, np.uint16)]), offsets)


def _fit_summary(profile, took: float, path: Path) -> list[str]:
    s, cal = profile.training_summary_, profile.calibration_
    curve = profile.novelty_curve_
    return [
        f"trained    {profile.detector_name_} on {s['fit_windows']:,} windows of "
        f"{profile.window_} calls (every {profile.stride_}) in {took:.1f}s",
        f"threshold  {cal['threshold']:.6g} for {cal['target_far']:g} false alarms per window "
        f"({cal['method']}, {cal['n_calibration']:,} held-out windows by {s['split']}, "
        f"{cal['exceedances']} above; verifiable down to {cal['verifiable_far']:.2g})",
        f"novelty    {_curve_text(curve)} new n-grams per 1,000 windows",
        f"saved      {path}",
    ]


def _curve_text(curve, limit: int = 12) -> str:
    values = [int(v) for v in curve]
    if len(values) > limit:
        return " ".join(map(str, values[: limit // 2])) + " … " + " ".join(
            map(str, values[-limit // 2 :]))
    return " ".join(map(str, values))


# -- sysgram profiles ---------------------------------------------------------------------
def profiles_list(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the trained profiles in the store."""
    from sysgram.models.store import ProfileStore

    profile_store = ProfileStore(store)
    rows = []
    for name in profile_store.names():
        try:
            header = profile_store.header(name)
        except UserError as err:
            rows.append({"name": name, "error": err.message})
            continue
        training = header.get("training") or {}
        rows.append({"name": name, "detector": header["features"]["detector"],
                     "windows": training.get("windows"), "threshold": header.get("threshold"),
                     "created": header.get("created"), "binary": header.get("binary") or {}})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        say(f"no profiles in {profile_store.root}; train one with `sysgram train --proc NAME`.")
        return
    for r in rows:
        if "error" in r:
            print(f"{printable(r['name']):16} unreadable: {printable(r['error'])}")
            continue
        print(f"{printable(r['name']):16} {r['detector']:8} {r['windows'] or 0:>10,} windows  "
              f"threshold {r['threshold']:.4g}  {printable(r['binary'].get('path') or '')}")


def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Show what a profile was trained on, its threshold, novelty curve and binary."""
    from sysgram.models.store import ProfileStore, binary_changed

    header = ProfileStore(store).header(name)
    if as_json:
        print(json.dumps(header, indent=2))
        return
    f, t, cal = header["features"], header.get("training") or {}, header.get("calibration") or {}
    b = header.get("binary") or {}
    lines = [
        f"profile    {printable(header.get('name'))}  (format {header['format_version']}, "
        f"sysgram {header['versions'].get('sysgram')}, scikit-learn "
        f"{header['versions'].get('sklearn')})",
        f"binary     {printable(b.get('path') or 'unknown path')}  sha256 "
        f"{(b.get('sha256') or 'unknown')[:16]}",
        f"features   windows of {f['window']} calls every {f['stride']}, n-grams "
        f"{','.join(map(str, f['orders']))}, syscall table {header['syscall_table']['arch']}",
        f"detector   {f['detector']}  roll-up {f['rollup']}",
        f"trained on {t.get('threads', 0):,} streams, {t.get('syscalls', 0):,} calls, "
        f"{t.get('windows', 0):,} windows ({t.get('fit_windows', 0):,} fit, "
        f"{t.get('calibration_windows', 0):,} held out by {t.get('split')})",
        f"vocabulary {t.get('distinct_syscalls')} syscalls, n-grams per order "
        f"{t.get('distinct_ngrams')}",
        f"threshold  {header['threshold']:.6g} ({cal.get('method')}, target "
        f"{cal.get('target_far')}, {cal.get('exceedances')} of {cal.get('n_calibration')} "
        f"held-out windows above, verifiable down to {cal.get('verifiable_far', 0):.2g})",
        f"novelty    {_curve_text(header.get('novelty_curve') or [], 20)} new n-grams per "
        "1,000 windows",
    ]
    for src in t.get("sources") or []:
        lines.append(f"source     {printable(json.dumps(src))}")
    print("\n".join(lines))
    changed = binary_changed(b)
    if changed:
        warn(changed)


def profiles_rm(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    store: StoreOption = None,
) -> None:
    """Remove a profile from the store."""
    from sysgram.models.store import ProfileStore

    path = ProfileStore(store).remove(name)
    say(f"removed {path}")


# -- sysgram score ------------------------------------------------------------------------
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

    comm = kernel_comm(proc)
    loaded = ProfileStore(store).load(comm)
    for message in loaded.warnings:
        warn(message)
    data = Dataset.open(dataset)
    for message in data.warnings:
        warn(f"{dataset}: {message}")
    result = score_threads(loaded.profile, data.threads)
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
    lines.append("threads    tid      pid      windows  anomalous  score")
    for t in result["threads"]:
        mark = "  ALERT" if t["anomalous"] else ""
        lines.append(f"           {t['tid']:<8} {t['pid']:<8} {t['windows']:>7}  "
                     f"{t['anomalous_windows']:>9}  {t['score']:.6g}{mark}")
    worst = sorted(result["windows"], key=lambda w: -w["score"])[:top]
    if worst:
        lines.append("worst windows")
    for w in worst:
        new = ", ".join(w["explain"]["new_syscalls"]) if w.get("explain") else ""
        lines.append(f"           tid {w['tid']} at call {w['start']}: {w['score']:.6g}"
                     + ("  ALERT" if w["anomalous"] else "") + (f"  new: {new}" if new else ""))
    return lines
