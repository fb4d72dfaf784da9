"""A dataset's meta.json: what it is, where it was recorded, and how complete it is."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

from sysgram import __version__
from sysgram.datasets.format import FORMAT_NAME, FORMAT_VERSION, LOG_FILE, META_FILE
from sysgram.errors import UserError

STATUS_RECORDING = "recording"  # the writer is running, or died without closing
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"  # the writer stopped on an error (e.g. a full disk)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def initial_meta(arch: str, source: str, target: dict | None, extra: dict | None) -> dict:
    """meta.json as written when a recording starts."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": now_iso(),
        "host": socket.gethostname(),
        "kernel": os.uname().release,
        "arch": arch,
        "syscall_table": {"arch": arch, "source": "libseccomp"},
        "sysgram_version": __version__,
        "source": source,
        "target": target,
        "status": STATUS_RECORDING,
        "extra": extra or {},
    }


def is_dataset_dir(path: Path) -> bool:
    """Whether `path` looks like a sysgram dataset (it may still be damaged)."""
    return (path / META_FILE).is_file() or (path / LOG_FILE).is_file()


def read_meta(path: Path) -> dict:
    """The validated meta.json of the dataset at `path`; UserError saying what is wrong."""
    if not path.exists():
        raise UserError(f"there is no dataset at {path}; give the directory `sysgram record --out` "
                        "or `sysgram import` wrote.")
    if not path.is_dir():
        raise UserError(f"{path} is a file, not a dataset directory; give the directory "
                        "`sysgram record --out` wrote.")
    meta_path = path / META_FILE
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} is not a sysgram dataset (it has no {META_FILE}); give the "
                        "directory `sysgram record --out` wrote.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {meta_path} ({exc}); check the file and its "
                        "permissions.") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{meta_path} is not valid JSON ({exc}); the dataset's metadata is "
                        "damaged, restore it from a copy.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise UserError(f"{meta_path} does not describe a sysgram dataset; give the directory "
                        "`sysgram record --out` wrote.")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise UserError(f"{path} uses dataset format version {version!r}, this sysgram reads "
                        f"up to {FORMAT_VERSION}; upgrade sysgram.")
    if not isinstance(meta.get("arch"), str):
        raise UserError(f"{meta_path} names no syscall architecture; the metadata is damaged, "
                        "restore it from a copy.")
    return meta
