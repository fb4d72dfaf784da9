"""Second scenario: a well-known Debian server under its usual benchmark tool.

(The full suite of real servers and real attacks is `python -m benchmarks.scenarios`;
its nginx reuses this module's configuration and request mix.)

nginx (Debian package) serves a small static site plus a JSON location on 127.0.0.1,
driven by wrk with a Lua script that mixes pages, assets, API calls and 404s and paces
each connection (so the run does not saturate a shared machine). The real CLI trains
nginx's profile (`sysgram train --proc nginx`), then `sysgram watch --proc nginx` runs
under continuing load; every alert there is a false alarm. Reports false alarms per
hour of watched traffic.

    .venv/bin/python benchmarks/bench_scenarios.py [--train 60s] [--watch 150s]

Also run by `make bench` (benchmarks/run.py). Installs nginx and wrk with apt-get when
missing (root). Prints one JSON object with the numbers and a Markdown row for
benchmarks/README.md; false alarms are reported there, not as the exit status (0 when
the scenario ran, 2 when it could not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sysgram.commands.common import parse_duration  # noqa: E402
from sysgram.demo import sysgram_cli  # noqa: E402
from sysgram.demo.load import LoadGenerator  # noqa: E402
from sysgram.demo.target import (  # noqa: E402
    DemoServer,
    build_server,
    pick_comm,
    stop_session,
    write_docroot,
)
from sysgram.errors import UserError  # noqa: E402

PACKAGES = {"nginx": "nginx", "wrk": "wrk"}

NGINX_CONF = """\
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    types {{ text/html html; text/css css; application/javascript js; image/png png; }}
    sendfile on;
    keepalive_timeout 15;
    server {{
        listen 127.0.0.1:{port};
        root {work}/www;
        location /api/health {{ default_type application/json; return 200 '{{"ok":true}}'; }}
        location /api/ {{ default_type application/json; try_files $uri.json =404; }}
    }}
}}
"""

# wrk's Lua hooks: a weighted mix of paths, and a per-request pause that paces load.
WRK_SCRIPT = """\
local paths = {{ "/", "/", "/", "/index.html", "/style.css", "/style.css", "/app.js",
  "/app.js", "/logo.png", "/api/health", "/api/health", "/api/items", "/api/items",
  "/api/missing", "/nope.html" }}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n * 7) % #paths + 1])
