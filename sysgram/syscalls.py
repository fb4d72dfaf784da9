"""Syscall names and numbers, from libseccomp's maintained tables (never typed in by hand).

Two architectures matter: the host's (x86_64 here) and i386, the table of the ADFA-LD
corpus. Streams are stored as numbers of one arch; `translate` maps numbers between
arches by name so corpora and recordings can be mixed.
"""

from __future__ import annotations

import functools
import platform

import numpy as np

from sysgram.errors import UserError

# Highest syscall number probed when a table is built. x86_64 ends below 470; i386 below
# 470 as well. Numbers above are treated as unknown ("sys_<n>").
_MAX_NR = 1024

# Our arch names -> libseccomp's Arch attribute names.
_SECCOMP_ARCH = {"x86_64": "X86_64", "i386": "X86", "aarch64": "AARCH64"}

UNKNOWN_PREFIX = "sys_"


def host_arch() -> str:
    """The running machine's syscall table name (`x86_64`, `aarch64`, ...)."""
    machine = platform.machine()
    return {"amd64": "x86_64", "i686": "i386", "arm64": "aarch64"}.get(machine, machine)


class SyscallTable:
    """Numbers <-> names for one architecture."""

    def __init__(self, arch: str, names: dict[int, str]) -> None:
        self.arch = arch
        self._names = dict(names)
        self._numbers = {name: nr for nr, name in names.items()}
        size = max(names, default=0) + 1
        self.max_nr = size - 1

    def name(self, nr: int) -> str:
        """The syscall's name, or `sys_<nr>` for a number the table does not know."""
        return self._names.get(int(nr), f"{UNKNOWN_PREFIX}{int(nr)}")

    def number(self, name: str) -> int:
        """The syscall's number; raises UserError for an unknown name."""
        if name in self._numbers:
            return self._numbers[name]
        if name.startswith(UNKNOWN_PREFIX) and name[len(UNKNOWN_PREFIX):].isdigit():
            return int(name[len(UNKNOWN_PREFIX):])
        raise UserError(f"'{name}' is not a syscall on {self.arch}; check the spelling.")

    def names(self, numbers: np.ndarray | list[int]) -> list[str]:
        return [self.name(int(n)) for n in numbers]

    def __contains__(self, nr: int) -> bool:
        return int(nr) in self._names

    def __len__(self) -> int:
        return len(self._names)

    def items(self) -> list[tuple[int, str]]:
        return sorted(self._names.items())


@functools.cache
def table(arch: str | None = None) -> SyscallTable:
    """The syscall table of `arch` (default: the host's), from libseccomp."""
    arch = arch or host_arch()
    try:
        import seccomp  # python3-seccomp, from the distribution
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise UserError(
            "libseccomp's Python bindings are missing; run 'make install' "
            "(it installs python3-seccomp)."
        ) from exc
    if arch not in _SECCOMP_ARCH:
        raise UserError(f"unsupported syscall table '{arch}'; use one of {sorted(_SECCOMP_ARCH)}.")
    sarch = getattr(seccomp.Arch, _SECCOMP_ARCH[arch])
    names: dict[int, str] = {}
    for nr in range(_MAX_NR):
        try:
            name = seccomp.resolve_syscall(sarch, nr)
        except ValueError:
            continue
        names[nr] = name.decode() if isinstance(name, bytes) else str(name)
    return SyscallTable(arch, names)


def translate(ids: np.ndarray, src_arch: str, dst_arch: str) -> np.ndarray:
    """Map syscall numbers of `src_arch` to `dst_arch` by name (vectorised lookup).

    Calls with no counterpart on `dst_arch` (e.g. i386's socketcall) are mapped to
    numbers above the destination table, one per source call, so they stay distinct.
    """
    if src_arch == dst_arch:
        return ids
    lut = translation_lut(src_arch, dst_arch)
    return lut[np.asarray(ids, dtype=np.int64)]


@functools.cache
def translation_lut(src_arch: str, dst_arch: str) -> np.ndarray:
    src, dst = table(src_arch), table(dst_arch)
    lut = np.empty(_MAX_NR, dtype=np.uint16)
    spare = dst.max_nr + 1
    for nr in range(_MAX_NR):
        name = src.name(nr)
        try:
            lut[nr] = dst.number(name)
        except UserError:
            lut[nr] = min(spare + nr, np.iinfo(np.uint16).max)
    return lut
