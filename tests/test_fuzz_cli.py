"""Hostile command lines: durations, process names, paths. One sentence and exit 2, never a
traceback, never a hang; text from disk or argv never drives the terminal.

Only commands that fail before touching the kernel are driven here (a bad name, a bad
duration, a missing profile or dataset), so these tests need neither root nor bcc.
"""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgram.cli import main
from sysgram.commands.common import COMM_LEN, kernel_comm, parse_duration
from sysgram.errors import UserError

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
CLI_FUZZ = settings(FUZZ, max_examples=25)  # each example runs several commands
SYSGRAM = [sys.executable, "-m", "sysgram"]

# What argv can hold: any text, plus the lone surrogates Python uses for non-UTF-8 bytes.
ARGV_TEXT = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                       st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)),
    max_size=300,
).filter(lambda s: "\x00" not in s)
NASTY_NAMES = [
    "$(reboot)", "`id`", "a;rm -rf /", "a|b", "a&&b", "%s%s%n%x", "\\x00", "a b c",
    "\x1b[2J\x1b]0;owned\x07", "\u202eexe.txt", "x" * 5000, "é" * 16, "名前" * 10,
    "name\udcff\udcfe", "-rf", "--help-not", "'", '"', "*", "?", "~root", ".", "..",
]


class RealStderr:
    """sys.stderr as Python sets it up for a process (errors="backslashreplace"), captured.

    pytest's capsys stream is strict UTF-8, which a real stderr never is, so lone
    surrogates from non-UTF-8 argv would fail there and nowhere else.
    """

    def __init__(self) -> None:
        self._raw = io.BytesIO()
        self._stream = io.TextIOWrapper(self._raw, encoding="utf-8", errors="backslashreplace",
                                        write_through=True)

    def read(self) -> str:
        text = self._raw.getvalue().decode("utf-8")
        self._raw.seek(0)
        self._raw.truncate()
        return text


@pytest.fixture
def stderr() -> RealStderr:
    """Installed when the test body starts (pytest's capture resets sys.stderr per phase)."""
    captured = RealStderr()
    saved = sys.stderr
    yield captured
    sys.stderr = saved


def _install(captured: RealStderr) -> None:
    sys.stderr = captured._stream


def _one_sentence(err: str) -> None:
    """stderr holds one `sysgram: ...` line: input echoed back is escaped, never raw."""
    assert "Traceback" not in err
    if err.startswith(("Usage:", "Error:")):  # a usage error (option-like argument): click's
        assert "Error: " in err, err
        return
    assert err.startswith("sysgram: ") and err.endswith("\n"), err
    assert err.count("\n") - err.count("sysgram: warning:") == 1, err


# -- the parsers -------------------------------------------------------------------------------
_REFERENCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


@FUZZ
@given(text=st.one_of(ARGV_TEXT, st.from_regex(r"\s*\d{1,12}(\.\d{1,6})?\s*(ms|s|m|h|d)?\s*",
                                               fullmatch=True)))
def test_parse_duration_accepts_exactly_its_grammar(text):
    try:
        seconds = parse_duration(text)
    except UserError as err:
        assert "\n" not in err.message.replace(text, "")
        match = _REFERENCE.match(text)
        if match:  # well-formed but out of range
            assert "out of range" in err.message
        return
    assert seconds is not None and math.isfinite(seconds) and 0 < seconds <= 366 * 86400
    assert _REFERENCE.match(text)


@FUZZ
@given(name=ARGV_TEXT)
def test_kernel_comm_keeps_the_kernels_bytes_or_refuses(name, stderr):
    _install(stderr)
    try:
        comm = kernel_comm(name)
    except UserError as err:
        assert "\n" not in err.message.replace(name, "")
        assert not name or "/" in name
        return
    raw = name.encode("utf-8", "surrogateescape")
    cut = comm.encode("utf-8", "surrogateescape")
    assert cut == raw[:COMM_LEN]  # exactly what the kernel keeps of an exec'd name
    warned = "first 15 bytes" in stderr.read()
    assert warned == (len(raw) > COMM_LEN)


