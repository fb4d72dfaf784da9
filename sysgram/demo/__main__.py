"""`python -m sysgram.demo` (what `make demo` runs): sysgram catches a compromised server.

Exit codes: 0 the attack was caught and no false alarm fired; 1 it was not (or a false
alarm fired); 2 the demo could not run (the message says why and how to fix it);
130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from sysgram.commands.common import kernel_comm, parse_duration
from sysgram.demo.console import Console
from sysgram.demo.scenario import DemoConfig, run_demo
from sysgram.errors import UserError


def _parse(argv: list[str] | None) -> DemoConfig:
    parser = argparse.ArgumentParser(prog="python -m sysgram.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default="45s", help="how long to learn (default 45s)")
    parser.add_argument("--watch", default="30s",
                        help="normal traffic watched before the attack (default 30s)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="normal requests per second (default 100)")
    parser.add_argument("--name", help="the server's process name (default sg-demo-httpd, "
                        "or a fresh sg-demo-XXXXX when another one is running)")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    return DemoConfig(
        train_seconds=parse_duration(args.train),
        watch_seconds=parse_duration(args.watch),
        rate=args.rate,
        comm=kernel_comm(args.name) if args.name else None,
        workdir=args.workdir,
        keep=args.keep or args.workdir is not None,
    )


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every process the demo started is stopped.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    console = Console()
    try:
        result = run_demo(_parse(argv), console)
    except UserError as err:
        print(f"sysgram demo: {err.message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("\nsysgram demo: interrupted; every process it started was stopped.",
              file=sys.stderr)
        return 130
    console.summary(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
