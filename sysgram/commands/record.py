"""`sysgram record`: trace the processes with a given name and write their syscalls to a dataset."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sysgram.commands.common import kernel_comm, parse_duration, stderr_is_tty
from sysgram.errors import UserError
from sysgram.sanitize import printable

# Heavy modules (numpy, bcc, the datasets package) are imported when the command runs,
# not when the CLI starts: `sysgram --help` stays instant and start-to-attached short.

STATUS_INTERVAL_S = 1.0
WRITE_INTERVAL_S = 0.25   # flush to disk this often: a kill -9 loses well under 1 s


def _line(text: str) -> None:
    """A progress line of its own (no `sysgram:` prefix), escaped like every other."""
    print(printable(text), file=sys.stderr, flush=True)


def default_out(comm: str) -> Path:
    return Path(f"recording-{comm}-{time.strftime('%Y%m%d-%H%M%S')}")


class _StopFlag:
    """Set by SIGTERM or Ctrl-C: the loop finishes cleanly instead of dying mid-write."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signum, _frame) -> None:
        self.reason = signal.Signals(signum).name

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


def write_items(writer, items) -> list:
    """Hand drain items to the dataset writer; returns the processes that started."""
    from sysgram.collector import (
        Exec,
        Gap,
        ThreadEvents,
        ThreadExit,
        ThreadStart,
        Touched,
        TouchedGap,
    )
    from sysgram.collector.touched import as_fields as touched_fields
    from sysgram.datasets.format import start_fields

    started = []
    for item in items:
        if isinstance(item, ThreadEvents):
            writer.append(item.tid, item.ids, ts_ns=item.ts_ns)
        elif isinstance(item, ThreadStart):
            writer.start_thread(item.tid, **start_fields(item, start_ns="ts_ns"))
            if item.tid == item.pid:
                started.append(item)
        elif isinstance(item, Gap):
            writer.gap(item.tid, item.lost, ts_ns=item.ts_ns)
        elif isinstance(item, Exec):
            writer.note("exec", tid=item.tid, pid=item.pid, filename=item.filename,
                        comm=item.comm, ts_ns=item.ts_ns)
        elif isinstance(item, ThreadExit):
            writer.end_thread(item.tid, end_ns=item.ts_ns)
        elif isinstance(item, Touched):
            writer.touched(**touched_fields(item))
        elif isinstance(item, TouchedGap):
            writer.touched(item.tid, item.pid, item.ts_ns, kind="lost", lost=item.lost)
    return started


def _status_line(stats, events_per_s: float, elapsed: float) -> str:
    return (f"\rrecording: {events_per_s:,.0f} events/s, {stats.processes} processes, "
            f"{stats.threads} threads, {stats.lost:,} lost, {elapsed:.0f} s   ")


def _summary(stats, seconds: float, out: Path) -> str:
    lost = (f"{stats.lost:,} events lost (ring buffer full: {stats.lost_events:,}, of them "
            f"{stats.lost_unattributed:,} not attributable to a thread; program runs skipped "
            f"by the kernel: {stats.recursion_misses:,}); lifecycle records lost: "
            f"{stats.lost_lifecycle:,}; touched records (files, programs, peers): "
            f"{stats.touched:,}, lost {stats.lost_touched:,}; "
            f"{stats.touched_repeats:,} repeated opens folded")
    dropped = (f"; {stats.dropped_exe} processes with the name but another executable skipped"
               if stats.dropped_exe else "")
    if stats.dropped_cgroup:
        dropped += f"; {stats.dropped_cgroup} processes outside the --cgroup subtree skipped"
    cpus = (f"; {stats.cpus_unvisited} CPUs were off limits to the flusher (cpuset), so events "
            "from them arrived late and their order may be off" if stats.cpus_unvisited else "")
    return (f"recorded {stats.events:,} syscalls from {stats.processes_seen} processes "
            f"({stats.threads_seen} threads) in {seconds:.1f} s into {out}; {lost}{dropped}"
            f"{cpus}.")


def record(
    proc: Annotated[list[str], typer.Option(
        "--proc", help="Process name to record (as ps shows it); repeat it to record several "
        "binaries into one dataset (each thread tagged with its binary).")],
    exe: Annotated[Path | None, typer.Option(
        "--exe", help="Only processes running this executable.")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Stop after this long (30s, 10m).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="New or empty directory for the dataset.")] = None,
    cgroup: Annotated[str | None, typer.Option(
        "--cgroup", help="Only processes in this cgroup subtree (e.g. /system.slice).")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="dataset (sysgram's log) or parquet (rows in a hive layout under "
        "--out; an existing Parquet root takes more recordings).")] = "dataset",
) -> None:
    """Record the syscalls of every thread of the processes named PROC into a dataset."""
    comms = list(dict.fromkeys(kernel_comm(p) for p in proc))
    if fmt not in ("dataset", "parquet"):
        raise UserError(f"unknown --format '{fmt}'; use --format dataset or parquet.")
    seconds = parse_duration(duration)
    if exe is not None and len(comms) > 1:
        raise UserError("--exe names one binary's executable; give it with a single --proc.")
    exe_path = _checked_exe(exe)
    from sysgram.bpf.privileges import PRIVILEGE_FIX, can_trace

    if not can_trace():
        raise UserError(f"recording needs BPF tracing privileges; {PRIVILEGE_FIX}.")
    out = out or default_out("+".join(comms))
    run_recording(comms, exe_path, seconds, out, cgroup, fmt)


