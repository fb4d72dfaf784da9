"""Give back the memory compiling the kernel program left resident in a long-lived watcher.

bcc compiles with clang/LLVM inside the process. Once the program is loaded, LLVM's code
pages (≈ 70 MiB resident here) and its freed heap (≈ 20 MiB) stay counted in the
watcher's RSS for its whole life although nothing runs them again. This drops them:
- the read-only mappings (code and constants) of libLLVM / libclang, only where no page
  of the mapping was ever written (`Anonymous: 0 kB` in smaps: this leaves out RELRO
  pages the dynamic loader wrote), with MADV_DONTNEED: for such file pages it only
  unmaps them; the kernel reads them back from the file (page cache) if a later compile
  touches them;
- glibc's free heap, with malloc_trim(0).
Measured by `benchmarks/bench_daemon.py --only daemon` (RSS of a watcher).
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

_MADV_DONTNEED = 4
_COMPILER_LIBS = re.compile(r"/lib(LLVM|clang)[^/]*\.so")
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


def _compiler_code_ranges(smaps: str) -> list[tuple[int, int]]:
    """(start, end) of LLVM/clang read-only mappings that hold no private (written) page."""
    ranges: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for line in smaps.splitlines():
        mapping = _MAPPING.match(line)
        if mapping:
            start, end, perms, path = mapping.groups()
            wanted = perms in ("r-xp", "r--p") and _COMPILER_LIBS.search(path)
            current = (int(start, 16), int(end, 16)) if wanted else None
        elif current is not None and line.startswith("Anonymous:"):
            if int(line.split()[1]) == 0:
                ranges.append(current)
            current = None
    return ranges


def release_compiler_memory() -> int:
    """Drop LLVM's file pages and trim the heap; returns the bytes of mappings dropped."""
    try:
        smaps = Path("/proc/self/smaps").read_text()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:         # no /proc or no libc to ask: nothing is lost but memory
        return 0
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    dropped = 0
    for start, end in _compiler_code_ranges(smaps):
        if libc.madvise(start, end - start, _MADV_DONTNEED) == 0:
            dropped += end - start
    malloc_trim = getattr(libc, "malloc_trim", None)
    if malloc_trim is not None:         # glibc only
        malloc_trim(0)
    return dropped
