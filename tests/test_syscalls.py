"""The syscall tables come from libseccomp and map between arches by name."""

import numpy as np
import pytest

from sysgram import syscalls
from sysgram.errors import UserError


def test_x86_64_table_knows_well_known_numbers():
    t = syscalls.table("x86_64")
    assert (t.name(0), t.name(59), t.name(110)) == ("read", "execve", "getppid")
    assert t.number("clone") == 56


def test_i386_table_is_a_different_table():
    t = syscalls.table("i386")
    assert (t.name(3), t.name(11), t.name(102)) == ("read", "execve", "socketcall")


def test_unknown_numbers_and_names():
    t = syscalls.table("x86_64")
    assert t.name(1000) == "sys_1000"
    assert t.number("sys_1000") == 1000
    with pytest.raises(UserError, match="not a syscall"):
        t.number("no_such_call")


def test_translate_maps_by_name_and_keeps_unmatched_distinct():
    out = syscalls.translate(np.array([3, 11, 102, 102]), "i386", "x86_64")
    assert list(out[:2]) == [0, 59]
    # socketcall has no x86_64 counterpart: mapped above the table, consistently.
    assert out[2] == out[3] > syscalls.table("x86_64").max_nr


def test_unsupported_arch_is_a_user_error():
    with pytest.raises(UserError, match="unsupported syscall table"):
        syscalls.table("pdp11")
