"""Faults against the real kernel: each one ends cleanly and loses nothing acknowledged.

- the BPF program fails to compile or attach: one sentence, exit 2, no probe left;
- the ring buffer overflows: every lost event is counted, exactly, where it fell;
- the target is killed mid-window: its thread ends, its state is freed;
- the recorder is killed with SIGKILL: the dataset opens and says it was cut;
- the disk fills up while recording: exit 2, the dataset stays readable;
- SIGTERM during training: never a half-written profile in the store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from helpers import collect_items, start_recorder

from sysgram.collector import Gap, TargetSpec, ThreadEvents, ThreadExit, abi
from sysgram.datasets import Dataset
from sysgram.syscalls import table

pytestmark = pytest.mark.kernel

SYSGRAM = [sys.executable, "-m", "sysgram"]
GETPPID = table().number("getppid")


# -- the program fails to compile, attach or start ---------------------------------------
_BROKEN_RUN = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from sysgram.bpf import loader
    from sysgram.collector import collector
    mode, source, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if mode in ("compile", "attach"):
        loader.PROGRAM = source
    else:  # loads and attaches, then the first flush round fails (start says so)
        def fail(*a, **k):
            raise OSError(12, "Cannot allocate memory")
        collector.Collector._round = fail
    from sysgram.cli import main
    from sysgram.errors import UserError
    if mode == "start-with":  # the library's way, as `sysgram watch` uses it
        try:
            with collector.Collector(collector.TargetSpec("sgfault")):
                pass
            code = 0
        except UserError as err:
            print("sysgram: " + err.message, file=sys.stderr)
            code = 2
    else:
        code = main(["record", "--proc", "sgfault", "--duration", "1s", "--out", out])
    kinds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "bpf" in target:
            kind = target.removeprefix("anon_inode:")
            kinds[kind] = kinds.get(kind, 0) + 1
    print(json.dumps({"code": code, "fds": kinds}))
""")


def run_broken(tmp_path: Path, mode: str) -> tuple[dict, str]:
    """`sysgram record` in a child whose kernel program is broken as `mode` says."""
    from sysgram.bpf import PROGRAM

    source = tmp_path / "broken.bpf.c"
    if mode == "compile":
        source.write_text(PROGRAM.read_text() + "\nthis is not C {\n")
    elif mode == "attach":  # compiles and loads; attaching the last probe fails
        source.write_text(PROGRAM.read_text()
                          + "\nTRACEPOINT_PROBE(sched, no_such_event) { return 0; }\n")
    script = _BROKEN_RUN
    result = subprocess.run([sys.executable, "-c", script, mode, str(source),
                             str(tmp_path / "rec")], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.parametrize("mode", [
    "compile",
    "attach",
    "start",
    "start-with",
])
def test_a_broken_program_is_one_error_and_leaves_no_probe(tmp_path, mode):
    report, stderr = run_broken(tmp_path, mode)
    assert report["code"] == 2, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("sysgram: "), stderr
    assert report["fds"].get("bpf_link", 0) == 0, f"probes still attached: {report['fds']}"
    assert report["fds"].get("bpf-prog", 0) == 0, f"programs still loaded: {report['fds']}"
    if mode in ("compile", "attach"):
        assert "could not be compiled or loaded" in last


# -- ring buffer overflow: losses counted exactly ---------------------------------------------
def _per_thread(items: list) -> tuple[dict[int, int], dict[int, int], dict[int, list]]:
    delivered: dict[int, int] = defaultdict(int)
    lost: dict[int, int] = defaultdict(int)
    order: dict[int, list] = defaultdict(list)
    for item in items:
        if isinstance(item, ThreadEvents):
            delivered[item.tid] += len(item.ids)
            order[item.tid].append(("ids", len(item.ids)))
        elif isinstance(item, Gap):
            lost[item.tid] += item.lost
            order[item.tid].append(("gap", item.lost))
    return dict(delivered), dict(lost), dict(order)


def test_ring_buffer_overflow_counts_every_lost_event_exactly(build_workload):
    """A 4-page ring buffer (one batch) against ~3 M syscalls/s: generated = delivered + lost."""
    exe = build_workload("spin")
    calls = 2_000_000

    def run() -> None:
        subprocess.run([exe, str(calls)], check=True, capture_output=True)

    items, stats = collect_items(TargetSpec(exe.name), run)  # a normal buffer: the baseline total
    delivered, lost, _ = _per_thread(items)
    assert stats.lost_events == 0 and sum(lost.values()) == 0
    (generated,) = delivered.values()
    assert generated >= calls

    items, stats = collect_items(TargetSpec(exe.name), run, rings=abi.RingPages(events=4))
    delivered, lost, order = _per_thread(items)
    (tid,) = delivered
    assert lost.get(tid, 0) > 0, "the tiny buffer never overflowed: the test proves nothing"
    assert delivered[tid] + lost[tid] == generated
    assert stats.lost_events == lost[tid] + stats.lost_unattributed
    assert stats.events == delivered[tid]
    # The gaps sit where the events went missing: between pieces of the stream, in order.
    assert order[tid][0][0] == "ids"
    assert any(kind == "gap" for kind, _ in order[tid])
    _watch_never_scores_across_a_gap(items, order[tid], lost[tid])


def _watch_engine():
    """A watch engine with a small synthetic profile (scores do not matter here)."""
    from sysgram.features import Sequences
    from sysgram.features.synthetic import random_chain, sample_chain
    from sysgram.models.profile import Profile
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine

    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(40), np.random.default_rng(1))
    profile = Profile(target_far=1e-2, arch="x86_64").fit(
        Sequences.from_list([sample_chain(chain, 600, rng) for _ in range(8)]))
    engine = WatchEngine(ThresholdScorer(profile), WatchConfig(binary="spin", warmup_s=0.0),
                         table("x86_64"))
    return engine, profile


