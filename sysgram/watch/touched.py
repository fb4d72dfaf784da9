"""What watched processes touch: new-item alerts and the items each window alert lists.

`TouchedWatch` sees every drain item the engine sees (`observe`). It keeps, per thread,
the files, programs and peers of its last calls (bounded), so a window alert can list
what the thread touched over its window; and it checks each touched record against the
profile's learned sets (sysgram.models.touched): a new program, a file outside the
templates, a new peer or listening address is an alert of its own, scope "touched".

Aggregation of its own: per process tree and period, the first new item of each set
(a program, a file template such as `/etc/shadow`, a peer, a listening address) alerts;
further new items and occurrences in the period are counted, by key, into one
`TouchedRepeat` when the period closes. As for window alerts (watch/aggregate.py), the
first new item of another branch of the tree, a process that is neither one the period
heard from nor a child of one, alerts too: a server's listener reading `/etc/shadow` is
not a repeat of what one of its sessions' commands touched a second earlier. Nothing is
dropped: every new occurrence is an alert or counted in a repeat. Nothing here prints;
`touched_text` formats an alert for a terminal.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sysgram.collector.items import ThreadEvents, ThreadExit, Touched, TouchedGap
from sysgram.sanitize import for_terminal as safe
from sysgram.watch.alerts import SCHEMA, ProcessContext, wall_time

# Touched records kept per thread for the window listings (the most recent ones).
KEEP_PER_THREAD = 64
# Records found inside the sets that are remembered (cleared when full).
KNOWN_CACHE = 8192


def record_fields(item) -> dict:
    """A Touched item as the plain record the sets and the alerts use (no tid/pid/ts)."""
    out = {"kind": item.kind}
    for name in ("path", "argv", "peer", "protocol", "result", "open_flags", "fd", "cut",
                 "unreadable"):
        value = getattr(item, name, None)
        if value is None or value is False or value == ():
            continue
        if name == "peer":
            value = {"family": value.family, "address": value.address, "port": value.port}
        out[name] = list(value) if name == "argv" else value
    return out


def direction(kind: str) -> str:
    """How a peer was touched: out (connect, send), in (accept), listen (bind)."""
    return {"connect": "out", "send": "out", "accept": "in", "bind": "listen"}.get(kind, "")


def touched_summary(records: list[dict]) -> dict:
    """A window's touched records grouped: files, programs, peers (with direction)."""
    files = list(dict.fromkeys(r["path"] for r in records if r["kind"] == "open" and "path" in r))
    programs = list(dict.fromkeys(r["path"] for r in records
                                  if r["kind"] == "exec" and "path" in r))
    peers, seen = [], set()
    for r in records:
        if "peer" not in r or r["kind"] not in ("connect", "send", "accept", "bind"):
            continue
        peer = {**r["peer"], "direction": direction(r["kind"]),
                "protocol": r.get("protocol")}
        key = tuple(sorted((k, str(v)) for k, v in peer.items()))
        if key not in seen:
            seen.add(key)
            peers.append(peer)
    return {"files": files, "programs": programs, "peers": peers}


@dataclass
class TouchedAlert:
    """A new program, file, peer or listening address: an alert on its own."""

    id: int
    ts_ns: int
    binary: str
    process: ProcessContext
    tid: int
    set_name: str        # programs | files | peers | listens
    key: str             # what was matched against the set (a template, a peer class)
    item: dict           # the touched record itself
    scope: str = "touched"
    # A root process (a master, a listener) touched an item only its children touched in
    # training: known to the binary, new to its role.
    children_only: bool = False
    # A pooled profile's fleet size: the item is new to every one of its hosts.
    fleet_hosts: int | None = None

    def record(self) -> dict:
        proc = self.process
        return {
            "schema": SCHEMA, "kind": "alert", "scope": "touched", "id": self.id,
            "time": wall_time(self.ts_ns), "ts_ns": self.ts_ns, "binary": self.binary,
            "pid": proc.pid, "tid": self.tid, "ppid": proc.ppid, "root_pid": proc.group,
            "comm": proc.comm, "exe": proc.exe, "exe_sha256": proc.exe_sha256,
            "new": {"set": self.set_name, "key": self.key, "item": self.item,
                    **({"role": proc.role} if proc.role else {}),
                    **({"learned_from": "children"} if self.children_only else {}),
                    **({"seen_on_hosts": 0, "of_hosts": self.fleet_hosts}
                       if self.fleet_hosts else {})},
            "new_syscalls": [],           # every sysgram.alert/1 record has it
            **({"cgroup": proc.cgroup, "container": proc.container} if proc.cgroup else {}),
        }


