"""The hooks benchmarks switch off and on are exactly the ones the program attaches."""

from __future__ import annotations

import pytest

from sysgram.collector import Collector, TargetSpec
from sysgram.collector.program import RESULT_TRACEPOINTS

pytestmark = pytest.mark.kernel


def test_result_hooks_are_every_syscall_exit_tracepoint_and_come_back():
    with Collector(TargetSpec("sg_no_such_bin")) as collector:
        bpf = collector.program.bpf
        exits = {tp for tp in bpf.tracepoint_fds if tp.startswith(b"syscalls:")}
        assert exits == {b"syscalls:" + tp for tp in RESULT_TRACEPOINTS}
        collector.program.set_result_hooks(False)
        assert not [tp for tp in bpf.tracepoint_fds if tp.startswith(b"syscalls:")]
        assert b"sched:sched_process_exec" in bpf.tracepoint_fds      # lifecycle stays
        collector.program.set_result_hooks(True)
        assert {tp for tp in bpf.tracepoint_fds if tp.startswith(b"syscalls:")} == exits
