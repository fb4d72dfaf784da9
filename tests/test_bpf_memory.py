"""Which mappings the watcher gives back after compiling: LLVM/clang pages never written."""

from __future__ import annotations

from sysgram.bpf.memory import _compiler_code_ranges

SMAPS = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Size:               1024 kB
Rss:                 900 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 r--p 00100000 08:01 123 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Rss:                 100 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r-xp 00000000 08:01 124 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Rss:                 500 kB
Anonymous:             4 kB
7f0000300000-7f0000400000 r-xp 00000000 08:01 125 /usr/lib/llvm-14/lib/libclang-cpp.so.14
Anonymous:             0 kB
7f0000400000-7f0000500000 r-xp 00000000 08:01 126 /usr/lib/x86_64-linux-gnu/libbcc.so.0
Anonymous:             0 kB
7f0000500000-7f0000501000 rw-p 00000000 08:01 126 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
Anonymous:             4 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0 [heap]
Anonymous:          1024 kB
"""


def test_only_unwritten_compiler_code_is_given_back():
    assert _compiler_code_ranges(SMAPS) == [
        (0x7F0000000000, 0x7F0000100000),     # LLVM code
        (0x7F0000100000, 0x7F0000200000),     # LLVM constants
        (0x7F0000300000, 0x7F0000400000),     # clang code (the other mapping had a write)
    ]
