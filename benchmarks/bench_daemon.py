"""One daemon for a host: what many watched binaries cost the machine and the daemon.

usage: .venv/bin/python benchmarks/bench_daemon.py [--reps 5] [--calls 1000000]
           [--only untargeted,daemon,nginx,postgres] [--baseline TREE] [--json]
Needs root and bcc (nginx and wrk for the last part). Reports:
  - untargeted: extra CPU per syscall of a process no watcher targets, with one
    collector watching 1, 5 and 20 binaries (every hook on vs off, interleaved; medians
    of --reps), and the share of that its syscall-exit tracepoints take. Goal: the same
    within noise (one hook, one bitmap lookup).
  - daemon: `sysgram watch --all` over a store of copies of one trained profile: start to
    `attached` with 20 profiles (goal <= 1 s), RSS with 5 (goal <= 150 MiB), CPU over
    10 s idle with 5 (goal <= 1 % of a core); RSS per live thread (1,024 parked threads).
  - nginx: requests/s of nginx saturated by wrk, untraced and watched by `sysgram watch
    --all` (nginx's profile trained live first), with an empty program on the same
    hook (the floor any syscall tracer pays), and with the collector alone (the kernel
    program and its drain, nothing scored), interleaved (goal >= 95 %); the CPU the
    watcher and the collector alone used, and how many calls the collector's batches
    held (each batch is one callback and one decode in user space). `--baseline TREE`
    adds the watcher and the collector alone of another sysgram checkout to the rotation.
  - postgres: the same for PostgreSQL under `pgbench -S` (a throwaway cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_collector import SPIN_SOURCE, EmptyHook, spin  # noqa: E402

SYSGRAM = [sys.executable, "-m", "sysgram"]
GOALS = {"attach_s": 1.0, "rss_mib": 150.0, "idle_cpu_pct": 1.0, "nginx_ratio": 0.95}
PROFILES_ATTACH, PROFILES_RSS = 20, 5


def _env(root: Path = ROOT) -> dict:
    return dict(os.environ, PYTHONPATH=str(root))


# -- untargeted processes ----------------------------------------------------------------
def untargeted(reps: int, calls: int, work: Path) -> dict:
    """Extra thread-CPU ns per getppid() of an untargeted loop, per number of targets:
    every hook of the collector on against all off, and the share of its syscall-exit
    tracepoints (on against only those off)."""
    from sysgram.collector import Collector, TargetSpec

    spin_bin = work / "sgb_spin"
    subprocess.run(["gcc", "-O2", "-o", str(spin_bin), str(SPIN_SOURCE)], check=True)
    extra: dict[int, list[float]] = {1: [], 5: [], 20: []}
    exits: dict[int, list[float]] = {1: [], 5: [], 20: []}
    for _ in range(reps):
        for n in extra:            # interleaved: every count once per repetition
            targets = [TargetSpec(f"sgb_none{i}") for i in range(n)]
            with Collector(targets) as collector:
                on = spin(spin_bin, calls)[1]
                collector.program.set_result_hooks(False)
                enter_only = spin(spin_bin, calls)[1]
                collector.program.set_syscall_hook(False)
                off = spin(spin_bin, calls)[1]
                collector.program.set_result_hooks(True)     # as the collector closes it
            extra[n].append(on - off)
            exits[n].append(on - enter_only)
    return ({f"untargeted_extra_ns_{n}": statistics.median(v) for n, v in extra.items()}
            | {f"untargeted_exit_ns_{n}": statistics.median(v) for n, v in exits.items()}
            | {"untargeted_runs": {n: [round(x, 1) for x in v] for n, v in extra.items()},
               "untargeted_exit_runs": {n: [round(x, 1) for x in v] for n, v in exits.items()}})


# -- the daemon itself -------------------------------------------------------------------
def _train_victim(work: Path, store: Path, seconds: int = 8) -> str:
    """A trained profile of tests/workloads/victim.c (returns its name)."""
    comm = "sgb_victim"
    exe = work / comm
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "tests/workloads/victim.c")],
                   check=True)
    victim = subprocess.Popen([str(exe), "0", str(work / "stamps")], stdout=subprocess.DEVNULL)
    try:
        subprocess.run([*SYSGRAM, "train", "--proc", comm, "--duration", f"{seconds}s",
                        "--store", str(store)], check=True, env=_env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        victim.kill()
        victim.wait()
    return comm


def _store_of(work: Path, source: Path, count: int, name: str) -> Path:
    """A store holding `count` copies of one profile under distinct binary names."""
    store = work / f"store{count}"
    store.mkdir(mode=0o700)
    for i in range(count):
        shutil.copy2(source, store / f"sgb_bin{i:02d}.profile")
    return store


class Watcher:
    def __init__(self, store: Path, *extra: str, root: Path = ROOT) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*SYSGRAM, "watch", "--all", "--store", str(store), *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=_env(root), cwd=root)   # -m puts the cwd first
        self.attached_s = None
        for line in self.proc.stderr:
            if line.strip() == "attached":
                self.attached_s = time.monotonic() - self.started
                break
        if self.attached_s is None:
            raise SystemExit("sysgram watch --all never attached; run `sysgram doctor`.")

    def wait_loaded(self) -> None:
        """Until the profiles are loaded (the watcher attaches first, then loads them)."""
        for line in self.proc.stderr:
            if line.startswith("sysgram: watching"):
                return
        raise SystemExit("sysgram watch --all never loaded its profiles.")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)


COLLECT_ONLY = """
import sys
from sysgram.collector import Collector, TargetSpec
with Collector([TargetSpec(name) for name in sys.argv[1:]]) as collector:
    print("attached", flush=True)
    import threading
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.is_set():
        collector.poll(0.05)
    stats = collector.stats()
