"""The watch loop: drain the collector, feed the engine, hand records to sinks, stop cleanly.

Sinks (terminal, JSON lines, a file) are given by the caller; this module prints
nothing. It stops on a stop event (Ctrl-C / SIGTERM set it), after a duration, on the
first alert (`exit_on_alert`) or after `max_alerts` alerts, and always closes every
aggregation period on the way out so no folded window goes unreported.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sysgram.collector.items import CollectorStats, Drain
from sysgram.watch.alerts import Alert, Repeat
from sysgram.watch.host import RoutedEngine


class Source(Protocol):
    """What the loop needs of a collector (`sysgram.collector.Collector` is one)."""

    def poll(self, timeout: float) -> Drain: ...
    def stats(self) -> CollectorStats: ...


class Sink(Protocol):
    def alert(self, alert: Alert) -> None: ...
    def repeat(self, repeat: Repeat) -> None: ...


@dataclass
class StopRules:
    duration_s: float | None = None
    exit_on_alert: bool = False
    max_alerts: int | None = None


@dataclass
class Status:
    """What the live status line shows."""

    elapsed_s: float
    processes: int
    threads: int
    windows_per_s: float
    max_score: float
    threshold: float
    alerts: int
    lost: int  # every event known missing (collector counters)
    unscored: int  # windows not scored because of losses


def thread_alive(pid: int, tid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/task/{tid}")


class WatchSession:
    def __init__(
        self,
        collector: Source,
        engine: RoutedEngine,
        sinks: list[Sink],
        rules: StopRules | None = None,
        *,
        on_status: Callable[[Status], None] | None = None,
        threshold: float = float("nan"),
        status_interval_s: float = 0.5,
        reap_interval_s: float = 5.0,
        poll_timeout_s: float = 0.05,
    ) -> None:
        self.collector = collector
        self.engine = engine
        self.sinks = sinks
        self.rules = rules or StopRules()
        self.on_status = on_status
        self.threshold = threshold  # shown on the status line (one binary's profile)
        self.status_interval_ns = int(status_interval_s * 1e9)
        self.reap_interval_ns = int(reap_interval_s * 1e9)
        self.poll_timeout_s = poll_timeout_s
        self.stop_reason = ""
        self.started_ns = 0
        self._unattributed = 0  # unattributed losses + recursion misses handled so far

    def _emit(self, alerts: list[Alert], repeats: list[Repeat]) -> None:
        for alert in alerts:
            for sink in self.sinks:
                sink.alert(alert)
        for repeat in repeats:
            for sink in self.sinks:
                sink.repeat(repeat)

    def _should_stop(self, now_ns: int) -> str:
        stats, rules = self.engine.stats, self.rules
        if rules.exit_on_alert and stats.alerts > 0:
            return "alert"
        if rules.max_alerts is not None and stats.alerts >= rules.max_alerts:
            return "max-alerts"
        if rules.duration_s is not None and now_ns - self.started_ns >= rules.duration_s * 1e9:
            return "duration"
        return ""

    def lost_events(self) -> int:
        return int(self.collector.stats().lost)

    def _cut_at_unattributed_losses(self, now_ns: int) -> None:
        """Losses no thread can be named for (unattributed, recursion misses) end every
        open stream's segment. They are placed where they became known: before the drain
        that follows the counter's rise."""
        seen = self.collector.stats().unattributed
        if seen > self._unattributed:
            self.engine.lose_everywhere(seen - self._unattributed, now_ns)
        self._unattributed = seen

    def status(self, now_ns: int, windows_per_s: float) -> Status:
        stats = self.engine.stats
        return Status(
            elapsed_s=(now_ns - self.started_ns) / 1e9,
            processes=self.engine.processes,
            threads=self.engine.threads,
            windows_per_s=windows_per_s,
            max_score=stats.max_score,
            threshold=self.threshold,
            alerts=stats.alerts,
            lost=max(self.lost_events(), stats.lost_events),
            unscored=stats.windows_unscored_loss,
        )

    def run(self, stop: threading.Event) -> str:
        """Watch until told to stop; the reason ("signal", "duration", "alert", "max-alerts")."""
        engine = self.engine
        self.started_ns = last_status = last_reap = time.monotonic_ns()
        windows_at_status = 0
        while True:
            self._cut_at_unattributed_losses(time.monotonic_ns())
            drain = self.collector.poll(self.poll_timeout_s)
            alerts = engine.ingest(drain.items)
            now = time.monotonic_ns()  # the kernel's clock (CLOCK_MONOTONIC)
            alerts += engine.flush_idle(now)
            self._emit(alerts, engine.expire(now))
            if now - last_reap >= self.reap_interval_ns:
                engine.reap(now, idle_s=self.reap_interval_ns / 1e9, alive=thread_alive)
                last_reap = now
            if self.on_status is not None and now - last_status >= self.status_interval_ns:
                rate = (engine.stats.windows_scored - windows_at_status) * 1e9 / (now - last_status)
                self.on_status(self.status(now, rate))
                engine.stats.max_score = float("-inf")
                windows_at_status, last_status = engine.stats.windows_scored, now
            reason = "signal" if stop.is_set() else self._should_stop(now)
            if reason:
                break
        self.stop_reason = reason
        self._emit(*engine.finish())
        return reason
