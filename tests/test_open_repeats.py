"""Repeated opens are folded in the kernel, counted, and never hide a new open."""

from __future__ import annotations

import os
import subprocess
from collections import Counter

import pytest
from helpers import collect_items

from sysgram.collector import TargetSpec, Touched

pytestmark = pytest.mark.kernel


def opens_of(items: list) -> Counter:
    """(path, flags) -> opens delivered."""
    return Counter((i.path, i.open_flags) for i in items
                   if isinstance(i, Touched) and i.kind == "open")


def run(binary, *args: str, **options) -> tuple[list, object]:
    items, stats = collect_items(TargetSpec(binary.name), lambda: subprocess.run(
        [str(binary), *args], check=True, capture_output=True, timeout=60), **options)
    assert stats.lost_touched == 0
    return items, stats


def test_interleaved_files_and_flags_each_arrive_and_every_open_is_counted(
        build_workload, tmp_path):
    """Two files opened in turn, each also with O_CLOEXEC, and a path too long to read
    whole: every (file, flags) arrives, repeats are folded per file, cut paths never."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    long_path = str(tmp_path / ("L" * 300))          # cut at 255 bytes: its tail unknown
    rounds = 400
    items, stats = run(build_workload("openmix"), str(rounds), str(a), str(b), long_path)
    got = opens_of(items)
    mine = {key: n for key, n in got.items() if key[0].startswith(str(tmp_path))}
    for path in (str(a), str(b)):
        for flags in (os.O_RDONLY, os.O_RDONLY | os.O_CLOEXEC):
            assert 1 <= mine[(path, flags)] <= 5, mine     # once a second at most
    cut = sum(n for (path, _), n in mine.items() if path not in (str(a), str(b)))
    assert cut == 2 * rounds                       # never folded
    # The workload's own start-up opens (its libraries) are in `got` too.
    assert sum(got.values()) + stats.touched_repeats == 6 * rounds + sum(
        n for key, n in got.items() if key not in mine)


def test_each_process_sees_its_first_open_of_a_file(build_workload, tmp_path):
    loop, target = build_workload("openloop"), tmp_path / "same-file"
    target.write_text("x")

    def twice() -> None:
        for _ in range(2):
            subprocess.run([str(loop), "200", str(target)], check=True, capture_output=True,
                           timeout=60)

    items, stats = collect_items(TargetSpec(loop.name), twice)
    pids = Counter(i.pid for i in items if isinstance(i, Touched) and i.path == str(target))
    assert len(pids) == 2 and all(1 <= n <= 2 for n in pids.values()), pids
    assert sum(pids.values()) + stats.touched_repeats == 400


@pytest.mark.parametrize(("period_s", "arrivals"), [(0.9, [0, 1, 2]), (1.5, [0, 2])])
def test_a_repeat_arrives_again_once_a_period_has_passed(build_workload, tmp_path, period_s,
                                                         arrivals):
    loop, target = build_workload("openloop"), tmp_path / "paced"
    target.write_text("x")
    # 300 opens paced at 100 a second: bursts of 100 at 0, 1 and 2 s. The periods sit a
    # tenth of a second or more from every burst's time, so the answer is exact: the fold
    # decides on a clock up to one flush round old (touch_open's run_ts).
    items, stats = run(loop, "300", str(target), "100", open_repeat_s=period_s)
    delivered = [i for i in items if isinstance(i, Touched) and i.path == str(target)]
    seconds = [round((i.ts_ns - delivered[0].ts_ns) / 1e9) for i in delivered]
    assert seconds == arrivals
    assert len(delivered) + stats.touched_repeats == 300


def test_period_zero_hands_every_open_over(build_workload, tmp_path):
    loop, target = build_workload("openloop"), tmp_path / "every"
    target.write_text("x")
    items, stats = run(loop, "1000", str(target), open_repeat_s=0)
    assert sum(1 for i in items if isinstance(i, Touched) and i.path == str(target)) == 1000
    assert stats.touched_repeats == 0
