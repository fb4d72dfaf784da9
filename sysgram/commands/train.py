"""`sysgram train`: learn a binary's profile, live or from recordings, at the terminal.

The work happens in `sysgram.models.training` (the training service) and
`sysgram.datasets`; this module parses options, shows progress and prints results.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sysgram.commands import fleet
from sysgram.commands.common import (
    StoreOption,
    curve_text,
    kernel_comm,
    loud,
    parse_duration,
    say,
    stderr_is_tty,
    warn,
)
from sysgram.errors import UserError

DEFAULT_DURATION = "10m"
DEFAULT_TARGET_FAR = 1e-4


def register(app: typer.Typer) -> None:
    app.command("train")(train)


# -- sysgram train -----------------------------------------------------------------------
def train(
    proc: Annotated[list[str] | None, typer.Option(
        "--proc", help="Process name (as `ps -o comm` shows it); repeat it to train several "
        "binaries at once (one collector; one profile each); optional with Parquet.")] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--from", help="Train from these recordings instead of live (repeatable): "
                     "datasets, or Parquet roots and fsspec URLs (one pooled profile per "
                     "binary)."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Live: how long to record (the most, with --until-stable; "
                     f"default {DEFAULT_DURATION}).")
    ] = None,
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
        float | None,
        typer.Option(help="Target false alarms per window (default 1 in 10,000; with "
                     "--append, the profile's).")
    ] = None,
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
    from sysgram.models.store import ProfileStore
    from sysgram.models.touched import FirstSeen, host_networks

    _check_options(window, stride, target_far, stable_rate)
    if sources and (duration is not None or until_stable):
        raise UserError("--duration and --until-stable say how long to record live; drop them "
                        "when training from recordings with --from.")
    if append and not sources:
        raise UserError("--append extends a profile with recordings; give them with --from.")
    parquet = bool(sources) and all(is_parquet_source(s) for s in sources)
    _check_parquet_options(parquet, append, cluster, workers, worker_memory)
    if parquet:
        if proc and len(proc) > 1:
            raise UserError("Parquet recordings train one binary with --proc, or every binary "
                            "they hold without it.")
        return fleet.train_fleet_command(
            sources, proc and kernel_comm(proc[0]), cluster=cluster, workers=workers,
            worker_memory=worker_memory, store=store,
            params={"detector": model, "window": window, "stride": stride,
                    "target_far": target_far or DEFAULT_TARGET_FAR})
    if not proc:
        raise UserError("give the process name with --proc (only Parquet recordings train "
                        "every binary they hold).")
    comms = list(dict.fromkeys(kernel_comm(p) for p in proc))
    profile_store = ProfileStore(store)
    for comm in comms:
        profile_store.path(comm)  # a bad name fails before any recording
    if append and len(comms) > 1:
        raise UserError("--append extends one profile; give a single --proc with it.")
    previous = _previous(profile_store, comms[0], append)
    touched = {comm: FirstSeen(host_networks()) for comm in comms}  # learned beside
    if sources:
        datasets = _open_datasets([Path(s) for s in sources])
        learned = {comm: _threads_from_datasets(datasets, comm, touched[comm]) for comm in comms}
    else:
        learned = _threads_live(
            comms, parse_duration(duration or DEFAULT_DURATION), until_stable, stable_rate,
            parse_duration(stable_for), (window, stride), touched,
        )
    for comm, (threads, arch, described) in learned.items():
        _train_one(profile_store, comm, threads, arch, described, previous,
                   model, window, stride, target_far, touched[comm])


def _train_one(profile_store, comm: str, threads: list, arch: str | None, described: list,
               previous, model, window, stride, target_far, touched=None) -> None:
    """Fit one binary's profile on its threads and save it."""
    from sysgram.models.profile import Profile
    from sysgram.syscalls import host_arch

    if previous is not None:
        if model or window or stride:
            raise UserError("--append keeps the profile's detector and windows; drop --model, "
                            "--window and --stride, or retrain without --append to change them.")
        params = previous.profile.get_params()
        if target_far is not None:  # a calibration choice: recalibrating honours it
            params["target_far"] = target_far
    else:
        params = {"detector": model, "window": window, "stride": stride,
                  "target_far": target_far or DEFAULT_TARGET_FAR, "arch": arch or host_arch()}
    _fit_and_save(profile_store, comm, Profile(**params), threads, described, previous, touched)


