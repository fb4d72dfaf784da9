"""The scenario suite's command: real servers under load, every detector, real attacks.

    .venv/bin/python -m benchmarks.scenarios [--servers nginx,apache,...] [--models a,b]
        [--train 90s] [--watch 10m] [--parallel 3] [--quick] [--out FILE] [--keep] [--record-watch]

For each server (servers/): train `--train` under load (one recording, `train --from`
per model), watch `--watch` with one `watch` per model at once (every alert is a false
alarm), then run its attacks one by one (the spawn, in-thread and code-loading shapes).
`--models` defaults to every registered detector (sysgram.models.registry). `--parallel`
runs that many servers at once (each its own load and watches). `--quick` is a short
smoke run (20 s training, 30 s watch). Prints one JSON document (also written to
`--out`) and the Markdown tables for benchmarks/README.md. Run as root: it traces the
servers and may apt-get install them (scripts/install.sh lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.scenarios.harness import Settings, run_scenario
from benchmarks.scenarios.packages import ensure
from benchmarks.scenarios.report import markdown
from benchmarks.scenarios.servers import make_server, server_names
from sysgram.commands.common import parse_duration
from sysgram.models.registry import detector_names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scenarios", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(server_names()))
    p.add_argument("--models", default=None, help="default: every registered detector")
    p.add_argument("--train", default="90s")
    p.add_argument("--watch", default="10m")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="20 s training, 30 s watch")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument("--record-watch", action="store_true",
                   help="also record the watch period (kept: implies --keep), so that "
                        "detector variants can be replayed offline (replay.py)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("scenarios: run as root (it traces the servers with BPF)", file=sys.stderr)
        return 2
    servers = [s for s in args.servers.split(",") if s]
    unknown = sorted(set(servers) - set(server_names()))
    models = args.models.split(",") if args.models else detector_names()
    if unknown or not servers:
        print(f"scenarios: unknown server(s) {unknown}; choose from {server_names()}",
              file=sys.stderr)
        return 2
    settings = Settings(train_s=20.0 if args.quick else parse_duration(args.train),
                        watch_s=30.0 if args.quick else parse_duration(args.watch),
                        models=models, record_watch=args.record_watch)
    installed = ensure(sorted({p for name in servers for p in make_server(name).debian_packages}))
    if installed:
        print(f"scenarios: installed {' '.join(installed)}", file=sys.stderr)
    root = Path(tempfile.mkdtemp(prefix="sysgram-scenarios-"))
    started = time.time()
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        futures = {name: pool.submit(_one, name, settings, root / name) for name in servers}
        results = [f.result() for f in futures.values()]
    document = {"command": "python -m benchmarks.scenarios " + " ".join(argv or sys.argv[1:]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "wall_seconds": round(time.time() - started, 1), "parallel": args.parallel,
                "models": models, "train_seconds": settings.train_s,
                "watch_seconds": settings.watch_s, "servers": results}
    text = json.dumps(document, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    print(markdown(document))
    if not (args.keep or args.record_watch):
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all("error" not in r for r in results) else 1


def _one(name: str, settings: Settings, work: Path) -> dict:
    try:
        return run_scenario(make_server(name), settings, work)
    except Exception as exc:  # noqa: BLE001 - one server's failure is reported, not fatal
        traceback.print_exc()
        return {"server": name, "error": f"{type(exc).__name__}: {exc}", "workdir": str(work)}