end
delay = function() return math.random({min_ms}, {max_ms}) end
"""

SITE = {
    "index.html": b"<!doctype html><html><head><link rel=stylesheet href=/style.css></head>"
    b"<body><h1>status</h1><script src=/app.js></script></body></html>\n",
    "style.css": b"body{font:14px sans-serif}h1{color:#333}\n" * 50,
    "app.js": b"fetch('/api/items').then(r=>r.json()).then(console.log);\n" * 80,
    "logo.png": bytes(range(256)) * 64,
    "api/items.json": b'[{"id":1,"name":"disk"},{"id":2,"name":"fan"}]\n',
}


def ensure_packages() -> None:
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None
               and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(work: Path, port: int) -> subprocess.Popen:
    for name, content in SITE.items():
        (work / "www" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "www" / name).write_bytes(content)
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with open(work / "nginx.stderr", "wb") as errors:
        process = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
            start_new_session=True, stderr=errors,
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.1)
    stop_session(process)
    raise SystemExit(f"nginx did not start; see {work}/nginx.stderr and {work}/error.log")


def start_wrk(work: Path, port: int, seconds: float, connections: int,
              delay_ms: tuple[int, int]) -> subprocess.Popen:
    script = work / "mix.lua"
    script.write_text(WRK_SCRIPT.format(min_ms=delay_ms[0], max_ms=delay_ms[1]))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script),
           f"http://127.0.0.1:{port}/"]
    with open(work / "wrk.out", "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def requests_served(access_log: Path) -> int:
    with open(access_log, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def run_nginx(args: argparse.Namespace) -> dict:
    ensure_packages()
    sysgram_cli.require_commands("train", "watch")
    work = Path(tempfile.mkdtemp(prefix="sysgram-scenario-"))
    work.chmod(0o755)  # nginx workers run as www-data and read the site
    port = free_port()
    train_s, watch_s = parse_duration(args.train), parse_duration(args.watch)
    nginx = start_nginx(work, port)
    load = start_wrk(work, port, args.warmup + train_s + watch_s + 60, args.connections,
                     (args.min_delay_ms, args.max_delay_ms))
    store = work / "profiles"
    store.mkdir(mode=0o700)
    watch = sysgram_cli.Watch("nginx", store, work / "alerts.jsonl", log=work / "watch.out")
    alerts: list[dict] = []
    try:
        time.sleep(args.warmup)
        t0 = time.monotonic()
        code = sysgram_cli.train("nginx", store, train_s)
        train_wall = time.monotonic() - t0
        if code != 0:
            raise SystemExit(f"sysgram train failed (exit {code})")
        served_before = requests_served(work / "access.log")
        watch.start()
        start = time.monotonic()
        while time.monotonic() - start < watch_s:
            alerts += watch.new_records()
            if not watch.running():
                raise SystemExit(f"sysgram watch stopped early; see {work}/watch.out")
            if load.poll() is not None:
                raise SystemExit(f"wrk stopped early; see {work}/wrk.out")
            time.sleep(0.5)
        watched = time.monotonic() - start
        alerts += watch.new_records()
        served_watched = requests_served(work / "access.log") - served_before
    finally:
        watch.stop()
        stop_session(load)
        stop_session(nginx)
    false_alarms = [a for a in alerts if a.get("kind") == "alert"]
    folded = sum(int(a.get("windows", 0)) for a in alerts if a.get("kind") == "repeat")
    counts = watch.summary_counts()
    return {
        "server": "nginx " + subprocess.run(["nginx", "-v"], capture_output=True,
                                            text=True).stderr.strip().split("/")[-1],
        "load": f"wrk -t1 -c{args.connections}, {args.min_delay_ms}-{args.max_delay_ms} ms "
                "pause per request",
        "train_seconds": round(train_wall, 1),
        "watched_seconds": round(watched, 1),
        "requests_watched": served_watched,
        "requests_per_second": round(served_watched / watched, 1),
        "windows_scored": counts.get("windows scored", counts.get("windows")),
        "false_alarms": len(false_alarms),
        "anomalous_windows_folded": folded,
        "false_alarms_per_hour": round(len(false_alarms) * 3600 / watched, 2),
        # With k alarms observed, the ~95 % upper bound on the rate (k = 0: the rule of three).
        "false_alarms_per_hour_95pct_upper": round(_upper_count(len(false_alarms)) * 3600
                                                   / watched, 1),
        "watch_summary": counts,
        "workdir": str(work),
        "first_false_alarm": false_alarms[0] if false_alarms else None,
    }


def run_demo_replay(args: argparse.Namespace) -> dict:
    """The demo server's normal traffic, recorded in consecutive segments with
    `sysgram record`; for each split, `sysgram train --from` on `train_segments` of them
    and `sysgram score` the next `test_segments`: every window above the threshold is a
    false alarm. Estimates how often `make demo` (45 s training, 30 s watched) fails on
    a false alarm, per detector, from one recording."""
    sysgram_cli.require_commands("record", "train", "score")
    work = Path(tempfile.mkdtemp(prefix="sysgram-replay-"))
    comm = pick_comm("sg-demo-replay")
    server = DemoServer(build_server(work / "bin", comm), write_docroot(work / "www"),
                        work / "access.log")
    segments = args.segments
    seg_s = parse_duration(args.segment)
    server.start()
    try:
        assert server.port is not None
        load = LoadGenerator(server.port, rate=args.rate, max_seconds=segments * seg_s + 120)
        load.start()
        time.sleep(args.warmup)
        for i in range(segments):
            _cli("record", "--proc", comm, "--duration", f"{seg_s:g}s", "--out",
                 str(work / f"seg{i:02d}"))
        load.stop()
    finally:
        server.stop()
    results = {}
    for model in args.models.split(","):
        results[model] = _replay_splits(work, comm, model, segments, args.train_segments,
                                        args.test_segments)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"scenario": "demo-replay", "segment_seconds": seg_s, "segments": segments,
            "train_seconds": seg_s * args.train_segments,
            "test_seconds": seg_s * args.test_segments, "rate": args.rate,
            "detectors": results}


def _replay_splits(work: Path, comm: str, model: str, segments: int, train_n: int,
                   test_n: int) -> dict:
    splits = []
    for i in range(segments - train_n - test_n + 1):
        store = work / f"store-{model}-{i}"
        train_from = [arg for k in range(i, i + train_n)
                      for arg in ("--from", str(work / f"seg{k:02d}"))]
        _cli("train", "--proc", comm, "--store", str(store), "--model", model, *train_from)
        alarms = windows = 0
        for k in range(i + train_n, i + train_n + test_n):
            scored = json.loads(_cli("score", "--proc", comm, "--store", str(store),
                                     str(work / f"seg{k:02d}"), "--json"))
            alarms += scored["summary"]["anomalous_windows"]
            windows += scored["summary"]["windows"]
        splits.append({"split": i, "windows": windows, "false_alarm_windows": alarms})
    total_w = sum(s["windows"] for s in splits)
    total_a = sum(s["false_alarm_windows"] for s in splits)
    return {
        "splits": len(splits),
        "splits_with_a_false_alarm": sum(s["false_alarm_windows"] > 0 for s in splits),
        "false_alarm_windows": total_a,
        "windows": total_w,
        "false_alarm_rate_per_window": total_a / total_w if total_w else None,
        "per_split": [s["false_alarm_windows"] for s in splits],
    }


def _cli(*args: str) -> str:
    done = subprocess.run(sysgram_cli.sysgram_command(*args), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sysgram {args[0]} failed: {done.stderr.strip()[-400:]}")
    return done.stdout


def _upper_count(k: int) -> float:
    """~95 % upper confidence bound on a Poisson mean after observing k events."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, 2 * (k + 1)) / 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default="60s")
    parser.add_argument("--watch", default="150s")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--min-delay-ms", type=int, default=5)
    parser.add_argument("--max-delay-ms", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--scenario", choices=["nginx", "demo-replay"], default="nginx")
    replay = parser.add_argument_group("demo-replay")
    replay.add_argument("--segments", type=int, default=14)
    replay.add_argument("--segment", default="15s")
    replay.add_argument("--train-segments", type=int, default=3)
    replay.add_argument("--test-segments", type=int, default=2)
    replay.add_argument("--rate", type=float, default=100.0)
    replay.add_argument("--models", default="ocsvm",
                        help="comma-separated detectors to compare (train --model)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_scenarios: run as root (it traces nginx and may apt-get install it)",
              file=sys.stderr)
        return 2
    try:
        if args.scenario == "demo-replay":
            print(json.dumps(run_demo_replay(args), indent=2))
            return 0
        result = run_nginx(args)
    except UserError as err:
        print(f"bench_scenarios: {err.message}", file=sys.stderr)
        return 2
    if not args.keep and result["false_alarms"] == 0:
        shutil.rmtree(result["workdir"], ignore_errors=True)
        result["workdir"] = None
    print(json.dumps(result, indent=2))
    r = result
    print(f"| nginx + wrk | {r['train_seconds']:g} s | {r['watched_seconds']:g} s | "
          f"{r['requests_watched']:,} ({r['requests_per_second']:g}/s) | "
          f"{r['windows_scored']} | {r['false_alarms']} | "
          f"{r['false_alarms_per_hour']:g} (≤ {r['false_alarms_per_hour_95pct_upper']:g}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
