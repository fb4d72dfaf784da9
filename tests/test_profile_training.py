"""Training data: live drains -> thread traces, novelty rate and the --until-stable decision."""

import numpy as np

from sysgram.collector import Gap, ThreadEvents, ThreadStart
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.training_data import LiveLearning, binary_identity, to_streams


def _drain(tid, ids, lost=0):
    items = [ThreadEvents(tid, 1, ids, 0)]
    return items + ([Gap(tid, 1, lost, 0)] if lost else [])


def test_drains_become_traces_cut_at_losses():
    learning = LiveLearning("x86_64", 8, 4, (1, 2), min_windows=1)
    learning.add([ThreadStart(5, 1, None, "srv", "/usr/bin/srv", "ab" * 32, 0)], 0.0)
    learning.add(_drain(5, np.arange(10, dtype=np.uint16), lost=3), 0.1)
    learning.add(_drain(5, np.arange(6, dtype=np.uint16)), 0.2)
    (trace,) = learning.recording.traces()
    assert trace.ids.tolist() == list(range(10)) + list(range(6))
    assert trace.gaps.tolist() == [[10, 3]]
    assert learning.recording.lost == 3
    streams = to_streams(learning.recording.traces(), "x86_64")
    assert streams.pieces.lengths.tolist() == [10, 6] and streams.lost_events == 3
    assert binary_identity(learning.recording.traces(), "srv")["path"] == "/usr/bin/srv"


def test_stable_once_novelty_stays_low_long_enough():
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(12), rng, successors=2)
    learning = LiveLearning("x86_64", 16, 4, (1, 2, 3), stable_rate=1.0, stable_for=5.0,
                            min_windows=200, span=3.0)
    stream = sample_chain(chain, 200 * 400, rng)
    now, became_stable = 0.0, None
    for k in range(200):  # one second apart, 400 calls (~100 windows) each
        now += 1.0
        learning.add(_drain(1, stream[k * 400 : (k + 1) * 400]), now)
        if learning.stable(now):
            became_stable = now
            break
    assert became_stable is not None
    assert learning.novelty.windows >= 200
    assert learning.rate() < 1.0
    # New behaviour resets it.
    learning.add(_drain(1, np.arange(100, 164, dtype=np.uint16)), now + 1)
    assert not learning.stable(now + 1)


def test_memory_bound_stops_recording():
    learning = LiveLearning("x86_64", 8, 4, (1,), max_calls=100)
    learning.add(_drain(1, np.zeros(60, dtype=np.uint16)), 0.0)
    assert not learning.full
    learning.add(_drain(2, np.zeros(60, dtype=np.uint16)), 0.1)
    assert learning.full


def test_a_reused_thread_id_keeps_both_threads_calls():
    learning = LiveLearning("x86_64", 8, 4, (1, 2), min_windows=1)
    learning.add([ThreadStart(5, 1, None, "srv", None, None, 0)], 0.0)
    learning.add(_drain(5, np.arange(10, dtype=np.uint16)), 0.1)
    learning.add([ThreadStart(5, 5, 1, "srv", None, None, 1)], 0.2)  # the tid comes back
    learning.add(_drain(5, np.arange(20, 26, dtype=np.uint16)), 0.3)
    traces = learning.recording.traces()
    assert [t.ids.tolist() for t in traces] == [list(range(10)), list(range(20, 26))]


def test_an_unattributed_loss_cuts_every_recorded_thread():
    """Losses no thread can be named for may belong to any thread: live training cuts every
    thread where the collector's count rose, so no training window spans them."""
    learning = LiveLearning("x86_64", 8, 4, (1, 2), min_windows=1)
    learning.add([ThreadStart(5, 1, None, "srv", None, None, 0),
                  ThreadStart(6, 1, None, "srv", None, None, 0)], 0.0)
    learning.add(_drain(5, np.arange(10, dtype=np.uint16))
                 + _drain(6, np.arange(7, dtype=np.uint16)), 0.1)
    learning.add(_drain(5, np.arange(6, dtype=np.uint16)), 0.2, unattributed=4)
    learning.add(_drain(6, np.arange(3, dtype=np.uint16)), 0.3, unattributed=4)  # no rise
    streams = to_streams(learning.recording.traces(), "x86_64")
    assert streams.pieces.lengths.tolist() == [10, 6, 7, 3]
    assert learning.recording.lost == 4


def test_live_threads_carry_their_times_for_the_roles_summary():
    from sysgram.collector import ThreadExit
    from sysgram.models.roles import summarise_roles

    learning = LiveLearning("x86_64", 8, 4, (1, 2), min_windows=1)
    s = 10**9
    learning.add([ThreadStart(5, 5, None, "srv", None, None, 1 * s),
                  ThreadEvents(5, 5, np.arange(10, dtype=np.uint16), 1 * s),
                  ThreadEvents(7, 7, np.arange(10, dtype=np.uint16), 30 * s),  # unannounced
                  ThreadExit(7, 7, 31 * s, True),
                  ThreadEvents(5, 5, np.arange(10, dtype=np.uint16), 60 * s)], 0.0)
    srv, job = sorted(learning.recording.traces(), key=lambda t: t.tid)
    assert (srv.start_ns, srv.end_ns) == (1 * s, 60 * s)
    assert (job.start_ns, job.end_ns) == (30 * s, 31 * s)
    roles = {r["name"]: r for r in summarise_roles([srv, job])["roles"]}
    assert roles["srv"]["resident"] and roles["?"]["runs"] == 1


def test_live_threads_carry_whether_they_started_while_traced():
    from sysgram.models.roles import startup_warnings, summarise_roles

    learning = LiveLearning("x86_64", 8, 4, (1, 2), min_windows=1)
    s = 10**9
    learning.add([ThreadStart(5, 5, None, "srv", None, None, 1 * s, created=False),
                  ThreadEvents(5, 5, np.arange(10, dtype=np.uint16), 1 * s),
                  ThreadStart(6, 5, None, "srv", None, None, 30 * s, created=False),
                  ThreadEvents(6, 5, np.arange(10, dtype=np.uint16), 30 * s)], 0.0)
    summary = summarise_roles(learning.recording.traces())
    assert summary["threads_created"] == 0 and len(startup_warnings(summary)) == 1
    learning.add([ThreadStart(7, 5, None, "srv", None, None, 40 * s, created=True),
                  ThreadEvents(7, 5, np.arange(10, dtype=np.uint16), 40 * s)], 0.0)
    summary = summarise_roles(learning.recording.traces())
    assert summary["threads_created"] == 1 and startup_warnings(summary) == []
