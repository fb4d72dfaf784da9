"""The host watcher's parts without the kernel: router, syslog, alerts file, metrics."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest

from sysgram.collector import Exec, ThreadEvents, ThreadExit, ThreadStart
from sysgram.errors import UserError
from sysgram.watch.alertfile import AlertFile
from sysgram.watch.engine import WatchStats
from sysgram.watch.host import HostRouter, RoutedEngine
from sysgram.watch.syslog import SyslogSink, format_message


@dataclass
class FakeEngine:
    """A RoutedEngine that keeps what it was given."""

    seen: list = field(default_factory=list)
    stats: WatchStats = field(default_factory=WatchStats)
    finished: int = 0

    def ingest(self, items) -> list:
        items = list(items)
        self.seen += items
        self.stats.events += sum(len(i.ids) for i in items if isinstance(i, ThreadEvents))
        return [f"alert-{len(self.seen)}"] if items else []

    def flush_idle(self, now_ns: int) -> list:
        return []

    def expire(self, now_ns: int) -> list:
        return []

    def reap(self, now_ns, idle_s, alive) -> int:
        return 0

    def lose_everywhere(self, lost: int, ts_ns: int) -> None:
        self.stats.lost_unattributed += lost

    def finish(self):
        self.finished += 1
        return ["final"], ["repeat"]

    @property
    def processes(self) -> int:
        return 0

    @property
    def threads(self) -> int:
        return 0


def _start(tid: int, pid: int, target: str | None) -> ThreadStart:
    return ThreadStart(tid=tid, pid=pid, ppid=1, comm=target, exe=None, exe_sha256=None,
                       ts_ns=tid, target=target)


def _events(tid: int, pid: int, n: int = 3) -> ThreadEvents:
    return ThreadEvents(tid=tid, pid=pid, ids=np.zeros(n, np.uint16), ts_ns=tid + 1)


def test_fake_engine_conforms():
    engine: RoutedEngine = FakeEngine()
    assert engine.processes == 0


def test_each_process_goes_to_its_binary_and_an_exec_moves_it():
    a, b = FakeEngine(), FakeEngine()
    router = HostRouter({"nginx": a, "php": b})
    router.ingest([_start(10, 10, "nginx"), _events(10, 10), _start(20, 20, "php"),
                   _events(20, 20), _start(11, 10, "nginx"), _events(11, 10)])
    assert [type(i).__name__ for i in a.seen] == ["ThreadStart", "ThreadEvents"] * 2
    assert {i.pid for i in b.seen} == {20}
    # pid 10 execs into php: nginx's engine sees the thread end, php's sees it start.
    router.ingest([Exec(tid=10, pid=10, filename="/usr/bin/php", comm="php", ts_ns=50,
                        target="php"), _events(10, 10, 5)])
    assert type(a.seen[-1]).__name__ == "ThreadExit" and a.seen[-1].tid == 10
    assert [type(i).__name__ for i in b.seen[-3:]] == ["ThreadStart", "Exec", "ThreadEvents"]
    assert router.stats.events == 3 + 3 + 3 + 5
    assert router.router_stats.items_unrouted == 0


def test_a_removed_binary_keeps_its_counts_and_its_items_are_counted_as_dropped():
    a, b = FakeEngine(), FakeEngine()
    router = HostRouter({"nginx": a, "php": b})
    router.ingest([_start(10, 10, "nginx"), _events(10, 10), _start(20, 20, "php")])
    assert router.remove("nginx") == (["final"], ["repeat"])
    router.ingest([_events(10, 10), _events(20, 20),
                   ThreadExit(tid=20, pid=20, ts_ns=99, group_dead=True)])
    assert router.router_stats.items_unrouted == 1
    assert router.stats.events == 3 + 3             # nginx's 3 are still counted
    assert list(router.stats_by_binary()) == ["php"]


def test_a_reload_runs_between_drains_and_its_records_come_out():
    router = HostRouter({"nginx": FakeEngine()})
    calls = []

    def reload(r):
        calls.append(r)
        r.add("php", FakeEngine())
        return ["from-removed-engine"], ["its-repeat"]

    router.on_reload(reload)
    router.request_reload()
    assert calls == []                              # nothing happens in the signal handler
    alerts = router.ingest([])
    assert calls == [router] and alerts == ["from-removed-engine"]
    assert router.expire(0) == ["its-repeat"]
    assert set(router.engines) == {"nginx", "php"} and router.router_stats.reloads == 1


class _Alert:
    def record(self) -> dict:
        return {"kind": "alert", "id": 7, "ts_ns": 1_000_000_000, "binary": "ng]inx",
                "pid": 42, "tid": 43, "root_pid": 42, "comm": 'a"b\\c', "score": 3.5,
                "threshold": 1.25, "new_syscalls": ["execve", "connect"]}


def test_rfc5424_message_escapes_structured_data():
    msg = format_message(_Alert().record(), hostname="host one", procid=9).decode()
    assert msg.startswith("<28>1 ") and " hostone sysgram 9 alert [alert@32473 " in msg
    assert 'binary="ng\\]inx"' in msg and 'comm="a\\"b\\\\c"' in msg
    assert 'new_syscalls="execve,connect"' in msg and msg.endswith("new syscalls: execve, connect")


def test_syslog_lands_in_a_socket_the_test_owns(tmp_path):
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    sink = SyslogSink(path)
    try:
        sink.alert(_Alert())
        sink.repeat(_Alert())
        got = [server.recv(65536).decode() for _ in range(2)]
    finally:
        sink.close()
        server.close()
    assert all("[alert@32473 " in g and 'pid="42"' in g for g in got)
    assert sink.sent == 2 and sink.failed == 0
    sink.alert(_Alert())                            # the socket is gone: counted, not raised
    assert sink.failed == 1
    with pytest.raises(UserError, match="cannot send to syslog"):
        SyslogSink(path)                            # nobody listens: said at the start


def test_alerts_file_rotation_loses_no_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    out = AlertFile(path)
    for i in range(5):
        out.write(f'{{"n":{i}}}\n')
    path.rename(tmp_path / "alerts.jsonl.1")        # what logrotate does, then SIGHUP
    out.write('{"n":5}\n')                          # still the old file until the reopen
    out.reopen()
    for i in range(6, 9):
        out.write(f'{{"n":{i}}}\n')
    out.flush()
    out.close()
    lines = (tmp_path / "alerts.jsonl.1").read_text().splitlines() + path.read_text().splitlines()
    assert lines == [f'{{"n":{i}}}' for i in range(9)] and out.lines_written == 9
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("text,expected", [("127.0.0.1:9464", ("127.0.0.1", 9464)),
                                           ("[::1]:0", ("::1", 0)), (":9", ("0.0.0.0", 9))])
def test_metrics_address(text, expected):
    from sysgram.watch.prometheus import parse_address

    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", "127.0.0.1:99999", "nginx:80"])
def test_a_bad_metrics_address_is_one_sentence(text):
    from sysgram.watch.prometheus import parse_address

    with pytest.raises(UserError, match="ADDR:PORT"):
        parse_address(text)


class _FakeCollector:
    flusher_tid = 0

    def stats(self):
        from sysgram.collector import CollectorStats

        return CollectorStats(events=11, batches=2, lost_events=3, lost_unattributed=1,
                              lost_lifecycle=0, recursion_misses=0, dropped_exe=0, processes=1,
                              threads=1, processes_seen=1, threads_seen=1, touched=5,
                              lost_touched=2, touched_repeats=40)


def test_metrics_scraped_over_http_match_the_watchers_counters():
    from sysgram.watch.prometheus import MetricsServer

    router = HostRouter({"nginx": FakeEngine(), "php": FakeEngine()})
    router.ingest([_start(10, 10, "nginx"), _events(10, 10, 7), _start(20, 20, "php")])
    server = MetricsServer(router, _FakeCollector(), "127.0.0.1", 0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                      timeout=5).read().decode()
    finally:
        server.close()
    assert 'sysgram_events_total{binary="nginx"} 7.0' in text
    assert 'sysgram_events_total{binary="php"} 0.0' in text
    assert 'sysgram_collector_lost_total{kind="events"} 3.0' in text
    assert 'sysgram_collector_lost_total{kind="touched"} 2.0' in text
    assert "sysgram_collector_touched_total 5.0" in text
    assert "sysgram_collector_touched_repeats_total 40.0" in text
    assert "sysgram_binaries 2.0" in text and "process_cpu_seconds_total" in text
    router.ingest([_events(10, 10)])                  # the histograms are observed live
    sample = server.registry.get_sample_value
    assert sample("sysgram_scoring_seconds_count", {"binary": "nginx"}) == 1
    assert sample("sysgram_drain_lag_seconds_count") == 1


def test_single_binary_watch_reopens_its_alerts_file_on_sighup(tmp_path):
    import os
    import signal

    from sysgram.commands.watch import _reopen_on_hup

    out = AlertFile(tmp_path / "alerts.jsonl")
    before = signal.getsignal(signal.SIGHUP)
    with _reopen_on_hup(out):
        (tmp_path / "alerts.jsonl").rename(tmp_path / "alerts.jsonl.1")
        os.kill(os.getpid(), signal.SIGHUP)
        out.write("{}\n")
    out.close()
    assert out.reopens == 1 and (tmp_path / "alerts.jsonl").read_text() == "{}\n"
    assert signal.getsignal(signal.SIGHUP) == before
