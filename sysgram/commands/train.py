"""`sysgram train`, `sysgram profiles list|show|rm` and `sysgram score`: profiles at the terminal.

The work happens in sysgram.models (Profile, ProfileStore) and sysgram.datasets; this
module parses options, shows progress and prints results.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sysgram.commands import fleet
from sysgram.commands.common import kernel_comm, parse_duration, stderr_is_tty, warn
from sysgram.errors import UserError
from sysgram.sanitize import printable

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
    group.command("export")(fleet.profiles_export)
    group.command("import")(fleet.profiles_import)
    app.add_typer(group, name="profiles")


# -- terminal helpers --------------------------------------------------------------------
def say(message: str) -> None:
    print(f"sysgram: {printable(message)}", file=sys.stderr, flush=True)



def loud(message: str) -> None:
    text = f"sysgram: WARNING: {printable(message)}"
    if stderr_is_tty():
        text = f"\x1b[1;31m{text}\x1b[0m"
    print(text, file=sys.stderr, flush=True)


# -- sysgram train -----------------------------------------------------------------------
def train(
    proc: Annotated[str | None, typer.Option(
        "--proc", help="Process name (as `ps -o comm` shows it); optional with Parquet.")] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--from", help="Train from these recordings instead of live (repeatable): "
                     "datasets, or Parquet roots and fsspec URLs (one pooled profile per "
                     "binary)."),
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
    cluster: Annotated[str | None, typer.Option(
        help="Parquet: the Dask scheduler to train on (default: a LocalCluster for large "
        "data).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Parquet: LocalCluster workers (0: in this process).")] = None,
    worker_memory: Annotated[str | None, typer.Option(
        help="Parquet: memory limit of each LocalCluster worker, e.g. 2GiB.")] = None,
) -> None:
    """Learn a binary's profile, live or from recordings, and save it in the store."""
    from sysgram.fleet.partitions import is_parquet_source
    from sysgram.models.profile import Profile
    from sysgram.models.store import ProfileStore
    from sysgram.syscalls import host_arch

    if sources and all(is_parquet_source(s) for s in sources):
        _check_options(window, stride, target_far, stable_rate)
        return fleet.train_fleet_command(
            sources, proc and kernel_comm(proc), cluster=cluster, workers=workers,
            worker_memory=worker_memory, store=store,
            params={"detector": model, "window": window, "stride": stride,
                    "target_far": target_far})
    if proc is None:
        raise UserError("give the process name with --proc (only Parquet recordings train "
                        "every binary they hold).")
    comm = kernel_comm(proc)
    _check_options(window, stride, target_far, stable_rate)
    profile_store = ProfileStore(store)
    profile_store.path(comm)  # a bad name fails before any recording
    previous = _previous(profile_store, comm, append)
    if sources:
        threads, arch, described = _threads_from_datasets([Path(s) for s in sources])
    else:
        if append:
            raise UserError("--append extends a profile with recordings; give them with --from.")
        threads, arch, described = _threads_live(
            comm, parse_duration(duration), until_stable, stable_rate, parse_duration(stable_for),
            (window, stride),
        )
    if previous is not None:
        if model or window or stride:
            warn("--append keeps the profile's detector and windows; --model, --window and "
                 "--stride are ignored (retrain without --append to change them).")
        arch = previous.profile.arch_
        params = previous.profile.get_params()
    else:
        params = {"detector": model, "window": window, "stride": stride, "target_far": target_far,
                  "arch": arch or host_arch()}
    _fit_and_save(profile_store, comm, Profile(**params), threads, described, previous)


