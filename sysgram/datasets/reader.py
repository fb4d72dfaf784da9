"""Dataset: open a recording (or an imported corpus) as a list of ThreadTraces.

Opening never fails on damage the writer could have left (a torn tail after kill -9, a
stopped writer, a corrupt stretch): it reads what is intact and says what was dropped in
`warnings`. It fails with a UserError only when there is nothing to read (no dataset,
unreadable metadata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sysgram.datasets import format as fmt
from sysgram.datasets.log import Damage, Record, scan
from sysgram.datasets.meta import STATUS_COMPLETE, STATUS_FAILED, STATUS_RECORDING, read_meta
from sysgram.datasets.summary import summarise
from sysgram.datasets.trace import ThreadTrace
from sysgram.errors import UserError

_TEXT_FIELDS = ("comm", "exe", "exe_sha256", "label", "family", "split", "source", "target",
                "cgroup", "container")
_INT_FIELDS = ("ppid", "start_ns")
# No real loss comes near this; larger counts come from damage and are clamped.
MAX_GAP = 1 << 40


@dataclass
class _Building:
    """A trace being assembled from records."""

    tid: int
    pid: int
    info: dict = field(default_factory=dict)
    pieces: list[np.ndarray] = field(default_factory=list)
    length: int = 0  # ids held (gap positions refer to these)
    stream: int = 0  # the writer's position: ids held plus ids lost to damaged records
    gaps: list[tuple[int, int]] = field(default_factory=list)
    end_ns: int | None = None

    def add_gap(self, lost: int) -> None:
        # A corrupt count must not overflow the int64 gap table or its sums.
        self.gaps.append((self.length, min(lost, MAX_GAP)))


@dataclass
class _Assembly:
    traces: list[_Building] = field(default_factory=list)
    current: dict[int, _Building] = field(default_factory=dict)
    notes: list[dict] = field(default_factory=list)
    touched: list[dict] = field(default_factory=list)
    missing_events: int = 0  # events known lost to damaged records
    bad_records: int = 0  # intact records with unusable content
    unknown_kinds: int = 0


class Dataset:
    """A dataset on disk, read whole: `threads` in order of their first record."""

    def __init__(self, path: Path, meta: dict, threads: list[ThreadTrace],
                 warnings: list[str], notes: list[dict] | None = None,
                 touched: list[dict] | None = None) -> None:
        self.path = Path(path)
        self.meta = meta
        self.threads = threads
        self.warnings = warnings
        self.notes = notes or []
        # What threads touched, in log order: the payload's fields plus tid, pid, ts_ns,
        # position (where in the thread's trace) and path as faithful text.
        self.touched = touched or []

    @property
    def arch(self) -> str:
        return self.meta["arch"]

    @classmethod
    def open(cls, path: Path) -> Dataset:
        """Read the dataset at `path`; warnings (not errors) for damage it survived."""
        path = Path(path)
        meta = read_meta(path)
        warnings = _status_warnings(meta)
        buf = _read_log(path, warnings)
        result = scan(buf)
        assembly = _assemble(buf, result.records)
        threads = [_finish(b, meta["arch"]) for b in assembly.traces]
        warnings += _damage_warnings(result.damage, result.gave_up_at, assembly)
        warnings += _count_warnings(meta, threads, len(result.records))
        return cls(path, meta, threads, warnings, assembly.notes, assembly.touched)

    def summary(self, top: int = 10) -> dict:
        """Threads, processes, syscalls, top syscalls, losses, duration, labels, warnings."""
        return summarise(self, top=top)


def _read_log(path: Path, warnings: list[str]) -> bytes:
    log_path = path / fmt.LOG_FILE
    try:
        return log_path.read_bytes()
    except FileNotFoundError:
        warnings.append(f"{log_path} is missing: the dataset holds no events.")
        return b""
    except OSError as exc:
        raise UserError(f"cannot read {log_path} ({exc.strerror or exc}); check the file and "
                        "its permissions.") from None


def _status_warnings(meta: dict) -> list[str]:
    status = meta.get("status")
    if status == STATUS_RECORDING:
        return ["the recording was not closed (the recorder is still running, or was killed "
                "or crashed): showing everything it had flushed."]
    if status == STATUS_FAILED:
        return [f"the recording stopped on an error: {meta.get('error', 'unknown error')}"]
    if status != STATUS_COMPLETE:
        return [f"meta.json has an unknown status {status!r}; reading the log anyway."]
    return []


def _assemble(buf: bytes, records: list[Record]) -> _Assembly:
    asm = _Assembly()
    for rec in records:
        if rec.kind == fmt.THREAD_START:
            _on_start(asm, rec, _json_payload(buf, rec, asm))
        elif rec.kind == fmt.EVENTS:
            _on_events(asm, rec, buf)
        elif rec.kind == fmt.GAP:
            _on_gap(asm, rec, buf)
        elif rec.kind == fmt.THREAD_END:
            _on_end(asm, rec, _json_payload(buf, rec, asm))
        elif rec.kind == fmt.NOTE:
            note = _json_payload(buf, rec, asm)
            if note is not None:
                asm.notes.append(note)
        elif rec.kind == fmt.TOUCHED:
            touched = _json_payload(buf, rec, asm)
            if touched is not None:
                touched = fmt.with_faithful_path(touched)
                touched.update(tid=rec.tid, pid=rec.pid, ts_ns=rec.ts_ns or None,
                               position=rec.position)
                asm.touched.append(touched)
        else:
            asm.unknown_kinds += 1
    return asm


def _json_payload(buf: bytes, rec: Record, asm: _Assembly) -> dict | None:
    try:
        value = json.loads(bytes(buf[rec.offset : rec.offset + rec.length]))
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        asm.bad_records += 1
        return None
    return value


def _thread(asm: _Assembly, rec: Record) -> _Building:
    """The open trace of the record's tid; events without a start open an anonymous one."""
    building = asm.current.get(rec.tid)
    if building is None:
        building = _Building(rec.tid, rec.pid)
        asm.traces.append(building)
        asm.current[rec.tid] = building
    return building