print(stats.events, stats.batches, flush=True)
"""


class CollectorOnly:
    """The kernel program and the collector's drain, nothing scored: the part of a
    watcher's cost that recording alone would pay."""

    def __init__(self, *comms: str, root: Path = ROOT) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", COLLECT_ONLY, *comms],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=_env(root), cwd=root)   # -c puts the cwd first
        if self.proc.stdout.readline().strip() != "attached":
            raise SystemExit("the collector never attached; run `sysgram doctor`.")

    cpu_s = Watcher.cpu_s

    def stop(self) -> None:
        out, _ = self.proc.communicate("", timeout=30)
        events, batches = (int(n) for n in out.split()[-2:])
        # How full its batches left: a batch is one callback and one decode in user space.
        self.calls_per_batch = events / max(batches, 1)


def _metered(start, measure, cores: list[float], batch_fill: list[float] | None = None) -> float:
    """`measure()` while the process `start()` gives runs; its CPU share goes to `cores`
    (and, for the collector alone, its calls per batch to `batch_fill`)."""
    proc = start()
    try:
        before, at = proc.cpu_s(), time.monotonic()
        rate = measure()
        cores.append((proc.cpu_s() - before) / (time.monotonic() - at))
        return rate
    finally:
        proc.stop()
        if batch_fill is not None:
            batch_fill.append(proc.calls_per_batch)


def _loaded_watcher(store: Path, root: Path = ROOT) -> Watcher:
    watcher = Watcher(store, root=root)
    watcher.wait_loaded()
    return watcher


def _server_arms(measure, floor: HookFloor, comm: str, store: Path, baseline: Path | None,
                 cores: dict[str, list[float]], fills: dict[str, list[float]]) -> dict:
    """The arms every server is measured under, each once per rep (`_rotated`); each
    metered process's CPU goes to `cores`, a collector alone's calls per batch to `fills`
    (both by the process's name)."""
    arms = {
        "untraced": measure,
        "hook_floor": lambda: floor.run(measure),
        "collected": lambda: _metered(lambda: CollectorOnly(comm), measure, cores["collector"],
                                      fills.setdefault("collector", [])),
        "watched": lambda: _metered(lambda: _loaded_watcher(store), measure, cores["watcher"]),
    }
    if baseline is not None:       # the same watch by another tree's sysgram, same profile
        arms["baseline"] = lambda: _metered(lambda: _loaded_watcher(store, baseline), measure,
                                            cores.setdefault("baseline", []))
        arms["baseline_collected"] = lambda: _metered(
            lambda: CollectorOnly(comm, root=baseline), measure,
            cores.setdefault("baseline_collector", []), fills.setdefault("baseline_collector", []))
    return arms


