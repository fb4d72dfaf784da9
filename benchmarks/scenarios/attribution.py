"""Which alert belongs to which attack, and which is a false alarm: the suite's one place
for that decision (pure bookkeeping, no kernel: tested in tests/test_scenarios_attribution.py).

An alert counts as a detection of an attack only when its process is the process the
attack hit or a descendant of it, and its window comes after the attack started and
before the next attack started. Everything else an alert can be is kept apart: alerts
before the first attack are false alarms; alerts during the attacks from another process
tree are counted as *stray*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AttackSpan:
    """One attack as the harness ran it: the process it hit and when (CLOCK_MONOTONIC ns)."""

    name: str
    target_pid: int
    begins_ns: int           # attribution starts here (before the attack's first call)
    ends_ns: int             # the next attack's start, or the end of the attack phase
    effective_ns: int | None = None  # when the attack's own calls began (latency origin)


@dataclass
class Detection:
    """What one detector said about one attack."""

    attack: str
    caught: bool = False
    alerts: int = 0
    first_alert: dict | None = None
    seconds_to_alert: float | None = None   # harness saw the alert - attack's start


@dataclass
class Verdicts:
    """One detector's alerts sorted: per attack, false alarms, strays."""

    detections: dict[str, Detection] = field(default_factory=dict)
    false_alarms: list[dict] = field(default_factory=list)
    stray: list[dict] = field(default_factory=list)


def parents_from(records: Iterable[Mapping]) -> dict[int, int]:
    """pid -> ppid from anything that carries both (alert records, thread starts)."""
    parents: dict[int, int] = {}
    for r in records:
        pid, ppid = r.get("pid"), r.get("ppid")
        if isinstance(pid, int) and isinstance(ppid, int) and pid != ppid:
            parents.setdefault(pid, ppid)
    return parents


def descends_from(pid: int, root: int, parents: Mapping[int, int]) -> bool:
    """Whether pid is root or one of its descendants (cycles in reused pids stop the walk)."""
    seen: set[int] = set()
    while pid not in seen:
        if pid == root:
            return True
        seen.add(pid)
        parent = parents.get(pid)
        if parent is None:
            return False
        pid = parent
    return False


def alert_pid_chain(record: Mapping) -> list[int]:
    """The pids an alert names for its process: itself, then its parent."""
    return [p for p in (record.get("pid"), record.get("ppid")) if isinstance(p, int)]


def sort_alerts(records: Iterable[Mapping], attacks: list[AttackSpan],
                parents: Mapping[int, int], seen_at_ns: Mapping[int, int] | None = None,
                ) -> Verdicts:
    """Sort one detector's `alert` records (repeats fold into an alert and are ignored).

    `parents` maps pid -> ppid (from the attack phase's recording and the alerts);
    `seen_at_ns` maps an alert's `id` to when the harness read it from the alerts file
    (CLOCK_MONOTONIC); time to alert is measured from the attack's start to then.
    """
    seen_at_ns = seen_at_ns or {}
    merged = dict(parents)
    records = [r for r in records if r.get("kind") == "alert"]
    for pid, ppid in parents_from(records).items():
        merged.setdefault(pid, ppid)
    verdicts = Verdicts({a.name: Detection(a.name) for a in attacks})
    first_start = min((a.begins_ns for a in attacks), default=None)
    for record in records:
        ts = record.get("ts_ns")
        if not isinstance(ts, int):
            verdicts.stray.append(dict(record))
            continue
        if first_start is None or ts < first_start:
            verdicts.false_alarms.append(dict(record))
            continue
        attack = _attack_of(record, ts, attacks, merged)
        if attack is None:
            verdicts.stray.append(dict(record))
            continue
        detection = verdicts.detections[attack.name]
        detection.alerts += 1
        if not detection.caught:
            detection.caught = True
            detection.first_alert = dict(record)
            seen = seen_at_ns.get(record.get("id"), ts)
            origin = attack.effective_ns or attack.begins_ns
            detection.seconds_to_alert = max(0.0, (seen - origin) / 1e9)
    return verdicts


def _attack_of(record: Mapping, ts: int, attacks: list[AttackSpan],
               parents: Mapping[int, int]) -> AttackSpan | None:
    pid = record.get("pid")
    if not isinstance(pid, int):
        return None
    for attack in attacks:
        if attack.begins_ns <= ts < attack.ends_ns and descends_from(pid, attack.target_pid,
                                                                     parents):
            return attack
    return None


def upper_rate_95(count: int, seconds: float) -> float:
    """~95 % upper confidence bound on an hourly Poisson rate after `count` events in
    `seconds` of watching (count 0: the rule of three, 3.0 events)."""
    from scipy.stats import chi2

    if seconds <= 0:
        return float("inf")
    return float(chi2.ppf(0.95, 2 * (count + 1)) / 2) * 3600.0 / seconds
