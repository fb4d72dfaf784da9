"""Text from watched processes never drives the terminal; JSON keeps it exactly.

A process picks its own name (prctl PR_SET_NAME, or the file name it execs) and may put
escape sequences, bidi overrides, newlines or invalid UTF-8 in it. Alerts, repeats, the
status line, the summary and `datasets info` show such names escaped and visible; JSON
lines keep them exact (json.dumps escapes control characters) and stay one line.
"""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysgram.cli import main
from sysgram.datasets import DatasetWriter
from sysgram.sanitize import for_terminal
from sysgram.watch.alerts import Alert, ProcessContext, Repeat, to_json_line
from sysgram.watch.engine import WatchStats
from sysgram.watch.explain import Explanation
from sysgram.watch.render import alert_text, repeat_text, status_text, summary_text
from sysgram.watch.session import Status

HOSTILE = [
    "\x1b[2J\x1b[H",               # clear the screen
    "\x1b]0;owned\x07",            # set the window title
    "\x1b]52;c;cm0gLXJmIC8=\x07",  # write the clipboard (OSC 52)
    "\x9b31m",                     # C1 CSI
    "ok\rALERT cleared",           # overwrite the line
    "two\nlines",
    "\u202egnp.exe",               # right-to-left override
    "\u2066hidden\u2069",          # bidi isolates
    "bell\x07\x08\x7f",
    "bad\udcff\udcfeutf8",         # non-UTF-8 bytes as Python keeps them
    "zero\u200bwidth",
]
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF),
                   max_size=60)
_BOLD_RED, _RESET = "\x1b[1;31m", "\x1b[0m"


def _unsafe(text: str) -> list[str]:
    """Characters that must never reach a terminal from untrusted text."""
    return [c for c in text if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs",
                                                                        "Co", "Cn"}]


@settings(max_examples=500, deadline=None)
@given(text=ANY_TEXT)
def test_for_terminal_leaves_nothing_unsafe(text):
    shown = for_terminal(text, limit=10_000)
    assert not _unsafe(shown) and "\n" not in shown
    shown.encode("utf-8")  # printable on any UTF-8 terminal, even from invalid input
    # Nothing is lost either: printable text stays as it was.
    if not _unsafe(text) and "\\" not in text and "\n" not in text:
        assert shown == text


def _alert(comm: str, exe: str, binary: str = "victim") -> Alert:
    proc = ProcessContext(pid=41, ppid=1, comm=comm, exe=exe, exe_sha256="ab" * 32)
    explanation = Explanation(syscalls=["read", comm, "write"], unseen_ngrams=[["read", comm]],
                              unseen_spans=[(0, 2)], new_syscalls=[comm])
    return Alert(id=1, ts_ns=10**9, binary=binary, process=proc, tid=42, score=2.5,
                 threshold=1.0, explanation=explanation)


def _strip_own_colour(text: str) -> str:
    return text.replace(_BOLD_RED, "").replace(_RESET, "")


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("name", HOSTILE)
def test_alert_text_escapes_hostile_names(name, colour):
    plain = alert_text(_alert("x", "/bin/x"), colour)
    text = alert_text(_alert(name, f"/tmp/{name}", binary=name), colour)
    assert text.count("\n") == plain.count("\n")          # no injected line
    assert not _unsafe(_strip_own_colour(text)), repr(text)
    text.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(name=ANY_TEXT)
def test_every_rendered_text_is_safe_for_any_name(name):
    alert = _alert(name, name, binary=name)
    repeat = Repeat(id=2, alert_id=1, binary=name, process=alert.process, period_s=5.0,
                    first_ns=10**9)
    repeat.fold(alert)
    status = Status(elapsed_s=1.0, processes=1, threads=1, windows_per_s=1.0, max_score=1.0,
                    threshold=1.0, alerts=1, lost=0, unscored=0)
    texts = [alert_text(alert), _strip_own_colour(alert_text(alert, True)), repeat_text(repeat),
             status_text(name, status), summary_text(name, WatchStats(), 1.0, 0, "signal")]
    for text in texts:
        assert not _unsafe(text), repr(text)
        text.encode("utf-8")
    if name:  # an empty exe has no line of its own
        assert texts[0].count("\n") == alert_text(_alert("x", "x")).count("\n")


@settings(max_examples=200, deadline=None)
@given(name=ANY_TEXT)
def test_json_lines_keep_names_exactly_on_one_line(name):
    alert = _alert(name, name, binary=name)
    line = to_json_line(alert.record())
    assert "\n" not in line and "\r" not in line and line.isascii()
    back = json.loads(line)
    assert back["comm"] == name and back["exe"] == name and back["binary"] == name
    assert back["new_syscalls"] == [name]


@pytest.mark.parametrize("name", HOSTILE)
def test_datasets_info_escapes_names_recorded_from_processes(tmp_path, capsys, name):
    path = tmp_path / "ds"
    with DatasetWriter(path, arch="x86_64", source="record", target={"comm": name}) as writer:
        writer.start_thread(7, pid=7, comm=name, exe=f"/tmp/{name}")
        writer.append(7, np.arange(5, dtype=np.uint16))
        writer.end_thread(7)
    assert main(["datasets", "info", str(path)]) == 0
    out, err = capsys.readouterr()
    assert not _unsafe(out.replace("\n", "")) and not _unsafe(err.replace("\n", ""))
    assert re.search(r"\b5\b", out)