def _watch_never_scores_across_a_gap(items: list, order: list, lost: int) -> None:
    """Feed the overflowed drain to the watch engine: losses counted, no window spans one."""
    engine, profile = _watch_engine()
    engine.ingest(items)
    engine.finish()
    stats = engine.stats
    assert stats.lost_events == lost
    assert stats.windows_unscored_loss > 0
    # Each stretch between two gaps yields at most its own windows (plus one closing window).
    width, stride = profile.window_, profile.stride_
    segments, run = [], 0
    for kind, n in order:
        if kind == "gap":
            segments.append(run)
            run = 0
        else:
            run += n
    segments.append(run)
    bound = sum((n - width) // stride + 2 for n in segments if n >= width)
    bound += sum(1 for n in segments if 0 < n < width)
    assert stats.windows_scored <= bound


# -- the target killed mid-window --------------------------------------------------------------
def test_a_target_killed_mid_window_ends_its_thread(build_workload):
    exe = build_workload("spin")
    box: dict = {}

    def run() -> None:
        proc = subprocess.Popen([exe, "100000000"], stdout=subprocess.DEVNULL)
        time.sleep(0.4)
        proc.kill()
        proc.wait()
        box["pid"] = proc.pid

    items, stats = collect_items(TargetSpec(exe.name), run)
    delivered, lost, _ = _per_thread(items)
    exits = [i for i in items if isinstance(i, ThreadExit) and i.pid == box["pid"]]
    assert len(exits) == 1 and exits[0].group_dead
    assert delivered[box["pid"]] > 10_000 and not lost
    assert items.index(exits[0]) > max(k for k, i in enumerate(items)
                                       if isinstance(i, ThreadEvents))
    assert stats.threads == 0 and stats.processes == 0  # per-thread state freed
    engine, _ = _watch_engine()  # and watch frees its per-thread state too
    engine.ingest(items)
    assert engine.threads == 0 and engine.processes == 0
    assert engine.stats.windows_scored > 0 and engine.stats.threads_seen == 1


def test_a_target_killed_mid_window_is_recorded_whole(build_workload, tmp_path):
    exe = build_workload("spin")
    out = tmp_path / "rec"
    recorder = start_recorder("--proc", exe.name, "--out", str(out))
    target = subprocess.Popen([exe, "100000000"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    target.kill()
    target.wait()
    time.sleep(0.5)
    recorder.send_signal(signal.SIGTERM)
    _, err = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, err
    dataset = Dataset.open(out)
    assert not dataset.warnings
    (trace,) = [t for t in dataset.threads if t.pid == target.pid]
    assert trace.end_ns is not None and trace.lost == 0
    assert int((trace.ids == GETPPID).sum()) > 10_000


# -- the recorder killed with SIGKILL ----------------------------------------------------------
def test_sigkill_of_the_recorder_at_full_rate_leaves_a_readable_dataset(build_workload,
                                                                        tmp_path):
    exe = build_workload("spin")
    out = tmp_path / "rec"
    recorder = start_recorder("--proc", exe.name, "--out", str(out))
    target = subprocess.Popen([exe, "100000000"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(2.0)  # writing continuously when the kill lands
        os.kill(recorder.pid, signal.SIGKILL)
        recorder.wait(timeout=10)
    finally:
        target.kill()
        target.wait()
    dataset = Dataset.open(out)
    assert dataset.warnings, "a killed recording must say it was not closed"
    assert any("recording" in w or "torn" in w or "cut" in w for w in dataset.warnings)
    (trace,) = [t for t in dataset.threads if t.pid == target.pid]
    # Everything older than ~1 s reached the disk: over a million calls, all of them getppid
    # after start-up (a torn tail is dropped, never decoded into wrong ids).
    assert len(trace.ids) > 1_000_000
    assert (trace.ids[-1000:] == GETPPID).all()


# -- disk full while recording ------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_recording_cleanly_and_keeps_what_was_written(build_workload,
                                                                        small_disk):
    """Short bursts (50,000 calls each, one process per burst) fill 1 MiB in a few flushes."""
    exe = build_workload("spin")
    out = small_disk / "rec"
    recorder = start_recorder("--proc", exe.name, "--out", str(out))
    bursts = 0
    deadline = time.monotonic() + 60
    while recorder.poll() is None and time.monotonic() < deadline:
        subprocess.run([exe, "50000"], check=True, capture_output=True)
        bursts += 1
        time.sleep(0.1)
    _, err = recorder.communicate(timeout=30)
    assert recorder.returncode == 2, err
    assert "full" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("sysgram: ")
    dataset = Dataset.open(out)
    assert dataset.meta.get("status") == "failed"
    # What reached the disk is intact: every burst in it is its 50,000 calls or a prefix of
    # them (never a wrong id), and the complete ones are most of the disk.
    spins = [t for t in dataset.threads if t.comm == exe.name]
    assert 0 < len(spins) <= bursts
    complete = 0
    for trace in spins:
        calls = trace.ids[trace.ids == GETPPID]
        assert len(calls) <= 50_000
        complete += len(calls) == 50_000
    assert complete * 50_000 * 2 > 0.5 * (1 << 20), f"{complete} of {len(spins)} whole"


# -- SIGTERM during training ----------------------------------------------------------------------
def _training_dataset(path: Path) -> Path:
    from sysgram.datasets import DatasetWriter
    from sysgram.features.synthetic import random_chain, sample_chain

    rng = np.random.default_rng(3)
    chain = random_chain(np.arange(40), np.random.default_rng(4))
    with DatasetWriter(path, arch="x86_64", source="synthetic", target={"comm": "victim"}) as w:
        for tid in range(100, 140):
            w.start_thread(tid, pid=100, comm="victim")
            w.append(tid, sample_chain(chain, 4000, rng))
            w.end_thread(tid)
    return path


@pytest.mark.slow
def test_sigterm_during_training_never_leaves_a_half_written_profile(tmp_path):
    from sysgram.models.store import ProfileStore

    dataset = _training_dataset(tmp_path / "ds")
    store = ProfileStore(tmp_path / "store")
    outcomes = []
    for delay in (0.5, 1.5, 3.0, 5.0):
        proc = subprocess.Popen([*SYSGRAM, "train", "--proc", "victim", "--from", str(dataset),
                                 "--store", str(store.root)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err
        names = store.names()
        assert names in ([], ["victim"])
        if names:
            assert store.load("victim").profile is not None  # whole, or not there at all
            store.remove("victim")
        outcomes.append(bool(names))
    assert not all(outcomes), "every run finished before SIGTERM: the test proves nothing"


# SIGTERM delivered the moment the profile's tmp file exists (its chmod to 0600 is the hook):
# the command unwinds, removes the tmp file, keeps no profile and says so in one line.
_SIGTERM_INSIDE_THE_WRITE = """
import os, signal, sys

real_fchmod = os.fchmod

def fchmod(fd, mode):
    path = os.readlink(f"/proc/self/fd/{fd}")
    if path.endswith(".tmp"):
        print(path, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    real_fchmod(fd, mode)

os.fchmod = fchmod
from sysgram.entry import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_inside_the_profile_write_leaves_no_tmp_file(tmp_path):
    dataset = _training_dataset(tmp_path / "ds")
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-c", _SIGTERM_INSIDE_THE_WRITE, "train", "--proc", "victim",
         "--from", str(dataset), "--store", str(store)],
        capture_output=True, text=True, timeout=300)
    (tmp_file,) = [line for line in result.stdout.splitlines() if line.endswith(".tmp")]
    assert Path(tmp_file).parent == store       # the write was under way when the signal came
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "sysgram: terminated."
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in store.iterdir()) == []


def test_sigterm_landing_in_an_extension_import_is_still_a_termination(monkeypatch, capsys):
    # A SIGTERM during a C extension's initialisation (scipy's, imported lazily by train)
    # surfaces as that module's ImportError, not as the handler's exception.
    from sysgram import cli

    def import_interrupted(**_kwargs):
        try:
            cli._raise_terminated(signal.SIGTERM, None)
        except cli._Terminated as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli, "app", import_interrupted)
    monkeypatch.setattr(cli, "_terminated_by_signal", False)
    assert cli._run(["train"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "sysgram: terminated.\n"
    monkeypatch.setattr(cli, "_terminated_by_signal", False)

    def broken(**_kwargs):
        raise ImportError("a real missing module")

    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(ImportError):  # without a SIGTERM, an error is not hidden
        cli._run(["train"])