@dataclass
class TouchedRepeat:
    """New-item occurrences folded into a process tree's touched period."""

    id: int
    alert_id: int
    binary: str
    process: ProcessContext
    period_s: float
    first_ns: int
    last_ns: int = 0
    occurrences: int = 0            # folded occurrences of keys already alerted
    keys: dict[str, int] = field(default_factory=dict)   # "set key" -> folded count
    scope: str = "touched"

    def record(self) -> dict:
        return {
            "schema": SCHEMA, "kind": "repeat", "scope": "touched", "id": self.id,
            "alert_id": self.alert_id, "time": wall_time(self.last_ns),
            "first_time": wall_time(self.first_ns), "ts_ns": self.last_ns,
            "binary": self.binary, "pid": self.process.pid, "root_pid": self.process.group,
            "comm": self.process.comm, "period_s": self.period_s,
            "occurrences": self.occurrences, "keys": dict(self.keys),
            "new_syscalls": [],
        }


@dataclass
class _Period:
    """A process tree's open touched period: what it told, whom it heard, what it folded."""

    repeat: TouchedRepeat
    told: set[tuple[int, str]] = field(default_factory=set)   # (branch pid, set name)
    heard: dict[int, int] = field(default_factory=dict)        # pid -> its branch's pid
    alerts: int = 0

    def branch(self, process: ProcessContext) -> int:
        """The pid whose story this process continues: itself, or the heard process it
        is or was forked by; a process the period never heard of starts a branch."""
        return self.heard.get(process.pid, self.heard.get(process.ppid, process.pid))

    def folds(self, alert: TouchedAlert, burst: int) -> bool:
        """One alert per set (a program, a file, a peer, a listening address) per branch
        and period: a shell that starts, loads its libraries and reads a dozen files is
        one story, told by its first new item of each kind; the rest is counted. The
        burst bounds what a period tells."""
        told = (self.branch(alert.process), alert.set_name) in self.told
        return told or self.alerts >= burst

    def tell(self, alert: TouchedAlert) -> None:
        branch = self.branch(alert.process)
        self.heard[alert.process.pid] = branch
        self.told.add((branch, alert.set_name))
        self.alerts += 1

    def fold(self, alert: TouchedAlert) -> None:
        self.heard.setdefault(alert.process.pid, self.branch(alert.process))
        self.repeat.occurrences += 1
        self.repeat.last_ns = max(self.repeat.last_ns, alert.ts_ns)
        text = f"{alert.set_name} {alert.key}"
        self.repeat.keys[text] = self.repeat.keys.get(text, 0) + 1


class TouchedWatch:
    """Per-thread recent touched records, and new-item alerts against learned sets."""

    def __init__(self, sets, binary: str, period_s: float = 5.0, burst: int = 20) -> None:
        self.sets = sets                      # a fitted TouchedSets, or None: list only
        self.binary = binary
        self.period_ns = int(period_s * 1e9)
        self.period_s = period_s
        self.burst = burst
        # Ids of alerts and repeats; the engine hands over its own sequence's.
        self.next_id: Callable[[], int] = itertools.count(1).__next__
        self._recent: dict[int, deque] = {}   # tid -> (position, record), the newest
        self._calls: dict[int, int] = {}      # tid -> calls seen so far (positions)
        self._closed: list[TouchedRepeat] = []
        self._exited: list[int] = []
        self._periods: dict[int, _Period] = {}
        self._alerts: list[TouchedAlert] = []
        # Records found inside the sets, so a busy server's repeated opens skip the template
        # rules (cleared when full). New ones are not remembered: a fork storm's distinct
        # /proc paths would fill it with state that outlives their processes.
        self._known: set[tuple] = set()
        self.new_items = 0                    # occurrences of items outside the sets
        self.lost = 0                         # touched records the kernel could not deliver

    def observe(self, item, ctx: ProcessContext | None) -> None:
        """One drain item (the engine's context of its process, if it knows one)."""
        match item:
            case ThreadEvents():
                self._calls[item.tid] = self._calls.get(item.tid, 0) + len(item.ids)
            case TouchedGap():
                self.lost += int(item.lost)
            case Touched():
                record = record_fields(item)
                if ctx is not None and ctx.role:
                    record["role"] = ctx.role          # what its role learned decides
                self._recent.setdefault(item.tid, deque(maxlen=KEEP_PER_THREAD)).append(
                    (self._calls.get(item.tid, 0), record))
                if self.sets is not None and ctx is not None:
                    self._check(item, record, ctx)
            case ThreadExit():
                self._exited.append(item.tid)  # freed after this drain's alerts listed it

    def _check(self, item, record: dict, ctx: ProcessContext) -> None:
        failed = item.result if (item.result or 0) < 0 else 0     # which failure matters
        # `cut` too: a cut path is matched by other rules than the same text whole.
        seen = (item.kind, item.path, item.peer, item.protocol, failed, item.unreadable,
                item.cut, ctx.role)
        if seen in self._known:
            return
        keys = [(set_name, key) for set_name, key, _ in self.sets.new_items([record])]
        if not keys:
            if len(self._known) >= KNOWN_CACHE:
                self._known.clear()
            self._known.add(seen)
        for set_name, key in keys:
            self.new_items += 1
            children_only = self.sets.known_to_children((set_name, key), record)
            self._offer(TouchedAlert(0, item.ts_ns, self.binary, ctx, item.tid, set_name, key,
                                     record, children_only=children_only,
                                     fleet_hosts=getattr(self.sets, "hosts_", None)))

    def _offer(self, alert: TouchedAlert) -> None:
        group = alert.process.group
        open_ = self._periods.get(group)
        if open_ is not None and alert.ts_ns - open_.repeat.first_ns >= self.period_ns:
            self._closed += [r for r in (self._close(group),) if r is not None]
            open_ = None
        if open_ is not None and open_.folds(alert, self.burst):
            open_.fold(alert)
            return
        alert.id = self.next_id()
        if open_ is None:
            open_ = self._periods[group] = _Period(TouchedRepeat(
                0, alert.id, self.binary, alert.process, self.period_s, alert.ts_ns,
                alert.ts_ns))
        open_.tell(alert)
        self._alerts.append(alert)

    def _close(self, group: int) -> TouchedRepeat | None:
        open_ = self._periods.pop(group, None)
        if open_ is None or not open_.repeat.occurrences:
            return None
        open_.repeat.id = self.next_id()
        return open_.repeat

    def take_alerts(self) -> list[TouchedAlert]:
        """The touched alerts of this drain; the engine calls it after scoring the drain's
        windows and threads, so the threads that exited in it are freed now."""
        for tid in self._exited:
            self._recent.pop(tid, None)
            self._calls.pop(tid, None)
        self._exited.clear()
        alerts, self._alerts = self._alerts, []
        return alerts

    def expire(self, now_ns: int) -> list[TouchedRepeat]:
        """Close the touched periods that ended by `now_ns`; the repeats that folded."""
        ended = [g for g, period in self._periods.items()
                 if now_ns - period.repeat.first_ns >= self.period_ns]
        closed, self._closed = self._closed, []
        return closed + [r for r in (self._close(g) for g in ended) if r is not None]

    def window_items(self, tid: int, calls: int) -> dict:
        """What `tid` touched over its last `calls` calls, grouped for an alert.

        The engine asks when it scores a poll's windows, so the span ends at the last
        call of the poll (a window flagged early in a long poll lists a little more).
        """
        start = self._calls.get(tid, 0) - calls
        return touched_summary([r for pos, r in self._recent.get(tid, ()) if pos >= start])

    @property
    def threads(self) -> int:
        return len(self._recent)


