"""What the demo shows on the terminal: steps, the live watch line, the alert, the summary.

The only module of the demo that prints.
"""

from __future__ import annotations

import sys
import textwrap

from sysgram.demo.scenario import DemoResult
from sysgram.sanitize import for_terminal as safe

LATENCY_GOAL_S = 1.0


class Console:
    def __init__(self, stream=None) -> None:
        self.out = stream or sys.stdout
        self.tty = self.out.isatty()
        self._step = 0
        self._last_watch_line = -1.0

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.tty else text

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def step(self, title: str) -> None:
        self._step += 1
        self._print()
        self._print(self._style(f"[{self._step}] {title}", "1"))

    def info(self, text: str) -> None:
        self._print(f"    {text}")

    def watching(self, elapsed: float, total: float, requests: int, alerts: int) -> None:
        line = (f"    watching: {elapsed:4.0f}/{total:g} s, {requests} normal requests served, "
                f"{alerts} alert{'s' if alerts != 1 else ''}")
        if self.tty:
            end = "\n" if elapsed >= total else ""
            print(f"\r{line}", end=end, file=self.out, flush=True)
        elif elapsed >= total or elapsed - self._last_watch_line >= 10:
            self._last_watch_line = elapsed
            self._print(line)

    def alert(self, record: dict) -> None:
        self._print()
        for line in render_alert(record):
            self._print(self._style(line, "31") if line.startswith("ALERT") else line)

    def attack_alerts(self, records: list[dict], limit: int = 8) -> None:
        lines = render_attack_alerts(records)
        if len(lines) > 1:
            self._print()
            self._print(f"    all alerts after the attack ({len(lines)}):")
            for line in lines[:limit]:
                self._print(f"      {line}")
            if len(lines) > limit:
                self._print(f"      … and {len(lines) - limit} more (see the alerts file)")

    def summary(self, result: DemoResult) -> None:
        self.attack_alerts(result.attack_alerts)
        if result.watch_summary:
            self._print()
            self._print("    sysgram watch's own summary:")
            for line in result.watch_summary:
                self._print(f"      {line}")
        self.step("Summary")
        for line in render_summary(result):
            self._print(f"    {line}")


def render_alert(record: dict) -> list[str]:
    """The alert as a person reads it: who, how anomalous, and what was new."""
    window = record.get("window") or {}
    calls = list(window.get("syscalls") or [])
    unseen = set(window.get("unseen") or [])
    marked = " ".join(_runs([f"*{c}*" if i in unseen else c for i, c in enumerate(calls)]))
    # Names come from the watched processes: escaped before they reach the terminal.
    who = f"{safe(record.get('binary'))} pid {record.get('pid')} tid {record.get('tid')}"
    if record.get("comm") and record.get("comm") != record.get("binary"):
        who += f" (now running '{safe(record.get('comm'))}')"
    if record.get("ppid"):
        who += f", parent {record.get('ppid')}"
    lines = [
        f"ALERT {record.get('time', '')}  {who}",
        f"    score {record.get('score', 0):.3f} above threshold {record.get('threshold', 0):.3f}",
    ]
    if record.get("new_syscalls"):
        lines.append("    system calls this binary never made in training: "
                     + ", ".join(record["new_syscalls"]))
    ngrams = window.get("unseen_ngrams") or []
    if ngrams:
        shown = "; ".join(" ".join(g) for g in ngrams[:6])
        more = f" (+{len(ngrams) - 6} more)" if len(ngrams) > 6 else ""
        lines.append(f"    sequences never seen in training: {shown}{more}")
    if marked:
        lines.append("    the window (*marked* calls are in sequences never seen in training):")
        lines += textwrap.wrap(marked, width=96, initial_indent="      ",
                               subsequent_indent="      ")
    return lines


def _runs(names: list[str]) -> list[str]:
    """Collapse repeats: ['a', 'b', 'b', 'b'] -> ['a', 'b×3']."""
    out: list[str] = []
    count = 0
    for i, name in enumerate(names):
        count += 1
        if i + 1 == len(names) or names[i + 1] != name:
            out.append(name if count == 1 else f"{name}×{count}")
            count = 0
    return out


def render_attack_alerts(records: list[dict]) -> list[str]:
    """One line per alert the attack raised: which process, and what it did that was new."""
    lines = []
    for r in records:
        if r.get("kind") != "alert":
            continue
        head = f"{r.get('time', '')[11:23]}  pid {r.get('pid')} ({safe(r.get('comm'))}), "
        if r.get("scope") == "touched":     # what it touched: no score, a new item
            new = r.get("new") or {}
            lines.append(head + f"touched new {safe(new.get('set', '?'))}: "
                         f"{safe(new.get('key', '?'), 120)}")
            continue
        new = ", ".join(r.get("new_syscalls") or []) or "unseen sequences"
        lines.append(head + f"{r.get('scope', 'window')} score {r.get('score', 0):.3f}: {new}")
    return lines


def render_summary(result: DemoResult) -> list[str]:
    attack = result.attack
    counts = result.watch_counts
    windows = counts.get("windows scored", counts.get("windows"))
    lines = [
        f"normal requests while watching: {result.requests_watched} in "
        f"{result.watched_seconds:.0f} s ({result.load_errors} failed)",
        f"windows scored by sysgram watch: {windows if windows is not None else 'not reported'}",
        f"false alarms during normal traffic: {len(result.false_alarms)} (goal 0)",
    ]
    if attack is None:
        lines.append("attack: did not run")
    else:
        done = []
        if attack.connected_at is not None:
            done.append("shell spawned, reverse connection to the listener")
        if attack.secret_stolen:
            done.append("secret stolen")
        lines.append(f"attack: {', '.join(done) if done else 'failed (the shell never connected)'}")
    if result.detection_latency_s is not None:
        verdict = "ok" if result.detection_latency_s <= LATENCY_GOAL_S else "slower than the goal"
        lines.append(f"time from attack to alert: {result.detection_latency_s:.2f} s "
                     f"(goal ≤ {LATENCY_GOAL_S:g} s, {verdict})")
    else:
        lines.append("time from attack to alert: no alert (no window of the attack scored "
                     "above the profile's threshold; see 'Limits' in docs/demo.md)")
    alerts = [r for r in result.attack_alerts if r.get("kind") == "alert"]
    repeats = [r for r in result.attack_alerts if r.get("kind") == "repeat"]
    folded = sum(int(r.get("windows", 0)) for r in repeats)
    if alerts:
        lines.append(f"alerts for the attack: {len(alerts)} "
                     f"(+{folded} anomalous windows folded in)")
    for record in result.false_alarms[:3]:
        lines.append("false alarm: " + render_alert(record)[0].removeprefix("ALERT "))
    verdict = "CAUGHT, no false alarm" if result.ok else "FAILED"
    if not result.ok:
        verdict += f" (files kept in {result.workdir})"
    lines.append(f"result: {verdict}")
    return lines
