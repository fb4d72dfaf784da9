"""What each attack made the attacked process tree do, read back from the attack phase's
recording (`sysgram record` ran through every attack): the proof that an attack really
happened where the harness says it did, independent of any detector.

The recording's events records carry the CLOCK_MONOTONIC time of their first call and
are flushed at least every 0.5 s, so a record that began up to FLUSH_SLACK_NS before an
attack may hold its first calls; such records are counted for that attack.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.scenarios.attribution import AttackSpan, descends_from
from sysgram.datasets import format as fmt
from sysgram.datasets.log import scan
from sysgram.datasets.meta import read_meta
from sysgram.syscalls import table

FLUSH_SLACK_NS = 600_000_000


@dataclass
class TreeActivity:
    """The attacked tree's recorded calls during one attack."""

    events: int = 0
    processes: set[int] = field(default_factory=set)
    threads: set[int] = field(default_factory=set)
    syscalls: Counter = field(default_factory=Counter)
    lost: int = 0

    def summary(self) -> dict:
        return {"events": self.events, "processes": len(self.processes),
                "threads": len(self.threads), "lost": self.lost,
                "top_syscalls": dict(self.syscalls.most_common(12))}


@dataclass
class Recording:
    parents: dict[int, int]
    activity: dict[str, TreeActivity]


def read_attack_recording(path: Path, spans: list[AttackSpan]) -> Recording:
    """pid -> ppid of every thread the recording saw start, and per attack the events of
    the attacked tree between its start (less the flush slack) and its end."""
    names = table(read_meta(path).get("arch"))
    buf = (path / fmt.LOG_FILE).read_bytes()
    records = scan(buf).records
    parents: dict[int, int] = {}
    for rec in records:
        if rec.kind == fmt.THREAD_START:
            info = _json(buf, rec.offset, rec.length)
            ppid = info.get("ppid")
            if isinstance(ppid, int) and ppid != rec.pid:
                parents.setdefault(rec.pid, ppid)
    activity = {span.name: TreeActivity() for span in spans}
    for rec in records:
        if rec.kind not in (fmt.EVENTS, fmt.GAP):
            continue
        for span in spans:
            if not span.begins_ns - FLUSH_SLACK_NS <= rec.ts_ns < span.ends_ns:
                continue
            if not descends_from(rec.pid, span.target_pid, parents):
                continue
            act = activity[span.name]
            if rec.kind == fmt.GAP:
                act.lost += int(np.frombuffer(buf, fmt.GAP_DTYPE, count=1, offset=rec.offset)[0])
                continue
            ids = np.frombuffer(buf, fmt.IDS_DTYPE, count=rec.length // 2, offset=rec.offset)
            act.events += len(ids)
            act.processes.add(rec.pid)
            act.threads.add(rec.tid)
            for nr, n in zip(*np.unique(ids, return_counts=True), strict=True):
                act.syscalls[names.name(int(nr))] += int(n)
    return Recording(parents, activity)


def _json(buf: bytes, offset: int, length: int) -> dict:
    try:
        value = json.loads(bytes(buf[offset:offset + length]))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
