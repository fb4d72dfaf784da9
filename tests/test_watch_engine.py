"""The watch engine on the collector's items (design §2) and a fake profile (§5)."""

from __future__ import annotations

import gc
import json

import numpy as np
import pytest
from fakes import FakeProfile
from hypothesis import given, settings
from hypothesis import strategies as st

from sysgram.collector.items import Exec, Gap, ThreadEvents, ThreadExit, ThreadStart
from sysgram.features import Sequences, sliding_windows
from sysgram.models.policy import AlertPolicy
from sysgram.syscalls import table
from sysgram.watch import (
    ThreadStream,
    ThresholdScorer,
    WatchConfig,
    WatchEngine,
    for_terminal,
    to_json_line,
)
from sysgram.watch.verdicts import ThreadVerdicts

S = 1_000_000_000  # one second in ns
NAMES = table("x86_64")
READ, WRITE, OPENAT, CLOSE = 0, 1, 257, 3
CLONE, EXECVE, CONNECT = 56, 59, 42
MKDIR = 83


# -- a fake profile (the collector items are the real ones) -------------------------------
class ListLearner:
    def __init__(self) -> None:
        self.learned: list[tuple[int, np.ndarray]] = []

    def learn(self, tid, seqs):
        self.learned.append((tid, seqs.values.copy()))


def ids(*calls: int) -> np.ndarray:
    return np.array(calls, dtype=np.uint16)


def engine(warmup_s: float = 0.0, learn: bool = False, **kw) -> WatchEngine:
    kw.setdefault("binary_path", "/usr/bin/victim")
    config = WatchConfig(binary="victim", warmup_s=warmup_s, **kw)
    learner = ListLearner() if learn else None
    return WatchEngine(ThresholdScorer(FakeProfile(), learner=learner), config, NAMES)


def start(tid, pid=None, ppid=1, ts=0, comm="victim", created=None):
    return ThreadStart(tid, pid or tid, ppid, comm, "/usr/bin/victim", "ab" * 32, ts,
                       created=created)


NORMAL = ids(READ, WRITE, OPENAT, CLOSE)


# -- the rolling window --------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 12),
    stride=st.integers(1, 9),
    stream=st.lists(st.integers(0, 400), max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=6),
)
def test_stream_fed_in_pieces_gives_the_offline_windows(length, stride, stream, cuts):
    whole = np.array(stream, dtype=np.uint16)
    rolling = ThreadStream(length, stride)
    got = []
    for piece in np.split(whole, sorted(c for c in cuts if c <= len(whole))):
        got += list(rolling.feed(piece).windows)
        assert rolling.buffered <= length + stride
    last = rolling.close().last
    got += [last] if last is not None else []
    offline = sliding_windows(whole, length, stride)
    assert [w.tolist() for w in got] == [offline[i].tolist() for i in range(len(offline))]