def _on_start(asm: _Assembly, rec: Record, info: dict | None) -> None:
    building = _Building(rec.tid, rec.pid, info=info or {})
    asm.traces.append(building)
    asm.current[rec.tid] = building


def _catch_up(asm: _Assembly, building: _Building, position: int) -> None:
    """A record says the writer's trace is `position` long: events in between were lost."""
    if position > building.stream:
        missing = position - building.stream
        asm.missing_events += missing
        building.add_gap(missing)
        building.stream = position


def _on_events(asm: _Assembly, rec: Record, buf: bytes) -> None:
    building = _thread(asm, rec)
    if rec.length % fmt.IDS_DTYPE.itemsize:
        asm.bad_records += 1
        return
    _catch_up(asm, building, rec.position)
    ids = np.frombuffer(buf, fmt.IDS_DTYPE, count=rec.length // 2, offset=rec.offset)
    building.pieces.append(ids)
    building.length += len(ids)
    building.stream = max(building.stream, rec.position) + len(ids)


def _on_gap(asm: _Assembly, rec: Record, buf: bytes) -> None:
    building = _thread(asm, rec)
    if rec.length != fmt.GAP_DTYPE.itemsize:
        asm.bad_records += 1
        return
    _catch_up(asm, building, rec.position)
    lost = int(np.frombuffer(buf, fmt.GAP_DTYPE, count=1, offset=rec.offset)[0])
    building.add_gap(lost)


def _on_end(asm: _Assembly, rec: Record, info: dict | None) -> None:
    building = asm.current.pop(rec.tid, None)
    if building is None or info is None:
        return
    building.end_ns = _int_or_none(info.get("end_ns"))
    total = _int_or_none(info.get("syscalls"))
    if total is not None:
        _catch_up(asm, building, total)


def _int_or_none(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _finish(b: _Building, arch: str) -> ThreadTrace:
    info = b.info
    texts = {k: info[k] if isinstance(info.get(k), str) else None for k in _TEXT_FIELDS}
    ints = {k: _int_or_none(info.get(k)) for k in _INT_FIELDS}
    created, watched_parent = (info.get(k) if isinstance(info.get(k), bool) else None
                               for k in ("created", "watched_parent"))
    # concatenate copies: native order, and nothing keeps the log buffer alive.
    ids = np.concatenate(b.pieces, dtype=np.uint16) if b.pieces else np.zeros(0, np.uint16)
    gaps = np.array(b.gaps, dtype=np.int64).reshape(-1, 2)
    return ThreadTrace(tid=b.tid, pid=b.pid, end_ns=b.end_ns, ids=ids, gaps=gaps,
                       arch=arch, created=created, watched_parent=watched_parent,
                       **texts, **ints)


def _damage_warnings(damage: list[Damage], gave_up_at: int | None, asm: _Assembly) -> list[str]:
    out = []
    for d in damage:
        if d.at_tail:
            what = ("1 incomplete record" if d.header_kind is not None
                    else "no complete record")
            out.append(f"{fmt.LOG_FILE} has a torn tail: dropped the last {d.length} bytes "
                       f"({what}); everything before them was read.")
        else:
            out.append(f"{fmt.LOG_FILE} is damaged: skipped {d.length} bytes at offset "
                       f"{d.offset}; the records after them were read.")
    if gave_up_at is not None:
        out.append(f"{fmt.LOG_FILE} is damaged beyond offset {gave_up_at}; stopped reading "
                   "there.")
    if asm.missing_events:
        out.append(f"{asm.missing_events} syscall events were in damaged records; they are "
                   "marked as gaps in their threads.")
    if asm.bad_records:
        out.append(f"{asm.bad_records} records had unreadable content and were skipped.")
    if asm.unknown_kinds:
        out.append(f"{asm.unknown_kinds} records of a kind this sysgram does not know were "
                   "skipped; upgrade sysgram to read them.")
    return out


def _count_warnings(meta: dict, threads: list[ThreadTrace], records: int) -> list[str]:
    """A closed dataset whose log no longer matches meta.json's counts was cut or changed."""
    counts = meta.get("counts")
    if meta.get("status") != STATUS_COMPLETE or not isinstance(counts, dict):
        return []
    found = {"syscalls": sum(len(t.ids) for t in threads), "records": records}
    return [
        f"meta.json counts {counts[key]} {key} but the log holds {found[key]}; the log was "
        "cut or changed after the recording closed."
        for key in ("syscalls", "records")
        if isinstance(counts.get(key), int) and counts[key] != found[key]
    ]
