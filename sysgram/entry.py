"""The console entry point (`sysgram`, `python -m sysgram`).

A command that is going to trace starts compiling the kernel program before the CLI
loads, so the compile overlaps the imports and argument parsing (see sysgram.bpf.loader);
everything else goes straight to `sysgram.cli.main`.
"""

from __future__ import annotations

import sys

from sysgram.bpf.privileges import can_trace

# Commands that load the kernel program, unless given one of the options that make
# them read files instead (`train --from`) or only print help.
_TRACING_COMMANDS = frozenset({"record", "watch", "train"})
_NOT_TRACING_OPTIONS = frozenset({"--help", "-h", "--from"})


def will_trace(argv: list[str]) -> bool:
    """Whether these arguments run a command that loads the kernel program."""
    command = next((a for a in argv if not a.startswith("-")), None)
    options = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
    return command in _TRACING_COMMANDS and not options & _NOT_TRACING_OPTIONS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Without the privileges the command stops with one sentence saying so; a compile
    # started anyway would only print bcc's errors beside it.
    if will_trace(argv) and can_trace():
        from sysgram.bpf.loader import start_compiling
        start_compiling()
    from sysgram.cli import main as cli_main
    return cli_main(argv)
