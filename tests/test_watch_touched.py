"""Touched alerts in the watch engine: new items alert once per period, windows list them."""

from __future__ import annotations

import json

import numpy as np
from fakes import FakeProfile

from sysgram.collector.items import Peer, ThreadEvents, ThreadExit, ThreadStart, Touched
from sysgram.models.touched import TouchedSets
from sysgram.syscalls import table
from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine
from sysgram.watch.alerts import to_json_line
from sysgram.watch.render import alert_text, repeat_text
from sysgram.watch.touched import TouchedWatch

S = 1_000_000_000
NAMES = table("x86_64")
READ, WRITE, OPENAT, CLOSE, EXECVE = 0, 1, 257, 3, 59


def sets() -> TouchedSets:
    train = [{"kind": "open", "path": f"/proc/{p}/stat", "ts_ns": 1} for p in (5, 6)]
    train += [{"kind": "connect", "result": 0, "protocol": "tcp", "ts_ns": 2,
               "peer": {"family": "ipv4", "address": "127.0.0.1", "port": 5432}}]
    return TouchedSets(networks=()).fit(train)


def opened(tid, path, ts):
    return Touched(tid=tid, pid=tid, ts_ns=ts, kind="open", syscall=OPENAT, path=path)


def engine(period_s=60.0, burst=20) -> WatchEngine:
    return WatchEngine(ThresholdScorer(FakeProfile()), WatchConfig(binary="victim", warmup_s=0),
                       NAMES, touched=TouchedWatch(sets(), "victim", period_s, burst))


def start(tid, ts=0):
    return ThreadStart(tid, tid, 1, "victim", "/usr/bin/victim", None, ts)


def test_a_new_file_alerts_once_per_period_and_repeats_are_counted():
    eng = engine()
    items = [start(7), opened(7, "/proc/99/stat", 1 * S), opened(7, "/etc/shadow", 2 * S),
             opened(7, "/etc/shadow", 3 * S), opened(7, "/etc/shadow", 4 * S)]
    alerts = eng.ingest(items)
    assert [(a.scope, a.set_name, a.key) for a in alerts] == [("touched", "files", "/etc/shadow")]
    record = json.loads(to_json_line(alerts[0].record()))
    assert record["new"] == {"set": "files", "key": "/etc/shadow",
                             "item": {"kind": "open", "path": "/etc/shadow"}}
    assert record["pid"] == 7 and record["comm"] == "victim"
    assert record["new_syscalls"] == []          # every record of the schema has it
    assert eng.stats.alerts == 1 and eng.stats.touched_new == 3
    repeats = eng.expire(62 * S)
    assert [(r.occurrences, r.keys) for r in repeats] == [(2, {"files /etc/shadow": 2})]
    assert "+2 touched in 60 s" in repeat_text(repeats[0])
    # A new period: the same file alerts again.
    assert len(eng.ingest([opened(7, "/etc/shadow", 70 * S)])) == 1


def test_new_peers_and_programs_alert_and_learned_ones_do_not():
    eng = engine()
    known = Touched(tid=7, pid=7, ts_ns=S, kind="connect", syscall=42, result=0, protocol="tcp",
                    peer=Peer("ipv4", "127.0.0.1", 5432))
    new_peer = Touched(tid=7, pid=7, ts_ns=S, kind="connect", syscall=42, result=0,
                       protocol="tcp", peer=Peer("ipv4", "203.0.113.9", 4444))
    shell = Touched(tid=7, pid=7, ts_ns=S, kind="exec", syscall=EXECVE, result=0,
                    path="/bin/sh", argv=("sh", "-c", "id"))
    alerts = eng.ingest([start(7), known, new_peer, shell])
    assert [(a.set_name, a.key) for a in alerts] == [
        ("peers", "connect tcp 203.0.113.9:4444"), ("programs", "/bin/sh")]
    text = alert_text(alerts[1])
    assert "new program: /bin/sh  argv: sh -c id" in text


