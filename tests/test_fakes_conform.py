"""Test fakes conform to the Protocols production code declares (no mypy runs in CI, so
this checks the members by name: a member added to a Protocol and missing from its fake
fails here, not as an AttributeError deep in an engine test)."""

from __future__ import annotations

from typing import Protocol

import pytest
from fakes import FakeProfile
from test_watch_engine import FakeThreadProfile
from test_watch_host import FakeEngine

from sysgram.watch.host import RoutedEngine
from sysgram.watch.scoring import WatchedProfile
from sysgram.watch.verdicts import ThreadProfile


def protocol_members(protocol: type) -> set[str]:
    """Every attribute and method a Protocol (and the Protocols it extends) declares."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (Protocol, object) or not getattr(klass, "_is_protocol", False):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {n for n, v in vars(klass).items()
                  if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


@pytest.mark.parametrize(("fake", "protocol"), [
    (FakeProfile, WatchedProfile), (FakeThreadProfile, ThreadProfile),
    (FakeEngine, RoutedEngine),
])
def test_each_fake_has_every_member_its_protocol_declares(fake, protocol):
    members = protocol_members(protocol)
    assert {"threshold_", "novelty"} <= protocol_members(WatchedProfile)  # the walk works
    missing = sorted(m for m in members if not hasattr(fake(), m))
    assert not missing, f"{fake.__name__} lacks {missing} of {protocol.__name__}"
