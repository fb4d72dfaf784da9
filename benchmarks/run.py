"""Run every benchmark: each benchmarks/bench_*.py in name order, as its own process.

usage: .venv/bin/python benchmarks/run.py [NAME ...]   (e.g. `collector` for bench_collector.py)
Exit status is non-zero when any benchmark fails to run (missing goals are reported by the
benchmarks themselves, not turned into failures).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    if not scripts:
        print(f"no benchmarks matched {sorted(wanted) or 'bench_*.py'}", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: exit {result.returncode} in {time.monotonic() - started:.1f} s",
              flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
