"""Alert records: one JSON object per alert or per aggregate of repeats (schema in docs/alerts.md).

Two kinds share one schema version:
- `alert`: the first anomalous window of a process in an aggregation period, with its
  full explanation; or (`scope` "thread") a thread whose whole stream the thread
  profile judged anomalous when it ended;
- `repeat`: the further anomalous windows of that process folded into the period
  ("+N windows in 5 s"), emitted when the period closes, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sysgram.watch.explain import Explanation

SCHEMA = "sysgram.alert/1"

# Kernel timestamps are CLOCK_MONOTONIC (bpf_ktime_get_ns); this maps them to wall time.
_WALL_MINUS_MONO_NS = time.time_ns() - time.monotonic_ns()


def wall_time(ts_ns: int) -> str:
    """ISO 8601 UTC time (milliseconds) of a CLOCK_MONOTONIC timestamp."""
    moment = datetime.fromtimestamp((ts_ns + _WALL_MINUS_MONO_NS) / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ProcessContext:
    """Who ran the window: known identity of the process at the time."""

    pid: int
    ppid: int | None
    comm: str | None
    exe: str | None
    exe_sha256: str | None
    root_pid: int | None = None  # the first watched ancestor (itself when not a fork child)
    cgroup: str | None = None  # the process's cgroup path
    container: str | None = None  # "RUNTIME://ID" when that cgroup is a container's
    role: str | None = None  # "root" (the binary's first process), "child", None: unknown

    @property
    def group(self) -> int:
        """Alerts are folded per process tree: a forked shell joins its parent's period."""
        return self.root_pid if self.root_pid is not None else self.pid


@dataclass
class Alert:
    id: int
    ts_ns: int
    binary: str  # the profile's binary (the --proc name)
    process: ProcessContext
    tid: int
    score: float
    threshold: float
    explanation: Explanation
    scope: str = "window"  # "window": one window; "thread": a thread's whole stream
    stream_calls: int | None = None  # scope "thread": calls in the stream judged
    touched: dict | None = None  # files, programs, peers the thread touched (watch/touched.py)

    def record(self) -> dict:
        proc = self.process
        exp = self.explanation
        return {
            "schema": SCHEMA,
            "kind": "alert",
            "scope": self.scope,
            "id": self.id,
            "time": wall_time(self.ts_ns),
            "ts_ns": self.ts_ns,
            "binary": self.binary,
            "pid": proc.pid,
            "tid": self.tid,
            "ppid": proc.ppid,
            "root_pid": proc.group,
            "comm": proc.comm,
            "exe": proc.exe,
            "exe_sha256": proc.exe_sha256,
            "score": round(float(self.score), 6),
            "threshold": round(float(self.threshold), 6),
            "window": {
                "syscalls": exp.syscalls,
                "unseen": [k for k, m in enumerate(exp.marked()) if m],
                "unseen_ngrams": exp.unseen_ngrams,
            },
            "new_syscalls": exp.new_syscalls,
            **({"stream_calls": self.stream_calls} if self.scope == "thread" else {}),
            **({"cgroup": proc.cgroup, "container": proc.container} if proc.cgroup else {}),
            **({"touched": self.touched} if self.touched is not None else {}),
            **({"fleet": exp.fleet} if exp.fleet is not None else {}),
            **({"thread_start": True} if exp.thread_start else {}),
        }


@dataclass
class Repeat:
    """Anomalous windows of one process folded into an open alert's period."""

    id: int
    alert_id: int | None  # the alert whose period these windows fall in (None: a burst)
    binary: str
    process: ProcessContext  # of the alert; pids lists every process folded in
    period_s: float
    first_ns: int
    last_ns: int = 0
    windows: int = 0
    max_score: float = float("-inf")
    threshold: float = 0.0
    tids: set[int] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)
    new_syscalls: dict[str, None] = field(default_factory=dict)  # ordered set
    reported: set[str] = field(default_factory=set)  # new syscalls already in an alert
    told: set[int] = field(default_factory=set)  # pids whose alert this period emitted

    def fold(self, alert: Alert) -> None:
        self.windows += 1
        self.last_ns = max(self.last_ns, alert.ts_ns)
        self.max_score = max(self.max_score, float(alert.score))
        self.tids.add(alert.tid)
        self.pids.add(alert.process.pid)
        self.new_syscalls.update(dict.fromkeys(alert.explanation.new_syscalls))

    def record(self) -> dict:
        return {
            "schema": SCHEMA,
            "kind": "repeat",
            "id": self.id,
            "alert_id": self.alert_id,
            "time": wall_time(self.last_ns),
            "first_time": wall_time(self.first_ns),
            "ts_ns": self.last_ns,
            "binary": self.binary,
            "pid": self.process.pid,
            "root_pid": self.process.group,
            "comm": self.process.comm,
            "pids": sorted(self.pids),
            "tids": sorted(self.tids),
            "windows": self.windows,
            "period_s": self.period_s,
            "max_score": round(self.max_score, 6),
            "threshold": round(float(self.threshold), 6),
            "new_syscalls": list(self.new_syscalls),
        }


def to_json_line(record: dict) -> str:
    """One line of JSON; json.dumps escapes every control character a process name holds."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
