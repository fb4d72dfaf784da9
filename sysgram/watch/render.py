"""Text for a terminal: alerts, repeats, the status line and the summary (strings only).

Every piece of text that came from a watched process (names, paths, comm) goes through
`for_terminal`; the only escape sequences in the output are the ones added here for
emphasis when the caller asks for colour.
"""

from __future__ import annotations

from sysgram.sanitize import for_terminal as safe
from sysgram.watch.alerts import Alert, Repeat, wall_time
from sysgram.watch.engine import WatchStats
from sysgram.watch.session import Status
from sysgram.watch.touched import touched_repeat_text, touched_text, window_text

_BOLD_RED, _RESET = "\x1b[1;31m", "\x1b[0m"


def _who(pid: int, comm: str | None) -> str:
    return f"{safe(comm)}[{pid}]"


def _window_text(alert: Alert, colour: bool) -> str:
    """The window's calls; runs of calls inside unseen n-grams are bracketed (or red)."""
    exp = alert.explanation
    runs: list[tuple[bool, list[str]]] = []
    for name, marked in zip(exp.syscalls, exp.marked(), strict=True):
        if not runs or runs[-1][0] != marked:
            runs.append((marked, []))
        runs[-1][1].append(safe(name, 40))
    opening, closing = (_BOLD_RED, _RESET) if colour else ("[", "]")
    return " ".join(
        f"{opening}{' '.join(names)}{closing}" if marked else " ".join(names)
        for marked, names in runs
    )


def alert_text(alert: Alert, colour: bool = False) -> str:
    if alert.scope == "touched":
        return touched_text(alert)
    proc, exp = alert.process, alert.explanation
    ppid = "?" if proc.ppid is None else proc.ppid
    whole = alert.scope == "thread"
    what = f"whole thread ({alert.stream_calls:,} calls) scored" if whole else "score"
    lines = [
        f"{wall_time(alert.ts_ns)} ALERT #{alert.id} {safe(alert.binary)}: "
        f"{_who(proc.pid, proc.comm)} tid {alert.tid} ppid {ppid} "
        f"{what} {alert.score:.4g} > threshold {alert.threshold:.4g}",
    ]
    if proc.exe:
        lines.append(f"  exe: {safe(proc.exe, 300)}")
    if proc.group != proc.pid:
        lines.append(f"  forked from watched process {proc.group}")
    if exp.syscalls and whole:
        lines.append("  calls used: " + " ".join(safe(n, 40) for n in exp.syscalls))
    elif exp.syscalls:
        marked = exp.unseen_spans and not colour
        note = " (in [ ]: n-grams never seen in training)" if marked else ""
        lines.append(f"  window{note}: {_window_text(alert, colour)}")
    if exp.unseen_ngrams:
        grams = ", ".join(" ".join(safe(c, 40) for c in g) for g in exp.unseen_ngrams[:8])
        more = f" (+{len(exp.unseen_ngrams) - 8} more)" if len(exp.unseen_ngrams) > 8 else ""
        lines.append(f"  unseen n-grams: {grams}{more}")
    if exp.new_syscalls:
        lines.append("  new to this binary: " + ", ".join(safe(n, 40) for n in exp.new_syscalls))
    if exp.fleet is not None:
        lines.append(fleet_text(exp.fleet, bool(exp.unseen_ngrams)))
    if exp.thread_start:
        lines.append("  note: these are the first calls of a thread started while watched, "
                     "and training saw no thread start; train across thread starts "
                     "(new connections, a restart) to learn them")
    if alert.touched:
        lines += window_text(alert.touched)
    return "\n".join(lines)


def repeat_text(repeat: Repeat) -> str:
    if getattr(repeat, "scope", "") == "touched":
        return touched_repeat_text(repeat)
    scope = (
        f"alert #{repeat.alert_id}, {_who(repeat.process.pid, repeat.process.comm)}"
        if repeat.alert_id is not None
        else f"{len(repeat.pids)} processes in a burst"
    )
    tids = ", ".join(str(t) for t in sorted(repeat.tids)[:10])
    tids += ", …" if len(repeat.tids) > 10 else ""
    new = ", ".join(safe(n, 40) for n in repeat.new_syscalls)
    return (
        f"{wall_time(repeat.last_ns)} +{repeat.windows} windows in {repeat.period_s:g} s "
        f"({scope}; tids {tids}; max score {repeat.max_score:.4g})"
        + (f"; new: {new}" if new else "")
    )


def status_text(binary: str, status: Status) -> str:
    top = "-" if status.max_score == float("-inf") else f"{status.max_score:.3g}"
    unscored = f" ({status.unscored:,} windows unscored)" if status.unscored else ""
    return (
        f"watching {safe(binary)} {status.elapsed_s:,.0f}s: {status.processes} processes, "
        f"{status.threads} threads, {status.windows_per_s:,.0f} windows/s, "
        f"max score {top}/{status.threshold:.3g}, {status.alerts} alerts, "
        f"{status.lost:,} events lost{unscored}"
    )


def summary_text(binary: str, stats: WatchStats, elapsed_s: float, lost: int, reason: str) -> str:
    why = {"signal": "stopped", "duration": "duration reached", "alert": "alert seen",
           "max-alerts": "alert limit reached"}.get(reason, reason)
    lines = [
        f"sysgram watch {safe(binary)}: {why} after {elapsed_s:,.1f} s",
        f"  {stats.windows_scored:,} windows scored, {stats.anomalous_windows:,} anomalous: "
        f"{stats.alerts:,} alerts, {stats.repeats:,} repeat records",
        f"  {stats.windows_warmup:,} windows in warm-up, {stats.windows_unscored_loss:,} "
        f"unscored after losses; {lost:,} events lost",
        f"  {stats.events:,} syscalls from {stats.processes_seen:,} processes, "
        f"{stats.threads_seen:,} threads",
    ]
    if stats.streams_judged or stats.streams_too_long:
        lines.append(f"  {stats.streams_judged:,} ended threads judged whole, "
                     f"{stats.streams_anomalous:,} anomalous; {stats.streams_too_long:,} too "
                     "long to judge whole")
    if stats.learned_windows or stats.learning_refused:
        lines.append(f"  learned from {stats.learned_windows:,} windows; "
                     f"{stats.learning_refused:,} not learned (above the threshold or "
                     "holding something training never saw)")
    if stats.lost_unattributed or stats.unencodable_calls:
        lines.append(f"  {stats.lost_unattributed:,} lost events no thread could be named for "
                     f"(every stream cut there); {stats.unencodable_calls:,} calls with no "
                     "number in the profile's table")
    if stats.touched_new or stats.touched_lost:
        lines.append(f"  {stats.touched_new:,} touched records outside the learned sets; "
                     f"{stats.touched_lost:,} touched records lost")
    return "\n".join(lines)


def fleet_text(fleet: dict, unseen: bool) -> str:
    """One line of fleet context: an unseen n-gram was seen on none of the fleet's hosts;
    the rarest seen ones, on how many."""
    hosts = int(fleet.get("hosts") or 0)
    parts = [f"unseen n-grams seen on none of {hosts:,} hosts"] if unseen else []
    parts += [f"{' '.join(safe(c, 40) for c in r['ngram'])} on {int(r['hosts']):,} of "
              f"{hosts:,} hosts" for r in fleet.get("rarest_seen") or []]
    return "  fleet: " + ("; ".join(parts) if parts else f"{hosts:,} hosts pooled")
