"""The demo's story, step by step: build and start the server, train under normal load,
watch while normal traffic continues, attack, and judge what sysgram said.

This module decides and measures; it prints nothing. Everything the user sees goes
through the `ui` object (sysgram/demo/console.py), so tests can run the story quietly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sysgram.demo import sysgram_cli
from sysgram.demo.attack import AttackResult, plant_secret, run_attack
from sysgram.demo.load import LoadGenerator
from sysgram.demo.target import (
    DEMO_COMM,
    DemoServer,
    build_server,
    live_pids_named,
    pick_comm,
    write_docroot,
)
from sysgram.errors import UserError


@dataclass
class DemoConfig:
    train_seconds: float = 45.0
    watch_seconds: float = 30.0      # normal traffic under watch before the attack
    warmup_seconds: float = 2.0      # traffic before training (start-up is not the profile)
    rate: float = 100.0              # requests per second of normal traffic
    clients: int = 3
    alert_timeout: float = 10.0      # how long to wait for the alert after the attack
    comm: str | None = None          # the server's name (default: sg-demo-httpd if free)
    workdir: Path | None = None
    keep: bool = False
    train_args: list[str] = field(default_factory=list)
    watch_args: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    workdir: Path
    comm: str = DEMO_COMM
    requests_before_watch: int = 0
    requests_watched: int = 0
    load_errors: int = 0
    watched_seconds: float = 0.0
    false_alarms: list[dict] = field(default_factory=list)  # alert records before the attack
    attack: AttackResult | None = None
    attack_alerts: list[dict] = field(default_factory=list)  # records after the attack
    detection_latency_s: float | None = None  # attack request sent -> alert in the file
    watch_counts: dict[str, int] = field(default_factory=dict)
    watch_summary: list[str] = field(default_factory=list)  # as `sysgram watch` printed it
    watch_exit: int | None = None
    attack_begins_ns: int = 0  # CLOCK_MONOTONIC, just before the attack's request

    @property
    def first_alert(self) -> dict | None:
        return next((r for r in self.attack_alerts if r.get("kind") == "alert"), None)

    @property
    def caught(self) -> bool:
        return self.first_alert is not None

    @property
    def ok(self) -> bool:
        stolen = bool(self.attack and self.attack.secret_stolen)
        return self.caught and stolen and not self.false_alarms


class DemoUI(Protocol):
    def step(self, title: str) -> None: ...
    def info(self, text: str) -> None: ...
    def watching(self, elapsed: float, total: float, requests: int, alerts: int) -> None: ...
    def alert(self, record: dict) -> None: ...


def run_demo(config: DemoConfig, ui: DemoUI) -> DemoResult:
    """Run the whole demo; always stops every process it started."""
    if os.geteuid() != 0:
        raise UserError("the demo traces system calls and needs root; run 'sudo make demo'.")
    sysgram_cli.require_commands("train", "watch")
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="sysgram-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(workdir=workdir)
    try:
        with ExitStack() as cleanup:
            _run_steps(config, ui, result, cleanup)
    finally:
        if not config.keep and result.ok:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _run_steps(config: DemoConfig, ui: DemoUI, result: DemoResult, cleanup: ExitStack) -> None:
    server, load, (secret_path, secret) = _start_target(config, ui, result, cleanup)
    store = result.workdir / "profiles"
    store.mkdir(mode=0o700, exist_ok=True)
    _train(config, ui, result.comm, store)

    watch = sysgram_cli.Watch(result.comm, store, result.workdir / "alerts.jsonl",
                              log=result.workdir / "watch.out", extra=config.watch_args)
    ui.step(f"Watching {result.comm} while normal traffic continues for "
            f"{config.watch_seconds:g} s (sysgram watch --proc {result.comm} --json "
            "--alerts FILE)")
    watch.start()
    cleanup.callback(watch.stop)
    _watch_normal_traffic(config, ui, result, watch, load)

    ui.step("Attack: command injection in /api/ping opens a reverse shell to 127.0.0.1 "
            "and reads the secret")
    _attack_and_wait(config, ui, result, watch, server.port, secret_path, secret)
    load.stop()
    result.load_errors = load.stats.errors
    time.sleep(0.5)
    result.watch_exit = watch.stop()
    for record in watch.new_records():  # repeats of periods still open come at exit
        _sort_record(record, result, result.attack_begins_ns)
    result.watch_counts = watch.summary_counts()
    result.watch_summary = watch.summary_lines()


def _explain_name(config: DemoConfig, ui: DemoUI, comm: str) -> None:
    if comm != DEMO_COMM and config.comm is None:
        ui.info(f"another {DEMO_COMM} is running (pid "
                f"{', '.join(map(str, live_pids_named(DEMO_COMM)))}), so this run's server is "
                f"named {comm}: profiles and alerts follow the process name")
    elif live_pids_named(comm):
        raise UserError(f"a process named {comm} is already running; stop it or choose "
                        "another --name.")


def _start_target(config: DemoConfig, ui: DemoUI, result: DemoResult,
                  cleanup: ExitStack) -> tuple[DemoServer, LoadGenerator, tuple[Path, str]]:
    """Build and start the server, plant the secret, start normal traffic."""
    workdir = result.workdir
    result.comm = config.comm or pick_comm()
    ui.step(f"Building and starting the demo server '{result.comm}'")
    _explain_name(config, ui, result.comm)
    binary = build_server(workdir / "bin", result.comm)
    server = DemoServer(binary, write_docroot(workdir / "www"), workdir / "access.log")
    server.start()
    cleanup.callback(server.stop)
    planted = plant_secret(workdir / "secrets")
    ui.info(f"{binary} (pid {server.pid}) serves http://127.0.0.1:{server.port}/ — "
            f"static files, /api/items, /api/status, /api/ping")
    ui.info(f"a secret it must never leak: {planted[0]}")

    budget = config.warmup_seconds + config.train_seconds + config.watch_seconds + 120
    assert server.port is not None
    load = LoadGenerator(server.port, rate=config.rate, clients=config.clients,
                         max_seconds=budget)
    load.start()
    cleanup.callback(load.stop)
    ui.info(f"normal traffic: {config.clients} clients, about {config.rate:g} requests/s "
            "(pages, static files, JSON API, pings of 127.0.0.1)")
    time.sleep(config.warmup_seconds)
    return server, load, planted


def _train(config: DemoConfig, ui: DemoUI, comm: str, store: Path) -> None:
    ui.step(f"Learning the normal behaviour of {comm} for {config.train_seconds:g} s "
            f"(sysgram train --proc {comm} --duration {config.train_seconds:g}s)")
    code = sysgram_cli.train(comm, store, config.train_seconds, config.train_args)
    if code != 0:
        raise UserError(f"'sysgram train' failed (exit {code}); its message is above.")


def _watch_normal_traffic(config: DemoConfig, ui: DemoUI, result: DemoResult,
                          watch: sysgram_cli.Watch, load: LoadGenerator) -> None:
    result.requests_before_watch = load.stats.requests
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < config.watch_seconds:
        result.false_alarms += [r for r in watch.new_records() if r.get("kind") == "alert"]
        if not watch.running():
            raise UserError("'sysgram watch' stopped during normal traffic; its log: "
                            f"{watch.log_path}.")
        requests = load.stats.requests - result.requests_before_watch
        ui.watching(elapsed, config.watch_seconds, requests, len(result.false_alarms))
        time.sleep(0.25)
    result.watched_seconds = time.monotonic() - start
    result.requests_watched = load.stats.requests - result.requests_before_watch
    ui.watching(config.watch_seconds, config.watch_seconds, result.requests_watched,
                len(result.false_alarms))


def _attack_and_wait(config: DemoConfig, ui: DemoUI, result: DemoResult,
                     watch: sysgram_cli.Watch, port: int, secret_path: Path, secret: str) -> None:
    outcome: list[AttackResult] = []
    attacker = threading.Thread(
        target=lambda: outcome.append(run_attack(port, secret_path, secret)),
        daemon=True, name="sg-demo-attack")
    attack_begins_ns = result.attack_begins_ns = time.monotonic_ns()
    attacker.start()
    seen_at: int | None = None
    deadline = time.monotonic() + config.alert_timeout
    while seen_at is None and time.monotonic() < deadline:
        now = time.monotonic_ns()
        for record in watch.new_records():
            _sort_record(record, result, attack_begins_ns)
            if seen_at is None and result.first_alert is not None:
                seen_at = now
        time.sleep(0.01)
    attacker.join(config.alert_timeout)
    result.attack = outcome[0] if outcome else None
    if result.attack and seen_at is not None:
        result.detection_latency_s = max(0.0, (seen_at - result.attack.sent_mono_ns) / 1e9)
    if result.first_alert is not None:
        ui.alert(result.first_alert)


def _sort_record(record: dict, result: DemoResult, attack_begins_ns: int) -> None:
    """An alert about a window from before the attack began is a false alarm (both clocks
    are CLOCK_MONOTONIC)."""
    ts = record.get("ts_ns")
    if record.get("kind") == "alert" and isinstance(ts, int) and ts < attack_begins_ns:
        result.false_alarms.append(record)
    else:
        result.attack_alerts.append(record)