def _check_parquet_options(parquet: bool, append: bool, cluster: str | None,
                           workers: int | None, worker_memory: str | None) -> None:
    """Options that only one kind of source uses are refused with the other, not ignored."""
    if parquet and append:
        raise UserError("--append extends a profile with sysgram recordings; Parquet "
                        "training fits new profiles: drop --append.")
    given = [name for name, value in (("--cluster", cluster), ("--workers", workers),
                                      ("--worker-memory", worker_memory)) if value is not None]
    if given and not parquet:
        raise UserError(f"{', '.join(given)} choose where Parquet recordings are trained; "
                        "drop them, or give Parquet recordings with --from.")


def _check_options(window: int | None, stride: int | None, target_far: float | None,
                   stable_rate: float) -> None:
    if window is not None and not 2 <= window <= 1 << 20:
        raise UserError(f"--window {window} is out of range; give 2 to 1048576 calls.")
    if stride is not None and stride < 1:
        raise UserError(f"--stride {stride} is out of range; give at least 1 call.")
    if target_far is not None and not 0 < target_far < 0.5:
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


def _open_datasets(paths: list[Path]) -> list:
    """Each recording opened once (however many binaries train from it), warnings shown."""
    from sysgram.datasets import Dataset

    opened = []
    for path in paths:
        dataset = Dataset.open(path)
        for message in dataset.warnings:
            warn(f"{path}: {message}")
        opened.append(dataset)
    return opened


def _threads_from_datasets(datasets: list, comm: str,
                           touched=None) -> tuple[list, str, list[dict]]:
    """The normal threads of `comm` in the recordings (one holding several binaries tags
    each thread with its `target`; untagged threads are taken as they are), and what their
    processes touched into `touched` (a FirstSeen)."""
    from sysgram.models.touched import process_roles, with_roles

    threads, described, arch = [], [], None
    for dataset in datasets:
        arch = arch or dataset.arch
        mine = [t for t in dataset.threads if t.target in (None, comm)]
        normal = [t for t in mine if t.label != "attack"]
        skipped = len(mine) - len(normal)
        if skipped:
            say(f"{dataset.path}: left out {skipped:,} threads labelled as attacks.")
        threads.extend(normal)
        if touched is not None:      # only this binary's normal processes' records
            if "touched" in (dataset.meta.get("collector") or {}):
                touched.mark_captured()  # recorded with touched capture, even if none came
            pids = {t.pid for t in normal}
            roles = process_roles(normal)
            touched.add(with_roles((r for r in dataset.touched if r.get("pid") in pids), roles))
        described.append({"kind": "dataset", "path": str(Path(dataset.path).resolve()),
                          "threads": len(normal), "syscalls": int(sum(len(t) for t in normal)),
                          "attack_threads_left_out": skipped})
    return threads, arch, described


def _threads_live(
    comms: list[str], duration: float, until_stable: bool, stable_rate: float,
    stable_for: float, shape: tuple[int | None, int | None] = (None, None),
    touched: dict | None = None,
) -> dict[str, tuple[list, str, list[dict]]]:
    """Record every binary with one collector; each one's threads, arch and description."""
    from sysgram.collector import Collector, TargetSpec
    from sysgram.models import defaults
    from sysgram.models.training_data import LiveLearning
    from sysgram.syscalls import host_arch

    learnings = {comm: LiveLearning(
        host_arch(), shape[0] or defaults.DEFAULT_WINDOW, shape[1] or defaults.DEFAULT_STRIDE,
        tuple(defaults.DEFAULT_ORDERS), stable_rate=stable_rate, stable_for=stable_for,
    ) for comm in comms}
    names = "', '".join(comms)
    for first_seen in (touched or {}).values():
        first_seen.mark_captured()  # the collector always captures what processes touch
    with Collector([TargetSpec(comm) for comm in comms]) as collector:
        started = time.monotonic()  # after attaching: compiling must not eat the duration
        say(f"recording '{names}' for up to {duration:g}s"
            + (" (until novelty settles)" if until_stable else "") + "; Ctrl-C stops early.")
        stable = _record(collector, learnings, started, duration, until_stable, touched)
        stats = collector.stats()
    seconds = time.monotonic() - started
    out = {}
    for comm, learning in learnings.items():
        _report_recording(learning, stats, until_stable, stable, duration)
        described = [{"kind": "live", "comm": comm, "seconds": round(seconds, 1),
                      "syscalls": learning.recording.events, "lost": int(stats.lost),
                      "threads": len(learning.recording.traces()),
                      "stable": stable if until_stable else None}]
        if not learning.recording.events:
            raise UserError(f"no process named '{comm}' made a system call while recording; "
                            "start it (check the name with `ps -o comm`) and train again.")
        out[comm] = (learning.recording.traces(), learning.recording.arch, described)
    return out


