"""Which profiles a host watcher serves, and what changed in the store since it looked.

`--all` follows the store: a profile saved there is watched after the next reload, a
profile removed is dropped, a profile replaced (another file: mtime, size or inode) gets
a fresh engine. Named binaries (`--proc`) are followed the same way, but only those.
The reload itself (engines in the router, targets in the collector) is `apply_changes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from sysgram.errors import UserError
from sysgram.models.roles import saw_no_thread_start
from sysgram.models.store import ProfileStore
from sysgram.watch.alerts import Alert, Repeat
from sysgram.watch.engine import WatchConfig, WatchEngine
from sysgram.watch.host import HostRouter
from sysgram.watch.scoring import ThresholdScorer
from sysgram.watch.touched import TouchedWatch
from sysgram.watch.verdicts import ThreadVerdicts


@dataclass(frozen=True)
class EngineSettings:
    """What every binary's engine shares (a per-binary threshold overrides the profile's)."""

    warmup_s: float = 2.0
    aggregate_s: float = 5.0
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)


def build_engine(loaded, binary: str, settings: EngineSettings,
                 learner: object | None = None) -> WatchEngine:
    """The WatchEngine for one loaded profile: the one place an engine is put together, for
    one binary (`watch --proc NAME`) as for many (`--all`)."""
    from sysgram.syscalls import host_arch, table

    profile = loaded.profile
    threshold = settings.thresholds.get(binary, settings.threshold)
    scorer = ThresholdScorer(profile, threshold=threshold, learner=learner)
    # Whole-stream verdicts by the thread profile, else by the window profile's own stream
    # model when it calibrated a thread threshold (lm-stream does, out of fold, from
    # fewer threads than a separate thread profile needs).
    verdicts = ThreadVerdicts.of(loaded.thread_profile or loaded.profile)
    roles = loaded.header.get("roles")
    config = WatchConfig(binary=binary, warmup_s=settings.warmup_s,
                         aggregate_s=settings.aggregate_s, binary_path=loaded.binary_path,
                         arch=host_arch(),
                         thread_start_unseen=saw_no_thread_start(roles))
    return WatchEngine(scorer, config, table(profile.arch_), verdicts=verdicts,
                       touched=TouchedWatch(loaded.touched, binary, settings.aggregate_s))


def _identity(path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # binary -> why it is not watched
    warnings: list[str] = field(default_factory=list)


class HostProfiles:
    """The profiles served now; `changes()` compares them with the store."""

    def __init__(self, store: ProfileStore, names: list[str] | None,
                 settings: EngineSettings, excluded: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.names = names              # None: every profile in the store (--all)
        self.excluded = excluded        # left out of --all (named ones are always watched)
        self.settings = settings
        self._served: dict[str, tuple[int, int, int] | None] = {}

    def wanted(self) -> dict[str, tuple[int, int, int] | None]:
        names = ([n for n in self.store.names() if n not in self.excluded]
                 if self.names is None else self.names)
        return {name: _identity(self.store.path(name)) for name in names}

    def load(self, binary: str, changes: Changes) -> WatchEngine | None:
        try:
            loaded = self.store.load(binary)
        except UserError as exc:
            changes.failed[binary] = str(exc)
            return None
        changes.warnings += [f"{binary}: {w}" for w in loaded.warnings]
        return build_engine(loaded, binary, self.settings)

    def apply_changes(self, router: HostRouter, add_target: Callable[[str], None],
                      remove_target: Callable[[str], None],
                      ) -> tuple[Changes, list[Alert], list[Repeat]]:
        """Bring the router (and through the callbacks, the kernel) to the store's state."""
        changes = Changes()
        alerts: list[Alert] = []
        repeats: list[Repeat] = []
        wanted = self.wanted()
        for binary in [b for b in self._served if b not in wanted or wanted[b] is None]:
            remove_target(binary)
            a, r = router.remove(binary)
            alerts, repeats = alerts + a, repeats + r
            del self._served[binary]
            changes.removed.append(binary)
        for binary, identity in wanted.items():
            if identity is None or self._served.get(binary, ()) == identity:
                if identity is None and self.names is not None:
                    changes.failed[binary] = f"no profile for '{binary}' in {self.store.root}"
                continue
            engine = self.load(binary, changes)
            if engine is None:
                continue
            if binary in self._served:   # the same target in the kernel: a new engine only
                a, r = router.replace(binary, engine)
                alerts, repeats = alerts + a, repeats + r
                changes.replaced.append(binary)
            else:
                try:
                    add_target(binary)
                except UserError as exc:     # not a kernel name, or too many binaries
                    changes.failed[binary] = str(exc)
                    continue
                router.add(binary, engine)
                changes.added.append(binary)
            self._served[binary] = identity
        return changes, alerts, repeats
