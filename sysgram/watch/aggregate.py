"""Fold repeated alerts into one per process and period, counting every window folded.

The first anomalous window of a process tree (a watched process and the children it
forks, e.g. a shell it spawns) opens a period (default 5 s) and is emitted at once, so
the first alert is never delayed. Further anomalous windows of that tree in the period
are folded into a `Repeat` emitted when the period closes ("+N windows in
5 s"). When more than `burst` processes of the binary alert in one period (a fork storm
of anomalous children), the rest fold into one binary-wide repeat. A period whose
alerts named no syscall new to the binary (weak, score-only anomalies) does not swallow
the first window that brings new syscalls: that one is new evidence (a shell spawned in
the middle of a burst of weak alerts) and is emitted. Nor does a period swallow the first
alert of another branch of the tree, a process that is neither one that alerted in the
period nor a child of one (a server's listener attacked while one of its sessions' commands
opened the period): what a process forks continues its story, a sibling or an ancestor
tells another; the burst limit bounds them. Nor does any period swallow a
window bringing a decisive call (`defaults.DECISIVE_SYSCALLS`: exec, connect,
memfd_create, ...) it has not told yet: a second attack on a thread whose first one still
alerts (a `dlopen` from memory seconds after a connect) is a new story, not a repeat. The
rest fold, and the repeat lists every new syscall of the period; decisive calls bound the
extra alerts a period can emit to a few.
Nothing is dropped: each anomalous window is either an alert or counted in a repeat.
A period ends by time, whether or not `expire()` ran yet: an alert stamped after its end
closes it (the repeat waits for the next `expire()`) and opens a new one.
"""

from __future__ import annotations

import itertools

from sysgram.models.defaults import DECISIVE_SYSCALLS
from sysgram.watch.alerts import Alert, Repeat

DECISIVE = frozenset(DECISIVE_SYSCALLS)


class Aggregator:
    def __init__(self, period_s: float = 5.0, burst: int = 20) -> None:
        self.period_s = period_s
        self.period_ns = int(period_s * 1e9)
        self.burst = burst
        self._ids = itertools.count(1)
        self._by_pid: dict[int, Repeat] = {}
        self._overflow: Repeat | None = None  # the binary-wide fold of a burst
        self._period_alerts: list[int] = []  # ts of alerts emitted, for the burst limit
        self._ended: list[Repeat] = []  # periods closed by a later alert, not yet expired

    def next_id(self) -> int:
        """The next number of the run's one sequence of alert and repeat ids."""
        return next(self._ids)

    @property
    def open_periods(self) -> int:
        return len(self._by_pid) + (self._overflow is not None)

    def _recent_alerts(self, ts_ns: int) -> int:
        cutoff = ts_ns - self.period_ns
        self._period_alerts = [t for t in self._period_alerts if t > cutoff]
        return len(self._period_alerts)

    def _open(self, alert: Alert) -> Repeat:
        return Repeat(
            id=0,
            alert_id=alert.id,
            binary=alert.binary,
            process=alert.process,
            period_s=self.period_s,
            first_ns=alert.ts_ns,
            last_ns=alert.ts_ns,
            threshold=alert.threshold,
        )

    def offer(self, alert: Alert) -> Alert | None:
        """The alert to emit now (with its id set), or None when folded into a period."""
        new = set(alert.explanation.new_syscalls)
        self._close_ended(alert.process.group, alert.ts_ns)
        for open_ in (self._by_pid.get(alert.process.group), self._overflow):
            if open_ is not None and alert.ts_ns - open_.first_ns < self.period_ns:
                if self._tells(alert, new, open_):
                    return self._told(alert, new, open_)
                open_.fold(alert)
                return None
        if self._recent_alerts(alert.ts_ns) >= self.burst:
            self._overflow = self._open(alert)
            self._overflow.alert_id = None  # binary-wide: no single alert opened it
            self._overflow.reported |= new
            self._overflow.fold(alert)
            return None
        period = self._by_pid[alert.process.group] = self._open(alert)
        self._told(alert, new, period)
        period.alert_id = alert.id  # the alert that opened it, numbered just now
        return alert

    def _tells(self, alert: Alert, new: set[str], period: Repeat) -> bool:
        """Whether an alert inside an open period is new evidence, emitted, not folded."""
        if _new_evidence(new, period.reported):
            return True
        return (period is not self._overflow and _another_branch(alert, period)
                and self._recent_alerts(alert.ts_ns) < self.burst)

    def _told(self, alert: Alert, new: set[str], period: Repeat) -> Alert:
        """Emit the alert: numbered, and what it told recorded in its period."""
        period.reported |= new
        period.told.add(alert.process.pid)
        self._period_alerts.append(alert.ts_ns)
        alert.id = next(self._ids)
        return alert

    def _close_ended(self, group: int, ts_ns: int) -> None:
        """Periods (this group's, the binary-wide one) that ended by `ts_ns` are closed."""
        own = self._by_pid.get(group)
        if own is not None and ts_ns - own.first_ns >= self.period_ns:
            self._ended.append(self._by_pid.pop(group))
        if self._overflow is not None and ts_ns - self._overflow.first_ns >= self.period_ns:
            self._ended.append(self._overflow)
            self._overflow = None

    def _emit(self, repeat: Repeat) -> Repeat | None:
        if repeat.windows == 0:
            return None
        repeat.id = next(self._ids)
        return repeat

    def expire(self, now_ns: int) -> list[Repeat]:
        """Close the periods that ended before `now_ns`; the repeats they folded."""
        out = [r for r in map(self._emit, self._ended) if r is not None]
        self._ended = []
        for pid in [p for p, r in self._by_pid.items() if now_ns - r.first_ns >= self.period_ns]:
            emitted = self._emit(self._by_pid.pop(pid))
            if emitted:
                out.append(emitted)
        if self._overflow is not None and now_ns - self._overflow.first_ns >= self.period_ns:
            emitted = self._emit(self._overflow)
            self._overflow = None
            if emitted:
                out.append(emitted)
        return out

    def finish(self) -> list[Repeat]:
        """Close every open period (at exit)."""
        return self.expire(2**63 - 1)


def _new_evidence(new: set[str], reported: set[str]) -> bool:
    """Whether a window naming `new` syscalls tells its open period something new: the
    first new syscalls of a weak period, or a decisive call the period has not told."""
    if not new:
        return False
    return not reported or bool((new & DECISIVE) - reported)


def _another_branch(alert: Alert, period: Repeat) -> bool:
    """Whether the alert's process is neither one the period has heard from (told or
    folded) nor a child of one."""
    heard = period.told | period.pids
    return alert.process.pid not in heard and alert.process.ppid not in heard
