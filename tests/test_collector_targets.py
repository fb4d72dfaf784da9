"""The target set: ids never reused, bounded, names kept after removal."""

from __future__ import annotations

import pytest

from sysgram.collector import abi
from sysgram.collector.items import TargetSpec
from sysgram.collector.targets import TargetSet
from sysgram.errors import UserError


def test_ids_are_never_reused_and_names_outlive_removal():
    targets = TargetSet([TargetSpec("nginx"), TargetSpec("postgres")])
    assert targets.id_of("nginx") == 1 and targets.id_of("postgres") == 2
    assert targets.add(TargetSpec("nginx")) == 1          # already watched: same id
    assert targets.remove("nginx") == 1 and targets.remove("nginx") is None
    assert targets.add(TargetSpec("nginx")) == 3          # back, under a new id
    assert targets.name_of(1) == "nginx" and not targets.is_active(1)
    assert targets.name_of(0) is None
    assert [s.comm for s in targets.specs()] == ["postgres", "nginx"]


def test_the_set_is_bounded_by_the_kernel_map():
    targets = TargetSet(TargetSpec(f"bin{i}") for i in range(abi.MAX_TARGETS))
    with pytest.raises(UserError, match="at most"):
        targets.add(TargetSpec("onemore"))
    targets.remove("bin0")
    targets.add(TargetSpec("onemore"))


@pytest.mark.parametrize("comm", ["", "a" * 16])
def test_a_name_the_kernel_cannot_hold_is_refused(comm):
    with pytest.raises(UserError, match="kernel process name"):
        TargetSet([TargetSpec(comm)])


def test_request_words_match_the_c_layout():
    word = abi.request_word(abi.REQ_MARK, 4_194_303, 63)
    assert word >> abi.REQ_OP_SHIFT == abi.REQ_MARK
    assert (word >> abi.REQ_TARGET_SHIFT) & abi.REQ_TARGET_MASK == 63
    assert word & abi.REQ_PID_MASK == 4_194_303
