"""What a reload does: profiles added, removed, replaced in the store; bad ones reported."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sysgram.collector.targets import check_comm
from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import Profile
from sysgram.models.store import ProfileStore
from sysgram.models.training import TrainedProfile
from sysgram.watch.host import HostRouter
from sysgram.watch.hostprofiles import EngineSettings, HostProfiles


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(30), np.random.default_rng(1))
    traces = Sequences.from_list([sample_chain(chain, 1500, rng) for _ in range(10)])
    return Profile(target_far=1e-3).fit(traces), traces


def _save(store: ProfileStore, name: str, trained) -> None:
    profile, traces = trained
    store.save(TrainedProfile(name, profile, None, traces, binary={"name": name}))


class Kernel:
    """Records the target changes a reload asks of the collector."""

    def __init__(self) -> None:
        self.targets: list[str] = []

    def add(self, binary: str) -> None:
        check_comm(binary)
        self.targets.append(binary)

    def remove(self, binary: str) -> None:
        self.targets.remove(binary)


def test_reloads_follow_the_store(tmp_path, trained):
    store = ProfileStore(tmp_path / "profiles")
    _save(store, "nginx", trained)
    _save(store, "postgres", trained)
    _save(store, "cron", trained)
    _save(store, "a-name-longer-than-15", trained)
    profiles = HostProfiles(store, None, EngineSettings(thresholds={"nginx": 123.0}),
                            excluded=frozenset({"cron"}))
    router, kernel = HostRouter(), Kernel()

    changes, _, _ = profiles.apply_changes(router, kernel.add, kernel.remove)
    assert changes.added == ["nginx", "postgres"] and kernel.targets == ["nginx", "postgres"]
    assert "kernel process name" in changes.failed["a-name-longer-than-15"]
    assert router.engines["nginx"].scorer.threshold == 123.0

    nothing, _, _ = profiles.apply_changes(router, kernel.add, kernel.remove)
    assert (nothing.added, nothing.removed, nothing.replaced) == ([], [], [])

    os.unlink(store.path("postgres"))
    first_engine = router.engines["nginx"]
    _save(store, "nginx", trained)                       # retrained: another file
    _save(store, "redis", trained)
    changes, _, _ = profiles.apply_changes(router, kernel.add, kernel.remove)
    assert changes.removed == ["postgres"] and changes.added == ["redis"]
    assert changes.replaced == ["nginx"] and router.engines["nginx"] is not first_engine
    assert kernel.targets == ["nginx", "redis"]          # nginx stayed in the kernel
    assert sorted(router.engines) == ["nginx", "redis"]
    assert router.router_stats.binaries_removed == 1


def test_named_binaries_without_a_profile_are_reported(tmp_path, trained):
    store = ProfileStore(tmp_path / "profiles")
    _save(store, "nginx", trained)
    profiles = HostProfiles(store, ["nginx", "php-fpm"], EngineSettings())
    router, kernel = HostRouter(), Kernel()
    changes, _, _ = profiles.apply_changes(router, kernel.add, kernel.remove)
    assert changes.added == ["nginx"] and "no profile for 'php-fpm'" in changes.failed["php-fpm"]


def test_one_aggregation_period_governs_window_and_touched_alerts(tmp_path, trained):
    from sysgram.watch.hostprofiles import build_engine

    store = ProfileStore(tmp_path)
    _save(store, "srv", trained)
    engine = build_engine(store.load("srv"), "srv", EngineSettings(aggregate_s=7.0))
    assert engine.aggregator.period_s == 7.0 and engine.touched.period_s == 7.0
