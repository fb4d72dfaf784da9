"""The binaries one collector watches: each target's comm, optional executable, and id.

The kernel knows a target only by its id (the `targets` map: comm -> id, and `owners`:
pid -> id). Ids are never reused while the collector runs, so a lifecycle record still in
flight for a removed target can never be taken for a newer one; names stay known after a
removal for the same reason (records and items of that target are dropped, not renamed).
"""

from __future__ import annotations

from collections.abc import Iterable

from sysgram.collector import abi
from sysgram.collector.items import TargetSpec
from sysgram.errors import UserError


def check_comm(comm: str) -> None:
    """A target name must be what the kernel can hold as a process name."""
    if not comm or len(comm.encode("utf-8", "surrogateescape")) > abi.COMM_LEN - 1:
        raise UserError(f"'{comm}' is not a kernel process name (1-15 bytes).")


class TargetSet:
    """Active targets by id and by comm; ids start at 1 (0 is "no target known")."""

    def __init__(self, specs: Iterable[TargetSpec] = ()) -> None:
        self._next_id = 1
        self._active: dict[int, TargetSpec] = {}      # id -> spec, watched now
        self._by_comm: dict[str, int] = {}            # comm -> id, watched now
        self._names: dict[int, str] = {}              # every id ever given -> comm
        for spec in specs:
            self.add(spec)

    def add(self, spec: TargetSpec) -> int:
        """Give a new target an id (a comm already watched keeps its id and spec)."""
        check_comm(spec.comm)
        if spec.comm in self._by_comm:
            return self._by_comm[spec.comm]
        if len(self._active) >= abi.MAX_TARGETS:
            raise UserError(f"at most {abi.MAX_TARGETS} binaries can be watched at once; "
                            f"watch fewer (the store has more profiles than that).")
        target_id, self._next_id = self._next_id, self._next_id + 1
        self._active[target_id] = spec
        self._by_comm[spec.comm] = target_id
        self._names[target_id] = spec.comm
        return target_id

    def remove(self, comm: str) -> int | None:
        """Stop watching a comm; returns its id (None if it was not watched)."""
        target_id = self._by_comm.pop(comm, None)
        if target_id is not None:
            del self._active[target_id]
        return target_id

    def specs(self) -> list[TargetSpec]:
        return list(self._active.values())

    def ids(self) -> list[int]:
        return list(self._active)

    def id_of(self, comm: str) -> int | None:
        return self._by_comm.get(comm)

    def spec_of(self, target_id: int) -> TargetSpec | None:
        return self._active.get(target_id)

    def name_of(self, target_id: int) -> str | None:
        """The comm an id was given to (also after its removal); None for 0 / unknown."""
        return self._names.get(target_id)

    def is_active(self, target_id: int) -> bool:
        return target_id in self._active

    def __len__(self) -> int:
        return len(self._active)
