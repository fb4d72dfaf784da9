"""The on-disk record layout of a dataset's chunk log (see docs/dataset-format.md).

A dataset directory holds `meta.json` and `chunks.log`. The log is a sequence of
records, each a fixed 40-byte little-endian header followed by its payload, zero-padded
to a multiple of 8 bytes so every header (and every u16 id array) stays aligned and a
reader can resynchronise on 8-byte boundaries after a corrupt stretch.

Only numpy, struct and zlib are used here: recording needs no ML stack.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

FORMAT_NAME = "sysgram-dataset"
FORMAT_VERSION = 1

META_FILE = "meta.json"
LOG_FILE = "chunks.log"

MAGIC = b"SGRC"
ALIGN = 8

# Record kinds.
THREAD_START = 1  # JSON: tid, pid, ppid, comm, exe, exe_sha256, start_ns, label, ...
EVENTS = 2  # u16 syscall ids; header `position` = index of the first one in the trace
GAP = 3  # u64 number of lost events; header `position` = where in the trace they fell
THREAD_END = 4  # JSON: tid, end_ns
NOTE = 5  # JSON: {"kind": ..., other fields} (exec events and the like)
TOUCHED = 6  # JSON: what the thread touched (file, program, peer); `position` as for GAP

KIND_NAMES = {
    THREAD_START: "thread_start",
    EVENTS: "events",
    GAP: "gap",
    THREAD_END: "thread_end",
    NOTE: "note",
    TOUCHED: "touched",
}

# The header. `check` is the low 16 bits of crc32 over the 40 header bytes with `check`
# zeroed: it lets a reader reject a false magic cheaply before touching the payload.
HEADER = struct.Struct("<4sBBHIIQQII")
HEADER_SIZE = HEADER.size  # 40
HEADER_DTYPE = np.dtype(
    [
        ("magic", "S4"),
        ("kind", "<u1"),
        ("flags", "<u1"),
        ("check", "<u2"),
        ("tid", "<u4"),
        ("pid", "<u4"),
        ("ts_ns", "<u8"),  # 0 = unknown
        ("position", "<u8"),
        ("length", "<u4"),  # payload bytes, before padding
        ("crc", "<u4"),  # crc32 of the payload
    ]
)
assert HEADER_DTYPE.itemsize == HEADER_SIZE

IDS_DTYPE = np.dtype("<u2")
GAP_DTYPE = np.dtype("<u8")

# A single record's payload never exceeds this (a writer splits larger id arrays):
# it bounds what a corrupt length field can make a reader look at.
MAX_PAYLOAD = 1 << 26  # 64 MiB = 32 Mi syscall ids


def padded(length: int) -> int:
    """Payload bytes on disk once padded to the 8-byte alignment."""
    return (length + ALIGN - 1) // ALIGN * ALIGN


def header_check(header: bytes) -> int:
    """The 16-bit header check of a 40-byte header (its `check` field is ignored)."""
    return zlib.crc32(header[:6] + b"\0\0" + header[8:HEADER_SIZE]) & 0xFFFF


def encode_record(
    kind: int, tid: int, pid: int, payload: bytes, *, ts_ns: int = 0, position: int = 0
) -> bytes:
    """One record, header + padded payload, ready to append to the log."""
    return b"".join(encode_record_parts(kind, tid, pid, [payload], ts_ns=ts_ns, position=position))


def encode_record_parts(
    kind: int, tid: int, pid: int, parts: list, *, ts_ns: int = 0, position: int = 0
) -> list:
    """One record as buffers to write in order: header, the payload's parts, padding.

    The payload is given in parts (bytes or contiguous arrays) so a writer can hand
    its buffered id arrays to writev without joining them first.
    """
    length, crc = 0, 0
    for part in parts:
        view = memoryview(part).cast("B")
        length += len(view)
        crc = zlib.crc32(view, crc)
    if length > MAX_PAYLOAD:
        raise ValueError(f"record payload of {length} bytes exceeds {MAX_PAYLOAD}")
    raw = HEADER.pack(
        MAGIC, kind, 0, 0, tid & 0xFFFFFFFF, pid & 0xFFFFFFFF, ts_ns, position, length, crc
    )
    header = raw[:6] + struct.pack("<H", header_check(raw)) + raw[8:]
    return [header, *parts, b"\0" * (padded(length) - length)]


def encode_json(fields: dict) -> bytes:
    """A JSON payload: compact, keys sorted, None fields dropped."""
    clean = {k: v for k, v in fields.items() if v is not None}
    return json.dumps(clean, separators=(",", ":"), sort_keys=True, default=str).encode()


# What a thread start record holds besides its tid: the keyword arguments every writer's
# `start_thread` takes (DatasetWriter, ParquetRecordingWriter). A new field is added here
# and to the writers' signatures; tests/test_datasets.py checks that they agree.
START_FIELDS = ("pid", "ppid", "comm", "exe", "exe_sha256", "start_ns", "label", "family",
                "split", "source", "target", "cgroup", "container", "created",
                "watched_parent")


def start_fields(thread, **renamed: str) -> dict:
    """The START_FIELDS `thread` has (a recorded ThreadTrace, a collector ThreadStart), for
    a writer's `start_thread`; `renamed` maps a field to the attribute holding it
    (`start_ns="ts_ns"` for a ThreadStart)."""
    out = {}
    for name in START_FIELDS:
        attr = renamed.get(name, name)
        if hasattr(thread, attr):
            out[name] = getattr(thread, attr)
    return out


def touched_fields(fields: dict, path: str | None = None) -> dict:
    """A touched record's fields as stored: empty ones left out (0 is a value: a successful
    call's result), the path kept faithfully (`encode_path`)."""
    clean = {k: v for k, v in fields.items()
             if not (v is None or v is False or (isinstance(v, tuple | list) and not v))}
    if path is not None:
        clean.update(encode_path(path))
    return clean


def encode_path(text: str) -> dict:
    """A path for a JSON payload: `path` when it is UTF-8, else its bytes as `path_hex`.

    Paths are kept faithfully: collector text carries non-UTF-8 bytes as surrogate
    escapes, which JSON readers outside Python would reject or mangle.
    """
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"path_hex": raw.hex()}


def with_faithful_path(fields: dict) -> dict:
    """A stored touched record as readers use it: `path` as faithful text (None when it has
    no path), in place of `path_hex` (in place: the dict is returned)."""
    path = decode_path(fields)
    fields.pop("path_hex", None)
    fields["path"] = path
    return fields


def decode_path(fields: dict) -> str | None:
    """The path of a TOUCHED payload as faithful text (surrogate escapes), or None."""
    if isinstance(fields.get("path"), str):
        return fields["path"]
    if isinstance(fields.get("path_hex"), str):
        try:
            return bytes.fromhex(fields["path_hex"]).decode("utf-8", "surrogateescape")
        except ValueError:
            return None
    return None