def test_one_alert_per_set_and_period_the_other_new_items_fold_into_the_repeat():
    """A shell that reads four new files and connects out: one file alert, one peer
    alert; the three other files are counted, by key, in the period's repeat."""
    eng = engine()
    items = [start(7)] + [opened(7, f"/srv/secret{c}x", S + n) for n, c in enumerate("abcd")]
    items.append(Touched(tid=7, pid=7, ts_ns=S + 9, kind="connect", syscall=42, result=0,
                         protocol="tcp", peer=Peer("ipv4", "203.0.113.9", 4444)))
    alerts = eng.ingest(items)
    assert [(a.set_name, a.key) for a in alerts] == [
        ("files", "/srv/secretax"), ("peers", "connect tcp 203.0.113.9:4444")]
    (repeat,) = eng.finish()[1]
    assert repeat.occurrences == 3
    assert set(repeat.keys) == {f"files /srv/secret{c}x" for c in "bcd"}


def test_beyond_the_burst_new_sets_fold_into_the_repeat():
    eng = engine(burst=1)
    shell = Touched(tid=7, pid=7, ts_ns=S + 5, kind="exec", syscall=EXECVE, result=0,
                    path="/bin/sh", argv=("sh",))
    alerts = eng.ingest([start(7), opened(7, "/srv/secretx", S), shell])
    assert [a.set_name for a in alerts] == ["files"]
    (repeat,) = eng.finish()[1]
    assert repeat.keys == {"programs /bin/sh": 1}


def child(pid, ppid, ts=0):
    return ThreadStart(pid, pid, ppid, "victim", "/usr/bin/victim", None, ts,
                       watched_parent=True)


def test_another_branch_of_the_tree_touching_something_new_is_told_not_folded():
    """The suite's sshd (run of 2026-12-06 20:44): a login's command (30, under session 20
    of listener 10) opened the tree's files period with a new temp file; 1.9 s later the
    listener itself read /etc/shadow. That alert was folded into the command's repeat,
    under the command's pid, so nothing said the listener read it."""
    eng = engine()
    eng.ingest([start(10), child(20, 10), child(30, 20)])
    first = eng.ingest([opened(30, "/root/tmp.x1", 1 * S)])
    assert [(a.process.pid, a.key) for a in first] == [(30, "/root/tmp.x<n>")]
    told = eng.ingest([opened(10, "/etc/shadow", 2 * S)])
    assert [(a.process.pid, a.key) for a in told] == [(10, "/etc/shadow")]
    # What those processes go on to touch, and what they fork, continue their stories.
    assert eng.ingest([opened(10, "/etc/gshadow", 3 * S), opened(30, "/root/tmp.x2", 3 * S),
                       child(31, 30, 3 * S), opened(31, "/root/tmp.x3", 3 * S)]) == []
    (repeat,) = eng.finish()[1]
    assert repeat.occurrences == 3                       # nothing dropped
    # Without branches (a burst of 1) the listener's read folds, counted.
    eng = engine(burst=1)
    eng.ingest([start(10), child(20, 10), child(30, 20), opened(30, "/root/tmp.x1", 1 * S)])
    assert eng.ingest([opened(10, "/etc/shadow", 2 * S)]) == []


def test_a_window_alert_lists_what_its_thread_touched_escaped_on_a_terminal():
    eng = engine()
    hostile = "/tmp/x\n\x1b[2Jevil"
    items = [start(7), ThreadEvents(7, 7, np.array([READ, OPENAT], np.uint16), S),
             opened(7, "/proc/5/stat", S),
             Touched(tid=7, pid=7, ts_ns=S, kind="connect", syscall=42, result=0,
                     protocol="tcp", peer=Peer("ipv4", "127.0.0.1", 5432)),
             opened(7, hostile, S),
             ThreadEvents(7, 7, np.array([EXECVE, EXECVE, EXECVE, EXECVE], np.uint16), 2 * S)]
    alerts = eng.ingest(items)
    window = [a for a in alerts if a.scope == "window"]
    assert window, alerts
    touched = window[0].record()["touched"]
    assert touched["files"] == ["/proc/5/stat", hostile]
    assert touched["peers"] == [{"family": "ipv4", "address": "127.0.0.1", "port": 5432,
                                 "direction": "out", "protocol": "tcp"}]
    text = alert_text(window[0])
    assert "files: /proc/5/stat, /tmp/x\\x0a\\x1b[2Jevil" in text
    assert "\x1b" not in text and "peers: out tcp 127.0.0.1:5432" in text
    line = to_json_line(window[0].record())
    assert "\n" not in line and json.loads(line)["touched"]["files"][1] == hostile


