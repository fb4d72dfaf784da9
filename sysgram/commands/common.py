"""Helpers shared by the command modules: durations, names, options, and the one way
every command writes to the terminal (`say`, `warn`, `loud`: each escapes what it prints,
since names come from processes, files and headers)."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from sysgram.errors import UserError
from sysgram.sanitize import printable

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

# The kernel keeps the first 15 bytes of a process name (TASK_COMM_LEN - 1).
COMM_LEN = 15


def parse_duration(text: str | None) -> float | None:
    """'30s', '10m', '1.5h', '250ms' or a bare number of seconds -> seconds (None stays None)."""
    if text is None:
        return None
    match = _DURATION.match(str(text))
    if not match:
        raise UserError(
            f"'{text}' is not a duration; write it like 30s, 10m, 2h or 250ms."
        )
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0 or value > 366 * 86400:
        raise UserError(f"duration '{text}' is out of range; give more than 0 and at most a year.")
    return value


def kernel_comm(name: str, warn_if_cut: bool = True) -> str:
    """The form of `name` the kernel keeps (first 15 bytes), warning when it is cut."""
    if not name or "/" in name or "\x00" in name:
        raise UserError(
            f"'{name}' is not a process name; give the name as `ps -o comm` shows it, "
            "without a path."
        )
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > COMM_LEN:
        cut = raw[:COMM_LEN].decode("utf-8", "surrogateescape")
        if warn_if_cut:
            warn(f"the kernel keeps only the first {COMM_LEN} bytes of a process name; "
                 f"matching '{cut}'.")
        return cut
    return name


StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Profile store directory (default $SYSGRAM_STORE or "
                 "/var/lib/sysgram/profiles)."),
]


def say(message: str) -> None:
    """One `sysgram:` line on stderr, escaped."""
    print(f"sysgram: {printable(message)}", file=sys.stderr, flush=True)


def loud(message: str) -> None:
    """A warning that must not be missed: red on a terminal, escaped."""
    text = f"sysgram: WARNING: {printable(message)}"
    if stderr_is_tty():
        text = f"\x1b[1;31m{text}\x1b[0m"
    print(text, file=sys.stderr, flush=True)


def curve_text(curve, limit: int = 12) -> str:
    """A novelty curve in one line, its middle elided when long."""
    values = [int(v) for v in curve]
    if len(values) > limit:
        return " ".join(map(str, values[: limit // 2])) + " … " + " ".join(
            map(str, values[-limit // 2 :]))
    return " ".join(map(str, values))


def warn(message: str) -> None:
    """One `sysgram: warning:` line on stderr; names in it come from processes, files and
    headers, so it is escaped (no control character reaches the terminal)."""
    print(f"sysgram: warning: {printable(message)}", file=sys.stderr, flush=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
