"""The kernel program can be compiled early (overlapping the CLI's start-up) and taken once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sysgram.bpf import loader
from sysgram.bpf.sizes import RingPages
from sysgram.entry import will_trace


@pytest.mark.parametrize(("argv", "expected"), [
    (["record", "--proc", "nginx"], True),
    (["watch", "--proc", "nginx", "--json"], True),
    (["train", "--proc", "nginx", "--duration", "60s"], True),
    (["train", "--proc", "nginx", "--from", "rec1"], False),
    (["train", "--proc", "nginx", "--from=rec1"], False),
    (["record", "--help"], False),
    (["doctor"], False),
    (["eval", "adfa", "--format", "adfa-ld"], False),
    (["--version"], False),
    ([], False),
])
def test_only_commands_that_load_the_program_compile_it_early(argv, expected):
    assert will_trace(argv) is expected


@pytest.mark.kernel
def test_an_early_compile_is_taken_once_and_the_next_compile_is_fresh():
    loader.start_compiling()
    first = loader.compile_program()
    try:
        assert b"sys_enter" in first.raw_tracepoint_fds
        second = loader.compile_program()       # nothing early left: compiled now
        assert second is not first
        second.cleanup()
    finally:
        first.cleanup()


@pytest.mark.kernel
def test_an_early_compile_sized_differently_is_detached_not_used():
    loader.start_compiling(rings=RingPages(1, 1, 64))
    _flags, early = loader._early
    program = loader.compile_program()          # default sizes were asked for
    try:
        assert program is not early.result()
        assert not early.result().raw_tracepoint_fds   # its hooks are off the host
        assert b"sys_enter" in program.raw_tracepoint_fds
    finally:
        program.cleanup()


# A command that stops before taking its early compile (a bad argument, Ctrl-C) exits while
# clang may still run on the compile thread; the exit must wait for it and detach what it
# loaded. CI saw the process die with SIGSEGV inside bcc when it did not. With "interrupt",
# a Ctrl-C arrives while the exit waits: the wait goes on.
_EXIT_DURING_COMPILE = """
import atexit, os, signal, sys, threading, time
from pathlib import Path
from sysgram.bpf import loader

log, interrupt = Path(sys.argv[1]), sys.argv[2] == "interrupt"
exiting = threading.Event()

class Loaded:
    def cleanup(self):
        log.write_text(log.read_text() + "cleaned\\n")

def slow_compile(flags):
    if interrupt:
        exiting.wait(10)
        time.sleep(0.1)                   # the exit is waiting for this compile now
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
    log.write_text(log.read_text() + "compiled\\n")
    return Loaded()

log.write_text("")
loader._compile = slow_compile
loader.start_compiling(pid_limit=4096)
atexit.register(exiting.set)              # runs first: atexit calls are last in, first out
sys.exit(3)
"""


@pytest.mark.parametrize("mode", ["plain", "interrupt"])
def test_exit_waits_for_an_untaken_early_compile_and_detaches_it(tmp_path, mode):
    log = tmp_path / "log"
    result = subprocess.run([sys.executable, "-c", _EXIT_DURING_COMPILE, str(log), mode],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3, result.stderr
    assert log.read_text().splitlines() == ["compiled", "cleaned"]
    assert result.stderr == ""


def test_a_taken_early_compile_is_not_discarded_at_exit(monkeypatch):
    class Loaded:
        cleaned = False

        def cleanup(self):
            self.cleaned = True

    monkeypatch.setattr(loader, "_compile", lambda flags: Loaded())
    loader.start_compiling(pid_limit=4096)
    program = loader.compile_program(pid_limit=4096)
    loader._discard_untaken()
    assert not program.cleaned


def test_the_program_calls_no_helper_that_bcc_checks_against_kallsyms():
    # bcc's rewriter loads /proc/kallsyms afresh for every call spelled
    # bpf_probe_read_user(_str) (a fallback check for kernels before 5.5): ~60 ms a call
    # site, most of the compile before they were renamed (benchmarks/README.md, "daemon").
    text = loader.program_text(loader.PROGRAM)
    calls = [line.strip() for line in text.splitlines()
             if "bpf_probe_read_user" in line and not line.lstrip().startswith("*")]
    assert calls == []
    assert "sg_read_user(" in text and "sg_read_user_str(" in text