def _checked_exe(exe: Path | None) -> str | None:
    if exe is None:
        return None
    if not exe.is_file():
        raise UserError(f"--exe {exe} is not a file; give the path of the program's executable.")
    return str(exe.resolve())


def run_recording(comms: list[str], exe: str | None, seconds: float | None, out: Path,
                  cgroup: str | None = None, fmt: str = "dataset") -> None:
    from sysgram.collector import Collector, TargetSpec
    from sysgram.collector.procinfo import pids_by_comm
    from sysgram.datasets import DatasetWriter
    from sysgram.syscalls import host_arch

    writer_class = DatasetWriter
    if fmt == "parquet":   # same interface, rows of thread pieces (sysgram.datasets.parquet)
        from sysgram.datasets.parquet import ParquetRecordingWriter
        writer_class = ParquetRecordingWriter

    # One binary keeps the one-target form readers know; several are listed.
    target = ({"comm": comms[0], "exe": exe} if len(comms) == 1
              else {"comms": comms, "exe": None})
    if cgroup is not None:
        target["cgroup"] = cgroup
    names = "', '".join(comms)
    meta = {"clock": "CLOCK_MONOTONIC (ns)", "monotonic_at_start_ns": time.monotonic_ns(),
            "wall_at_start": time.time(), "recorder_pid": os.getpid()}
    writer = writer_class(out, arch=host_arch(), source="record", target=target, meta=meta)
    stop = _StopFlag()
    stop.install()
    collector = Collector([TargetSpec(comm, exe=exe) for comm in comms], cgroup=cgroup)
    started_at = time.monotonic()
    try:
        collector.start()
        started_at = time.monotonic()     # the duration counts from when tracing is live
        _line(f"attached: recording processes named '{names}'"
             + (f" running {exe}" if exe else "")
             + (f" in cgroup {cgroup}" if cgroup else "") + f" into {out}")
        waiting = not any(pids_by_comm(set(comms)).values())
        if waiting:
            _line(f"no process is named '{names}' yet; waiting for one to start "
                 "(Ctrl-C to stop).")
        _record_loop(collector, writer, stop, started_at, seconds, announce_first=waiting)
        collector.stop()                  # one last flush round, then what it held
        write_items(writer, collector.poll(0).items)
        stats = collector.stats()
        writer.close(stats=stats.as_dict())
    except BaseException:
        collector.close()
        _close_writer(writer, collector)
        raise
    collector.close()
    if stderr_is_tty():
        _line("")
    if stop.reason:
        _line(f"stopped by {stop.reason}.")
    _line(_summary(stats, time.monotonic() - started_at, out))


def _close_writer(writer, collector) -> None:
    """Close after a failure: the dataset stays readable and says what went wrong."""
    with contextlib.suppress(Exception):  # the first error is the one the user must see
        writer.close(stats=collector.stats().as_dict())


def _record_loop(collector, writer, stop: _StopFlag, started_at: float,
                 seconds: float | None, announce_first: bool) -> None:
    """Drain, write and report until the duration ends or a signal arrives.

    When recording began with no target running, the first one to start is announced
    (the user is waiting for it); later ones show in the status line and the summary.
    """
    tty = stderr_is_tty()
    last_write = last_status = time.monotonic()
    events_at_status = 0
    while stop.reason is None:
        now = time.monotonic()
        if seconds is not None and now - started_at >= seconds:
            break
        started = write_items(writer, collector.poll(0.05).items)
        if announce_first and started:
            proc = started[0]
            if tty:
                sys.stderr.write("\r")  # over the status line
            _line(f"process {proc.pid} ({proc.comm}) started; recording.")
            announce_first = False
        if now - last_write >= WRITE_INTERVAL_S:
            writer.flush()
            last_write = now
        if tty and now - last_status >= STATUS_INTERVAL_S:
            stats = collector.stats()
            rate = (stats.events - events_at_status) / (now - last_status)
            sys.stderr.write(_status_line(stats, rate, now - started_at))
            sys.stderr.flush()
            events_at_status, last_status = stats.events, now


def register(app: typer.Typer) -> None:
    app.command("record")(record)
