"""Hostile input for the dataset reader and the ADFA-LD parser: never a traceback or a hang.

Damage gives a warning (or, when nothing is readable, one UserError) and never a wrong
stream: whatever the reader returns for a thread is a piece of what was written.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgram.datasets import Dataset, DatasetWriter, read_adfa
from sysgram.datasets import format as fmt
from sysgram.errors import UserError

# No deadline and no "too slow" check: the machine (and CI) is shared, and a slow example
# is not a failure here; a hang would still never finish.
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _build_original(root: Path) -> tuple[dict[int, np.ndarray], bytes, bytes]:
    """A small closed dataset: 3 threads, several flushes, a gap, a note."""
    rng = np.random.default_rng(11)
    path = root / "ds"
    streams: dict[int, list[np.ndarray]] = {1: [], 2: [], 3: []}
    with DatasetWriter(path, arch="x86_64", source="record") as w:
        for tid in streams:
            w.start_thread(tid, pid=1, comm=f"t{tid}", start_ns=tid)
        for step in range(4):
            for tid in streams:
                ids = rng.integers(0, 400, size=int(rng.integers(1, 60))).astype(np.uint16)
                streams[tid].append(ids)
                w.append(tid, ids, ts_ns=10 + step)
            if step == 1:
                w.gap(2, 7)
                w.note("exec", tid=3, filename="/bin/x")
            w.flush()
        w.end_thread(1, end_ns=99)
    full = {tid: np.concatenate(p) for tid, p in streams.items()}
    return full, (path / fmt.META_FILE).read_bytes(), (path / fmt.LOG_FILE).read_bytes()


@functools.cache
def _original_bytes() -> tuple[dict[int, np.ndarray], bytes, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return _build_original(Path(tmp))


def _original(root: Path) -> tuple[Path, dict[int, np.ndarray], bytes]:
    """The original dataset copied under `root` (written once, copied per example)."""
    full, meta, log = _original_bytes()
    path = root / "ds"
    path.mkdir()
    (path / fmt.META_FILE).write_bytes(meta)
    (path / fmt.LOG_FILE).write_bytes(log)
    return path, full, log


def _is_piece_of(ids: np.ndarray, full: np.ndarray) -> bool:
    """`ids` is `full` with whole stretches left out, in order (what damage can do)."""
    if len(ids) > len(full):
        return False
    pos = 0
    for value in ids.tolist():
        while pos < len(full) and full[pos] != value:
            pos += 1
        if pos == len(full):
            return False
        pos += 1
    return True


@FUZZ
@given(cut=st.integers(0, 10**6))
def test_any_truncation_reads_a_prefix_with_a_warning(cut):
    with tempfile.TemporaryDirectory() as tmp:
        path, full, data = _original(Path(tmp))
        cut %= len(data)
        (path / fmt.LOG_FILE).write_bytes(data[:cut])
        ds = Dataset.open(path)
        assert ds.warnings  # something was cut: it must be said
        for t in ds.threads:
            np.testing.assert_array_equal(t.ids, full[t.tid][: len(t.ids)])


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1,
                      max_size=6))
def test_byte_flips_never_crash_and_never_invent_events(flips):
    with tempfile.TemporaryDirectory() as tmp:
        path, full, data = _original(Path(tmp))
        damaged = bytearray(data)
        for where, xor in flips:
            damaged[where % len(data)] ^= xor
        (path / fmt.LOG_FILE).write_bytes(bytes(damaged))
        ds = Dataset.open(path)
        changed = False
        for t in ds.threads:
            if t.tid in full:
                assert _is_piece_of(t.ids, full[t.tid])
                changed |= len(t.ids) != len(full[t.tid])
        changed |= sorted(t.tid for t in ds.threads) != sorted(full)
        if changed:
            assert ds.warnings
        ds.summary()


@FUZZ
@given(garbage=st.binary(max_size=4096), with_magic=st.booleans())
def test_a_garbage_log_opens_with_warnings(garbage, with_magic):
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _original(Path(tmp))
        if with_magic:  # plant headers' magic on the 8-byte grid to tempt the resync
            garbage = b"".join(fmt.MAGIC + garbage[i:i + 4] for i in range(0, len(garbage), 4))
        (path / fmt.LOG_FILE).write_bytes(garbage)
        ds = Dataset.open(path)
        assert ds.warnings or not garbage
        ds.summary()


@FUZZ
@given(meta=st.one_of(st.binary(max_size=300),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                   lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                                   max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_garbage_metadata_is_one_user_error(meta):
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _original(Path(tmp))
        (path / fmt.META_FILE).write_bytes(meta)
        try:
            Dataset.open(path)
        except UserError as err:
            assert "\n" not in err.message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=10)
PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.dictionaries(st.sampled_from(["tid", "pid", "ppid", "comm", "exe", "start_ns", "end_ns",
                                     "label", "syscalls", "source", "kind"]), JSON_VALUES)
    .map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(records=st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1),
                                  st.integers(0, 2**64 - 1), PAYLOADS), max_size=12))
def test_well_formed_records_with_hostile_content(records):
    """Records a buggy or hostile writer could make: valid crc, nonsense inside."""
    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _original(Path(tmp))
        log = b"".join(fmt.encode_record(kind, tid % 4, 1, payload, position=position)
                       for kind, tid, position, payload in records)
        (path / fmt.LOG_FILE).write_bytes(log)
        ds = Dataset.open(path)
        for t in ds.threads:
            assert t.ids.dtype == np.uint16 and t.gaps.dtype == np.int64
            assert t.comm is None or isinstance(t.comm, str)
            assert t.ppid is None or isinstance(t.ppid, int)
            assert t.lost >= 0
        ds.summary()


def test_a_log_built_to_make_resync_quadratic_is_abandoned(tmp_path):
    path, _, _ = _original(tmp_path)
    n = 1 << 20
    log = bytearray(n)
    for offset in range(0, n - 48, 48):  # each fake header claims the rest of the file
        length = (n - offset - fmt.HEADER_SIZE) // 8 * 8
        record = fmt.encode_record(fmt.EVENTS, 1, 1, b"")
        header = bytearray(record[: fmt.HEADER_SIZE])
        header[32:36] = length.to_bytes(4, "little")
        header[36:40] = (1).to_bytes(4, "little")  # a crc that cannot match
        header[6:8] = fmt.header_check(bytes(header)).to_bytes(2, "little")
        log[offset : offset + fmt.HEADER_SIZE] = header
    (path / fmt.LOG_FILE).write_bytes(bytes(log))
    ds = Dataset.open(path)
    assert any("stopped reading" in m for m in ds.warnings)


# -- ADFA-LD parser ----------------------------------------------------------------------
TEXTY = st.text(alphabet="0123456789 \n\t\r-x\0", max_size=80).map(str.encode)


def _read_one(content: bytes) -> list[int] | None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Training_Data_Master"
        folder.mkdir()
        (folder / "UTD-0001.txt").write_bytes(b"1 2 ")
        (folder / "UTD-0002.txt").write_bytes(content)
        try:
            traces = read_adfa(Path(tmp))
        except UserError as err:
            assert "UTD-0002.txt" in err.message and "\n" not in err.message
            return None
        assert traces[0].ids.tolist() == [1, 2]
        return traces[1].ids.tolist()


@FUZZ
@given(content=st.one_of(TEXTY, st.binary(max_size=80)))
def test_adfa_parser_agrees_with_python_or_names_the_file(content):
    got = _read_one(content)
    try:
        expected = [int(x) for x in content.split()]
        valid = bool(expected) and all(x.isdigit() and len(x) <= 4 for x in content.split())
        valid = valid and max(expected) <= 1023
    except ValueError:
        valid = False
    if valid:
        assert got == expected
    else:
        assert got is None


META_KEYS = ["status", "counts", "created", "closed", "host", "kernel", "target", "source",
             "collector", "ts_range_ns", "error", "losses"]


@FUZZ
@given(arch=st.sampled_from(["x86_64", "i386", "bogus\x1b"]),
       fields=st.dictionaries(st.sampled_from(META_KEYS), JSON_VALUES))
def test_odd_but_well_formed_metadata_still_summarises(arch, fields):
    from sysgram.commands.datasets import format_summary

    with tempfile.TemporaryDirectory() as tmp:
        path, _, _ = _original(Path(tmp))
        meta = {**fields, "format": "sysgram-dataset", "version": 1, "arch": arch}
        (path / fmt.META_FILE).write_text(json.dumps(meta))
        summary = Dataset.open(path).summary()
        lines = format_summary(summary)
        assert not any("\x1b" in line for line in lines)
