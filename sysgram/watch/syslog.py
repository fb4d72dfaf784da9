"""Alerts to syslog / the journal: RFC 5424 messages with structured data on a Unix socket.

One datagram per alert or repeat record, sent to /dev/log (rsyslog, syslog-ng and
systemd-journald all listen there) or to a socket given by path. The structured data
element `alert@32473` (32473: the enterprise number RFC 5612 reserves for examples)
carries the record's fields, so a collector can filter on binary, pid or score
without parsing the message. A record that cannot be sent is counted, never retried
forever: the JSON lines (stdout, --alerts) stay the complete record.
"""

from __future__ import annotations

import os
import socket
from typing import Protocol

from sysgram.errors import UserError
from sysgram.watch.alerts import wall_time

DEV_LOG = "/dev/log"
FACILITY_DAEMON = 3
SEVERITY_WARNING, SEVERITY_NOTICE = 4, 5
SD_ID = "alert@32473"
APP_NAME = "sysgram"
# Fields of an alert/repeat record carried as SD-PARAMs (the rest are in the JSON lines).
_PARAMS = ("kind", "id", "alert_id", "binary", "pid", "tid", "root_pid", "comm", "exe",
           "score", "max_score", "threshold", "windows", "new_syscalls", "cgroup", "container")


class Record(Protocol):
    def record(self) -> dict: ...


def _sd_value(value: object) -> str:
    """An SD-PARAM value: `"`, `\\` and `]` escaped (RFC 5424 §6.3.3), lists comma-joined."""
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(text: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in (text or "") if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def format_message(record: dict, *, hostname: str, procid: int) -> bytes:
    """One RFC 5424 message for an alert or repeat record."""
    severity = SEVERITY_WARNING if record.get("kind") == "alert" else SEVERITY_NOTICE
    pri = FACILITY_DAEMON * 8 + severity
    ts_ns = record.get("ts_ns")
    timestamp = wall_time(ts_ns) if isinstance(ts_ns, int) else "-"
    params = " ".join(f'{name}="{_sd_value(record[name])}"' for name in _PARAMS
                      if record.get(name) is not None)
    what = "alert" if record.get("kind") == "alert" else "repeat"
    new = ", ".join(record.get("new_syscalls") or []) or "none"
    # The free-form message is ASCII with control characters escaped (names come from
    # processes); the structured data holds the same facts for machines.
    msg = (f"{what} #{record.get('id')}: {record.get('binary')} pid {record.get('pid')} "
           f"score {record.get('score', record.get('max_score'))} over "
           f"{record.get('threshold')}; new syscalls: {new}")
    msg = msg.encode("ascii", "backslashreplace").decode("ascii")
    msg = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in msg)
    line = (f"<{pri}>1 {timestamp} {_header_field(hostname, 255)} {APP_NAME} {procid} "
            f"{what} [{SD_ID} {params}] {msg}")
    return line.encode("utf-8")


SEND_TIMEOUT_S = 0.5


class SyslogSink:
    """A watch sink (alert, repeat) that sends each record as one datagram."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or DEV_LOG
        self.sent = 0
        self.failed = 0          # records that could not be sent (counted, shown at exit)
        self._hostname = socket.gethostname()
        self._sock: socket.socket | None = None
        try:        # a socket nobody listens on is a mistake to tell now, not to count later
            self._socket()
        except OSError as exc:
            raise UserError(f"cannot send to syslog at {self.path} ({exc.strerror}); give a "
                            "socket a log daemon listens on with --syslog, or leave it out.") \
                from None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            # A log daemon that stops reading fills the socket's short queue; then a send
            # would block the watcher for good. Wait a little, then count the record failed.
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(self.path)
            self._sock = sock
        return self._sock

    def _send(self, record: dict) -> None:
        data = format_message(record, hostname=self._hostname, procid=os.getpid())
        for _attempt in range(2):     # the log daemon restarted: one reconnect, then count
            try:
                self._socket().send(data)
                self.sent += 1
                return
            except OSError:
                self.close()
        self.failed += 1

    def alert(self, alert: Record) -> None:
        self._send(alert.record())

    def repeat(self, repeat: Record) -> None:
        self._send(repeat.record())

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
