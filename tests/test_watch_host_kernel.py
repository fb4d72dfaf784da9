"""One `sysgram watch --all` for two real programs, against the real kernel.

Two copies of the victim program under two names are trained through the real `sysgram
train`; one watcher serves the store. The second profile is added to the store while
the watcher runs and picked up on SIGHUP; both victims are attacked; every alert must
name the binary (and so the profile) of the process that raised it. The alerts file is
rotated under the watcher (rename + SIGHUP): stdout, the rotated file, the new file and
the syslog socket the test owns must hold the same records, none lost. The Prometheus
endpoint, scraped over HTTP once the victims are gone, must match the exit summary.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from test_watch_kernel import ATTACK_CALLS, Reader, _stop, sysgram

from sysgram.collector.cgroups import cgroup_path

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


class KeepingReader(Reader):
    """A Reader that keeps every line, also those `until` went past."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.kept: list[str] = []

    def until(self, predicate, timeout: float):
        def keep(line: str) -> bool:
            self.kept.append(line)
            return predicate(line)

        return super().until(keep, timeout)

    def everything(self) -> list[str]:
        self.kept += self.drain()
        return self.kept


def _train(comm: str, store, seconds: int = 10) -> subprocess.Popen:
    return subprocess.Popen(
        sysgram("train", "--proc", comm, "--duration", f"{seconds}s", "--store", str(store)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _names_attack(line: str) -> bool:
    record = json.loads(line)
    named = set(record["new_syscalls"]) | set(record.get("window", {}).get("syscalls", []))
    return record["kind"] == "alert" and bool(named & ATTACK_CALLS)


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _summary_counts(summary: str, binary: str) -> tuple[int, int, int]:
    """(windows scored, alerts, syscalls) of one binary from the exit summary."""
    block = summary[summary.index(f"sysgram watch {binary}:"):]
    scored, alerts = re.search(r"([\d,]+) windows scored, [\d,]+ anomalous: ([\d,]+) alerts",
                               block).groups()
    calls = re.search(r"([\d,]+) syscalls from", block).group(1)
    return tuple(int(x.replace(",", "")) for x in (scored, alerts, calls))


def test_one_watcher_two_programs_sighup_rotation_syslog_and_metrics(build_workload, tmp_path):
    a_bin, b_bin = build_workload("victim"), build_workload("victim")
    store, staging = tmp_path / "store", tmp_path / "staging"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = str(listener.getsockname()[1])
    log_path = str(tmp_path / "log.sock")
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(log_path)
    # Read it as a log daemon does, as records come (the kernel queues only a few
    # datagrams: net.unix.max_dgram_qlen is 10 here).
    datagrams: list[str] = []
    log.settimeout(0.5)
    reading = threading.Event()
    reading.set()

    def read_log() -> None:
        while reading.is_set():
            try:
                datagrams.append(log.recv(65536).decode())
            except TimeoutError:
                continue

    log_reader = threading.Thread(target=read_log, daemon=True)
    log_reader.start()
    alerts_file = tmp_path / "alerts.jsonl"
    victims = {name: subprocess.Popen([str(exe), port, str(tmp_path / f"{name}.stamps")],
                                      stdout=subprocess.DEVNULL)
               for name, exe in ((a_bin.name, a_bin), (b_bin.name, b_bin))}
    owner = {proc.pid: name for name, proc in victims.items()}
    cgroup = cgroup_path(Path(f"/proc/{victims[a_bin.name].pid}/cgroup").read_text())
    watch = None
    try:
        trains = [_train(a_bin.name, store), _train(b_bin.name, staging)]
        for train in trains:
            assert train.wait(timeout=120) == 0, train.stderr.read()
        watch = subprocess.Popen(
            sysgram("watch", "--all", "--store", str(store), "--json", "--aggregate", "1s",
                    "--alerts", str(alerts_file), "--metrics", "127.0.0.1:0",
                    "--syslog", log_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = KeepingReader(watch.stdout), Reader(watch.stderr)
        metrics = err.until(lambda line: "metrics on http://" in line, timeout=30)
        assert metrics, "no metrics line"
        metrics_port = int(metrics[1].rsplit(":", 1)[1].split("/")[0])
        assert err.until(lambda line: line == "attached", timeout=30), "never attached"

        # A profile saved under the store while the watcher runs, then SIGHUP.
        profile = f"{b_bin.name}.profile"
        shutil.copy2(staging / profile, store / f".{profile}.tmp")
        (store / f".{profile}.tmp").rename(store / profile)
        watch.send_signal(signal.SIGHUP)
        assert err.until(lambda line: line == f"sysgram: watching {b_bin.name}", timeout=10)

        seen: dict[str, int] = {}
        for name, victim in victims.items():
            victim.send_signal(signal.SIGUSR1)
            # An attack may raise more than one alert (a decisive call its period had not
            # told yet): every one read is attributed; wait for this victim's own.
            while True:
                hit = out.until(_names_attack, timeout=10)
                assert hit is not None, f"no alert for the attack on {name}"
                record = json.loads(hit[1])
                seen[record["binary"]] = record["root_pid"]
                if record["root_pid"] == victim.pid:
                    break

        # logrotate: move the file away, SIGHUP; then one more attack lands in the new file.
        time.sleep(1.5)
        alerts_file.rename(tmp_path / "alerts.jsonl.1")
        watch.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        victims[a_bin.name].send_signal(signal.SIGUSR1)
        assert out.until(_names_attack, timeout=10), "no alert after the rotation"

        time.sleep(2)
        for victim in victims.values():
            _stop(victim)
        time.sleep(1.5)                                 # their last windows are scored
        scraped = _scrape(metrics_port)
        assert _stop(watch) == 0
        stdout_records = [json.loads(x) for x in out.everything()]
        summary = "\n".join(err.drain())
    finally:
        if watch is not None:
            _stop(watch, signal.SIGKILL)
        for victim in victims.values():
            _stop(victim, signal.SIGKILL)
        listener.close()

    # Every alert is attributed to the binary (and profile) of the process that raised it.
    assert seen == {name: victims[name].pid for name in victims}
    stdout_lines = [json.dumps(r, sort_keys=True) for r in stdout_records]
    alerts = [r for r in stdout_records if r["kind"] == "alert"]
    assert alerts and all(owner[r["root_pid"]] == r["binary"] for r in alerts)
    # ... and carries the cgroup it ran in (no container here).
    assert {(r.get("cgroup"), r.get("container")) for r in alerts} == {(cgroup, None)}
    # Nothing lost across the rotation: the two files together hold exactly stdout's records
    # (the first attack records came before the rotation; the last one after it).
    rotated = (tmp_path / "alerts.jsonl.1").read_text().splitlines()
    fresh = alerts_file.read_text().splitlines()
    assert rotated and fresh
    file_lines = [json.dumps(json.loads(x), sort_keys=True) for x in rotated + fresh]
    assert file_lines == stdout_lines
    # ... and the syslog socket got one datagram per record.
    time.sleep(1.0)                   # the last datagrams are read
    reading.clear()
    log_reader.join(5)
    log.close()
    assert len(datagrams) == len(stdout_records)
    assert all("[alert@32473 " in d for d in datagrams)
    # The Prometheus endpoint says what the summary says.
    for name in victims:
        scored, alerts, calls = _summary_counts(summary, name)
        assert scraped[f'sysgram_windows_scored_total{{binary="{name}"}}'] == scored
        assert scraped[f'sysgram_alerts_total{{binary="{name}"}}'] == alerts
        assert scraped[f'sysgram_events_total{{binary="{name}"}}'] == calls
    assert scraped["sysgram_binaries"] == 2 and scraped["sysgram_reloads_total"] == 2
    # Nothing lost across the reload and the rotation: no record of any kind, no gap.
    lost = {k: v for k, v in scraped.items()
            if k.startswith(("sysgram_collector_lost_total", "sysgram_gap_events_total"))}
    assert lost and not any(lost.values()), lost
    # The alerts file is reopened on each SIGHUP (the profile's and logrotate's).
    assert f"{len(stdout_records):,} records written, reopened 2 times" in summary
