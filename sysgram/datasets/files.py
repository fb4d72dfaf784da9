"""Private files on disk: owner-only modes, atomic replacement, and a full disk named as such.

Datasets written by root must not be writable by anyone else, so everything here is
created 0600 (files) or 0700 (directories) whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

from sysgram.errors import UserError

FILE_MODE = 0o600
DIR_MODE = 0o700

# Errors that mean "no more room": a full disk, a quota, a file-size limit.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(UserError):
    """The disk (or quota) under a dataset is full; what was written before stays readable."""


class DatasetWriteError(UserError):
    """Writing a dataset failed for a reason other than space (I/O error, permissions)."""


def as_write_error(exc: OSError, path: Path, what: str) -> UserError:
    """Turn an OSError from writing `path` into the one-sentence error the user sees."""
    if exc.errno in _NO_SPACE:
        return DiskFullError(
            f"the disk holding {path} is full ({os.strerror(exc.errno)}) while writing {what}; "
            "free some space and record again (everything written before stays readable)."
        )
    return DatasetWriteError(
        f"cannot write {what} to {path} ({exc.strerror or exc}); check the disk and "
        "the directory's permissions."
    )


def make_private_dir(path: Path) -> None:
    """Create `path` owner-only (missing parents 0755, whatever the umask); tighten an
    existing one to no group/other write."""
    make_parent_dirs(path)
    path.mkdir(mode=DIR_MODE, exist_ok=True)
    mode = path.stat().st_mode & 0o7777
    if mode & 0o022:
        os.chmod(path, mode & ~0o022)


def make_parent_dirs(path: Path) -> None:
    """Create the missing parents of `path` as 0755 whatever the umask: a parent others
    can write would let them swap the directory below it."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue
        os.chmod(directory, 0o755)


def open_private_append(path: Path) -> int:
    """A new file opened for appending, owner-only; fails if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def reserve_space(path: Path, size: int) -> None:
    """Hold `size` bytes of disk in a private file (release_space gives them back)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            write_all(fd, b"\0" * size)  # a filesystem without fallocate
    finally:
        os.close(fd)


def release_space(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte (os.write may write fewer than asked); OSError on failure."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# writev takes at most IOV_MAX (1024 on Linux) buffers per call.
_IOV_MAX = 1024


def write_all_vectored(fd: int, buffers: list) -> None:
    """Write the buffers in order with writev, without joining them; OSError on failure."""
    views = [v for v in (memoryview(b).cast("B") for b in buffers) if len(v)]
    first = 0  # views[:first] are written
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace `path` with `data` as JSON: temp file, fsync, rename, fsync of the directory.

    A reader sees the old file or the new one, never a half-written one. Raises OSError.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        write_all(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
