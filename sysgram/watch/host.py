"""One watcher for a host: a collector's items routed to one WatchEngine per binary.

The collector names each process's target in its ThreadStart (and again in an Exec,
where a process may change binary); `ItemRouting` remembers the owner of every process
(the one place that decides it, for watch and for train) and `HostRouter` hands each
binary's items to its engine. It offers the loop what one engine offers
(`ingest`, `expire`, `reap`, `finish`, `stats`, `processes`, `threads`), so the watch
session drives a host exactly as it drives one binary.

Binaries are added and removed between drains (`add`, `remove`), which is where a
reload asked for by a signal is applied (`request_reload`): the loop's own thread does
it, so no engine is ever changed while it scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from sysgram.collector.items import Exec, ThreadExit, ThreadStart
from sysgram.watch.alerts import Alert, Repeat
from sysgram.watch.engine import WatchStats


class RoutedEngine(Protocol):
    """What the router needs of a binary's engine (WatchEngine is one)."""

    stats: WatchStats

    def ingest(self, items: Iterable[object]) -> list[Alert]: ...
    def flush_idle(self, now_ns: int) -> list[Alert]: ...
    def expire(self, now_ns: int) -> list[Repeat]: ...
    def reap(self, now_ns: int, idle_s: float, alive: Callable[[int, int], bool]) -> int: ...
    def finish(self) -> tuple[list[Alert], list[Repeat]]: ...
    def lose_everywhere(self, lost: int, ts_ns: int) -> None: ...
    @property
    def processes(self) -> int: ...
    @property
    def threads(self) -> int: ...


class Observer(Protocol):
    """Told how long each binary's scoring took and how old each drain's oldest item was."""

    def scored(self, binary: str, seconds: float) -> None: ...
    def drained(self, lag_seconds: float) -> None: ...


@dataclass
class RouterStats:
    items_unrouted: int = 0      # items of processes whose binary is not watched (any more)
    binaries_added: int = 0
    binaries_removed: int = 0
    reloads: int = 0
    lost_unwatched: int = 0      # unattributed losses while no binary was watched


def sum_stats(parts: Iterable[WatchStats]) -> WatchStats:
    """Every counter summed; the highest max_score."""
    total = WatchStats()
    for stats in parts:
        for f in fields(WatchStats):
            value = getattr(stats, f.name)
            if f.name == "max_score":
                total.max_score = max(total.max_score, value)
            else:
                setattr(total, f.name, getattr(total, f.name) + value)
    return total


class ItemRouting:
    """Which binary each collector item belongs to: the one decision, for watch and train.

    A process belongs to the target its ThreadStart names; an Exec into another watched
    binary moves it (its thread ends in the binary it leaves and starts in the one it
    joins); its last ThreadExit forgets it.
    """

    def __init__(self) -> None:
        self._owner: dict[int, str] = {}          # pid -> binary

    def split(self, items: Iterable[object], wanted: Container[str],
              ) -> tuple[dict[str, list[object]], int]:
        """Items per binary (in order), and how many belonged to no wanted binary."""
        routed: dict[str, list[object]] = {}
        unrouted = 0
        for item in items:
            match item:
                case ThreadStart(target=str()):
                    self._owner[item.pid] = item.target
                case Exec(target=str()):
                    self._exec(item, routed, wanted)
            binary = self._owner.get(item.pid)
            if binary is None or binary not in wanted:
                unrouted += 1
                continue
            routed.setdefault(binary, []).append(item)
            if isinstance(item, ThreadExit) and item.group_dead:
                self._owner.pop(item.pid, None)
        return routed, unrouted

    def _exec(self, item, routed: dict[str, list[object]], wanted: Container[str]) -> None:
        before = self._owner.get(item.pid)
        if before == item.target:
            return
        if before is not None and before in wanted:   # its thread ends where it was ...
            routed.setdefault(before, []).append(
                ThreadExit(tid=item.tid, pid=item.pid, ts_ns=item.ts_ns, group_dead=True))
        self._owner[item.pid] = item.target
        if item.target in wanted:                     # ... and starts where it goes
            routed.setdefault(item.target, []).append(
                ThreadStart(tid=item.tid, pid=item.pid, ppid=None, comm=item.comm,
                            exe=item.filename, exe_sha256=None, ts_ns=item.ts_ns,
                            target=item.target, watched_parent=False))   # its first process

    def forget(self, binary: str) -> None:
        self._owner = {pid: b for pid, b in self._owner.items() if b != binary}


