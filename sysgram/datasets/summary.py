"""What a dataset holds, as one plain dict (for `sysgram datasets info`, text or JSON)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from sysgram.errors import UserError
from sysgram.syscalls import UNKNOWN_PREFIX, table

if TYPE_CHECKING:
    from sysgram.datasets.reader import Dataset


def summarise(dataset: Dataset, top: int = 10) -> dict:
    """Threads, processes, syscalls, top syscalls by name, losses, duration, labels, warnings."""
    threads = dataset.threads
    meta = dataset.meta
    syscalls = sum(len(t.ids) for t in threads)
    lost = sum(t.lost for t in threads)
    warnings = list(dataset.warnings)
    summary = {
        "path": str(dataset.path),
        "status": meta.get("status"),
        "source": meta.get("source"),
        "arch": dataset.arch,
        "host": meta.get("host"),
        "kernel": meta.get("kernel"),
        "created": meta.get("created"),
        "closed": meta.get("closed"),
        "target": meta.get("target"),
        "threads": len(threads),
        "processes": len({t.pid for t in threads if t.pid}),
        "syscalls": syscalls,
        "distinct_syscalls": 0,
        "top_syscalls": [],
        "losses": {
            "events": lost,
            "gaps": sum(len(t.gaps) for t in threads),
            "threads": sum(1 for t in threads if t.lost),
            "share": lost / (lost + syscalls) if lost + syscalls else 0.0,
        },
        "duration_s": _duration_s(dataset),
        "labels": _tally(t.label for t in threads),
        "families": _tally(t.family for t in threads),
        "splits": _tally(t.split for t in threads),
        "warnings": warnings,
    }
    if dataset.touched:
        summary["touched"] = summarise_touched(dataset.touched, top)
    if isinstance(meta.get("collector"), dict):
        summary["collector"] = meta["collector"]
    if syscalls:
        counts = np.bincount(np.concatenate([t.ids for t in threads]))
        summary["distinct_syscalls"] = int(np.count_nonzero(counts))
        summary["top_syscalls"] = _top(counts, syscalls, dataset.arch, top, warnings)
    return summary


def _top(counts: np.ndarray, total: int, arch: str, top: int, warnings: list[str]) -> list[dict]:
    order = np.argsort(counts, kind="stable")[::-1][:top]
    order = order[counts[order] > 0]
    try:
        name = table(arch).name
    except UserError as exc:
        warnings.append(f"syscall names unavailable ({exc.message})")

        def name(nr: int) -> str:
            return f"{UNKNOWN_PREFIX}{nr}"

    return [
        {"nr": int(nr), "name": name(int(nr)), "count": int(counts[nr]),
         "share": float(counts[nr]) / total}
        for nr in order
    ]


def _tally(values) -> dict[str, int]:
    return dict(Counter(v for v in values if v is not None).most_common())


def _duration_s(dataset: Dataset) -> float | None:
    """From the thread and event timestamps; None when there are none (imported corpora)."""
    stamps = [t.start_ns for t in dataset.threads if t.start_ns]
    stamps += [t.end_ns for t in dataset.threads if t.end_ns]
    ts_range = dataset.meta.get("ts_range_ns")
    if isinstance(ts_range, list):
        stamps += [v for v in ts_range if isinstance(v, int)]
    if len(stamps) < 2:
        return None
    return (max(stamps) - min(stamps)) / 1e9


def summarise_touched(touched: list[dict], top: int = 10) -> dict:
    """Records by kind, distinct files, programs and peers (most frequent first), losses."""
    kinds = Counter(str(t.get("kind")) for t in touched)
    files = Counter(t["path"] for t in touched if t.get("kind") == "open" and t.get("path"))
    programs = Counter(t["path"] for t in touched
                       if t.get("kind") == "exec" and t.get("path") and t.get("result") == 0)
    peers = Counter(_peer_text(t) for t in touched
                    if t.get("kind") in ("connect", "accept", "bind", "send")
                    and isinstance(t.get("peer"), dict))
    return {
        "records": sum(n for k, n in kinds.items() if k != "lost"),
        "by_kind": {k: n for k, n in kinds.most_common() if k != "lost"},
        "lost": sum(int(t.get("lost") or 0) for t in touched if t.get("kind") == "lost"),
        "distinct_files": len(files),
        "top_files": [{"path": p, "count": n} for p, n in files.most_common(top)],
        "programs": [{"path": p, "count": n} for p, n in programs.most_common(top)],
        "peers": [{"peer": p, "count": n} for p, n in peers.most_common(top)],
    }


def _peer_text(touched: dict) -> str:
    peer = touched["peer"]
    address, port = peer.get("address"), peer.get("port") or 0
    where = f"[{address}]:{port}" if peer.get("family") == "ipv6" else (
        f"{address}:{port}" if peer.get("family") == "ipv4" else str(address))
    return f"{touched.get('kind')} {where} {touched.get('protocol') or '?'}"