def daemon(reps: int, work: Path) -> dict:
    trained = work / "trained"
    name = _train_victim(work, trained)
    source = trained / f"{name}.profile"
    many = _store_of(work, source, PROFILES_ATTACH, name)
    few = _store_of(work, source, PROFILES_RSS, name)
    attach = []
    rss_many = float("nan")
    for rep in range(min(reps, 3)):
        watcher = Watcher(many)
        attach.append(watcher.attached_s)
        if rep == 0:
            watcher.wait_loaded()
            time.sleep(1)
            rss_many = watcher.rss_mib()
        watcher.stop()
    watcher = Watcher(few)
    try:
        watcher.wait_loaded()
        time.sleep(1)                 # settled: first rounds run
        rss = watcher.rss_mib()
        before, at = watcher.cpu_s(), time.monotonic()
        time.sleep(10)
        idle_pct = 100 * (watcher.cpu_s() - before) / (time.monotonic() - at)
    finally:
        watcher.stop()
    return {"attach_s_20": statistics.median(attach), "attach_runs": attach,
            "rss_mib_5": rss, "rss_mib_20": rss_many, "idle_cpu_pct_5": idle_pct,
            **_per_thread(work, source)}


THREAD_PROCS, THREADS_EACH = 16, 64


def _per_thread(work: Path, profile: Path) -> dict:
    """RSS a watcher holds per live thread: 1,024 threads of a watched binary, parked."""
    exe = work / "sgb_pat"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe),
                    str(ROOT / "tests/workloads/pattern.c")], check=True)
    store = work / "store-threads"
    store.mkdir(mode=0o700)
    shutil.copy2(profile, store / f"{exe.name}.profile")
    watcher = Watcher(store, "--warmup", "0")
    procs = []
    try:
        watcher.wait_loaded()
        time.sleep(1)
        before = watcher.rss_mib()
        procs = [subprocess.Popen([str(exe), str(THREADS_EACH), "1", "0", "2"],
                                  stdin=subprocess.PIPE) for _ in range(THREAD_PROCS)]
        time.sleep(3)                  # every thread started, seen and held by the engine
        during = watcher.rss_mib()
    finally:
        for proc in procs:
            proc.communicate(b"go\n", timeout=30)
        watcher.stop()
    threads = THREAD_PROCS * THREADS_EACH
    return {"rss_kib_per_thread": (during - before) * 1024 / threads, "threads_held": threads}


def _rotated(reps: int, arms: dict) -> dict[str, list[float]]:
    """Each arm once per rep, the order rotated every rep (for two arms: ABBA-like): a
    server that warms up (caches, buffers) over the run favours none of them."""
    names = list(arms)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        if rep % 2:
            order.reverse()
        for name in order:
            runs[name].append(arms[name]())
    return runs


class HookFloor:
    """While on: an empty program on raw_syscalls:sys_enter, the floor every syscall of
    every process pays once anything is attached there (the kernel's traced syscall
    path), so a watched run's cost splits into this floor and what sysgram adds."""

    def __enter__(self) -> HookFloor:
        self.hook = EmptyHook()
        return self

    def __exit__(self, *exc) -> None:
        self.hook.close()

    def run(self, measure) -> float:
        self.hook.set(True)
        try:
            return measure()
        finally:
            self.hook.set(False)


def _ratios(runs: dict[str, list[float]], prefix: str) -> dict:
    """Medians per arm and the median of each arm's ratio to the untraced run of its rep."""
    out = {f"{prefix}_runs": runs}
    for name, values in runs.items():
        out[f"{prefix}_{name}"] = statistics.median(values)
        if name != "untraced":
            out[f"{prefix}_{name}_ratio"] = statistics.median(
                v / u for v, u in zip(values, runs["untraced"], strict=True))
    return out


