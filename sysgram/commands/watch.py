"""`sysgram watch --proc NAME`: score a binary's processes live and explain each alert.

Exit codes (docs/alerts.md): 0 stopped by Ctrl-C / SIGTERM / --duration; 1 stopped by
--exit-on-alert or --max-alerts; 2 a user error (no or bad profile, bad option, cannot
attach). Alerts go to stdout (text, or JSON lines with --json) and to --alerts FILE as
JSON lines; the status line, `attached` and the summary go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import typer

from sysgram.commands.common import kernel_comm, parse_duration, warn
from sysgram.errors import UserError

EXIT_STOPPED, EXIT_ALERTED = 0, 1


class TextSink:
    """Human-readable alerts on a stream (stdout), sanitised, coloured on a TTY."""

    def __init__(self, stream: TextIO, status_line: StatusLine | None) -> None:
        self.stream = stream
        self.colour = stream.isatty()
        self.status_line = status_line

    def _write(self, text: str) -> None:
        if self.status_line is not None:
            self.status_line.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def alert(self, alert) -> None:
        from sysgram.watch.render import alert_text

        self._write(alert_text(alert, self.colour))

    def repeat(self, repeat) -> None:
        from sysgram.watch.render import repeat_text

        self._write(repeat_text(repeat))


class JsonSink:
    """One JSON object per line (schema sysgram.alert/1, docs/alerts.md)."""

    def __init__(self, stream: TextIO, status_line: StatusLine | None = None) -> None:
        self.stream = stream
        self.status_line = status_line

    def _write(self, record: dict) -> None:
        from sysgram.watch.alerts import to_json_line

        if self.status_line is not None:
            self.status_line.clear()
        self.stream.write(to_json_line(record) + "\n")
        self.stream.flush()

    def alert(self, alert) -> None:
        self._write(alert.record())

    def repeat(self, repeat) -> None:
        self._write(repeat.record())


class StatusLine:
    """One self-overwriting line on a TTY (stderr)."""

    def __init__(self, stream: TextIO, binary: str) -> None:
        self.stream = stream
        self.binary = binary
        self.shown = False

    def show(self, status) -> None:
        from sysgram.watch.render import status_text

        self.stream.write("\r\x1b[2K" + status_text(self.binary, status))
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


def _warmup_seconds(text: str) -> float:
    if str(text).strip() in {"0", "0s", "off", "none"}:
        return 0.0
    return parse_duration(text) or 0.0


def _load_profile(store: str | None, name: str):
    from sysgram.models.store import ProfileStore

    return ProfileStore(store).load(name)


def _open_alerts_file(path: Path) -> TextIO:
    try:
        # Owner-only whatever the umask: a SIEM trusts this file, so others must not
        # be able to forge alerts in it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot write alerts to {path} ({exc.strerror}); choose a writable file for --alerts."
        ) from None


def _save_learned(store: str | None, name: str, loaded, learner) -> None:
    """Refit on the training streams plus the windows that scored normal; save."""
    from sysgram.models.store import ProfileStore, profile_meta

    if learner.kept == 0:
        print("sysgram: --learn: no normal windows to learn from; the profile is unchanged.",
              file=sys.stderr)
        return
    if learner.overflow:
        print(f"sysgram: --learn: the learning buffer was full; {learner.overflow:,} normal "
              f"windows were not kept (kept {learner.kept:,}).", file=sys.stderr)
    print(f"sysgram: --learn: refitting on {learner.kept:,} new normal windows...",
          file=sys.stderr, flush=True)
    profile, traces = learner.refit(loaded.traces)
    sources = list((loaded.header.get("training") or {}).get("sources") or [])
    sources.append({"kind": "watch --learn", "windows": learner.kept})
    # The thread profile is kept as it was: --learn refits the window profile only.
    meta = profile_meta(profile, binary=loaded.header.get("binary") or {}, sources=sources,
                        thread_profile=loaded.thread_profile)
    path = ProfileStore(store).save(name, profile, meta, traces, loaded.thread_profile)
    print(f"sysgram: saved the updated profile to {path}", file=sys.stderr)


def _thread_verdicts(thread_profile):
    """Whole-thread verdicts when the profile has a thread profile with a threshold."""
    from sysgram.watch.verdicts import ThreadVerdicts

    if thread_profile is None or thread_profile.thread_threshold_ is None:
        return None
    print(f"sysgram: judging each thread's whole stream as it ends too "
          f"({thread_profile.detector_name_}, threshold {thread_profile.thread_threshold_:.4g})",
          file=sys.stderr)
    return ThreadVerdicts(thread_profile)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event):
    """SIGINT and SIGTERM set `stop` (the loop finishes its drain, prints the summary)."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def watch(
    proc: str = typer.Option(..., "--proc", help="Process name to watch (as `ps -o comm` shows)."),
    store: str = typer.Option(
        None, "--store", help="Profile store directory (default $SYSGRAM_STORE or "
        "/var/lib/sysgram/profiles)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Write alerts as JSON lines on stdout."),
    alerts_file: str = typer.Option(
        None, "--alerts", help="Also append alerts as JSON lines to this file."
    ),
    threshold: float = typer.Option(
        None, "--threshold", help="Alert above this window score (default: the profile's)."
    ),
    warmup: str = typer.Option(
        "2s", "--warmup", help="Quiet period after each process start or exec (0 to disable)."
    ),
    aggregate: str = typer.Option(
        "5s", "--aggregate", help="Fold further alerts of a process within this period."
    ),
    exit_on_alert: bool = typer.Option(
        False, "--exit-on-alert", help="Stop at the first alert (exit code 1)."
    ),
    max_alerts: int = typer.Option(
        None, "--max-alerts", min=1, help="Stop after N alerts (exit code 1)."
    ),
    learn: bool = typer.Option(
        False, "--learn", help="Keep learning from windows that score normal; save on exit."
    ),
    duration: str = typer.Option(None, "--duration", help="Stop after this long (e.g. 10m)."),
) -> None:
    """Watch live processes of a binary and alert when a window of syscalls is anomalous.

    Exit codes: 0 stopped by Ctrl-C, SIGTERM or --duration; 1 stopped by --exit-on-alert
    or --max-alerts; 2 a user error. JSON schema: docs/alerts.md.
    """
    from sysgram.syscalls import table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine
    from sysgram.watch.learning import WindowLearner
    from sysgram.watch.render import summary_text
    from sysgram.watch.session import StopRules, WatchSession
    from sysgram.watch.touched import TouchedWatch

    comm = kernel_comm(proc)
    warmup_s = _warmup_seconds(warmup)
    aggregate_s = parse_duration(aggregate)
    duration_s = parse_duration(duration)
    loaded = _load_profile(store, comm)
    for message in loaded.warnings:
        warn(message)
    profile = loaded.profile
    arch = getattr(profile, "arch_", None)
    learner = WindowLearner(profile) if learn else None
    scorer = ThresholdScorer(profile, threshold=threshold, learner=learner)
    verdicts = _thread_verdicts(loaded.thread_profile)
    engine = WatchEngine(
        scorer,
        WatchConfig(binary=comm, warmup_s=warmup_s, aggregate_s=aggregate_s),
        table(arch),
        verdicts=verdicts,
        touched=TouchedWatch(loaded.touched, comm),
    )
    status_line = StatusLine(sys.stderr, comm) if sys.stderr.isatty() else None
    sink_class = JsonSink if json_out else TextSink
    sinks = [sink_class(sys.stdout, status_line)]
    alerts_stream = _open_alerts_file(Path(alerts_file)) if alerts_file else None
    if alerts_stream is not None:
        sinks.append(JsonSink(alerts_stream))

    from sysgram.collector import Collector, TargetSpec

    stop = threading.Event()
    rules = StopRules(duration_s=duration_s, exit_on_alert=exit_on_alert, max_alerts=max_alerts)
    started = time.monotonic()
    try:
        with _stop_on_signals(stop), Collector(TargetSpec(comm)) as collector:  # starts it
            print("attached", file=sys.stderr, flush=True)
            session = WatchSession(
                collector, engine, sinks, rules,
                on_status=status_line.show if status_line else None,
            )
            reason = session.run(stop)
            lost = session.lost_events()
    finally:
        if alerts_stream is not None:
            alerts_stream.close()
        if status_line is not None:
            status_line.clear()
    print(summary_text(comm, engine.stats, time.monotonic() - started, lost, reason),
          file=sys.stderr)
    if learner is not None:
        _save_learned(store, comm, loaded, learner)
    if reason in {"alert", "max-alerts"}:
        # SystemExit, not typer.Exit: sysgram.cli.main runs the app in non-standalone mode
        # and does not pass a typer.Exit code on, while this code is documented for scripts.
        raise SystemExit(EXIT_ALERTED)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
