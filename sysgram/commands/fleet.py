"""`sysgram train --from <Parquet>` (fleet training) and `sysgram profiles export/import`.

The work is in sysgram.fleet and sysgram.models.store; this module parses, saves through
the store, and prints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from sysgram.commands.common import warn
from sysgram.errors import UserError
from sysgram.sanitize import printable

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str | None) -> int | None:
    """'2GiB', '512M', '1e9' style sizes -> bytes (None stays None)."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if not match:
        raise UserError(f"cannot read the size '{printable(text)}'; give e.g. 2GiB or 512MiB.")
    return int(float(match[1]) * 1024 ** "_kmgt".index((match[2] or "_").lower()))


def train_fleet_command(sources: list[str], proc: str | None, *, cluster: str | None,
                        workers: int | None, worker_memory: str | None, params: dict,
                        store: str | None) -> None:
    """Pooled profiles from Parquet recordings, one per binary sha256, saved in the store."""
    from sysgram.fleet.training import FleetOptions, train_fleet
    from sysgram.models.store import ProfileStore

    options = FleetOptions(params=params, cluster=cluster, workers=workers,
                           worker_memory=parse_size(worker_memory), binary_name=proc)
    result = train_fleet(sources, options)
    for path, why in result.failures:
        warn(f"skipped the unreadable Parquet file {path} ({why}); "
             "trained on the rest.")
    if not result.binaries:
        raise UserError("no binary could be trained from " + ", ".join(sources)
                        + (f" for '{proc}'" if proc else "") + "; check the recordings.")
    print(f"read       {result.partitions:,} partitions of {result.hosts:,} hosts "
          f"({result.bytes / 2**20:,.1f} MiB) {result.runner}; each fit holds at most "
          f"{result.fit_calls:,} calls")
    profile_store = ProfileStore(store)
    names = _profile_names(result.binaries)
    for pooled in result.binaries:
        print(_save_line(profile_store, names[id(pooled)], pooled, sources))
    if result.lost:
        warn(f"{result.lost:,} events were lost in the recordings; streams are cut there.")
    if result.attack_rows:
        warn(f"left out {result.attack_rows:,} rows labelled as attacks.")


def _profile_names(binaries: list) -> dict[int, str]:
    """The binary name, or name@sha256-prefix when several builds share a name."""
    count: dict[str, int] = {}
    for b in binaries:
        count[b.binary_name] = count.get(b.binary_name, 0) + 1
    return {id(b): b.binary_name if count[b.binary_name] == 1
            else f"{b.binary_name}@{(b.sha256 or 'unknown')[:12]}" for b in binaries}


def _save_line(profile_store, name: str, pooled, sources: list[str]) -> str:
    from sysgram.models.training import pooled_result

    label = f"{printable(name):16}"
    if pooled.profile is None:
        return f"not fitted {label} {printable(pooled.error)}"
    source = {"kind": "fleet", "urls": sources, "hosts": pooled.hosts,
              "host_names": pooled.host_names[:100], "syscalls": pooled.calls,
              "sampled_syscalls": pooled.sampled_calls, "streams": pooled.pieces}
    binary = {"name": pooled.comm, "path": pooled.exe, "sha256": pooled.sha256}
    trained = pooled_result(name, pooled.profile, sources=[source], binary=binary,
                            fleet={"hosts": pooled.hosts,
                                   "vocabulary": "pooled (host counts per n-gram)",
                                   "touched": ("pooled (host counts per item)"
                                               if pooled.touched is not None else "none")},
                            touched=pooled.touched)
    for message in trained.warnings:
        warn(f"{name}: {message}")
    path = profile_store.save(trained)
    sampled = ("all" if pooled.sampled_calls >= pooled.calls
               else f"a {100 * pooled.sampled_calls / max(pooled.calls, 1):.1f} % sample")
    return (f"pooled     {label} {pooled.hosts:,} hosts, {pooled.calls:,} calls ({sampled} "
            f"fitted in {pooled.fit_seconds:.1f}s), {pooled.profile.vocabulary_.size():,} "
            f"n-grams -> {path}")


# -- sysgram profiles export / import ------------------------------------------------------
def profiles_export(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    file: Annotated[Path, typer.Argument(help="The file to write (must not exist).")],
    store: Annotated[str | None, typer.Option("--store", help="Profile store directory.")] = None,
) -> None:
    """Copy a profile out of the store, checked, to install it on other hosts."""
    from sysgram.models.transfer import export_profile

    header = export_profile(name, file, store)
    print(f"exported   {printable(name)} (payload sha256 {header['payload_sha256'][:16]}) "
          f"to {printable(str(file))}")


def profiles_import(
    file: Annotated[Path, typer.Argument(help="A profile file made by `profiles export`.")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Store it under this name (default: the name it was saved with).")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Profile store directory.")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace a profile of that name already in the store.")] = False,
) -> None:
    """Install a profile file in the store, after the same checks loading does."""
    from sysgram.models.transfer import import_profile

    path, warnings = import_profile(file, name, store, replace)
    for message in warnings:
        warn(message)
    print(f"imported   {printable(str(file))} -> {printable(str(path))}")
