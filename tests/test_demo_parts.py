"""The demo's parts on their own: the server, its bug, the load, the attack, the cleanup.

No tracing here (sysgram itself is exercised by tests/test_demo.py): these check that
the demo stages what it claims — normal traffic never runs a shell, the injection does,
and the stolen secret really reaches the attacker's listener.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sysgram.demo.attack import injection_path, plant_secret, run_attack
from sysgram.demo.console import render_alert, render_summary
from sysgram.demo.load import REQUEST_MIX, LoadGenerator, http_get
from sysgram.demo.scenario import DemoResult, _sort_record
from sysgram.demo.sysgram_cli import parse_counts
from sysgram.demo.target import (
    DEMO_COMM,
    DemoServer,
    build_server,
    group_alive,
    live_pids_named,
    pick_comm,
    processes,
    write_docroot,
)

needs_tools = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("bash") is None,
    reason="gcc and bash are installed by 'make install'",
)


@pytest.fixture(scope="module")
def server_binary(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is installed by 'make install'")
    return build_server(tmp_path_factory.mktemp("bin"))


@pytest.fixture
def spy_path(tmp_path) -> tuple[dict[str, str], Path]:
    """A PATH whose `ping` leaves a marker: proof that the shell fallback ran."""
    bindir = tmp_path / "spybin"
    bindir.mkdir()
    marker = tmp_path / "fallback-ran"
    ping = bindir / "ping"
    ping.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\n")
    ping.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:/usr/bin:/bin")
    return env, marker


@pytest.fixture
def server(server_binary, tmp_path, spy_path):
    env, _ = spy_path
    srv = DemoServer(server_binary, write_docroot(tmp_path / "www"), tmp_path / "access.log",
                     env=env)
    srv.start()
    yield srv
    srv.stop()


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _live_comms_in_group(pgid: int) -> set[str]:
    return {p.comm for p in processes() if p.pgid == pgid and p.live}


@needs_tools
def test_server_runs_under_its_own_name_with_its_workers(server):
    assert _comm(server.pid) == DEMO_COMM
    assert len(os.listdir(f"/proc/{server.pid}/task")) == server.workers + 1


@needs_tools
def test_a_second_demo_picks_a_name_of_its_own(server):
    assert server.pid in live_pids_named(DEMO_COMM)
    other = pick_comm(DEMO_COMM)
    assert other != DEMO_COMM and other.startswith("sg-demo-") and len(other) <= 15
    assert not live_pids_named(other)


@needs_tools
def test_every_request_of_the_mix_gets_its_expected_answer(server, spy_path):
    _, marker = spy_path
    missing = {"/api/items?id=99", "/static/missing.css", "/favicon.ico"}
    for path, _ in REQUEST_MIX:
        status, body = http_get(server.port, path)
        assert status == (404 if path in missing else 200), path
        assert body
    status, body = http_get(server.port, "/api/ping?host=127.0.0.1")
    assert b'"alive":true' in body
    assert not marker.exists(), "a normal ping must not go through the shell"


@needs_tools
def test_normal_load_never_reaches_the_shell_and_stops_by_itself(server, spy_path):
    _, marker = spy_path
    load = LoadGenerator(server.port, rate=200, clients=4, max_seconds=1.5, max_requests=150)
    load.start()
    deadline = time.monotonic() + 10
    while load.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not load.running, "the load generator must stop by itself"
    stats = load.stop()
    assert stats.errors == 0
    assert 100 <= stats.requests <= 150
    assert stats.paths["/api/ping?host=127.0.0.1"] + stats.paths["/api/ping?host=localhost"] > 0
    assert not marker.exists(), "normal traffic must never spawn a shell"


@needs_tools
def test_a_hostname_takes_the_buggy_shell_fallback(server, spy_path):
    _, marker = spy_path
    status, _ = http_get(server.port, "/api/ping?host=example.org")
    assert status == 200
    assert marker.read_text().split() == ["-c", "1", "-W", "1", "example.org"]


@needs_tools
def test_the_injection_spawns_a_shell_that_sends_the_secret_to_the_listener(server, tmp_path):
    secret_path, secret = plant_secret(tmp_path / "secrets")
    result = run_attack(server.port, secret_path, secret, timeout=10)
    assert result.connected_at is not None and result.connected_at >= result.sent_at
    assert result.secret_stolen, result.transcript
    assert result.http_status == 200


@needs_tools
def test_stop_kills_a_reverse_shell_left_behind(server_binary, tmp_path):
    srv = DemoServer(server_binary, write_docroot(tmp_path / "www"), tmp_path / "access.log")
    srv.start()
    pgid = srv.pid
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    def inject() -> None:
        with contextlib.suppress(OSError):  # the server dies mid-request: expected
            http_get(srv.port, injection_path(port), 30)

    threading.Thread(target=inject, daemon=True).start()
    listener.settimeout(10)
    conn, _ = listener.accept()  # a shell now waits for commands, child of the server
    try:
        assert _live_comms_in_group(pgid) >= {DEMO_COMM, "bash"}
        srv.stop()
        assert not group_alive(pgid)
        assert _live_comms_in_group(pgid) == set()
    finally:
        conn.close()
        listener.close()


def test_watch_summary_counts_are_parsed_in_either_style():
    text = "attached to sg-demo-httpd\n1,234 windows scored, 2 alerts, 0 losses\n"
    assert parse_counts(text)["windows scored"] == 1234
    assert parse_counts("windows scored: 77\nalerts=1")["windows scored"] == 77
    assert parse_counts("windows scored: 77\nalerts=1")["alerts"] == 1


def test_alerts_before_the_attack_are_false_alarms(tmp_path):
    result = DemoResult(workdir=tmp_path)
    _sort_record({"kind": "alert", "ts_ns": 90}, result, attack_begins_ns=100)
    _sort_record({"kind": "alert", "ts_ns": 110}, result, attack_begins_ns=100)
    _sort_record({"kind": "repeat", "ts_ns": 95, "windows": 3}, result, attack_begins_ns=100)
    assert [r["ts_ns"] for r in result.false_alarms] == [90]
    assert [r["ts_ns"] for r in result.attack_alerts] == [110, 95]
    assert not result.ok  # a false alarm fails the demo


def test_an_alert_renders_with_its_unseen_calls_marked(tmp_path):
    record = {
        "kind": "alert", "time": "2026-11-25T10:00:00.000Z", "binary": DEMO_COMM,
        "pid": 10, "tid": 12, "ppid": 1, "comm": DEMO_COMM, "score": 2.5, "threshold": 1.0,
        "window": {"syscalls": ["read", "pipe2", "clone3", "wait4"], "unseen": [1, 2],
                   "unseen_ngrams": [["read", "pipe2", "clone3"]]},
        "new_syscalls": ["pipe2", "clone3"],
    }
    text = "\n".join(render_alert(record))
    assert "*pipe2* *clone3*" in text and "read *pipe2*" in text
    assert "never made in training: pipe2, clone3" in text
    result = DemoResult(workdir=tmp_path, attack_alerts=[record], detection_latency_s=0.3)
    summary = "\n".join(render_summary(result))
    assert "false alarms during normal traffic: 0" in summary
    assert "0.30 s" in summary


def test_process_names_in_alerts_cannot_drive_the_terminal():
    record = {"kind": "alert", "binary": DEMO_COMM, "pid": 1, "tid": 1,
              "comm": "evil\x1b[2J\x07", "score": 1.0, "threshold": 0.5, "window": {}}
    text = "\n".join(render_alert(record))
    assert "\x1b" not in text and "\x07" not in text
    assert "evil" in text


@needs_tools
def test_the_server_dies_with_a_demo_killed_by_sigkill(server_binary, tmp_path):
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sysgram.demo.target import DemoServer, write_docroot\n"
        f"d = Path({str(tmp_path)!r})\n"
        f"s = DemoServer(Path({str(server_binary)!r}), write_docroot(d / 'www'), d / 'log')\n"
        "s.start(); print(s.pid, flush=True); time.sleep(60)\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(demo.stdout.readline())
    assert _comm(server_pid) == DEMO_COMM
    demo.kill()  # no cleanup code runs
    demo.wait()
    deadline = time.monotonic() + 5
    while server_pid in live_pids_named(DEMO_COMM) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_pid not in live_pids_named(DEMO_COMM)


def test_attack_alerts_name_what_a_touched_alert_found():
    from sysgram.demo.console import render_attack_alerts

    lines = render_attack_alerts([
        {"kind": "alert", "scope": "window", "time": "2026-12-04T18:05:39.687Z", "pid": 7,
         "comm": "sh", "score": 12.3, "new_syscalls": ["rt_sigaction"]},
        {"kind": "alert", "scope": "touched", "time": "2026-12-04T18:05:39.688Z", "pid": 7,
         "comm": "sh", "new": {"set": "programs", "key": "/bin/sh\x1b[31m"},
         "new_syscalls": []},
        {"kind": "repeat", "scope": "touched"},
    ])
    assert lines[0].endswith("window score 12.300: rt_sigaction")
    assert "touched new programs: /bin/sh" in lines[1] and "\x1b" not in lines[1]
    assert len(lines) == 2
