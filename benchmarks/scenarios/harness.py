"""One server's scenario, driven through the real sysgram CLI as a user would:

1. start the server and its load (bounded by the whole run's budget); warm up;
2. `sysgram record` the server for the training period, once;
3. `sysgram train --from` that recording once per model, each into its own store, so
   every model learns the same data;
4. one `sysgram watch --json --alerts FILE` per model, all at once, for the watch period
   under the same load: every alert there is a false alarm;
   (with `record_watch`, `sysgram record` keeps that period too, for offline replays);
5. `sysgram record` again through the attack phase (the bookkeeping: which processes the
   attacks made, and what they called), then each attack in turn, each given
   `alert_wait_s` for alerts and `settle_s` so that its alerts' aggregation period closes
   before the next one;
6. stop everything; sort every model's alerts (attribution.py) and count each attack's
   recorded calls (bookkeeping.py).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.scenarios.attacks import Attack
from benchmarks.scenarios.attribution import AttackSpan, Verdicts, sort_alerts, upper_rate_95
from benchmarks.scenarios.bookkeeping import read_attack_recording
from benchmarks.scenarios.servers.base import Server
from sysgram.demo import sysgram_cli
from sysgram.demo.target import dies_with_us, stop_session


@dataclass
class Settings:
    train_s: float = 90.0
    watch_s: float = 600.0
    warmup_s: float = 5.0
    alert_wait_s: float = 8.0
    settle_s: float = 6.0          # > watch's --aggregate period (5 s)
    attach_timeout_s: float = 120.0
    models: list[str] = field(default_factory=list)
    record_watch: bool = False     # also record the watch period (replays: replay.py)

    def budget_s(self, attacks: int = 3) -> float:
        """Seconds the load must last: everything, with room for training and attaching."""
        per_attack = 30 + self.alert_wait_s + self.settle_s
        return (self.warmup_s + self.train_s + 120 * max(1, len(self.models)) + self.watch_s
                + 60 + attacks * per_attack)


class Recorder:
    """A running `sysgram record --proc COMM --out DIR`."""

    def __init__(self, comm: str, out: Path, log: Path, duration_s: float | None = None) -> None:
        cmd = sysgram_cli.sysgram_command("record", "--proc", comm, "--out", str(out))
        if duration_s is not None:
            cmd += ["--duration", f"{duration_s:g}s"]
        self.cmd, self.out, self.log = cmd, out, log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float) -> Recorder:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(dies_with_us(self.cmd), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while "attached" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sysgram record did not attach; see {self.log}")
            time.sleep(0.1)
        return self

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Ctrl-C (the recording is closed and complete), then make sure it is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        stop_session(self.process)
        self.process = None


def cli(*args: str, log: Path) -> None:
    with open(log, "a") as out:
        done = subprocess.run(dies_with_us(sysgram_cli.sysgram_command(*args)), stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"sysgram {args[0]} failed (exit {done.returncode}); see {log}")


class Watches:
    """One `sysgram watch` per model, and every alert record they wrote with the moment
    the harness read it (CLOCK_MONOTONIC ns)."""

    def __init__(self, comm: str, stores: dict[str, Path], work: Path) -> None:
        self.watch = {m: sysgram_cli.Watch(comm, store, work / f"alerts-{m}.jsonl",
                                           log=work / f"watch-{m}.out")
                      for m, store in stores.items()}
        self.records: dict[str, list[dict]] = {m: [] for m in stores}
        self.seen_ns: dict[str, dict[int, int]] = {m: {} for m in stores}

    def start(self, timeout: float) -> None:
        for w in self.watch.values():
            w.start(timeout)

    def poll(self) -> None:
        now = time.monotonic_ns()
        for m, w in self.watch.items():
            for r in w.new_records():
                self.records[m].append(r)
                if isinstance(r.get("id"), int):
                    self.seen_ns[m].setdefault(r["id"], now)

    def trouble(self) -> str | None:
        stopped = [m for m, w in self.watch.items() if not w.running()]
        return f"sysgram watch stopped early for {', '.join(stopped)}" if stopped else None

    def stop(self) -> dict[str, dict[str, int]]:
        for w in self.watch.values():
            w.stop()
        self.poll()
        return {m: w.summary_counts() for m, w in self.watch.items()}


def run_scenario(server: Server, settings: Settings, work: Path) -> dict:
    """Run one server's whole scenario; always stops everything it started."""
    (work / "server").mkdir(parents=True, exist_ok=True)
    for d in (work.parent, work, work / "server"):
        d.chmod(0o755)  # servers drop privileges (nobody, www-data, mysql) and read here
    closed = [str(p) for p in work.resolve().parents if not p.stat().st_mode & 0o001]
    if closed:
        raise RuntimeError(f"servers running as other users cannot reach {work}: "
                           f"{closed[0]} is closed to others; use a directory under /tmp")
    logs = work / "sysgram.log"
    started = time.monotonic()
    server.start(work / "server", settings.budget_s())
    watches: Watches | None = None
    recorder: Recorder | None = None
    try:
        time.sleep(settings.warmup_s)
        train = Recorder(server.comm, work / "train", work / "record-train.out",
                         settings.train_s).start(settings.attach_timeout_s)
        train.wait(settings.train_s + 120)
        stores = {}
        for model in settings.models:
            stores[model] = work / f"store-{model}"
            stores[model].mkdir(mode=0o700, exist_ok=True)
            cli("train", "--proc", server.comm, "--from", str(work / "train"), "--model", model,
                "--store", str(stores[model]), log=logs)
        watches = Watches(server.comm, stores, work)
        watches.start(settings.attach_timeout_s)
        if settings.record_watch:
            recorder = Recorder(server.comm, work / "watch", work / "record-watch.out")
            recorder.start(settings.attach_timeout_s)
        before = server.load_done()
        watch_begins = time.monotonic()
        _watch_normal(server, watches, settings.watch_s)
        watched_s = time.monotonic() - watch_begins
        if recorder is not None:
            recorder.stop()
            recorder = None
        load_watched = server.load_done() - before
        recorder = Recorder(server.comm, work / "attacks", work / "record-attacks.out")
        recorder.start(settings.attach_timeout_s)
        attacks = server.attacks()
        spans, outcomes = _run_attacks(attacks, watches, settings)
        recorder.stop()
        recorder = None
        summaries = watches.stop()
        collected, watches = watches, None
    finally:
        if recorder is not None:
            recorder.stop()
        if watches is not None:
            watches.stop()
        server.stop()
    return _result(server, settings, work, attacks, spans, outcomes, collected, summaries,
                   watched_s, load_watched, time.monotonic() - started)