class HostRouter:
    def __init__(self, engines: dict[str, RoutedEngine] | None = None) -> None:
        self.engines: dict[str, RoutedEngine] = dict(engines or {})
        self.router_stats = RouterStats()
        self._routing = ItemRouting()
        self._reload: Callable[[HostRouter], tuple[list[Alert], list[Repeat]]] | None = None
        self._reload_requested = False
        self._retired: list[WatchStats] = []       # stats of engines removed since the start
        # What a reload's removed engines still had to say, out with the next ingest/expire.
        self._held_alerts: list[Alert] = []
        self._held_repeats: list[Repeat] = []
        self.observer: Observer | None = None

    # -- binaries ----------------------------------------------------------------------
    def add(self, binary: str, engine: RoutedEngine) -> None:
        self.engines[binary] = engine
        self.router_stats.binaries_added += 1

    def remove(self, binary: str) -> tuple[list[Alert], list[Repeat]]:
        """Stop routing to a binary; what its engine still had to say (scored, folded)."""
        engine = self.engines.pop(binary, None)
        if engine is None:
            return [], []
        self.router_stats.binaries_removed += 1
        self._retired.append(engine.stats)
        self._routing.forget(binary)
        return engine.finish()

    def replace(self, binary: str, engine: RoutedEngine) -> tuple[list[Alert], list[Repeat]]:
        """A new engine (a new profile) for a binary still watched: its processes stay routed
        to it; the new engine takes up their threads as they next show events."""
        old = self.engines.get(binary)
        self.engines[binary] = engine
        if old is None:
            self.router_stats.binaries_added += 1
            return [], []
        self._retired.append(old.stats)
        return old.finish()

    # -- reloads (asked from a signal handler, applied between drains) -----------------
    def on_reload(self, reload: Callable[[HostRouter], tuple[list[Alert], list[Repeat]]]) -> None:
        self._reload = reload

    def request_reload(self) -> None:
        """Async-signal safe: only sets a flag the loop reads before its next ingest."""
        self._reload_requested = True

    def _apply_reload(self) -> None:
        if not self._reload_requested or self._reload is None:
            return
        self._reload_requested = False
        self.router_stats.reloads += 1
        alerts, repeats = self._reload(self)
        self._held_alerts += alerts
        self._held_repeats += repeats

    # -- what the loop calls -----------------------------------------------------------
    def ingest(self, items: Iterable[object]) -> list[Alert]:
        self._apply_reload()
        items = list(items)
        routed, unrouted = self._routing.split(items, self.engines)
        self.router_stats.items_unrouted += unrouted
        oldest_ns = min((item.ts_ns for item in items), default=None)
        alerts, self._held_alerts = self._held_alerts, []
        observer = self.observer
        if observer is not None and oldest_ns is not None:
            observer.drained((time.monotonic_ns() - oldest_ns) / 1e9)
        for binary, part in routed.items():
            started = time.perf_counter()
            alerts += self.engines[binary].ingest(part)
            if observer is not None:
                observer.scored(binary, time.perf_counter() - started)
        return alerts


    def flush_idle(self, now_ns: int) -> list[Alert]:
        alerts = []
        for engine in self.engines.values():
            alerts += engine.flush_idle(now_ns)
        return alerts

    def expire(self, now_ns: int) -> list[Repeat]:
        repeats, self._held_repeats = self._held_repeats, []
        for engine in self.engines.values():
            repeats += engine.expire(now_ns)
        return repeats

    def reap(self, now_ns: int, idle_s: float, alive: Callable[[int, int], bool]) -> int:
        return sum(engine.reap(now_ns, idle_s, alive) for engine in self.engines.values())

    def lose_everywhere(self, lost: int, ts_ns: int) -> None:
        """Calls lost that no thread can be named for may belong to any binary: every
        engine cuts its open streams. The count goes to one engine only, so the totals
        (and the summary) count each lost call once."""
        engines = list(self.engines.values())
        if not engines:
            self.router_stats.lost_unwatched += int(lost)
        for i, engine in enumerate(engines):
            engine.lose_everywhere(int(lost) if i == 0 else 0, ts_ns)

    def finish(self) -> tuple[list[Alert], list[Repeat]]:
        self._apply_reload()
        alerts, repeats = self._held_alerts, self._held_repeats
        self._held_alerts, self._held_repeats = [], []
        for engine in self.engines.values():
            a, r = engine.finish()
            alerts += a
            repeats += r
        return alerts, repeats

    # -- state -------------------------------------------------------------------------
    @property
    def stats(self) -> WatchStats:
        """Totals over every binary watched since the start (removed ones included).

        With one binary and no removal this is that engine's own stats object, so the
        loop's resets (the status line's max score) reach it.
        """
        if len(self.engines) == 1 and not self._retired:
            return next(iter(self.engines.values())).stats
        return sum_stats([*self._retired, *(e.stats for e in list(self.engines.values()))])

    def stats_by_binary(self) -> dict[str, WatchStats]:
        # A snapshot first: the metrics endpoint reads this from its own thread while a
        # reload may change the engines (list() of a dict view runs under the GIL at once).
        return {binary: engine.stats for binary, engine in list(self.engines.items())}

    @property
    def processes(self) -> int:
        return sum(engine.processes for engine in list(self.engines.values()))

    @property
    def threads(self) -> int:
        return sum(engine.threads for engine in list(self.engines.values()))