def touched_text(alert: TouchedAlert) -> str:
    """A touched alert for a terminal (every name escaped)."""
    proc = alert.process
    what = {"programs": "new program", "files": "file outside the learned templates",
            "peers": "new peer", "listens": "new listening address"}[alert.set_name]
    item = alert.item
    detail = safe(item.get("path") or alert.key, 300)
    if item.get("kind") == "exec" and item.get("argv"):
        detail += "  argv: " + " ".join(safe(a, 64) for a in item["argv"])
    if alert.children_only:
        what += " (only its child processes touched it in training; this is the root process)"
    if alert.fleet_hosts:
        what += f" (never seen on any of the {alert.fleet_hosts:,} hosts it was pooled from)"
    return (f"{wall_time(alert.ts_ns)} ALERT #{alert.id} {safe(alert.binary)}: "
            f"{safe(proc.comm)}[{proc.pid}] tid {alert.tid} touched a {what}: {detail}"
            + (f" (learned as {safe(alert.key, 300)})" if alert.set_name == "files" else ""))


def touched_repeat_text(repeat: TouchedRepeat) -> str:
    keys = ", ".join(f"{safe(k, 120)} x{n}" for k, n in list(repeat.keys.items())[:8])
    more = f", +{len(repeat.keys) - 8} more" if len(repeat.keys) > 8 else ""
    return (f"{wall_time(repeat.last_ns)} +{repeat.occurrences} touched in {repeat.period_s:g} s "
            f"(alert #{repeat.alert_id}, {safe(repeat.process.comm)}[{repeat.process.pid}]): "
            f"{keys}{more}")


def window_text(touched: dict) -> list[str]:
    """Lines listing what a window touched (for alert_text)."""
    lines = []
    if touched.get("files"):
        lines.append("  files: " + ", ".join(safe(p, 200) for p in touched["files"][:10])
                     + (f" (+{len(touched['files']) - 10} more)" if len(touched["files"]) > 10
                        else ""))
    if touched.get("programs"):
        lines.append("  programs: " + ", ".join(safe(p, 200) for p in touched["programs"]))
    if touched.get("peers"):
        lines.append("  peers: " + ", ".join(
            f"{p['direction']} {safe(p.get('protocol') or '?', 20)} "
            f"{safe(p['address'], 200)}{':' + str(p['port']) if p.get('port') else ''}"
            for p in touched["peers"][:10]))
    return lines
