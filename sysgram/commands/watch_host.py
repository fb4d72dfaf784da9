"""`sysgram watch --all` / `--proc A --proc B`: one watcher for many binaries.

One collector (one kernel program) serves every binary; a HostRouter hands each
process's items to its binary's engine. SIGHUP re-reads the store (profiles added,
removed or replaced are picked up, targets change in the kernel without reattaching)
and reopens the alerts file, as logrotate expects. Exit codes as `sysgram watch`.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass

from sysgram.commands.common import say, warn
from sysgram.errors import UserError


@dataclass
class HostOptions:
    names: list[str] | None           # None: every profile in the store
    store: str | None
    json_out: bool
    alerts_file: str | None
    threshold: float | None
    warmup_s: float
    aggregate_s: float
    duration_s: float | None
    exit_on_alert: bool
    max_alerts: int | None
    metrics: str | None = None        # ADDR:PORT
    syslog: str | None = None         # a Unix socket path ("" : /dev/log)
    cgroup: str | None = None         # only processes in this cgroup v2 subtree
    thresholds: dict[str, float] | None = None   # per binary, from the config file
    excluded: frozenset[str] = frozenset()        # left out of --all by the config file


def _report(changes) -> None:
    for message in changes.warnings:
        warn(message)
    for binary, why in changes.failed.items():
        warn(f"not watching {binary}: {why}")
    for verb, names in (("watching", changes.added), ("reloaded", changes.replaced),
                        ("stopped watching", changes.removed)):
        if names:
            say(f"{verb} {', '.join(names)}")


def _summary(router, collector_stats, elapsed_s: float, reason: str) -> str:
    from sysgram.watch.render import summary_text

    # Per binary, the losses its threads were told of (gaps); the total line has them all.
    lines = [summary_text(binary, stats, elapsed_s, stats.lost_events, reason)
             for binary, stats in sorted(router.stats_by_binary().items())]
    total, routed = router.stats, router.router_stats
    skipped = collector_stats.dropped_cgroup
    lines.append(
        f"sysgram watch: {len(router.engines)} binaries, {total.alerts:,} alerts, "
        f"{total.windows_scored:,} windows scored, {total.events:,} syscalls; "
        f"{collector_stats.lost:,} events lost; "
        f"{collector_stats.touched_repeats:,} repeated opens folded; "
        + (f"{skipped:,} processes outside --cgroup skipped; " if skipped else "")
        + f"{routed.reloads} reloads, {routed.items_unrouted:,} items of unwatched binaries "
        "dropped")
    return "\n".join(lines)


def _is_comm(binary: str, check_comm) -> bool:
    try:
        check_comm(binary)
    except UserError:       # reported when its profile is loaded
        return False
    return True


def _load_first(profiles, router, collector, initial, options: HostOptions, store) -> None:
    """Load the profiles whose binaries are already traced; untrace those that fail."""
    from sysgram.collector import TargetSpec

    changes, _, _ = profiles.apply_changes(
        router, lambda b: collector.add_target(TargetSpec(b)), collector.remove_target)
    for spec in initial:
        if spec.comm not in router.engines:
            collector.remove_target(spec.comm)
    _report(changes)
    if not router.engines and options.names is not None:
        raise UserError("none of the named binaries has a usable profile; train them first "
                        "(sysgram train --proc NAME).")
    if not router.engines:
        warn(f"no profile in {store.root} yet; watching nothing until one is saved and "
             "sysgram gets SIGHUP.")


def run_host(options: HostOptions) -> str:
    """Watch until stopped; returns the stop reason (the caller turns it into an exit code)."""
    from sysgram.collector import Collector, TargetSpec
    from sysgram.collector.targets import check_comm
    from sysgram.commands.watch import JsonSink, TextSink, _stop_on_signals
    from sysgram.models.store import ProfileStore
    from sysgram.watch.host import HostRouter
    from sysgram.watch.hostprofiles import EngineSettings, HostProfiles
    from sysgram.watch.session import StopRules, WatchSession

    metrics_address = _metrics_address(options.metrics)
    settings = EngineSettings(warmup_s=options.warmup_s, aggregate_s=options.aggregate_s,
                              threshold=options.threshold,
                              thresholds=dict(options.thresholds or {}))
    store = ProfileStore(options.store)
    profiles = HostProfiles(store, options.names, settings, excluded=options.excluded)
    router = HostRouter()
    # Tracing starts before the profiles load (unpickling one imports numpy and SciPy, and
    # scikit-learn for an `iforest` profile): the collector holds what it sees meanwhile,
    # and the engines take it up.
    initial = [TargetSpec(b) for b, identity in profiles.wanted().items()
               if identity is not None and _is_comm(b, check_comm)]

    sinks: list = [(JsonSink if options.json_out else TextSink)(sys.stdout, None)]
    alert_file = None
    if options.alerts_file:
        from sysgram.watch.alertfile import AlertFile

        alert_file = AlertFile(options.alerts_file)
        sinks.append(JsonSink(alert_file))
    syslog_sink = None
    if options.syslog is not None:
        from sysgram.watch.syslog import SyslogSink

        syslog_sink = SyslogSink(options.syslog or None)
        sinks.append(syslog_sink)

    stop = threading.Event()
    rules = StopRules(duration_s=options.duration_s, exit_on_alert=options.exit_on_alert,
                      max_alerts=options.max_alerts)
    started = time.monotonic()
    previous_hup = signal.getsignal(signal.SIGHUP)
    try:
        with _stop_on_signals(stop), Collector(initial, cgroup=options.cgroup) as collector:
            def reload(router_):
                changes, alerts, repeats = profiles.apply_changes(
                    router_, lambda b: collector.add_target(TargetSpec(b)),
                    collector.remove_target)
                if alert_file is not None:
                    alert_file.reopen()
                _report(changes)
                return alerts, repeats

            router.on_reload(reload)
            signal.signal(signal.SIGHUP, lambda _s, _f: router.request_reload())
            metrics = _start_metrics(metrics_address, router, collector)
            print("attached", file=sys.stderr, flush=True)
            _load_first(profiles, router, collector, initial, options, store)
            session = WatchSession(collector, router, sinks, rules)
            reason = session.run(stop)
            collector.stop()
            collector_stats = collector.stats()
            if metrics is not None:
                metrics.close()
    finally:
        signal.signal(signal.SIGHUP, previous_hup)
        if alert_file is not None:
            alert_file.close()
    print(_summary(router, collector_stats, time.monotonic() - started, reason), file=sys.stderr)
    if alert_file is not None:
        print(f"sysgram: alerts file: {alert_file.lines_written:,} records written, reopened "
              f"{alert_file.reopens} times", file=sys.stderr)
    if syslog_sink is not None:
        print(f"sysgram: syslog: {syslog_sink.sent:,} records sent, {syslog_sink.failed:,} "
              "could not be sent", file=sys.stderr)
        syslog_sink.close()
    return reason


def _metrics_address(text: str | None) -> tuple[str, int] | None:
    """--metrics checked before anything is loaded (prometheus_client only when asked)."""
    if text is None:
        return None
    from sysgram.watch.prometheus import parse_address

    return parse_address(text)


def _start_metrics(address: tuple[str, int] | None, router, collector):
    if address is None:
        return None
    from sysgram.watch.prometheus import MetricsServer

    host, port = address
    server = MetricsServer(router, collector, host, port)
    print(f"sysgram: metrics on http://{host}:{server.port}/metrics", file=sys.stderr,
          flush=True)
    return server