def test_thread_state_is_freed_at_exit_after_its_last_window_listed_it():
    eng = engine()
    alerts = eng.ingest([start(7), opened(7, "/proc/5/stat", S),
                         ThreadEvents(7, 7, np.array([EXECVE] * 3, np.uint16), S),
                         ThreadExit(7, 7, 2 * S, True)])
    (last,) = [a for a in alerts if a.scope == "window"]     # the short last window
    assert last.touched["files"] == ["/proc/5/stat"]
    assert eng.touched.threads == 0


def test_without_sets_nothing_alerts_but_windows_still_list():
    eng = WatchEngine(ThresholdScorer(FakeProfile()), WatchConfig(binary="victim", warmup_s=0),
                      NAMES, touched=TouchedWatch(None, "victim"))
    assert eng.ingest([start(7), opened(7, "/etc/shadow", S)]) == []


def test_touched_alerts_share_the_runs_id_sequence():
    eng = engine()
    items = [start(7), ThreadEvents(7, 7, np.array([EXECVE] * 4, np.uint16), S),
             opened(7, "/etc/shadow", 2 * S)]
    alerts = eng.ingest(items)
    assert sorted(a.id for a in alerts) == list(range(1, len(alerts) + 1)) and len(alerts) == 2


def test_lost_touched_records_are_counted_and_shown():
    from sysgram.collector.items import TouchedGap
    from sysgram.watch.render import summary_text

    eng = engine()
    eng.ingest([start(7), TouchedGap(7, 7, 5, S), opened(7, "/etc/shadow", S)])
    assert eng.stats.touched_lost == 5
    assert "1 touched records outside the learned sets; 5 touched records lost" in summary_text(
        "victim", eng.stats, 1.0, 0, "signal")


def test_a_refused_connect_does_not_hide_a_later_one_in_progress():
    eng = engine()
    peer = Peer("ipv4", "203.0.113.9", 4444)

    def connect(result):
        return Touched(tid=7, pid=7, ts_ns=S, kind="connect", syscall=42, result=result,
                       protocol="tcp", peer=peer)

    assert eng.ingest([start(7), connect(-111)]) == []              # refused: touched nothing
    assert [a.key for a in eng.ingest([connect(-115)])] == ["connect tcp 203.0.113.9:4444"]


def test_a_cut_path_is_checked_even_after_the_same_text_whole_was_found_known():
    from sysgram.watch.alerts import ProcessContext

    web = [{"kind": "open", "path": f"/srv/www/{chr(97 + i % 26)}{chr(97 + i // 26)}",
            "ts_ns": 1} for i in range(40)]
    watch = TouchedWatch(TouchedSets(networks=()).fit(web), "victim")
    ctx = ProcessContext(7, 1, "victim", "/usr/bin/victim", None)
    long_name = "/srv/www/" + "a" * 246
    whole = Touched(tid=7, pid=7, ts_ns=S, kind="open", syscall=OPENAT, path=long_name)
    watch.observe(whole, ctx)
    assert watch.take_alerts() == []                   # a name in the web root, cached
    watch.observe(Touched(tid=7, pid=7, ts_ns=2 * S, kind="open", syscall=OPENAT,
                          path=long_name, cut=True), ctx)
    assert [a.key for a in watch.take_alerts()] == [long_name + "//<cut>"]