def _watch_normal(server: Server, watches: Watches, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        watches.poll()
        trouble = server.trouble() or watches.trouble()
        if trouble:
            raise RuntimeError(f"{server.name}: {trouble} while watching")
        time.sleep(0.2)


def _run_attacks(attacks: list[Attack], watches: Watches, settings: Settings):
    spans: list[AttackSpan] = []
    outcomes = []
    for attack in attacks:
        outcome = _run_polling(attack, watches)
        outcomes.append(outcome)
        if spans:
            spans[-1] = _ended(spans[-1], outcome.begins_ns)
        spans.append(AttackSpan(attack.name, outcome.target_pid, outcome.begins_ns,
                                outcome.begins_ns + 10**18, outcome.effective_ns))
        end = time.monotonic() + settings.alert_wait_s + settings.settle_s
        while time.monotonic() < end:
            watches.poll()
            time.sleep(0.02)
    if spans:
        spans[-1] = _ended(spans[-1], time.monotonic_ns())
    return spans, outcomes


def _run_polling(attack: Attack, watches: Watches):
    """Run one attack while reading the alerts: an attack that blocks (an SSRF request
    waits seconds for the peer it reached) must not delay the moment its alerts are read."""
    done: dict[str, object] = {}

    def run() -> None:
        try:
            done["outcome"] = attack.run()
        except BaseException as err:  # re-raised in the harness's thread
            done["error"] = err

    worker = threading.Thread(target=run, name=f"attack-{attack.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        watches.poll()
        worker.join(0.02)
    if "error" in done:
        raise done["error"]
    return done["outcome"]


def _ended(span: AttackSpan, ends_ns: int) -> AttackSpan:
    return AttackSpan(span.name, span.target_pid, span.begins_ns, ends_ns, span.effective_ns)


def _brief(alert: dict) -> dict:
    window = alert.get("window") or {}
    return {"time": alert.get("time"), "comm": alert.get("comm"), "pid": alert.get("pid"),
            "scope": alert.get("scope"), "score": alert.get("score"),
            "threshold": alert.get("threshold"), "new_syscalls": alert.get("new_syscalls"),
            "unseen_ngrams": (window.get("unseen_ngrams") or [])[:4],
            # A touched alert's reason: the set and the key that was not in it.
            **({"new": {k: (alert.get("new") or {}).get(k) for k in ("set", "key")}}
               if alert.get("scope") == "touched" else {})}


def _result(server: Server, settings: Settings, work: Path, attacks: list[Attack],
            spans: list[AttackSpan], outcomes: list, collected: Watches, summaries: dict,
            watched_s: float,
            load_watched: int, wall_s: float) -> dict:
    recording = read_attack_recording(work / "attacks", spans)
    models = {}
    for model in settings.models:
        verdicts: Verdicts = sort_alerts(collected.records[model], spans, recording.parents,
                                         collected.seen_ns[model])
        fa = len(verdicts.false_alarms)
        models[model] = {
            "false_alarms": fa,
            "false_alarms_per_hour": round(fa * 3600 / watched_s, 2),
            "false_alarms_per_hour_95_upper": round(upper_rate_95(fa, watched_s), 1),
            "false_alarms_by_scope": dict(Counter(str(a.get("scope"))
                                                  for a in verdicts.false_alarms)),
            "false_alarm_examples": [_brief(a) for a in verdicts.false_alarms[:5]],
            "stray_alerts_during_attacks": len(verdicts.stray),
            "watch_summary": summaries.get(model, {}),
            "attacks": {name: {"caught": d.caught, "alerts": d.alerts,
                               "seconds_to_alert": None if d.seconds_to_alert is None
                               else round(d.seconds_to_alert, 3),
                               "first_alert": _brief(d.first_alert) if d.first_alert else None}
                        for name, d in verdicts.detections.items()},
        }
    attack_rows = []
    for attack, outcome, span in zip(attacks, outcomes, spans, strict=True):
        activity = recording.activity[span.name]
        attack_rows.append({
            "name": attack.name, "shape": attack.shape, "how": attack.how,
            "succeeded": outcome.succeeded, "evidence": outcome.evidence,
            "target_pid": outcome.target_pid,
            "span_ns": [span.begins_ns, span.ends_ns],  # CLOCK_MONOTONIC (replay.py)
            "attack_call_delay_s": round((outcome.effective_ns - outcome.begins_ns) / 1e9, 3),
            "tree": activity.summary(),
            "expected_syscalls": list(attack.expect_syscalls),
            "expected_syscalls_recorded": all(activity.syscalls.get(s, 0) > 0
                                              for s in attack.expect_syscalls),
        })
    return {"server": server.name, "version": server.version(), "comm": server.comm,
            "load": server.load, "train_seconds": settings.train_s,
            "watched_seconds": round(watched_s, 1), "load_completed_while_watched": load_watched,
            "wall_seconds": round(wall_s, 1), "attacks": attack_rows, "models": models,
            "workdir": str(work)}