def _medians(prefix: str, cores: dict[str, list[float]], fills: dict[str, list[float]]) -> dict:
    """Each metered process's median CPU share and, for a collector alone, calls per batch."""
    return ({f"{prefix}_{name}_cores": statistics.median(v) for name, v in cores.items()}
            | {f"{prefix}_{name}_calls_per_batch": statistics.median(v)
               for name, v in fills.items()})


# -- nginx under wrk ---------------------------------------------------------------------
def _wrk(port: int, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                         check=True, capture_output=True, text=True).stdout
    # An error page is cheaper to serve than the file: a rate of errors measures nothing.
    if "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"nginx answered with errors; see its error.log:\n{out}")
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk printed no rate:\n{out}")


@contextlib.contextmanager
def served_nginx() -> Iterator[int]:
    """nginx serving its file on a free local port (installed if missing); yields the port."""
    from bench_scenarios import ensure_packages, free_port, start_nginx

    from sysgram.demo.target import stop_session

    ensure_packages()
    port = free_port()
    # nginx's workers drop root (to nobody) and must reach the site: the bench's own work
    # directory is private, so the site lives in one they can read.
    site = Path(tempfile.mkdtemp(prefix="sgb-nginx-"))
    os.chmod(site, 0o755)
    server = start_nginx(site, port)
    try:
        yield port
    finally:
        stop_session(server)
        shutil.rmtree(site, ignore_errors=True)


def train_nginx(port: int, store: Path) -> None:
    """nginx's profile into `store`, trained live for 15 s while wrk loads it."""
    trainer = subprocess.Popen([*SYSGRAM, "train", "--proc", "nginx", "--duration", "15s",
                                "--store", str(store)], env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    while trainer.poll() is None:
        _wrk(port, 3)
    if trainer.returncode != 0:
        raise SystemExit("training nginx's profile failed; run `sysgram train --proc nginx`.")


def nginx(reps: int, work: Path, baseline: Path | None = None, seconds: int = 5) -> dict:
    store = work / "nginx-store"
    with served_nginx() as port:
        train_nginx(port, store)
        cores: dict[str, list[float]] = {"watcher": [], "collector": []}
        fills: dict[str, list[float]] = {}
        with HookFloor() as floor:
            runs = _rotated(reps, _server_arms(lambda: _wrk(port, seconds), floor, "nginx",
                                               store, baseline, cores, fills))
    return _ratios(runs, "nginx") | _medians("nginx", cores, fills)


# -- PostgreSQL under pgbench ------------------------------------------------------------
PG_BIN = Path("/usr/lib/postgresql")


def _pg_bin(name: str) -> str:
    found = sorted(PG_BIN.glob(f"*/bin/{name}"))
    if not found:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql).")
    return str(found[-1])


def _as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, **kwargs)


