"""Repeated opens are folded in the collector, counted, and never hide a new open."""

from __future__ import annotations

import numpy as np

from sysgram.collector.touched import OPEN, OPEN_REC, OpenRepeats, SocketTypes, decode_all

SECOND = 1_000_000_000


def open_record(path: bytes, ts: int, *, tid: int = 7, dirfd: int = -100, flags: int = 0,
                tail: bytes = b"") -> bytes:
    """An open record as the kernel writes it (`tail`: stale bytes after the NUL)."""
    rec = np.zeros(1, OPEN_REC)
    rec["hdr"]["ts"], rec["hdr"]["tid"], rec["hdr"]["tgid"] = ts, tid, 5
    rec["hdr"]["kind"], rec["hdr"]["nr"] = OPEN, 257
    rec["hdr"]["arg0"], rec["hdr"]["arg1"] = dirfd, flags
    rec["path"] = path + b"\0" + tail
    return rec.tobytes()


def test_a_repeat_within_the_period_is_folded_and_counted():
    repeats = OpenRepeats(period_s=1.0)
    assert repeats.keep(open_record(b"/srv/index.html", 0))
    assert not repeats.keep(open_record(b"/srv/index.html", SECOND // 2, tail=b"garbage"))
    assert repeats.folded == 1
    # Once a period has passed since it was last handed on, it is handed on again.
    assert repeats.keep(open_record(b"/srv/index.html", SECOND + 1))
    assert repeats.folded == 1


def test_anything_that_differs_is_handed_on():
    repeats = OpenRepeats(period_s=1.0)
    assert repeats.keep(open_record(b"/srv/index.html", 0))
    assert repeats.keep(open_record(b"/etc/passwd", 1))
    assert repeats.keep(open_record(b"/srv/index.html", 2, tid=8))
    assert repeats.keep(open_record(b"/srv/index.html", 3, dirfd=4))
    assert repeats.keep(open_record(b"/srv/index.html", 4, flags=1))
    assert repeats.keep(open_record(b"/srv/index.htm", 5))
    assert repeats.folded == 0


def test_a_full_table_starts_afresh_and_period_zero_folds_nothing():
    repeats = OpenRepeats(period_s=1.0, limit=2)
    for i in range(3):
        assert repeats.keep(open_record(f"/f{i}".encode(), i))
    assert repeats.keep(open_record(b"/f0", 10))        # forgotten at the clear: handed on
    off = OpenRepeats(period_s=0)
    assert all(off.keep(open_record(b"/same", i)) for i in range(3)) and off.folded == 0


def test_decode_all_leaves_folded_opens_out():
    records = [open_record(b"/srv/a", i * 1000) for i in range(5)] + [open_record(b"/srv/b", 9)]
    repeats = OpenRepeats()
    items = decode_all(records, SocketTypes(), repeats)
    assert sorted(i.path for i in items) == ["/srv/a", "/srv/b"] and repeats.folded == 4
    assert len(decode_all(records, SocketTypes())) == 6
