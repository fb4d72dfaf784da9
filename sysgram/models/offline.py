"""Score a recording with a profile: every window and every thread, as plain data.

Threads are cut at losses first (no window spans missing events), so a thread's windows
are those of its loss-free pieces and its score is the roll-up over its pieces' scores
(the maximum, whatever the profile's roll-up, when a thread has several pieces).

Every verdict is `AlertPolicy`'s, as `watch` makes it: a window is anomalous by the window
policy (threshold and novelty), a thread when one of its windows is (watch alerts on
windows), and a thread's whole stream by the thread profile's policy (watch judges it
at the thread's end the same way).
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import max_by_group
from sysgram.models.policy import AlertPolicy
from sysgram.models.training_data import to_streams

MAX_EXPLAINED = 200  # anomalous windows explained in one result (the worst first)


def score_threads(profile, threads: list, thread_profile=None) -> dict:
    """{"threshold", "summary", "threads": [...], "windows": [...]} for a list of traces.

    With a `thread_profile` (whole streams), each thread also gets its `stream_score` and
    `stream_anomalous` verdict against that profile's thread threshold.
    """
    streams = to_streams(threads, profile.arch_)
    windows = profile.windows(streams.pieces)
    scores = profile.score_windows(windows.seqs)
    policy = AlertPolicy.for_windows(profile)
    alarms = policy.classify(profile, scores, windows.seqs).anomalous
    piece_scores = profile.score_threads(streams.pieces)
    thread_of_window = streams.thread_of_piece[windows.source]
    # Position of each piece's first call inside its thread, for window positions.
    piece_start = streams.pieces.offsets[:-1] - thread_first_offset(streams)
    n = streams.n_threads
    thread_score = max_by_group(piece_scores, streams.thread_of_piece, n)
    n_windows = np.bincount(thread_of_window, minlength=n)
    n_alarms = np.bincount(thread_of_window, weights=alarms, minlength=n).astype(int)
    cut = profile.thread_threshold_
    worst = np.argsort(-scores, kind="stable")[:MAX_EXPLAINED]
    explained = set(worst[alarms[worst]].tolist())
    out_windows = []
    for k in range(len(windows)):  # one entry per window (output, not per-call work)
        t = streams.threads[thread_of_window[k]]
        entry = {
            "tid": int(t.tid), "pid": int(t.pid),
            "start": int(piece_start[windows.source[k]] + windows.start[k]),
            "length": int(windows.seqs.lengths[k]),
            "score": float(scores[k]), "anomalous": bool(alarms[k]),
        }
        if k in explained:
            entry["explain"] = profile.explain(windows.seqs[k])
        out_windows.append(entry)
    out_threads = []
    for i, t in enumerate(streams.threads):
        s = float(thread_score[i]) if np.isfinite(thread_score[i]) else None
        out_threads.append({
            "tid": int(t.tid), "pid": int(t.pid), "comm": getattr(t, "comm", None),
            "calls": int(len(t.ids)), "lost": int(np.asarray(t.gaps).reshape(-1, 2)[:, 1].sum()),
            "windows": int(n_windows[i]), "anomalous_windows": int(n_alarms[i]), "score": s,
            "anomalous": bool(n_alarms[i]),
        })
    streams_summary = _stream_verdicts(thread_profile, streams, out_threads)
    return {
        "thread_profile": streams_summary,
        "profile": {"detector": profile.detector_name_, "window": profile.window_,
                    "stride": profile.stride_, "rollup": profile.rollup_name_},
        "threshold": float(profile.threshold_),
        "thread_threshold": None if cut is None else float(cut),
        "summary": {
            "threads": n, "windows": len(windows), "lost_events": streams.lost_events,
            "unencodable_calls": streams.unencodable,
            "anomalous_windows": int(alarms.sum()),
            "anomalous_threads": int(sum(t["anomalous"] for t in out_threads)),
            "processes": len({t["pid"] for t in out_threads}),
            "explained_windows": len(explained),
        },
        "processes": _processes(out_threads),
        "threads": out_threads,
        "windows": out_windows,
    }


def _stream_verdicts(thread_profile, streams, out_threads: list[dict]) -> dict | None:
    """Score each thread whole with the thread profile (the max over its loss-free pieces)."""
    if thread_profile is None:
        return None
    cut = thread_profile.thread_threshold_
    policy = AlertPolicy.for_threads(thread_profile)
    piece_scores = thread_profile.score_threads(streams.pieces)
    flagged = np.zeros(len(piece_scores), dtype=bool)
    if policy is not None:
        flagged = policy.classify(thread_profile, piece_scores, streams.pieces).anomalous
    best = max_by_group(piece_scores, streams.thread_of_piece, streams.n_threads)
    anomalous = np.bincount(streams.thread_of_piece, weights=flagged,
                            minlength=streams.n_threads) > 0
    for entry, value, alarm in zip(out_threads, best.tolist(), anomalous.tolist(), strict=True):
        entry["stream_score"] = value if np.isfinite(value) else None
        entry["stream_anomalous"] = bool(alarm)
    return {"detector": thread_profile.detector_name_,
            "threshold": None if cut is None else float(cut),
            "anomalous_threads": int(sum(t["stream_anomalous"] for t in out_threads))}


def _processes(threads: list[dict]) -> list[dict]:
    """Process roll-up: its worst thread; anomalous when any of its threads is."""
    by_pid: dict[int, dict] = {}
    for t in threads:
        p = by_pid.setdefault(t["pid"], {"pid": t["pid"], "threads": 0, "windows": 0,
                                         "anomalous_threads": 0, "score": None})
        p["threads"] += 1
        p["windows"] += t["windows"]
        p["anomalous_threads"] += int(t["anomalous"])
        if t["score"] is not None and (p["score"] is None or t["score"] > p["score"]):
            p["score"] = t["score"]
    for p in by_pid.values():
        p["anomalous"] = p["anomalous_threads"] > 0
    return list(by_pid.values())


def thread_first_offset(streams) -> np.ndarray:
    """For each piece, the flat offset where its thread's first piece starts."""
    offsets = streams.pieces.offsets[:-1]
    first_piece = np.searchsorted(streams.thread_of_piece, streams.thread_of_piece)
    return offsets[first_piece]
