"""`sysgram profiles allow NAME --file PATTERN | --peer ADDR[:PORT] | --exec PATH`.

Accepts a known-good item without retraining: the pattern joins the profile's touched
sets' allow-list, kept in the same envelope (rewritten and re-hashed).
"""

from __future__ import annotations

from typing import Annotated

import typer

from sysgram.commands.common import StoreOption
from sysgram.errors import UserError
from sysgram.sanitize import printable


def profiles_allow(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    files: Annotated[list[str] | None, typer.Option(
        "--file", help="A path or shell pattern (fnmatch, e.g. '/srv/data/*.csv').")] = None,
    peers: Annotated[list[str] | None, typer.Option(
        "--peer", help="ADDR, ADDR:PORT, [ADDR6] or [ADDR6]:PORT.")] = None,
    execs: Annotated[list[str] | None, typer.Option(
        "--exec", help="A program path or shell pattern.")] = None,
    store: StoreOption = None,
) -> None:
    """Accept files, peers or programs for a profile without retraining it."""
    from sysgram.models.store import ProfileStore
    from sysgram.models.touched import allow, touched_meta

    if not (files or peers or execs):
        raise UserError("give what to allow: --file PATTERN, --peer ADDR[:PORT] or --exec PATH.")
    profile_store = ProfileStore(store)
    loaded = profile_store.load(name)
    if loaded.touched is None:
        raise UserError(f"the profile '{name}' has no touched sets to extend; retrain it with "
                        f"`sysgram train --proc {name}` (this sysgram records them).")
    sets = allow(loaded.touched, files=files or (), peers=peers or (), execs=execs or ())
    path = profile_store.replace_touched(name, sets, touched_meta(sets))
    added = [*(files or ()), *(peers or ()), *(execs or ())]
    print(f"allowed    {', '.join(printable(a) for a in added)} in {printable(path)}")


def register(group: typer.Typer) -> None:
    group.command("allow")(profiles_allow)
