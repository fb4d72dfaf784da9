"""Thread roles in training: runs, residents, and the roles training saw run only once."""

import numpy as np

from sysgram.datasets.trace import ThreadTrace
from sysgram.models.roles import (
    merge_roles,
    once_seen,
    once_seen_warnings,
    startup_warnings,
    summarise_roles,
)

S = 10**9


def thread(comm: str, start_s: float, end_s: float, tid: int,
           created: bool | None = None) -> ThreadTrace:
    return ThreadTrace(tid=tid, pid=tid, comm=comm, start_ns=int(start_s * S) + S,
                       end_ns=int(end_s * S) + S, ids=np.zeros(100, dtype=np.uint16),
                       created=created)


def training() -> list[ThreadTrace]:
    threads = [thread("server", 0, 90, 1), thread("worker", 0, 90, 2)]    # resident
    threads += [thread("bash", t, t + 1, 100 + t) for t in range(10, 90, 10)]  # every 10 s
    threads += [thread("checkpoint", 42, 43, 500), thread("checkpoint", 42.5, 44, 501)]
    return threads


def test_roles_count_runs_and_residents():
    summary = summarise_roles(training())
    roles = {r["name"]: r for r in summary["roles"]}
    assert summary["span_s"] == 90
    assert roles["server"]["resident"] and roles["worker"]["resident"]
    assert not roles["bash"]["resident"] and roles["bash"]["runs"] == 8
    assert roles["checkpoint"]["runs"] == 1 and roles["checkpoint"]["threads"] == 2


def test_a_role_that_ran_once_is_named_with_the_fix():
    summary = summarise_roles(training())
    assert [r["name"] for r in once_seen(summary)] == ["checkpoint"]
    (message,) = once_seen_warnings(summary)
    assert "'checkpoint' ran once" in message and "--duration" in message


def test_a_later_recording_with_a_second_run_clears_the_warning():
    first = summarise_roles(training())
    later = summarise_roles([thread("server", 0, 60, 1), thread("checkpoint", 30, 31, 600)])
    merged = merge_roles(first, later)
    assert {r["name"]: r["runs"] for r in merged["roles"]}["checkpoint"] == 2
    assert once_seen(merged) == []


def test_short_trainings_and_untimed_corpora_claim_nothing():
    short = [thread("x", 0, 10, 1), thread("job", 5, 6, 2)]
    assert once_seen(summarise_roles(short)) == []
    assert summarise_roles([ThreadTrace(tid=1, pid=1, ids=np.zeros(5, np.uint16))]) is None


def test_a_training_that_saw_no_thread_start_says_so_and_one_that_did_does_not():
    # A pool of idle threads first seen late (their first call came at 30 s) but found
    # running: resident, not a run, and no thread was started while recording.
    pooled = [thread("server", 0, 90, 1, created=False),
              *[thread("pool", 30 + k, 90, 10 + k, created=False) for k in range(4)]]
    summary = summarise_roles(pooled)
    roles = {r["name"]: r for r in summary["roles"]}
    assert summary["threads_created"] == 0
    assert roles["pool"]["resident"] and roles["pool"]["runs"] == 0
    assert once_seen(summary) == []
    (message,) = startup_warnings(summary)
    assert "no thread or process started while training" in message and "--append" in message
    # One thread started while recording: start-up was seen.
    grown = summarise_roles([*pooled, thread("pool", 50, 90, 20, created=True)])
    assert grown["threads_created"] == 1 and startup_warnings(grown) == []
    # Recordings that do not mark it (older ones) and appended trainings claim nothing new.
    assert summarise_roles(training())["threads_created"] is None
    assert startup_warnings(summarise_roles(training())) == []
    assert merge_roles(summary, summarise_roles(training()))["threads_created"] is None
    assert merge_roles(summary, grown)["threads_created"] == 1