def _pgbench(sock: Path, port: int, seconds: int) -> float:
    out = _as_postgres(["pgbench", "-h", str(sock), "-p", str(port), "-c", "8", "-j", "2",
                        "-S", "-T", str(seconds), "postgres"],
                       capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise SystemExit(f"pgbench printed no rate:\n{out}")


def postgres(reps: int, work: Path, baseline: Path | None = None, seconds: int = 5) -> dict:
    """pgbench (select-only, 8 clients) on a throwaway cluster, untraced and watched."""
    base = Path(tempfile.mkdtemp(prefix="sgb-pg-"))    # the postgres user must reach it
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    data, sock, port = base / "data", base, 54329
    server = None
    cores: dict[str, list[float]] = {"watcher": [], "collector": []}
    fills: dict[str, list[float]] = {}
    try:
        _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                     stdout=subprocess.DEVNULL)
        server = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", _pg_bin("postgres"), "-D", str(data),
             "-k", str(sock), "-p", str(port), "-c", "listen_addresses=", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            if (sock / f".s.PGSQL.{port}").exists():
                break
            time.sleep(0.1)
        _as_postgres(["pgbench", "-i", "-s", "5", "-h", str(sock), "-p", str(port), "postgres"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = work / "pg-store"
        trainer = subprocess.Popen([*SYSGRAM, "train", "--proc", "postgres", "--duration", "15s",
                                    "--store", str(store)], env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        while trainer.poll() is None:
            _pgbench(sock, port, 3)
        with HookFloor() as floor:
            runs = _rotated(reps, _server_arms(lambda: _pgbench(sock, port, seconds), floor,
                                               "postgres", store, baseline, cores, fills))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
    return _ratios(runs, "pg") | _medians("pg", cores, fills)


def report(r: dict) -> str:
    def goal(value, limit, above=False) -> str:
        ok = value >= limit if above else value <= limit
        return "ok" if ok else "MISSED"

    lines = []
    if "untargeted_extra_ns_1" in r:
        lines.append("untargeted extra CPU per syscall, 1 / 5 / 20 binaries watched: "
                     + " / ".join(f"{r[f'untargeted_extra_ns_{n}']:.1f}" for n in (1, 5, 20))
                     + " ns (medians); of which its syscall-exit tracepoints: "
                     + " / ".join(f"{r[f'untargeted_exit_ns_{n}']:.1f}" for n in (1, 5, 20))
                     + " ns")
    if "attach_s_20" in r:
        lines += [
            f"start to attached, --all with 20 profiles: {r['attach_s_20']:.2f} s "
            f"{goal(r['attach_s_20'], GOALS['attach_s'])}",
            f"RSS with 5 profiles: {r['rss_mib_5']:.0f} MiB "
            f"{goal(r['rss_mib_5'], GOALS['rss_mib'])} (with 20: {r['rss_mib_20']:.0f} MiB)",
            f"idle CPU with 5 profiles: {r['idle_cpu_pct_5']:.2f} % of a core "
            f"{goal(r['idle_cpu_pct_5'], GOALS['idle_cpu_pct'])}",
            f"RSS per live watched thread: {r['rss_kib_per_thread']:.1f} KiB "
            f"({r['threads_held']} threads parked)",
        ]
    for prefix, what, unit in (("nginx", "nginx under wrk", "req/s"),
                               ("pg", "PostgreSQL under pgbench -S", "tps")):
        if f"{prefix}_watched_ratio" not in r:
            continue
        ratio = r[f"{prefix}_watched_ratio"]
        lines.append(f"{what}: {r[f'{prefix}_untraced']:,.0f} {unit} untraced, "
                     f"{r[f'{prefix}_watched']:,.0f} watched: {100 * ratio:.1f} % "
                     f"{goal(ratio, GOALS['nginx_ratio'], above=True)}; an empty program on "
                     f"the hook alone: {100 * r[f'{prefix}_hook_floor_ratio']:.1f} %; the "
                     "collector alone (nothing scored): "
                     f"{100 * r[f'{prefix}_collected_ratio']:.1f} %")
        lines.append(f"  CPU while {what.split()[0]} was saturated: the watcher "
                     f"{r[f'{prefix}_watcher_cores']:.3f} core, the collector alone "
                     f"{r[f'{prefix}_collector_cores']:.3f} core, filling its batches with "
                     f"{r[f'{prefix}_collector_calls_per_batch']:,.0f} calls")
        if f"{prefix}_baseline_ratio" in r:
            lines.append(f"  watched by the --baseline tree: "
                         f"{100 * r[f'{prefix}_baseline_ratio']:.1f} %, its watcher "
                         f"{r[f'{prefix}_baseline_cores']:.3f} core; its collector alone "
                         f"{100 * r[f'{prefix}_baseline_collected_ratio']:.1f} %, "
                         f"{r[f'{prefix}_baseline_collector_cores']:.3f} core, "
                         f"{r[f'{prefix}_baseline_collector_calls_per_batch']:,.0f} calls "
                         "per batch")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--only", default="untargeted,daemon,nginx,postgres")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another sysgram tree (a git worktree): nginx and postgres are "
                             "also watched by its sysgram, interleaved with this tree's")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="sgb-daemon-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        if "untargeted" in parts:
            result |= untargeted(args.reps, args.calls, work)
        if "daemon" in parts:
            result |= daemon(args.reps, work)
        if "nginx" in parts:
            result |= nginx(args.reps, work, args.baseline)
        if "postgres" in parts:
            result |= postgres(args.reps, work, args.baseline)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
