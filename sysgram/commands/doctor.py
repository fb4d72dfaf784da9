"""`sysgram doctor`: can this machine trace? One line per check, with the fix when one fails."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from sysgram.errors import UserError

OK, NOTE, FAIL = "ok", "note", "FAIL"
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
TRACEPOINTS = ("raw_syscalls/sys_enter", "sched/sched_process_fork", "sched/sched_process_exec",
               "sched/sched_process_exit", "sched/sched_switch")
TRIVIAL_PROGRAM = "RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }"


@dataclass(frozen=True)
class Check:
    status: str               # OK, NOTE (fine, worth knowing) or FAIL (tracing cannot work)
    name: str
    message: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name:<15} {self.message}"


def check_privileges() -> Check:
    from sysgram.bpf.privileges import PRIVILEGE_FIX, can_trace

    if os.geteuid() == 0:
        return Check(OK, "privileges", "running as root")
    if can_trace():
        return Check(OK, "privileges", "CAP_BPF and CAP_PERFMON are effective")
    return Check(FAIL, "privileges", f"not root and no CAP_BPF + CAP_PERFMON; {PRIVILEGE_FIX}.")


def check_bpf_syscall() -> Check:
    """Create (and close) a one-entry array map: the smallest real use of bpf()."""
    from sysgram.syscalls import table

    nr = table().number("bpf")
    attr = (ctypes.c_uint32 * 30)(2, 4, 4, 1)   # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, 0, ctypes.byref(attr), ctypes.sizeof(attr))   # BPF_MAP_CREATE
    if fd >= 0:
        os.close(fd)
        return Check(OK, "bpf()", "the bpf() system call works")
    err = ctypes.get_errno()
    if err == 38:   # ENOSYS
        return Check(FAIL, "bpf()", "this kernel has no bpf() system call; boot a kernel built "
                     "with CONFIG_BPF_SYSCALL=y.")
    return Check(FAIL, "bpf()", f"bpf() refused a map ({os.strerror(err)}); run as root and "
                 "check /proc/sys/kernel/unprivileged_bpf_disabled and any seccomp/LSM policy.")


def tracefs_dir() -> Path | None:
    for path in TRACEFS_DIRS:
        try:
            if (path / "events").is_dir():
                return path
        except PermissionError:   # mounted, but readable by root only
            return path
    return None


def check_tracefs() -> Check:
    root = tracefs_dir()
    if root is None:
        return Check(FAIL, "tracefs", "tracefs is not mounted; run "
                     "'mount -t tracefs nodev /sys/kernel/tracing' (make install does it).")
    try:
        missing = [tp for tp in TRACEPOINTS if not (root / "events" / tp / "format").exists()]
    except PermissionError:
        return Check(FAIL, "tracepoints", f"{root} is not readable by this user; run as root.")
    if missing:
        return Check(FAIL, "tracepoints", f"missing under {root}/events: {', '.join(missing)}; "
                     "boot a kernel with CONFIG_FTRACE_SYSCALLS=y and sched tracepoints.")
    return Check(OK, "tracepoints", f"{root} has raw_syscalls and sched tracepoints")


def check_btf() -> Check:
    if Path("/sys/kernel/btf/vmlinux").exists():
        return Check(OK, "BTF", "/sys/kernel/btf/vmlinux is present")
    return Check(NOTE, "BTF", "no /sys/kernel/btf/vmlinux; fine for sysgram, whose program "
                 "reads only tracepoint fields.")


def check_bcc() -> Check:
    try:
        import bcc
    except ImportError:
        return Check(FAIL, "bcc", f"bcc is not importable from {sys.executable}; run "
                     "'make install' and use .venv/bin/sysgram (its python sees python3-bpfcc).")
    version = getattr(bcc, "__version__", "?")
    return Check(OK, "bcc", f"bcc {version} imports in {sys.executable}")


def check_headers() -> Check:
    release = platform.release()
    build = Path("/lib/modules") / release / "build"
    if not (build / "include").is_dir() and not (build.parent / "source" / "include").is_dir():
        return Check(FAIL, "headers", f"no kernel headers at {build}; run 'make install' "
                     "(it installs this kernel's headers, or links the generic ones).")
    target = build.resolve()
    if release in target.name:
        return Check(OK, "headers", f"headers for this kernel ({release}) at {target}")
    return Check(NOTE, "headers", f"no headers are packaged for kernel {release}; the "
                 f"distribution's generic ones ({target.name}) are linked at {build}. That is "
                 "fine: bcc needs headers only to compile, and sysgram reads no kernel "
                 "structures (tracepoint formats come from tracefs).")


def check_trivial_program() -> Check:
    try:
        from bcc import BPF

        BPF(text=TRIVIAL_PROGRAM).cleanup()
    except Exception as exc:  # bcc raises bare Exceptions
        return Check(FAIL, "compile+load", f"a trivial program failed ({str(exc)[:160]}); "
                     "run 'make install' to install headers, then retry.")
    return Check(OK, "compile+load", "a trivial raw-tracepoint program compiles and attaches")


def check_sysgram_program() -> Check:
    from sysgram.bpf.loader import compile_program
    from sysgram.errors import UserError

    try:
        compile_program().cleanup()
    except UserError as err:
        return Check(FAIL, "sysgram program", err.message)
    return Check(OK, "sysgram program", "sysgram's kernel program compiles, loads and attaches")


def check_kprobes() -> Check:
    root = tracefs_dir()
    try:
        if root is not None and (root / "kprobe_events").exists():
            return Check(OK, "kprobes", "available (sysgram does not need them)")
    except PermissionError:
        pass
    return Check(NOTE, "kprobes", "not available on this kernel; fine: sysgram uses "
                 "tracepoints only.")


def _guarded(check: Callable[[], Check]) -> Check:
    """A check that breaks unexpectedly is a failed line, never a traceback."""
    try:
        return check()
    except Exception as exc:
        name = check.__name__.removeprefix("check_")
        return Check(FAIL, name, f"the check itself failed ({exc}); run as root, or report "
                     "this with the line above.")


def run_checks() -> list[Check]:
    """Every check in order; those that need an earlier one to pass are skipped after a failure."""
    results: list[Check] = []
    basics: list[Callable[[], Check]] = [check_privileges, check_bpf_syscall, check_tracefs,
                                         check_btf, check_bcc, check_headers, check_kprobes]
    for check in basics:
        results.append(_guarded(check))
    if any(r.status == FAIL for r in results):
        results.append(Check(FAIL, "compile+load", "skipped until the failures above are fixed."))
        return results
    results.append(_guarded(check_trivial_program))
    if results[-1].status == OK:
        results.append(_guarded(check_sysgram_program))
    return results


def doctor() -> None:
    """Check that this machine can trace syscalls with sysgram; exit 1 when it cannot."""
    results = run_checks()
    for result in results:
        typer.echo(result.line())
    if any(r.status == FAIL for r in results):
        raise UserError("tracing cannot work here yet; fix the FAIL lines above, then run "
                        "'sysgram doctor' again.", exit_code=1)
    typer.echo("sysgram can trace on this machine.")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
