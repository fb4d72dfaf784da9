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
from typing import Annotated, TextIO

import typer

from sysgram.commands.common import StoreOption, kernel_comm, parse_duration, say, warn
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
    """Refit on the training streams plus the streams learned live; save."""
    from sysgram.models.store import ProfileStore
    from sysgram.models.training import retrain_with_streams

    if learner.overflow:
        warn(f"--learn: the learning buffer was full; {learner.overflow:,} learnable windows "
             f"were not kept (kept {learner.kept_windows:,}).")
    streams = learner.streams()
    if len(streams) == 0:
        say("--learn: no window was learnable (at or below the threshold, nothing unseen); "
            "the profile is unchanged.")
        return
    say(f"--learn: refitting on {learner.kept_windows:,} new windows in {len(streams):,} "
        "thread streams...")
    source = {"kind": "watch --learn", "windows": learner.kept_windows, "streams": len(streams)}
    trained = retrain_with_streams(name, loaded, streams, source)
    for message in trained.warnings:
        warn(message)
    path = ProfileStore(store).save(trained)
    say(f"saved the updated profile to {path}")


def _thread_verdicts(thread_profile):
    """Whole-thread verdicts when the profile has a thread profile with a threshold."""
    from sysgram.watch.verdicts import ThreadVerdicts

    verdicts = ThreadVerdicts.of(thread_profile)
    if verdicts is not None:
        say(f"judging each thread's whole stream as it ends too "
            f"({thread_profile.detector_name_}, threshold {verdicts.threshold:.4g})")
    return verdicts


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
    proc: Annotated[str, typer.Option("--proc", help="Process name to watch (as `ps -o comm` "
                                      "shows it).")],
    store: StoreOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Write alerts as JSON lines on "
                                           "stdout.")] = False,
    alerts_file: Annotated[str | None, typer.Option(
        "--alerts", help="Also append alerts as JSON lines to this file.")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Alert above this window score (default: the profile's).")] = None,
    warmup: Annotated[str, typer.Option(
        "--warmup", help="Quiet period after each process start or restart (0 to disable).")
    ] = "2s",
    aggregate: Annotated[str, typer.Option(
        "--aggregate", help="Fold further alerts of a process within this period.")] = "5s",
    exit_on_alert: Annotated[bool, typer.Option(
        "--exit-on-alert", help="Stop at the first alert (exit code 1).")] = False,
    max_alerts: Annotated[int | None, typer.Option(
        "--max-alerts", min=1, help="Stop after N alerts (exit code 1).")] = None,
    learn: Annotated[bool, typer.Option(
        "--learn", help="Keep learning from windows the policy lets learn; save on exit.")
    ] = False,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Stop after this long (e.g. 10m).")] = None,
) -> None:
    """Watch live processes of a binary and alert when a window of syscalls is anomalous.

    Exit codes: 0 stopped by Ctrl-C, SIGTERM or --duration; 1 stopped by --exit-on-alert
    or --max-alerts; 2 a user error. JSON schema: docs/alerts.md.
    """
    from sysgram.syscalls import host_arch, table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine
    from sysgram.watch.learning import StreamLearner
    from sysgram.watch.render import summary_text
    from sysgram.watch.session import StopRules, WatchSession

    comm = kernel_comm(proc)
    warmup_s = _warmup_seconds(warmup)
    aggregate_s = parse_duration(aggregate)
    duration_s = parse_duration(duration)
    loaded = _load_profile(store, comm)
    for message in loaded.warnings:
        warn(message)
    profile = loaded.profile
    learner = StreamLearner(profile.window_, profile.stride_) if learn else None
    scorer = ThresholdScorer(profile, threshold=threshold, learner=learner)
    verdicts = _thread_verdicts(loaded.thread_profile)
    config = WatchConfig(binary=comm, warmup_s=warmup_s, aggregate_s=aggregate_s,
                         binary_path=loaded.binary_path, arch=host_arch())
    engine = WatchEngine(scorer, config, table(profile.arch_), verdicts=verdicts)
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
