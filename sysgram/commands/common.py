"""Helpers shared by the command modules: durations, names, output streams."""

from __future__ import annotations

import re
import sys

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


def warn(message: str) -> None:
    """One `sysgram: warning:` line on stderr; names in it come from processes, files and
    headers, so it is escaped (no control character reaches the terminal)."""
    print(f"sysgram: warning: {printable(message)}", file=sys.stderr, flush=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
