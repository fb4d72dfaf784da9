"""The kernel program can be compiled early (overlapping the CLI's start-up) and taken once."""

from __future__ import annotations

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
