"""Scanning a chunk log into valid records, tolerating a torn tail and damaged stretches.

Each record is checked (magic, 16-bit header check, bounds, payload crc32). After a bad
one the scanner looks for the next valid record on the 8-byte grid, so damage in the
middle costs only the records it touched. What was skipped is reported, never hidden.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from sysgram.datasets import format as fmt

# Resynchronising checks payload crcs of candidate records; a hostile file could make
# that quadratic, so the work is capped at a few passes over the file.
RESYNC_BUDGET_FACTOR = 4


@dataclass(frozen=True)
class Record:
    kind: int
    tid: int
    pid: int
    ts_ns: int
    position: int
    offset: int  # of the payload in the log
    length: int  # payload bytes


@dataclass
class Damage:
    """A stretch of the log that held no valid record."""

    offset: int
    length: int
    at_tail: bool
    # When the stretch starts with an intact header whose payload is cut or corrupt:
    header_kind: int | None = None
    header_tid: int | None = None
    header_length: int | None = None


@dataclass
class ScanResult:
    records: list[Record] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    gave_up_at: int | None = None  # resync budget exhausted at this offset


def _header_at(buf: bytes, pos: int):
    """The unpacked header at `pos` if its magic, check and kind hold, else None."""
    if pos + fmt.HEADER_SIZE > len(buf) or buf[pos : pos + 4] != fmt.MAGIC:
        return None
    raw = bytes(buf[pos : pos + fmt.HEADER_SIZE])
    fields = fmt.HEADER.unpack(raw)
    _magic, kind, _flags, check, tid, pid, ts_ns, position, length, crc = fields
    if check != fmt.header_check(raw) or length > fmt.MAX_PAYLOAD:
        return None
    return kind, tid, pid, ts_ns, position, length, crc


def _record_at(buf: bytes, pos: int) -> tuple[Record | None, int]:
    """(the valid record at `pos` or None, payload bytes crc-checked to find out)."""
    header = _header_at(buf, pos)
    if header is None:
        return None, 0
    kind, tid, pid, ts_ns, position, length, crc = header
    start = pos + fmt.HEADER_SIZE
    if start + fmt.padded(length) > len(buf):
        return None, 0
    if zlib.crc32(memoryview(buf)[start : start + length]) != crc:
        return None, length
    return Record(kind, tid, pid, ts_ns, position, start, length), length


def scan(buf: bytes) -> ScanResult:
    """All valid records of a chunk log, in order, and the damaged stretches between them."""
    result = ScanResult()
    budget = RESYNC_BUDGET_FACTOR * len(buf) + (1 << 20)
    pos, end = 0, len(buf)
    while pos < end:
        record, _ = _record_at(buf, pos)
        if record is not None:
            result.records.append(record)
            pos = record.offset + fmt.padded(record.length)
            continue
        nxt, budget = _resync(buf, pos + fmt.ALIGN, budget)
        result.damage.append(_damage(buf, pos, nxt))
        if nxt is None:
            if budget <= 0:
                result.gave_up_at = pos
            break
        pos = nxt
    return result


def _resync(buf: bytes, start: int, budget: int) -> tuple[int | None, int]:
    """The offset of the next valid aligned record at or after `start`, and budget left."""
    cand = buf.find(fmt.MAGIC, start)
    while cand != -1 and budget > 0:
        if cand % fmt.ALIGN == 0:
            record, cost = _record_at(buf, cand)
            budget -= cost + fmt.HEADER_SIZE
            if record is not None:
                return cand, budget
        cand = buf.find(fmt.MAGIC, cand + 1)
    return None, budget


def _damage(buf: bytes, pos: int, nxt: int | None) -> Damage:
    end = len(buf) if nxt is None else nxt
    damage = Damage(offset=pos, length=end - pos, at_tail=nxt is None)
    header = _header_at(buf, pos)
    if header is not None:
        damage.header_kind, damage.header_tid = header[0], header[1]
        damage.header_length = header[5]
    return damage
