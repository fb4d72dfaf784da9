"""`sysgram watch --proc NAME`: score a binary's processes live and explain each alert.

Exit codes (docs/alerts.md): 0 stopped by Ctrl-C / SIGTERM / --duration; 1 stopped by
--exit-on-alert or --max-alerts; 2 a user error (no or bad profile, bad option, cannot
attach). Alerts go to stdout (text, or JSON lines with --json) and to --alerts FILE as
JSON lines; the status line, `attached` and the summary go to stderr.
"""

from __future__ import annotations

import contextlib
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


def _open_alerts_file(path: Path):
    from sysgram.watch.alertfile import AlertFile

    return AlertFile(path)


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


@contextlib.contextmanager
def _reopen_on_hup(alert_file):
    """SIGHUP reopens the alerts file, as logrotate expects (without one: the default)."""
    if alert_file is None:
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda _s, _f: alert_file.reopen())
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def watch(
    proc: Annotated[list[str] | None, typer.Option(
        "--proc", help="Process name to watch (as `ps -o comm` shows it); repeat it to watch "
        "several binaries with one collector.")] = None,
    all_profiles: Annotated[bool, typer.Option(
        "--all", help="Watch every binary with a profile in the store (SIGHUP re-reads the "
        "store and reopens --alerts).")] = False,
    store: StoreOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Write alerts as JSON lines on "
                                           "stdout.")] = False,
    alerts_file: Annotated[str | None, typer.Option(
        "--alerts", help="Also append alerts as JSON lines to this file.")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Alert above this window score (default: the profile's).")] = None,
    warmup: Annotated[str | None, typer.Option(
        "--warmup", help="Quiet period after each process start or restart (0 to disable; "
        "default 2s).")] = None,
    aggregate: Annotated[str | None, typer.Option(
        "--aggregate", help="Fold further alerts of a process within this period (default "
        "5s).")] = None,
    exit_on_alert: Annotated[bool, typer.Option(
        "--exit-on-alert", help="Stop at the first alert (exit code 1).")] = False,
    max_alerts: Annotated[int | None, typer.Option(
        "--max-alerts", min=1, help="Stop after N alerts (exit code 1).")] = None,
    learn: Annotated[bool, typer.Option(
        "--learn", help="Keep learning from windows the policy lets learn; save on exit.")
    ] = False,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="Stop after this long (e.g. 10m).")] = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Serve Prometheus metrics on ADDR:PORT (docs/metrics.md).")] = None,
    syslog: Annotated[str | None, typer.Option(
        "--syslog", help="Also send alerts to syslog (RFC 5424) on this Unix socket ('-' for "
        "/dev/log).")] = None,
    cgroup: Annotated[str | None, typer.Option(
        "--cgroup", help="Only processes in this cgroup v2 subtree (e.g. "
        "/system.slice/nginx.service).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", help="Settings file (default /etc/sysgram/sysgram.toml if it exists; "
        "docs/daemon.md); command-line options win.")] = None,
) -> None:
    """Watch live processes of a binary and alert when a window of syscalls is anomalous.

    Exit codes: 0 stopped by Ctrl-C, SIGTERM or --duration; 1 stopped by --exit-on-alert
    or --max-alerts; 2 a user error. JSON schema: docs/alerts.md.
    """
    from sysgram.watch.hostconfig import load_config
    from sysgram.watch.hostprofiles import EngineSettings, build_engine
    from sysgram.watch.learning import StreamLearner
    from sysgram.watch.render import summary_text
    from sysgram.watch.session import StopRules, WatchSession

    settings = load_config(config)
    given = settings.watch
    store = store or given.get("store")
    json_out = json_out or given.get("json", False)
    alerts_file = alerts_file or given.get("alerts")
    metrics = metrics if metrics is not None else given.get("metrics")
    syslog = syslog if syslog is not None else given.get("syslog")
    cgroup = cgroup or given.get("cgroup")
    procs = [kernel_comm(p) for p in proc or []]
    warmup_s = _warmup_seconds(warmup or given.get("warmup") or "2s")
    aggregate_s = parse_duration(aggregate or given.get("aggregate") or "5s")
    duration_s = parse_duration(duration)
    if all_profiles and procs:
        raise UserError("give either --all or --proc NAME (repeatable), not both.")
    if not all_profiles and not procs:
        raise UserError("name a binary to watch with --proc NAME, or watch every profile "
                        "with --all.")
    host_options = (metrics, syslog, cgroup)
    if all_profiles or len(procs) > 1 or any(o is not None for o in host_options):
        if learn:
            raise UserError("--learn refits one binary's profile; use it with one --proc "
                            "and without --all, --metrics, --syslog or --cgroup.")
        from sysgram.commands.watch_host import HostOptions, run_host

        reason = run_host(HostOptions(
            names=None if all_profiles else procs, store=store, json_out=json_out,
            alerts_file=alerts_file, warmup_s=warmup_s,
            threshold=threshold if threshold is not None else given.get("threshold"),
            thresholds=settings.thresholds, excluded=settings.excluded,
            aggregate_s=aggregate_s, duration_s=duration_s, exit_on_alert=exit_on_alert,
            max_alerts=max_alerts, metrics=metrics, cgroup=cgroup,
            syslog=None if syslog is None else ("" if syslog in ("-", "/dev/log") else syslog)))
        if reason in {"alert", "max-alerts"}:
            raise SystemExit(EXIT_ALERTED)
        return
    comm = procs[0]
    if threshold is None:    # the command line, then the file's binary, then its [watch]
        threshold = settings.thresholds.get(comm, given.get("threshold"))
    loaded = _load_profile(store, comm)
    for message in loaded.warnings:
        warn(message)
    profile = loaded.profile
    learner = StreamLearner(profile.window_, profile.stride_) if learn else None
    engine = build_engine(loaded, comm, EngineSettings(warmup_s, aggregate_s, threshold), learner)
    if engine.verdicts is not None:
        say(f"judging each thread's whole stream too "
            f"({engine.verdicts.profile.detector_name_}, threshold "
            f"{engine.verdicts.threshold:.4g})")
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
        with (_stop_on_signals(stop), _reopen_on_hup(alerts_stream),
              Collector(TargetSpec(comm)) as collector):  # starts it
            print("attached", file=sys.stderr, flush=True)
            session = WatchSession(
                collector, engine, sinks, rules,
                on_status=status_line.show if status_line else None,
                threshold=engine.scorer.threshold,
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
