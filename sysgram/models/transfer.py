"""Profiles to hosts: copy a checked envelope out of a store, and into another one.

The file moves byte for byte (same header, same payload hash): a pooled profile trained
centrally is the same profile on every host. Both ends check it as loading does: export
reads it through the store's trust checks, import refuses a file that users other than
root or its owner could have changed (or in such a directory), a wrong version or a
payload whose sha256 does not match, and loads the installed copy once before keeping it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sysgram.errors import UserError
from sysgram.models.envelope import read_verified_bytes, write_bytes_atomic
from sysgram.models.store import ProfileStore


def export_profile(name: str, file: Path, store: str | None = None) -> dict:
    """Write the store's profile `name` to `file` (new, mode 0600); returns its header."""
    profile_store = ProfileStore(store)
    loaded = profile_store.load(name)           # every check loading does, payload included
    header, raw = read_verified_bytes(profile_store.path(name))
    if header.get("payload_sha256") != loaded.header.get("payload_sha256"):
        raise UserError(f"the profile '{name}' changed while it was exported; export again.")
    file = Path(file)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UserError(f"{file} exists; give a new file name for the export.") from None
    except OSError as exc:
        raise UserError(f"cannot create {file} ({exc.strerror}); check the directory.") from None
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    return header


def import_profile(file: Path, name: str | None = None, store: str | None = None,
                   replace: bool = False) -> tuple[Path, list[str]]:
    """Install `file` in the store (as `name`, else its own); returns (path, warnings)."""
    header, raw = read_verified_bytes(Path(file))
    name = name or str(header.get("name") or "")
    profile_store = ProfileStore(store)
    path = profile_store.path(name)             # a bad name is refused here
    if profile_store.exists(name) and not replace:
        raise UserError(f"the store already has a profile '{name}'; give --replace to "
                        "replace it, or --name to keep both.")
    profile_store._ensure_root()                # made, and trusted, as `save` makes it
    previous = path.read_bytes() if path.exists() and not path.is_symlink() else None
    write_bytes_atomic(path, raw)
    try:
        loaded = profile_store.load(name)       # the payload must be a profile we can load
    except BaseException:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            write_bytes_atomic(path, previous)
        raise
    return path, loaded.warnings