def test_train_warns_of_a_role_that_ran_once_and_profiles_show_lists_roles(tmp_path, capsys):
    from sysgram.cli import main
    from sysgram.datasets import DatasetWriter
    from sysgram.features.synthetic import random_chain, sample_chain
    from sysgram.models.store import ProfileStore

    rng = np.random.default_rng(3)
    chain = random_chain(np.arange(40), np.random.default_rng(4))
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="synthetic") as w:
        for tid, comm, start_s, end_s in [(1, "srv", 0, 60), (2, "srv", 0, 60),
                                          *[(10 + k, "child", 6 * k + 3, 6 * k + 4)
                                            for k in range(1, 9)],
                                          (90, "rotate", 31, 32)]:
            w.start_thread(tid, pid=tid, comm=comm, start_ns=(start_s + 1) * S,
                           created=comm != "srv")
            w.append(tid, sample_chain(chain, 3000, rng))
            w.end_thread(tid, end_ns=(end_s + 1) * S)
    store = tmp_path / "store"
    assert main(["train", "--proc", "srv", "--from", str(tmp_path / "ds"), "--store",
                 str(store)]) == 0
    err = capsys.readouterr().err
    assert "thread role 'rotate' ran once" in err and "'child'" not in err
    assert "no thread or process started while training" not in err
    roles = {r["name"]: r for r in ProfileStore(store).header("srv")["roles"]["roles"]}
    assert roles["child"]["runs"] == 8 and roles["srv"]["resident"]
    assert main(["profiles", "show", "srv", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "rotate" in out and "once       thread role 'rotate'" in out
    assert "9 threads or processes started while it recorded" in out and "start-up" not in out
    assert "threaded" not in out   # one thread per process: starting one would be new
    from sysgram.watch.hostprofiles import EngineSettings, build_engine

    engine = build_engine(ProfileStore(store).load("srv"), "srv", EngineSettings())
    assert not engine.config.thread_start_unseen


def test_train_says_when_no_thread_started_while_it_recorded(tmp_path, capsys):
    from sysgram.cli import main
    from sysgram.datasets import DatasetWriter
    from sysgram.features.synthetic import random_chain, sample_chain

    rng = np.random.default_rng(3)
    chain = random_chain(np.arange(40), np.random.default_rng(4))
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="synthetic") as w:
        for tid in (1, 2, 3):          # a server and its pooled threads, all found running
            w.start_thread(tid, pid=1, comm="srv", start_ns=(10 * tid) * S, created=False)
            w.append(tid, sample_chain(chain, 3000, rng))
    store = tmp_path / "store"
    assert main(["train", "--proc", "srv", "--from", str(tmp_path / "ds"), "--store",
                 str(store)]) == 0
    assert "no thread or process started while training" in capsys.readouterr().err
    assert main(["profiles", "show", "srv", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "start-up   no thread or process started" in out
    assert "threaded (a thread's start and exit calls are known)" in out
    # The watcher built on it knows, to say so in alerts on a new thread's first calls.
    from sysgram.models.store import ProfileStore
    from sysgram.watch.hostprofiles import EngineSettings, build_engine

    loaded = ProfileStore(store).load("srv")
    assert loaded.profile.threaded_   # saved and loaded with the profile
    engine = build_engine(loaded, "srv", EngineSettings())
    assert engine.config.thread_start_unseen


def _server_threads(pid_of) -> list[ThreadTrace]:
    """Two long-lived threads running a server's loop (futex waits included), the pid of
    each given by `pid_of(tid)`."""
    from sysgram.syscalls import table

    nr = table("x86_64")
    loop = [nr.number(n) for n in ("epoll_wait", "read", "futex", "write", "close", "openat",
                                   "newfstatat", "read", "sendfile", "futex", "epoll_wait")]
    rng = np.random.default_rng(1)
    out = []
    for tid in (10, 11):
        ids = np.array([loop[k] for k in rng.integers(0, len(loop), 6000)], dtype=np.uint16)
        out.append(ThreadTrace(tid=tid, pid=pid_of(tid), comm="server", start_ns=S,
                               end_ns=91 * S, ids=ids, created=False, arch="x86_64"))
    return out


def test_a_binary_seen_running_threads_knows_how_a_thread_starts_and_ends():
    from sysgram.features import Sequences
    from sysgram.models.profile import Profile
    from sysgram.models.training import train_profile
    from sysgram.syscalls import table

    nr = table("x86_64")
    ending = [nr.number(n) for n in ("futex", "rt_sigprocmask", "madvise", "exit")]
    window = Sequences.from_list([np.array(ending * 1, dtype=np.uint16)])
    verdict = {}
    for threaded, pid_of in ((True, lambda tid: 10), (False, lambda tid: tid)):
        result = train_profile("server", _server_threads(pid_of),
                               Profile(detector="ngram-lm", arch="x86_64"))
        assert result.profile.threaded_ is threaded
        assert result.roles["multithreaded"] is threaded
        verdict[threaded] = int(result.profile.novelty(window).events[0])
    # Threads in one process: their pool may end a thread; one thread per process: new.
    assert verdict == {True: 0, False: 3}