# -- the real CLI, in process --------------------------------------------------------------------
def _commands(name: str, tmp: Path) -> list[list[str]]:
    store = str(tmp / "store")
    missing = str(tmp / f"no such {name[:40]}")
    return [
        ["profiles", "show", name, "--store", store],
        ["profiles", "rm", name, "--store", store],
        ["score", missing, "--proc", name, "--store", store],
        ["watch", "--proc", name, "--store", store],
        ["train", "--proc", name, "--from", missing, "--store", store],
        ["record", "--proc", name, "--duration", "soon"],
        ["datasets", "info", missing],
    ]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_nasty_names_get_one_sentence_and_exit_2(tmp_path, stderr, name):
    _install(stderr)
    for argv in _commands(name, tmp_path):
        code = main(argv)
        err = stderr.read()
        assert code == 2, (argv, err)
        _one_sentence(err)


@CLI_FUZZ
@given(name=ARGV_TEXT)
def test_any_name_gets_one_sentence_and_exit_2(tmp_path_factory, stderr, name):
    _install(stderr)
    tmp = tmp_path_factory.mktemp("cli")
    for argv in _commands(name, tmp)[:4]:
        code = main(argv)
        err = stderr.read()
        assert code == 2, (argv, err)
        _one_sentence(err)


@CLI_FUZZ
@given(duration=ARGV_TEXT)
def test_any_duration_on_watch_and_record_is_one_sentence(tmp_path_factory, stderr, duration):
    _install(stderr)
    store = str(tmp_path_factory.mktemp("s"))
    for argv in (["record", "--proc", "x", "--duration", duration, "--out", store + "/r"],
                 ["watch", "--proc", "x", "--store", store, "--duration", duration]):
        try:
            parse_duration(duration)
        except UserError:
            pass
        else:
            if argv[0] == "record":
                continue  # a valid duration would start recording for real
        code = main(argv)
        err = stderr.read()
        assert code == 2
        _one_sentence(err)


@pytest.mark.parametrize("space", ["dir with spaces", "tab\there", "new\nline", "quote'\""])
def test_paths_with_spaces_and_quotes_work(tmp_path, capsys, space):
    from sysgram.datasets import DatasetWriter

    path = tmp_path / space / "ds"
    with DatasetWriter(path, arch="x86_64", source="test") as writer:
        writer.start_thread(1, pid=1, comm="x")
        import numpy as np

        writer.append(1, np.arange(10, dtype=np.uint16))
        writer.end_thread(1)
    assert main(["datasets", "info", str(path)]) == 0
    assert "10" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["record"], ["watch", "--proc", "x", "--max-alerts", "0"],
                                  ["datasets", "info"], ["no-such-command"],
                                  ["score", "--proc"], ["profiles", "show", "--nope"]])
def test_usage_errors_are_one_sentence_and_exit_2(capsys, argv):
    assert main(argv) == 2
    _one_sentence(capsys.readouterr().err)


# -- the real CLI, as a process: raw non-UTF-8 bytes in argv -----------------------------------
@pytest.mark.parametrize("name", [b"\xff\xfe", b"ab\xc3", b"\xe9" * 20, b"\x1b[31mred"])
def test_non_utf8_argv_bytes_are_one_sentence(tmp_path, name):
    store = os.fsencode(tmp_path / "store")
    for args in ([b"profiles", b"show", name, b"--store", store],
                 [b"watch", b"--proc", name, b"--store", store],
                 [b"record", b"--proc", name, b"--duration", b"nope"]):
        result = subprocess.run([*map(os.fsencode, SYSGRAM), *args], capture_output=True,
                                timeout=60)
        err = result.stderr.decode("utf-8", "backslashreplace")
        assert result.returncode == 2, err
        _one_sentence(err)


# -- what reaches the terminal ---------------------------------------------------------------------
def test_error_messages_never_carry_escape_sequences_from_disk(tmp_path, capsys):
    corpus = tmp_path / "corpus" / "Training_Data_Master"
    corpus.mkdir(parents=True)
    (corpus / "UTD-0001.txt").write_text("1 2 3")
    (corpus / "\x1b]0;owned\x07\x1b[2J.txt").write_text("not numbers")
    code = main(["import", "--format", "adfa-ld", str(tmp_path / "corpus"), str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code == 2 and "owned" in err
    assert "\x1b" not in err and "\x07" not in err