def test_a_gap_ends_the_segment_and_counts_the_windows_it_spans():
    rolling = ThreadStream(4, 2)
    first = rolling.feed(ids(1, 2, 3, 4, 5))  # windows at 0; next start 2 needs 6 calls
    assert first.windows.tolist() == [[1, 2, 3, 4]]
    cut = rolling.gap(10)
    assert cut.last.tolist() == [2, 3, 4, 5]  # complete and contiguous: still scored
    assert cut.unscored == -(-(4 - 1 + 10) // 2)
    after = rolling.feed(ids(7, 8))
    assert len(after.windows) == 0
    stub = rolling.close()
    assert stub.last is None and stub.unscored == 1  # not the whole stream: never scored


# -- the engine ------------------------------------------------------------------------------
def test_normal_stream_scores_without_alerts():
    eng = engine()
    items = [start(10)] + [ThreadEvents(10, 10, NORMAL, k * 1000) for k in range(50)]
    assert eng.ingest(items) == []
    assert eng.stats.windows_scored == (200 - 4) // 2 + 1
    assert eng.stats.events == 200


def test_alert_explains_itself():
    eng = engine()
    eng.ingest([ThreadStart(10, 10, 7, "victim", "/usr/bin/victim", "ab" * 32, 0),
                ThreadEvents(10, 10, NORMAL, 1)])
    alerts = eng.ingest([ThreadEvents(10, 10, ids(CLONE, EXECVE), 5 * S)])
    assert len(alerts) == 1
    record = alerts[0].record()
    assert record["kind"] == "alert" and record["schema"] == "sysgram.alert/1"
    assert (record["pid"], record["tid"], record["ppid"], record["comm"]) == (10, 10, 7, "victim")
    assert record["exe"] == "/usr/bin/victim" and record["binary"] == "victim"
    assert record["score"] > record["threshold"] == 0.4
    assert record["new_syscalls"] == ["clone", "execve"]
    assert "clone" in record["window"]["syscalls"]
    marked = [record["window"]["syscalls"][k] for k in record["window"]["unseen"]]
    assert "execve" in marked and record["window"]["unseen_ngrams"]
    assert record["time"].endswith("Z")


def test_an_alert_is_stamped_by_the_last_run_of_the_piece_that_completed_it():
    """A drain merges a thread's runs into one piece; a window it completes happened at
    its end, not at its first run (an attack's window must not predate the attack)."""
    eng = engine()
    eng.ingest([start(10), ThreadEvents(10, 10, NORMAL, 1)])
    alerts = eng.ingest([ThreadEvents(10, 10, ids(CLONE, EXECVE), 2 * S,
                                      last_ts_ns=3 * S)])
    assert [a.ts_ns for a in alerts] == [3 * S]


def test_windows_spanning_a_loss_are_counted_not_scored():
    eng = engine()
    eng.ingest([start(10), ThreadEvents(10, 10, ids(READ, WRITE, OPENAT), 1)])
    alerts = eng.ingest([Gap(10, 10, 50, 2), ThreadEvents(10, 10, ids(CLOSE, READ, WRITE), 3)])
    assert alerts == []
    assert eng.stats.lost_events == 50
    assert eng.stats.windows_scored == 0  # 3 calls each side of the loss: no whole window
    assert eng.stats.windows_unscored_loss == 1 + 27  # the stub before, the spans across


def test_warmup_after_process_start_and_restart_but_not_after_fork_or_foreign_exec():
    eng = engine(warmup_s=2.0)
    burst = ids(CLONE, EXECVE, CONNECT, CLONE)
    # A new process: its start-up burst stays quiet.
    assert eng.ingest([start(10, ts=0), ThreadEvents(10, 10, burst, S)]) == []
    assert eng.stats.windows_warmup == 1 and eng.stats.windows_scored == 0
    # After the warm-up the same calls alert.
    assert len(eng.ingest([ThreadEvents(10, 10, burst, 3 * S)])) == 1
    # A fork child continues its parent's program: scored at once, and its alerts fold
    # into the parent's period (one shell spawned by the binary is one incident).
    flagged = eng.stats.anomalous_windows
    alerts = eng.ingest([start(11, ppid=10, ts=4 * S), ThreadEvents(11, 11, burst, 4 * S)])
    assert alerts == [] and eng.stats.windows_warmup == 1
    assert eng.stats.anomalous_windows == flagged + 1
    (repeat,) = eng.expire(9 * S)
    assert repeat.record()["root_pid"] == 10 and 11 in repeat.pids
    # A descendant exec'ing another program (the shell of an exploit) is scored at once.
    before, scored = eng.stats.windows_warmup, eng.stats.windows_scored
    eng.ingest([Exec(11, 11, "/bin/sh", "sh", 5 * S), ThreadEvents(11, 11, burst, 5 * S + 1)])
    assert eng.stats.windows_warmup == before
    assert eng.stats.windows_scored == scored + 1
    # An exec into the watched binary itself is a restart: warm-up again.
    eng.ingest([Exec(11, 11, "/usr/bin/victim", "victim", 6 * S),
                ThreadEvents(11, 11, burst, 6 * S + 1)])
    assert eng.stats.windows_warmup == before + 1


def test_alerts_of_one_process_fold_into_a_repeat_and_none_are_dropped():
    eng = engine(aggregate_s=5.0)
    bad = ids(CLONE, EXECVE, CONNECT, CLONE)
    emitted = eng.ingest([start(10), start(12, pid=10)])
    for k in range(40):  # 40 anomalous windows in 4 s, from two threads of pid 10
        emitted += eng.ingest([ThreadEvents(10 + 2 * (k % 2), 10, bad, k * S // 10)])
    assert len(emitted) == 1
    repeats = eng.expire(5 * S)
    assert len(repeats) == 1
    rec = repeats[0].record()
    assert rec["kind"] == "repeat" and rec["alert_id"] == emitted[0].id
    assert rec["windows"] == eng.stats.anomalous_windows - 1 > 39
    assert rec["tids"] == [10, 12] and rec["new_syscalls"]
    # The next period opens with a fresh alert.
    assert len(eng.ingest([ThreadEvents(10, 10, bad, 6 * S)])) == 1


def test_a_window_with_new_syscalls_is_never_folded_away():
    eng = engine()
    # Weak alerts: every window is above, and novelty alone decides; these pairs are new
    # (one new pair is enough here: the bar itself is tested in test_policy.py).
    eng.scorer.policy = AlertPolicy(-1.0, min_events=1)
    weak = ids(READ, WRITE, READ, READ)
    emitted = eng.ingest([start(10), ThreadEvents(10, 10, np.tile(weak, 20), S)])
    assert len(emitted) == 1 and eng.stats.anomalous_windows > 30
    # In the same period, the first window that brings new syscalls is new evidence.
    emitted = eng.ingest([ThreadEvents(10, 10, ids(CONNECT, CLONE), 2 * S)])
    assert len(emitted) == 1 and emitted[0].explanation.new_syscalls == ["connect", "clone"]
    # Once the period has named new syscalls, a window bringing more folds into its
    # repeat, unless one is a decisive call the period has not told (a second attack on
    # a thread whose first one still alerts): that one is emitted, once.
    assert eng.ingest([ThreadEvents(10, 10, ids(MKDIR, READ), 3 * S)]) == []
    emitted = eng.ingest([ThreadEvents(10, 10, ids(EXECVE, READ), 3 * S + S // 2)])
    assert len(emitted) == 1 and "execve" in emitted[0].explanation.new_syscalls
    assert eng.ingest([ThreadEvents(10, 10, ids(EXECVE, READ), 4 * S)]) == []
    (repeat,) = eng.expire(10 * S)
    assert repeat.windows == eng.stats.anomalous_windows - 3
    assert {"mkdir", "execve"} <= set(repeat.record()["new_syscalls"])


def test_another_branch_of_the_tree_alerting_in_a_period_is_told_not_folded():
    # sshd in the suite: a session's command (30, under session 20) opened the period of
    # the listener's tree; then the listener itself (10) was attacked. Its alert was
    # folded into the command's repeat and came out 5 s late.
    eng = engine(aggregate_s=5.0)
    bad = ids(CLONE, EXECVE, CONNECT, CLONE)
    eng.ingest([start(10), start(20, ppid=10), start(30, ppid=20)])
    first = eng.ingest([ThreadEvents(30, 30, bad, 1 * S)])
    assert len(first) == 1 and first[0].process.group == 10
    told = eng.ingest([ThreadEvents(10, 10, bad, 2 * S)])
    assert len(told) == 1 and told[0].process.pid == 10
    # What those processes go on to do, and what they fork, continue their stories.
    assert eng.ingest([ThreadEvents(10, 10, bad, 2 * S + S // 2)]) == []
    assert eng.ingest([start(31, ppid=30, ts=3 * S), ThreadEvents(31, 31, bad, 3 * S)]) == []
    assert eng.ingest([start(21, ppid=10, ts=3 * S), ThreadEvents(21, 21, bad, 3 * S)]) == []
    (repeat,) = eng.expire(10 * S)
    assert repeat.pids == {10, 31, 21}
    assert repeat.windows == eng.stats.anomalous_windows - 2  # nothing dropped


def test_a_burst_of_alerting_processes_folds_binary_wide():
    eng = engine(burst=5)
    bad = ids(CLONE, EXECVE, CONNECT, CLONE)
    emitted = []
    for pid in range(100, 130):
        emitted += eng.ingest([start(pid, ts=pid), ThreadEvents(pid, pid, bad, pid),
                               ThreadExit(pid, pid, pid + 1, True)])
    assert len(emitted) == 5
    repeats = eng.expire(10 * S)
    assert sum(r.windows for r in repeats) == 25
    assert repeats[0].record()["alert_id"] is None and len(repeats[0].pids) == 25


def test_short_lived_thread_gets_one_short_window_at_exit():
    eng = engine()
    alerts = eng.ingest([start(10), ThreadEvents(10, 10, ids(CLONE, EXECVE), 1),
                         ThreadExit(10, 10, 2, True)])
    assert eng.stats.windows_scored == 1 and len(alerts) == 1
    assert alerts[0].explanation.syscalls == ["clone", "execve"]


def test_fork_storm_frees_every_thread_and_memory_stays_bounded():
    eng = engine(warmup_s=1.0)
    eng.ingest([start(1, ts=-2 * S)])  # the forking parent is past its warm-up

    def storm(first: int, count: int) -> None:
        for drain in range(first, first + count, 100):  # 100 short-lived children a drain
            items = []
            for pid in range(drain, drain + 100):
                items += [start(pid, ppid=1, ts=pid), ThreadEvents(pid, pid, NORMAL, pid),
                          ThreadEvents(pid, pid, ids(READ, CLOSE, READ), pid + 1),
                          ThreadExit(pid, pid, pid + 2, True)]
            eng.ingest(items)

    storm(10, 1000)  # warm caches
    gc.collect()
    before = len(gc.get_objects())
    storm(2000, 10_000)
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert (eng.processes, eng.threads, eng.buffered_calls()) == (1, 1, 0)
    assert eng.stats.threads_seen == 11_001 and eng.stats.processes_seen == 11_001
    assert eng.stats.windows_scored == 11_000 * 3
    assert grown < 100  # no per-process residue left by 10,000 children


def test_events_of_an_unannounced_thread_are_followed():
    eng = engine()
    eng.ingest([ThreadEvents(77, 70, NORMAL, 1), ThreadExit(77, 70, 2, True)])
    assert eng.stats.threads_unannounced == 1 and eng.stats.windows_scored == 1
    assert eng.threads == 0 and eng.processes == 0


def test_missed_exits_are_reaped():
    eng = engine()
    eng.ingest([start(10), ThreadEvents(10, 10, NORMAL, 1), start(11),
                ThreadEvents(11, 11, NORMAL, 1)])
    freed = eng.reap(100 * S, idle_s=10, alive=lambda pid, tid: tid == 11)
    assert freed == 1 and eng.threads == 1 and eng.stats.threads_reaped == 1


def test_learning_never_sees_anomalous_windows():
    eng = engine(learn=True)
    eng.ingest([start(10), ThreadEvents(10, 10, np.tile(NORMAL, 3), 1),
                ThreadEvents(10, 10, ids(CLONE, EXECVE, CONNECT, CLONE), 2)])
    learned = np.concatenate([w for _, w in eng.scorer.learner.learned])
    assert len(learned) and np.isin(learned, FakeProfile.known).all()
    assert eng.stats.learned_windows > 0


def test_finish_flushes_open_periods():
    eng = engine()
    bad = ids(CLONE, EXECVE, CONNECT, CLONE)
    eng.ingest([start(10), ThreadEvents(10, 10, bad, 1), ThreadEvents(10, 10, bad, 2)])
    alerts, repeats = eng.finish()
    assert alerts == [] and [r.windows for r in repeats] == [2]


# -- escaping ----------------------------------------------------------------------------
EVIL = "vic\x1b]0;owned\x07\x1b[2J\u202etim\r\n\x9b"


@pytest.mark.parametrize("text", [EVIL, b"\x1b[31mred", "back\\slash\x00"])
def test_terminal_text_has_no_control_characters(text):
    safe = for_terminal(text)
    assert all(ch.isprintable() for ch in safe)
    assert "\x1b" not in safe and "\u202e" not in safe


def test_json_lines_escape_hostile_names():
    eng = engine()
    alerts = eng.ingest([start(10, comm=EVIL), ThreadEvents(10, 10, ids(CLONE, EXECVE), 1),
                         ThreadExit(10, 10, 2, True)])
    line = to_json_line(alerts[0].record())
    assert line.isprintable() and "\n" not in line
    assert json.loads(line)["comm"] == EVIL


# -- whole-thread verdicts (a thread profile beside the window profile) ---------------------
class FakeThreadProfile(FakeProfile):
    """Whole-stream score: the share of calls outside the trained set; threshold 0.2."""

    thread_threshold_ = 0.2
    detector_ = None  # no running form: judged when the stream ends (or is cut)

    def score_threads(self, seqs):
        return self.score_windows(seqs)


def verdict_engine(max_calls: int = 1 << 15, warmup_s: float = 2.0) -> WatchEngine:
    verdicts = ThreadVerdicts(FakeThreadProfile(), max_calls=max_calls)
    config = WatchConfig(binary="victim", warmup_s=warmup_s)
    return WatchEngine(ThresholdScorer(FakeProfile()), config, NAMES, verdicts=verdicts)


# One unknown call in four: every window scores 0.25 (under 0.4), the whole stream too
# (over the thread threshold 0.2).
QUIETLY_ODD = np.tile(ids(READ, WRITE, OPENAT, CONNECT), 25)


def test_a_thread_whose_windows_all_pass_is_judged_whole_at_its_exit():
    eng = verdict_engine()    # inside the 2 s warm-up: whole streams include start-up
    assert eng.ingest([start(10), ThreadEvents(10, 10, QUIETLY_ODD, 1)]) == []
    alerts = eng.ingest([ThreadExit(10, 10, 2 * S, True)])
    assert eng.stats.anomalous_windows == 0
    assert [a.scope for a in alerts] == ["thread"]
    record = json.loads(to_json_line(alerts[0].record()))
    assert record["scope"] == "thread" and record["stream_calls"] == 100
    assert record["score"] == pytest.approx(0.25) and record["threshold"] == 0.2
    assert record["window"]["syscalls"] == ["read", "write", "openat", "connect"]
    assert record["new_syscalls"] == ["connect"] and record["window"]["unseen"] == []
    assert (eng.stats.streams_judged, eng.stats.streams_anomalous) == (1, 1)
    assert eng.buffered_calls() == 0


def test_a_normal_thread_is_judged_and_passes_and_window_alerts_keep_their_scope():
    eng = verdict_engine(warmup_s=0.0)
    alerts = eng.ingest([start(10), ThreadEvents(10, 10, NORMAL, 1), ThreadExit(10, 10, 2, True)])
    assert alerts == [] and eng.stats.streams_judged == 1
    alerts = eng.ingest([start(11), ThreadEvents(11, 11, ids(CLONE, EXECVE, CLONE, EXECVE), 3)])
    assert [a.record()["scope"] for a in alerts] == ["window"]


def test_a_loss_and_an_exec_each_end_a_stream():
    eng = verdict_engine()
    eng.ingest([start(10), ThreadEvents(10, 10, QUIETLY_ODD, 1), Gap(10, 10, 5, 2),
                ThreadEvents(10, 10, NORMAL, 3)])
    assert eng.stats.streams_judged == 1                 # the part before the loss
    alerts = eng.ingest([Exec(10, 10, "/bin/sh", "sh", 4), ThreadEvents(10, 10, NORMAL, 5)])
    assert eng.stats.streams_judged == 2 and alerts == []  # the normal part, as `victim`
    alerts = eng.ingest([ThreadExit(10, 10, 6, True)])
    assert eng.stats.streams_judged == 3 and alerts == []


def test_a_stream_too_long_to_keep_gets_no_verdict_and_holds_no_memory():
    eng = verdict_engine(max_calls=150)
    eng.ingest([start(10), ThreadEvents(10, 10, QUIETLY_ODD, 1),
                ThreadEvents(10, 10, QUIETLY_ODD, 2)])
    assert eng.verdicts.buffered == 0
    assert eng.ingest([ThreadExit(10, 10, 3, True)]) == []
    assert (eng.stats.streams_judged, eng.stats.streams_too_long) == (0, 1)


def test_the_thread_profile_train_fits_judges_whole_threads_in_the_engine():
    """A real thread profile (presence-lm on whole streams, as `train` fits it): threads
    of the trained program pass at exit, threads of another program alert whole."""
    from sysgram.features.synthetic import random_chain, sample_chain
    from sysgram.models.defaults import thread_profile_params
    from sysgram.models.profile import Profile
    from sysgram.watch.render import alert_text

    rng = np.random.default_rng(0)
    trained = random_chain(np.arange(30), np.random.default_rng(1))
    other = random_chain(np.arange(30), np.random.default_rng(2))
    thread_profile = Profile(**thread_profile_params(), arch="x86_64").fit(
        Sequences.from_list([sample_chain(trained, 200, rng) for _ in range(300)]))
    window_profile = FakeProfile()
    window_profile.threshold_ = 2.0                  # no window alerts: verdicts only
    eng = WatchEngine(ThresholdScorer(window_profile), WatchConfig("victim", warmup_s=0), NAMES,
                      verdicts=ThreadVerdicts(thread_profile))
    items = []
    for k in range(10):
        tid = 100 + k
        items += [start(tid), ThreadEvents(tid, tid, sample_chain(trained, 200, rng), k),
                  ThreadExit(tid, tid, k + 1, True)]
    assert eng.ingest(items) == [] and eng.stats.streams_judged == 10
    alerts = eng.ingest([start(200), ThreadEvents(200, 200, sample_chain(other, 200, rng), 20),
                         ThreadExit(200, 200, 21, True)])
    assert [(a.scope, a.tid, a.stream_calls) for a in alerts] == [("thread", 200, 200)]
    assert alerts[0].score > alerts[0].threshold == thread_profile.thread_threshold_
    assert alerts[0].explanation.unseen_ngrams     # what the other program does differently
    assert "whole thread (200 calls) scored" in alert_text(alerts[0])


# -- defects of issue #11, each with the engine's real decision ------------------------------
BAD = ids(CLONE, EXECVE, CONNECT, CLONE)


def test_a_window_after_a_period_ended_but_before_expire_loses_nothing():
    """11 anomalous windows, a second apart, with no expire() between them: each is an
    alert or counted in a repeat (the 5 s period ends while windows keep coming)."""
    eng = engine(aggregate_s=5.0)
    emitted = eng.ingest([start(10)])
    for k in range(11):
        emitted += eng.ingest([ThreadEvents(10, 10, BAD, k * S)])
    repeats = eng.expire(100 * S)
    assert len(emitted) == 3  # at 0, 5 and 10 s: one period each
    assert len(emitted) + sum(r.windows for r in repeats) == eng.stats.anomalous_windows


def test_an_exec_of_a_file_named_like_the_binary_gets_no_warm_up():
    """The comm is the exec'd file's name, which anyone chooses: /tmp/x/victim is not a
    restart of /usr/bin/victim, so its windows are scored at once."""
    eng = engine(warmup_s=2.0)
    eng.ingest([start(10, ts=-10 * S), ThreadEvents(10, 10, NORMAL, 1)])
    alerts = eng.ingest([Exec(10, 10, "/tmp/x/victim", "victim", 2 * S),
                         ThreadEvents(10, 10, BAD, 2 * S + 1)])
    assert eng.stats.windows_warmup == 0 and len(alerts) == 1
    # Forks of it inherit no warm-up either.
    eng.ingest([start(11, ppid=10, ts=3 * S), ThreadEvents(11, 11, BAD, 3 * S)])
    assert eng.stats.windows_warmup == 0 and eng.stats.anomalous_windows == 2
    # The binary's own file is a restart (a relative spelling of it too).
    eng.ingest([Exec(11, 11, "/usr/bin/../bin/victim", "victim", 4 * S),
                ThreadEvents(11, 11, BAD, 4 * S + 1)])
    assert eng.stats.windows_warmup == 1


def test_on_a_host_watch_an_exec_into_another_binary_by_name_gets_no_warm_up():
    """With several binaries the router makes the process a ThreadStart in the binary it
    joins; the Exec that follows (a file merely named like that binary) still ends any
    warm-up: its windows are scored at once."""
    from sysgram.watch.host import HostRouter

    victim, other = engine(warmup_s=2.0), engine(warmup_s=2.0, binary_path="/usr/bin/other")
    router = HostRouter({"victim": victim, "other": other})
    router.ingest([ThreadStart(10, 10, 1, "victim", "/usr/bin/victim", None, -10 * S,
                               target="victim"), ThreadEvents(10, 10, NORMAL, 1)])
    alerts = router.ingest([Exec(10, 10, "/tmp/x/other", "other", 2 * S, target="other"),
                            ThreadEvents(10, 10, BAD, 2 * S + 1)])
    assert other.stats.windows_warmup == 0 and len(alerts) == 1
    # The binary's own file is a restart there too: a warm-up, no alert.
    router.ingest([ThreadStart(20, 20, 1, "victim", "/usr/bin/victim", None, -10 * S,
                               target="victim"),
                   Exec(20, 20, "/usr/bin/other", "other", 3 * S, target="other"),
                   ThreadEvents(20, 20, BAD, 3 * S + 1)])
    assert other.stats.windows_warmup == 1 and other.stats.anomalous_windows == 1


def test_learning_keeps_per_thread_streams_and_never_novel_windows():
    """--learn gets each thread's learnable windows (in order, per thread), stitched back
    into that thread's stream; a window below the threshold that holds an unseen pair
    (read, read) is not learned: it would wear the novelty rule away."""
    from sysgram.watch.learning import StreamLearner

    learner = StreamLearner(FakeProfile.window_, FakeProfile.stride_)
    eng = WatchEngine(ThresholdScorer(FakeProfile(), learner=learner),
                      WatchConfig("victim", warmup_s=0), NAMES)
    a, b = np.tile(NORMAL, 3), np.roll(np.tile(NORMAL, 3), 1)
    eng.ingest([start(10), start(11), ThreadEvents(10, 10, a, 1), ThreadEvents(11, 11, b, 1),
                ThreadEvents(10, 10, ids(READ, READ, READ, READ), 2)])
    streams = learner.streams()
    assert sorted(streams[k].tolist() for k in range(len(streams))) == sorted(
        [a.tolist(), b.tolist()])
    assert eng.scorer.learning_refused == 2  # the windows holding (read, read)
    from sysgram.watch.render import summary_text

    summary = summary_text("victim", eng.stats, 1.0, 0, "duration")
    assert "learned from 10 windows; 2 not learned" in summary


def test_host_numbers_are_translated_to_the_profile_table():
    """A profile trained on i386 numbers: the host's x86_64 numbers are translated by name
    before scoring, and alerts name calls with the profile's table."""
    i386 = table("i386")

    class I386Profile(FakeProfile):
        arch_ = "i386"
        known = np.array([i386.number(n) for n in ("read", "write", "openat", "close")])
        pairs = {(int(x), int(y)) for x, y in zip(known, np.roll(known, -1), strict=True)}

    eng = WatchEngine(ThresholdScorer(I386Profile()),
                      WatchConfig("victim", warmup_s=0, arch="x86_64"), i386)
    assert eng.ingest([start(10), ThreadEvents(10, 10, np.tile(NORMAL, 4), 1)]) == []
    (alert,) = eng.ingest([ThreadEvents(10, 10, ids(CLONE, EXECVE), 2)])
    assert alert.explanation.new_syscalls == ["clone", "execve"]


def test_an_unattributed_loss_ends_every_open_segment():
    eng = engine()
    eng.ingest([start(10), start(11), ThreadEvents(10, 10, ids(READ, WRITE, OPENAT), 1),
                ThreadEvents(11, 11, ids(READ, WRITE), 1)])
    eng.lose_everywhere(7, 2)
    eng.ingest([ThreadEvents(10, 10, ids(CLOSE, READ, WRITE), 3),
                ThreadEvents(11, 11, ids(OPENAT, CLOSE), 3)])
    assert eng.stats.windows_scored == 0  # no window spans the loss, in either thread
    assert eng.stats.lost_unattributed == 7 and eng.stats.windows_unscored_loss > 0


class LossyCollector:
    """A `Source` handing out `drains` one per poll; from the first poll on, its counters
    say the kernel lost 5 calls of no known thread (between the first drain and the next)."""

    def __init__(self, drains: list[list]) -> None:
        self.drains = drains
        self.polls = 0

    def poll(self, timeout: float):
        from sysgram.collector.items import Drain

        self.polls += 1
        return Drain(self.drains.pop(0) if self.drains else [])

    def stats(self):
        from sysgram.collector.items import CollectorStats

        lost = 5 if self.polls >= 1 else 0
        return CollectorStats(0, 0, lost, lost, 0, 0, 0, 0, 0, 0, 0)


def test_the_session_cuts_streams_when_the_collector_counts_unattributed_losses():
    import threading

    from sysgram.watch.session import StopRules, WatchSession

    collector = LossyCollector([[start(10), ThreadEvents(10, 10, ids(READ, WRITE, OPENAT), 1)],
                                [ThreadEvents(10, 10, ids(CLOSE, READ, WRITE), 2)]])
    eng = engine()
    WatchSession(collector, eng, [], StopRules(duration_s=0.2)).run(threading.Event())
    assert eng.stats.lost_unattributed == 5 and eng.stats.windows_scored == 0


def test_a_host_watch_cuts_every_binarys_streams_and_counts_the_loss_once():
    # The same loss on a watch of two binaries (watch --all): the router passes the cut
    # to both engines (no window of either spans the loss) and the loss is counted once.
    import threading

    from sysgram.watch.host import HostRouter
    from sysgram.watch.session import StopRules, WatchSession

    def begin(tid: int, binary: str) -> ThreadStart:
        return ThreadStart(tid, tid, 1, binary, f"/usr/bin/{binary}", "ab" * 32, 0,
                           target=binary)

    collector = LossyCollector(
        [[begin(10, "victim"), ThreadEvents(10, 10, ids(READ, WRITE, OPENAT), 1),
          begin(20, "other"), ThreadEvents(20, 20, ids(READ, WRITE, OPENAT), 1)],
         [ThreadEvents(10, 10, ids(CLOSE, READ, WRITE), 2),
          ThreadEvents(20, 20, ids(CLOSE, READ, WRITE), 2)]])
    victim = engine()
    other = engine(binary_path="/usr/bin/other")
    router = HostRouter({"victim": victim, "other": other})
    WatchSession(collector, router, [], StopRules(duration_s=0.2)).run(threading.Event())
    assert victim.stats.events == other.stats.events == 6
    assert victim.stats.windows_scored == other.stats.windows_scored == 0
    assert router.stats.lost_unattributed == 5


def test_a_quiet_thread_gets_its_last_calls_scored_without_waiting_for_more():
    # Window 4, stride 2: after 7 calls the window holding the seventh is not complete;
    # an attack's last calls in a thread that then blocks must not wait for calls to come.
    eng = engine()
    assert eng.ingest([start(10), ThreadEvents(10, 10, ids(READ, WRITE, OPENAT, CLOSE, READ,
                                                             CONNECT, CLONE), S)]) == []
    assert eng.flush_idle(S + 50_000_000) == []            # not quiet long enough yet
    (alert,) = eng.flush_idle(2 * S)
    assert alert.explanation.new_syscalls == ["connect", "clone"]
    assert eng.stats.windows_idle == 1
    assert eng.flush_idle(3 * S) == [] and eng.stats.windows_idle == 1   # once
    # The stream's windows go on as before: the next full window still comes, and the
    # close does not cut the flushed tail again.
    scored = eng.stats.windows_scored
    eng.ingest([ThreadEvents(10, 10, ids(READ), 4 * S), ThreadExit(10, 10, 5 * S, True)])
    assert eng.stats.windows_scored == scored + 1


def test_the_flushed_tail_leaves_the_offline_windows_unchanged():
    from sysgram.features.stream import ThreadStream

    calls = np.arange(100, dtype=np.uint16)
    plain, flushed = ThreadStream(8, 4), ThreadStream(8, 4)
    out_plain, out_flushed = [], []
    for lo in range(0, 100, 7):
        out_plain += list(plain.feed(calls[lo:lo + 7]).windows)
        out_flushed += list(flushed.feed(calls[lo:lo + 7]).windows)
        flushed.tail()
    assert np.array_equal(np.array(out_plain), np.array(out_flushed))


@pytest.mark.parametrize(("unseen", "created", "noted"), [
    (True, True, True),      # a new thread's first window, training saw no thread start
    (True, False, False),    # a thread found running: its first window is not its start
    (False, True, False),    # training saw threads start: nothing to say
])
def test_an_alert_on_a_new_threads_first_calls_says_training_saw_no_thread_start(
        unseen, created, noted):
    from sysgram.watch.render import alert_text

    eng = engine(thread_start_unseen=unseen)
    bad = ids(CLONE, EXECVE, CONNECT, CLONE)
    (alert,) = eng.ingest([start(10, created=created), ThreadEvents(10, 10, bad, S)])
    assert alert.explanation.thread_start is noted
    assert ('"thread_start":true' in to_json_line(alert.record()).replace(" ", "")) is noted
    assert ("training saw no thread start" in alert_text(alert)) is noted
    # The same thread's later windows are not its start.
    (later,) = eng.ingest([ThreadEvents(10, 10, np.tile(bad, 3), 10 * S)])
    assert later.explanation.thread_start is False
