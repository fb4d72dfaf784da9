"""Compile and load sysgram.bpf.c with bcc, optionally started early on a background thread.

bcc's clang compile of the program takes ~0.6 s here (benchmarks/bench_compile.py),
about as long as the CLI's own start-up (imports, argument parsing). It runs in C with
the GIL released, so a command that is going to trace starts it first
(`start_compiling`, from `sysgram.entry`) and `compile_program` picks the result up:
`sysgram record` reaches `attached` in about the longer of the two instead of their sum.
No numpy here, so the compile starts at once.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import signal
import threading
from concurrent.futures import Future

from sysgram.bpf import PROGRAM, SOURCE_DIR
from sysgram.bpf.sizes import RingPages, cflags, pid_max
from sysgram.errors import UserError

# `#include "name.bpf.c"`: a part of the program in its own file (see program_text).
_PART_INCLUDE = re.compile(r'^#include "([\w.-]+\.bpf\.c)".*$', re.MULTILINE)

# (flags, future BPF object) of a compile started by `start_compiling`, until taken.
_early: tuple[list[str], Future] | None = None


def program_flags(pid_limit: int | None = None, rings: RingPages | None = None) -> list[str]:
    return [f"-I{SOURCE_DIR}", "-w", *cflags(pid_limit or pid_max(), rings)]


def start_compiling(pid_limit: int | None = None, rings: RingPages | None = None) -> None:
    """Compile and load the program on a daemon thread; `compile_program` takes the result.

    Loading attaches the probes, which is harmless before the collector configures the
    program: with an empty bitmap and no target name it tracks nothing.
    """
    global _early
    flags = program_flags(pid_limit, rings)
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(_compile(flags))
        except BaseException as exc:   # handed to whoever takes the result
            future.set_exception(exc)

    threading.Thread(target=run, name="sysgram-compile", daemon=True).start()
    _early = (flags, future)
    atexit.unregister(_discard_untaken)        # once, however many compiles started
    atexit.register(_discard_untaken)


def _discard_untaken() -> None:
    """At exit, wait for a compile nobody took and detach what it loaded.

    A command that stops early (a bad argument, Ctrl-C) would otherwise exit while clang
    is still running on the daemon thread, and LLVM's static destructors running under
    it crash the interpreter (exit status -11 instead of the command's own).
    """
    early = _take_early()
    if early is None:
        return
    # A Ctrl-C now would cut the wait short and bring the crash back; the wait is at
    # most one compile (under a second here).
    with contextlib.suppress(ValueError):      # not the main thread: no handler to set
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _discard(early[1])


def compile_program(pid_limit: int | None = None, rings: RingPages | None = None):
    """The loaded program (its probes attach as bcc loads them), compiled early or now."""
    flags = program_flags(pid_limit, rings)
    early = _take_early()
    if early is not None:
        early_flags, future = early
        if early_flags == flags:
            return future.result()
        _discard(future)           # sized differently: detach it, compile what was asked
    return _compile(flags)


def _take_early() -> tuple[list[str], Future] | None:
    global _early
    early, _early = _early, None
    return early


def _discard(future: Future) -> None:
    with contextlib.suppress(BaseException):   # a failed early compile holds nothing
        future.result().cleanup()


def _compile(flags: list[str]):
    try:
        from bcc import BPF
    except ImportError as exc:
        raise UserError(
            "bcc is not importable from this Python; run sysgram from .venv/bin/sysgram "
            "after 'make install' (it installs python3-bpfcc)."
        ) from exc

    class _DetachOnFailureBPF(BPF):
        # bcc attaches probes one by one while it loads them; if a later one fails, the
        # half-built object would keep the earlier ones attached until the process exits.
        def _trace_autoload(self) -> None:
            try:
                super()._trace_autoload()
            except BaseException:
                self.cleanup()
                raise

    try:
        return _DetachOnFailureBPF(text=program_text(PROGRAM).encode(), cflags=flags)
    except Exception as exc:  # bcc raises bare Exceptions for compile/load/attach failures
        raise UserError(
            f"the kernel program could not be compiled or loaded ({str(exc).strip()[:200]}); "
            "run 'sysgram doctor' to see what is missing."
        ) from exc


def program_text(path) -> str:
    """The program's source with its `#include "*.bpf.c"` parts written in place.

    bcc rewrites map calls (`ring.ringbuf_reserve(...)`) and generates tracepoint
    structs only in the main file it is given, so parts kept in their own files (for
    separate ownership) must reach it as one text. Parts are read from the package's
    source directory, wherever the main file is.
    """
    text = path.read_text()
    return _PART_INCLUDE.sub(lambda m: (SOURCE_DIR / m.group(1)).read_text(), text)