def _check_options(window: int | None, stride: int | None, target_far: float,
                   stable_rate: float) -> None:
    if window is not None and not 2 <= window <= 1 << 20:
        raise UserError(f"--window {window} is out of range; give 2 to 1048576 calls.")
    if stride is not None and stride < 1:
        raise UserError(f"--stride {stride} is out of range; give at least 1 call.")
    if not 0 < target_far < 0.5:
        raise UserError(f"--target-far {target_far:g} is out of range; give a rate between 0 "
                        "and 0.5, e.g. 1e-4 for one false alarm per 10,000 windows.")
    if stable_rate < 0:
        raise UserError("--stable-rate cannot be negative; give new n-grams per 1,000 windows.")


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
    comm: str, duration: float, until_stable: bool, stable_rate: float, stable_for: float,
    shape: tuple[int | None, int | None] = (None, None),
) -> tuple[list, str, list[dict]]:
    from sysgram.collector import Collector, TargetSpec
    from sysgram.models import defaults
    from sysgram.models.training_data import LiveLearning
    from sysgram.syscalls import host_arch

    learning = LiveLearning(
        host_arch(), shape[0] or defaults.DEFAULT_WINDOW, shape[1] or defaults.DEFAULT_STRIDE,
        tuple(defaults.DEFAULT_ORDERS), stable_rate=stable_rate, stable_for=stable_for,
    )
    with Collector(TargetSpec(comm)) as collector:
        started = time.monotonic()  # after attaching: compiling must not eat the duration
        say(f"recording '{comm}' for up to {duration:g}s"
            + (" (until novelty settles)" if until_stable else "") + "; Ctrl-C stops early.")
        stable = _record(collector, learning, started, duration, until_stable)
        stats = collector.stats()
    seconds = time.monotonic() - started
    _report_recording(learning, stats, until_stable, stable, duration)
    described = [{"kind": "live", "comm": comm, "seconds": round(seconds, 1),
                  "syscalls": learning.recording.events, "lost": int(stats.lost),
                  "threads": len(learning.recording.traces()),
                  "stable": stable if until_stable else None}]
    if not learning.recording.events:
        raise UserError(f"no process named '{comm}' made a system call while recording; start "
                        "it (check the name with `ps -o comm`) and train again.")
    return learning.recording.traces(), learning.recording.arch, described


def _record(collector, learning, started: float, duration: float, until_stable: bool) -> bool:
    """Poll until the duration ends, novelty settles (--until-stable) or memory is full."""
    last_line = started
    try:
        while (now := time.monotonic()) - started < duration:
            learning.add(collector.poll(0.2).items, now)
            if stderr_is_tty():
                _progress(now - started, duration, learning)
            elif now - last_line >= 30:  # logs get a line every 30 s instead of a bar
                last_line = now
                say(_status(now - started, learning))
            if until_stable and learning.stable(now):
                return True
            if learning.full:
                loud(f"stopped recording at {learning.recording.events:,} calls to bound "
                     "memory; training on those.")
                return False
    except KeyboardInterrupt:
        say("stopped early by Ctrl-C; training on what was recorded.")
    return False


def _report_recording(learning, stats, until_stable: bool, stable: bool,
                      duration: float) -> None:
    if stderr_is_tty():
        print(file=sys.stderr)
    rate = f"{learning.stable_rate:g} new n-grams per 1,000 windows"
    if until_stable and stable:
        say(f"novelty settled below {rate} for {learning.stable_for:g}s; stopped recording.")
    elif until_stable:
        loud(f"novelty never settled below {rate} within {duration:g}s: the profile may miss "
             "normal behaviour and raise false alarms; record longer (--duration) while the "
             "program does its usual work.")
    if stats.lost:
        warn(f"{stats.lost:,} events were lost while recording; windows never span a loss.")


def _status(elapsed: float, learning) -> str:
    rate = learning.rate()
    return (f"{elapsed:5.0f}s  {learning.recording.events:,} calls  "
            f"{len(learning.recording.threads):,} threads  {learning.novelty.windows:,} windows  "
            f"novelty {'—' if rate is None else f'{rate:.1f}'}/1k windows")


def _progress(elapsed: float, duration: float, learning) -> None:
    width = 24
    done = int(width * min(elapsed / duration, 1.0))
    bar = f"[{'#' * done}{'.' * (width - done)}]"
    sys.stderr.write(f"\r\x1b[2K{bar} {_status(elapsed, learning)}")
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
    if streams.unencodable:
        warn(f"{streams.unencodable:,} calls have numbers beyond the {profile.arch} table and "
             "count as one 'unknown' syscall.")
    say(f"fitting on {len(pieces):,} streams, {int(pieces.offsets[-1]):,} calls...")
    started = time.perf_counter()
    profile.fit(pieces)
    took = time.perf_counter() - started
    thread_profile = _fit_thread_profile(pieces, profile.arch_)
    binary = binary_identity(threads, comm)
    if previous is not None and not binary.get("sha256"):
        binary = previous.header.get("binary") or binary
    meta = profile_meta(profile, binary=binary, sources=described, thread_profile=thread_profile)
    path = profile_store.save(comm, profile, meta, pieces, thread_profile)
    print("\n".join(_fit_summary(profile, took, path)))