def _record(collector, learnings: dict, started: float, duration: float,
            until_stable: bool, touched: dict | None = None) -> bool:
    """Poll until the duration ends, novelty settles for every binary (--until-stable) or
    memory is full; each binary's items go to its own learning (and what it touched to
    its own FirstSeen)."""
    from sysgram.collector import ThreadStart
    from sysgram.collector.touched import touched_records
    from sysgram.models.touched import process_roles, with_roles
    from sysgram.watch.host import ItemRouting

    routing = ItemRouting()
    roles: dict[int, str] = {}          # pid -> role, from the thread starts
    last_line = started
    try:
        while (now := time.monotonic()) - started < duration:
            unattributed = collector.stats().unattributed  # before the poll: cut first
            parts, _ = routing.split(collector.poll(0.2).items, learnings)
            for comm, learning in learnings.items():
                learning.add(parts.get(comm, []), now, unattributed)
                if touched is not None:
                    items = parts.get(comm, [])
                    roles.update(process_roles(i for i in items if isinstance(i, ThreadStart)))
                    touched[comm].add(with_roles(touched_records(items), roles))
            if stderr_is_tty():
                _progress(now - started, duration, learnings)
            elif now - last_line >= 30:  # logs get a line every 30 s instead of a bar
                last_line = now
                say(_status(now - started, learnings))
            if until_stable and all(lr.stable(now) for lr in learnings.values()):
                return True
            if any(lr.full for lr in learnings.values()):
                loud("stopped recording to bound memory; training on what was recorded.")
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


def _status(elapsed: float, learnings: dict) -> str:
    parts = []
    for comm, learning in learnings.items():
        rate = learning.rate()
        name = f"{comm}: " if len(learnings) > 1 else ""
        parts.append(f"{name}{learning.recording.events:,} calls  "
                     f"{len(learning.recording.threads):,} threads  "
                     f"{learning.novelty.windows:,} windows  "
                     f"novelty {'—' if rate is None else f'{rate:.1f}'}/1k windows")
    return f"{elapsed:5.0f}s  " + "; ".join(parts)


def _progress(elapsed: float, duration: float, learnings: dict) -> None:
    width = 24
    done = int(width * min(elapsed / duration, 1.0))
    bar = f"[{'#' * done}{'.' * (width - done)}]"
    sys.stderr.write(f"\r\x1b[2K{bar} {_status(elapsed, learnings)}")
    sys.stderr.flush()


def _fit_and_save(profile_store, comm: str, profile, threads: list, described: list[dict],
                  previous, touched=None) -> None:
    from sysgram.models.training import train_profile

    say(f"fitting on {len(threads):,} threads...")
    trained = train_profile(comm, threads, profile, sources=described, previous=previous,
                            touched=touched)
    for message in trained.notes:
        say(message)
    for message in trained.warnings:
        warn(message)
    path = profile_store.save(trained)
    print("\n".join(_fit_summary(trained.profile, trained.fit_seconds, path)
                    + _touched_summary(trained.meta().get("touched"))))


def _fit_summary(profile, took: float, path: Path) -> list[str]:
    s, cal = profile.training_summary_, profile.calibration_
    curve = profile.novelty_curve_
    return [
        f"trained    {profile.detector_name_} on {s['fit_windows']:,} windows of "
        f"{profile.window_} calls (every {profile.stride_}) in {took:.1f}s",
        f"threshold  {cal['threshold']:.6g} for {cal['target_far']:g} false alarms per window "
        f"({cal['method']}, {cal['n_calibration']:,} held-out windows by {s['split']}, "
        f"{cal['exceedances']} above; verifiable down to {cal['verifiable_far']:.2g})",
        f"novelty    {curve_text(curve)} new n-grams per 1,000 windows",
        f"saved      {path}",
    ]


def _touched_summary(meta: dict | None) -> list[str]:
    if not meta:
        return ["touched    nothing recorded (no files, programs or peers in the training)"]
    sizes = ", ".join(f"{name} {len(keys):,}" for name, keys in meta["sets"].items())
    lines = [f"touched    {meta['records']:,} records; learned {sizes}",
             f"           {curve_text(meta['novelty_per_minute'])} new items per minute"]
    lines += [f"           {name:<9} {curve_text(curve)}"
              for name, curve in (meta.get("novelty_per_minute_by_set") or {}).items()
              if any(curve)]
    if meta.get("kept_exact"):
        lines.append(f"           {meta['kept_exact']:,} file names kept exact in crowded "
                     "protected directories (/etc, /root, ...: never learned as dir/*)")
    return lines
