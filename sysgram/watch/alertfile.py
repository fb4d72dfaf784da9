"""The alerts file: JSON lines appended, reopened on request so log rotation loses nothing.

logrotate moves the file away and signals the daemon (SIGHUP); every line written
before the reopen is in the moved file, every line after it in the new one. Lines are
counted so a test (or an operator) can check the two add up.
"""

from __future__ import annotations

import os
from pathlib import Path

from sysgram.errors import UserError


def _open(path: Path):
    try:
        # Owner-only whatever the umask: a SIEM trusts this file, so others must not
        # be able to forge alerts in it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot write alerts to {path} ({exc.strerror}); choose a writable file for --alerts."
        ) from None


class AlertFile:
    """A text stream (write, flush) over an append-only file that can be reopened."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lines_written = 0
        self.reopens = 0
        self._stream = _open(self.path)

    def write(self, text: str) -> int:
        self.lines_written += text.count("\n")
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def reopen(self) -> None:
        """Close and open the path again (after a rotation it is a new file)."""
        stream = _open(self.path)       # a failure keeps writing to the old file
        self._stream.close()
        self._stream = stream
        self.reopens += 1

    def close(self) -> None:
        self._stream.close()