def _fit_thread_profile(pieces, arch: str):
    """The whole-thread profile beside the window one, when there are threads enough.

    It is the detector `sysgram eval` measures (defaults.thread_profile_params): each
    thread stream is scored whole, which the research found far ahead of any roll-up of
    window scores. It calibrates on held-out threads, so it needs a few hundred of them
    (short-lived processes and worker threads bring them).
    """
    from sysgram.models.defaults import thread_profile_params
    from sysgram.models.profile import Profile

    thread_profile = Profile(**thread_profile_params(), arch=arch)
    need = thread_profile.min_windows()
    if len(pieces) < need:
        say(f"thread profile: not fitted, {len(pieces):,} thread streams where it needs "
            f"{need:,}; record longer, or more processes, to get one.")
        return None
    started = time.perf_counter()
    thread_profile.fit(pieces)
    say(f"thread profile: {thread_profile.detector_name_} on {len(pieces):,} whole thread "
        f"streams in {time.perf_counter() - started:.1f}s")
    return thread_profile


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
            rows.append(_list_row(name, profile_store.header(name)))
        except UserError as err:
            rows.append({"name": name, "error": err.message})
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
        print(f"{printable(r['name']):16} {printable(r['detector']):8} {r['windows']:>10,} "
              f"windows  threshold {r['threshold']:.4g}  {printable(r['binary'])}")


def _damaged(name: str) -> UserError:
    return UserError(f"the profile '{name}' has a damaged header; retrain it with "
                     f"`sysgram train --proc {name}` or remove it with `sysgram profiles rm`.")


def _list_row(name: str, header: dict) -> dict:
    """One `profiles list` row; the header is data from disk, so every field is checked."""
    try:
        training = header.get("training") or {}
        windows, threshold = training.get("windows") or 0, header.get("threshold")
        binary = header.get("binary") or {}
        row = {"name": name, "detector": str(header["features"]["detector"]),
               "windows": int(windows), "threshold": float(threshold),
               "created": header.get("created"),
               "binary": str(binary.get("path") or "") if isinstance(binary, dict) else ""}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _damaged(name) from None
    return row


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
    try:
        lines = _show_lines(header)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise _damaged(name) from None
    print("\n".join(lines))
    changed = binary_changed(header.get("binary") or {})
    if changed:
        warn(changed)


def _show_lines(header: dict) -> list[str]:
    f, t, cal = header["features"], header.get("training") or {}, header.get("calibration") or {}
    b = header.get("binary") or {}
    lines = [
        f"profile    {printable(header.get('name'))}  (format {header['format_version']}, "
        f"sysgram {printable(header['versions'].get('sysgram'))}, scikit-learn "
        f"{printable(header['versions'].get('sklearn'))})",
        f"binary     {printable(b.get('path') or 'unknown path')}  sha256 "
        f"{(b.get('sha256') or 'unknown')[:16]}",
        f"features   windows of {f['window']} calls every {f['stride']}, n-grams "
        f"{printable(','.join(map(str, f['orders'])))}, syscall table "
        f"{printable(header['syscall_table']['arch'])}",
        f"detector   {printable(f['detector'])}  roll-up {printable(f['rollup'])}",
        f"trained on {t.get('threads', 0):,} streams, {t.get('syscalls', 0):,} calls, "
        f"{t.get('windows', 0):,} windows ({t.get('fit_windows', 0):,} fit, "
        f"{t.get('calibration_windows', 0):,} held out by {printable(t.get('split'))})",
        f"vocabulary {printable(t.get('distinct_syscalls'))} syscalls, n-grams per order "
        f"{printable(t.get('distinct_ngrams'))}",
        f"threshold  {header['threshold']:.6g} ({printable(cal.get('method'))}, target "
        f"{cal.get('target_far')}, {cal.get('exceedances')} of {cal.get('n_calibration')} "
        f"held-out windows above, verifiable down to {cal.get('verifiable_far', 0):.2g})",
        f"novelty    {_curve_text(header.get('novelty_curve') or [], 20)} new n-grams per "
        "1,000 windows",
        _thread_profile_line(header.get("thread_profile")),
    ]
    for src in t.get("sources") or []:
        lines.append(f"source     {printable(json.dumps(src))}")
    return lines


def _thread_profile_line(tp: dict | None) -> str:
    if not tp:
        return "threads    no thread profile (training had too few thread streams)"
    threshold = "none" if tp.get("threshold") is None else f"{tp['threshold']:.6g}"
    return (f"threads    {printable(tp.get('detector'))} on {tp.get('threads', 0):,} whole "
            f"streams ({tp.get('calibration_threads', 0):,} held out), threshold {threshold}")


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
    result = score_threads(loaded.profile, data.threads, loaded.thread_profile)
    if result["summary"]["unencodable_calls"]:
        warn(f"{result['summary']['unencodable_calls']:,} calls have numbers beyond the "
             f"{loaded.profile.arch_} table and count as one 'unknown' syscall.")
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
