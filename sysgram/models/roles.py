"""Roles: the parts a binary's threads play, told apart by their names, and which of them
training saw start only once.

How profiles treat roles (docs/design.md, "Roles and periodic work"): one window profile
and one stream profile per binary, pooled over its roles. A role's windows are local
behaviour built from the same runtime (libc, the language's VM) as the others', and a
short training gives a rare role too few windows for a model of its own; the novelty
rule (models/policy.py) judges every window against what *any* role did. What pooling
cannot tell is whether training saw a role's work recur: a checkpointer, a log rotator,
a child started every few minutes may have run once, or never, while training recorded.

So training summarises roles: per thread name, its threads and calls and how many
separate *runs* started its threads (starts more than RUN_GAP_S apart are separate
runs; threads alive from the recording's start, or for most of it, are *resident*). A
role that is not resident and ran once is work whose period training cannot know: the
profile has seen one run of it, and the next run may do what that one did not. Training
names such roles (`once_seen_warnings`), the profile header keeps the summary, and
`profiles show` lists it.

Thread start-up is work of its own: a thread's first calls (its libc's `rseq`,
`set_robust_list`, a stack guard) come only when one starts. A server that started no
thread or process while training (a database whose connection threads were all pooled
already) makes those calls first when watched, and they are new to its profile. Recordings
mark each thread `created` (its fork/clone was seen) or already running, so training
counts the threads started while it recorded and says when there were none
(`startup_warnings`). A periodic job that never ran while training is invisible to
any summary: `train --until-stable` and the novelty curve say when learning has settled,
and `watch --learn` keeps learning from windows that pass the policy.
"""

from __future__ import annotations

import numpy as np

RUN_GAP_S = 5.0          # thread starts further apart than this belong to separate runs
RESIDENT_SHARE = 0.5     # a thread alive this share of the training is resident
MIN_SPAN_S = 4 * RUN_GAP_S  # shorter trainings cannot tell one run from several
MAX_ROLES = 32           # roles kept in the header (the busiest first)


def summarise_roles(threads: list) -> dict | None:
    """{"span_s", "roles": [{"name", "threads", "calls", "runs", "resident",
    "first_start_s"}], "roles_total", "threads_created"} of recorded thread traces; None
    when they carry no start times (imported corpora). `threads_created` counts the
    threads started while recording; None when the recording does not say (older ones)."""
    timed = [t for t in threads if t.start_ns]
    if not timed:
        return None
    begin = min(t.start_ns for t in timed)
    end = max(max(t.end_ns or t.start_ns, t.start_ns) for t in timed)
    span_s = (end - begin) / 1e9
    by_name: dict[str, list] = {}
    for t in timed:
        by_name.setdefault(t.comm or "?", []).append(t)
    roles = [_role(name, members, begin, span_s) for name, members in by_name.items()]
    roles.sort(key=lambda r: -r["calls"])
    marked = [t for t in timed if t.created is not None]
    created = sum(1 for t in marked if t.created) if marked else None
    return {"span_s": round(span_s, 1), "roles": roles[:MAX_ROLES],
            "roles_total": len(roles), "threads_created": created,
            "multithreaded": multithreaded(threads)}


def multithreaded(threads: list) -> bool:
    """Whether some process of the recorded threads ran more than one thread: the binary
    starts threads, whether or not training saw one start (defaults.THREAD_LIFECYCLE_SYSCALLS)."""
    tids_of: dict[int, set[int]] = {}
    for t in threads:
        tids_of.setdefault(t.pid, set()).add(t.tid)
    return any(len(tids) > 1 for tids in tids_of.values())


def _role(name: str, members: list, begin: int, span_s: float) -> dict:
    members = sorted(members, key=lambda t: t.start_ns)
    starts = np.array([(t.start_ns - begin) / 1e9 for t in members])
    lived = np.array([((t.end_ns or t.start_ns) - t.start_ns) / 1e9 for t in members])
    # Resident: there when recording began (marked already running, or, in recordings that
    # do not mark it, first seen in its first second), or alive most of the training.
    early = np.array([t.created is False if t.created is not None else s <= 1.0
                      for t, s in zip(members, starts, strict=True)], dtype=bool)
    resident = bool(np.any(early) or np.any(lived >= RESIDENT_SHARE * span_s))
    transient = np.sort(starts[~early & (lived < RESIDENT_SHARE * span_s)])
    runs = int(1 + np.count_nonzero(np.diff(transient) > RUN_GAP_S)) if len(transient) else 0
    return {"name": name, "threads": len(members), "calls": int(sum(len(t.ids) for t in members)),
            "runs": runs, "resident": resident, "first_start_s": round(float(starts[0]), 1)}


def merge_roles(previous: dict | None, new: dict | None) -> dict | None:
    """The summary of a profile trained on `previous`'s recordings and then `new`'s
    (`train --append`): runs add up, a role resident in either is resident."""
    if not previous or not new:
        return new or previous
    merged = {r["name"]: dict(r) for r in previous["roles"]}
    for r in new["roles"]:
        old = merged.get(r["name"])
        if old is None:
            merged[r["name"]] = dict(r)
            continue
        for key in ("threads", "calls", "runs"):
            old[key] += r[key]
        old["resident"] = old["resident"] or r["resident"]
    roles = sorted(merged.values(), key=lambda r: -r["calls"])
    counts = [s.get("threads_created") for s in (previous, new)]
    created = None if None in counts else sum(counts)
    return {"span_s": round(previous["span_s"] + new["span_s"], 1), "roles": roles[:MAX_ROLES],
            "roles_total": len(roles), "threads_created": created,
            "multithreaded": any(s.get("multithreaded", False) for s in (previous, new))}


def once_seen(summary: dict | None) -> list[dict]:
    """Roles that are not resident and started in one run only, in a training long
    enough to have seen a second."""
    if not summary or summary["span_s"] < MIN_SPAN_S:
        return []
    return [r for r in summary["roles"] if not r["resident"] and r["runs"] == 1]


def once_seen_warnings(summary: dict | None) -> list[str]:
    """One sentence per once-seen role, with the fix."""
    return [f"thread role '{r['name']}' ran once while training ({r['threads']} threads "
            f"starting at {r['first_start_s']:g} s of {summary['span_s']:g} s): if it is "
            "periodic work, the profile has seen one run of it and the next may alert; "
            "train across two or more of its runs (a longer --duration, or `train --append` "
            "with a later recording)."
            for r in once_seen(summary)]


def saw_no_thread_start(summary: dict | None) -> bool:
    """Whether the recordings say that no thread started while training (unknown: False)."""
    return bool(summary) and summary.get("threads_created") == 0


def startup_warnings(summary: dict | None) -> list[str]:
    """One sentence, with the fix, when the recording says no thread started while training."""
    if not saw_no_thread_start(summary):
        return []
    later = ("what a thread the server starts later does first may be new to the profile "
             "(its start and exit calls are known: the binary ran several threads)"
             if summary.get("multithreaded") else
             "a thread or process the server starts later begins with calls training never "
             "saw (its start-up: rseq, set_robust_list, ...)")
    return ["no thread or process started while training (every one was already running): "
            f"{later} and may alert; train across new connections or a restart of the "
            "server (a longer --duration, or `train --append` with a later recording)."]
