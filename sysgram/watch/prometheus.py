"""Prometheus metrics of a host watcher (`--metrics ADDR:PORT`), listed in docs/metrics.md.

Counters are read from the watcher's own statistics when scraped (a custom collector),
so the endpoint and the summary printed at exit can never disagree; only the two
histograms (scoring latency per binary, drain lag) are observed as the loop runs, through
the router's `Observer` hooks. The server runs on prometheus_client's daemon thread.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sysgram.errors import UserError

# Per-binary counters: (metric name, WatchStats field, help).
_BINARY_COUNTERS = (
    ("sysgram_events", "events", "Syscalls routed to the binary's engine."),
    ("sysgram_windows_scored", "windows_scored", "Windows scored."),
    ("sysgram_windows_anomalous", "anomalous_windows", "Windows above the threshold."),
    ("sysgram_alerts", "alerts", "Alerts emitted."),
    ("sysgram_repeats", "repeats", "Repeat records (folded alerts) emitted."),
    ("sysgram_windows_warmup", "windows_warmup", "Windows not scored: process warm-up."),
    ("sysgram_windows_unscored_loss", "windows_unscored_loss",
     "Windows not scored: they would span lost events."),
    ("sysgram_gap_events", "lost_events", "Lost events reported to the binary (gaps)."),
)
# Collector losses by kind: (label, CollectorStats field).
_LOSS_KINDS = (
    ("events", "lost_events"), ("unattributed", "lost_unattributed"),
    ("lifecycle", "lost_lifecycle"), ("recursion", "recursion_misses"),
    ("owners", "lost_owners"), ("touched", "lost_touched"),
)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_LAG_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def parse_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '[::1]:9464' or ':9464' (all addresses) -> (host, port)."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise UserError(f"'{text}' is not an address to serve metrics on; give ADDR:PORT, "
                        "e.g. 127.0.0.1:9464.") from None
    return host, number


def thread_cpu_seconds(tid: int) -> float:
    """CPU time (user + system) of one of this process's threads, from /proc."""
    try:
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Snapshot:
    """A prometheus_client collector reading the router's and the collector's statistics."""

    def __init__(self, router, collector) -> None:
        self.router = router
        self.collector = collector

    def collect(self):
        by_binary = list(self.router.stats_by_binary().items())
        for name, field, text in _BINARY_COUNTERS:
            family = CounterMetricFamily(name, text, labels=["binary"])
            for binary, stats in by_binary:
                family.add_metric([binary], getattr(stats, field))
            yield family
        engines = list(self.router.engines.items())
        for name, attr, text in (("sysgram_processes", "processes", "Processes watched now."),
                                 ("sysgram_threads", "threads", "Threads watched now.")):
            family = GaugeMetricFamily(name, text, labels=["binary"])
            for binary, engine in engines:
                family.add_metric([binary], getattr(engine, attr))
            yield family
        yield GaugeMetricFamily("sysgram_binaries", "Binaries watched now.", value=len(engines))
        rs = self.router.router_stats
        yield CounterMetricFamily("sysgram_reloads", "Reloads (SIGHUP) applied.", value=rs.reloads)
        yield CounterMetricFamily("sysgram_items_unrouted",
                                  "Collector items of binaries no longer watched (dropped).",
                                  value=rs.items_unrouted)
        yield from self._collector_families()

    def _collector_families(self):
        stats = self.collector.stats()
        yield CounterMetricFamily("sysgram_collector_events",
                                  "Syscall ids the collector delivered.", value=stats.events)
        yield CounterMetricFamily("sysgram_collector_batches", "Kernel batches received.",
                                  value=stats.batches)
        lost = CounterMetricFamily("sysgram_collector_lost", "Records lost, by kind.",
                                   labels=["kind"])
        for kind, field in _LOSS_KINDS:
            lost.add_metric([kind], getattr(stats, field))
        yield lost
        yield CounterMetricFamily("sysgram_collector_touched",
                                  "Touched records (files, programs, peers) delivered.",
                                  value=stats.touched)
        yield CounterMetricFamily("sysgram_collector_touched_repeats",
                                  "Opens a thread repeated within a second, folded.",
                                  value=stats.touched_repeats)
        yield GaugeMetricFamily("sysgram_collector_processes", "Tracked processes alive now.",
                                value=stats.processes)
        yield CounterMetricFamily("sysgram_collector_cpu_seconds",
                                  "CPU time of the collector's flusher thread.",
                                  value=thread_cpu_seconds(self.collector.flusher_tid))


class MetricsServer:
    """The HTTP endpoint, and the router's observer for the two histograms."""

    def __init__(self, router, collector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Snapshot(router, collector))
        ProcessCollector(registry=self.registry)      # process_cpu_seconds_total, RSS, fds
        self.scoring = Histogram("sysgram_scoring_seconds", "Time to score one drain's windows.",
                                 ["binary"], registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.lag = Histogram("sysgram_drain_lag_seconds",
                             "Age of each drain's oldest item when it reached the engines.",
                             registry=self.registry, buckets=_LAG_BUCKETS)
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on {host}:{port} ({exc.strerror}); choose "
                            "a free port for --metrics.") from None
        self.port = self._server.server_port
        router.observer = self

    def scored(self, binary: str, seconds: float) -> None:
        self.scoring.labels(binary).observe(seconds)

    def drained(self, lag_seconds: float) -> None:
        self.lag.observe(lag_seconds)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
