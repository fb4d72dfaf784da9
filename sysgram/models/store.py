"""The profile store: one envelope per binary name in a directory only root/owner can write.

Location: `--store`, else $SYSGRAM_STORE, else /var/lib/sysgram/profiles. A profile of
process name NAME is `<store>/NAME.profile`. A symlink inside the store may point to
another file of the store; one that leads out of it is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sysgram.datasets.files import make_parent_dirs
from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.models.envelope import (
    ProfileFileError,
    check_directory_trust,
    read_envelope,
    read_header,
    write_envelope,
)

if TYPE_CHECKING:
    from sysgram.models.training import TrainedProfile

DEFAULT_STORE = Path("/var/lib/sysgram/profiles")
STORE_ENV = "SYSGRAM_STORE"
SUFFIX = ".profile"
# Header fields write_envelope fills in itself.
_ENVELOPE_FIELDS = ("format", "format_version", "versions", "payload_sha256", "payload_bytes")
_NAME = re.compile(r"^[A-Za-z0-9_+@:=,%-][A-Za-z0-9._+@:=,% ~-]{0,63}$")


@dataclass
class LoadedProfile:
    profile: object  # a fitted sysgram.models.profile.Profile
    header: dict
    traces: Sequences | None  # the training streams, kept for `train --append`
    warnings: list[str] = field(default_factory=list)
    # The whole-thread profile (the detector `eval` measures), when training had enough
    # threads for one; None otherwise.
    thread_profile: object | None = None
    # What the binary touches (sysgram.models.touched.TouchedSets), when the training
    # recorded it; None for profiles trained without.
    touched: object | None = None

    @property
    def binary_path(self) -> str | None:
        """The trained binary's file, when the header (data from disk) names one."""
        binary = self.header.get("binary")
        path = binary.get("path") if isinstance(binary, dict) else None
        return path if isinstance(path, str) and path else None


def store_path(option: str | Path | None = None) -> Path:
    """The store directory: the option, else $SYSGRAM_STORE, else the default."""
    return Path(option or os.environ.get(STORE_ENV) or DEFAULT_STORE)


class ProfileStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = store_path(root)

    def path(self, name: str) -> Path:
        if not _NAME.match(name or ""):
            raise UserError(
                f"'{name}' cannot name a profile; use the process name as `ps -o comm` "
                "shows it (letters, digits and ._-+@:, no slashes)."
            )
        return self.root / f"{name}{SUFFIX}"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}"))

    def save(self, trained: TrainedProfile) -> Path:
        """Write a training result (profile, thread profile, training streams, touched
        sets) atomically."""
        path = self.path(trained.name)
        self._ensure_root()
        payload = {"profile": trained.profile, "traces": _pack(trained.streams),
                   "thread_profile": trained.thread_profile, "touched": trained.touched}
        write_envelope(path, {"name": trained.name, **trained.meta()}, payload)
        return path

    def replace_touched(self, name: str, touched, touched_header: dict) -> Path:
        """Rewrite a profile with new touched sets (e.g. an allow-list), re-hashed."""
        path = self._inside(self._must_exist(name))
        envelope = read_envelope(path)
        payload = envelope.payload
        if not isinstance(payload, dict) or "profile" not in payload:
            raise ProfileFileError(f"{self.path(name)} holds no profile; retrain it with "
                                   f"`sysgram train --proc {name}`.")
        meta = {k: v for k, v in envelope.header.items() if k not in _ENVELOPE_FIELDS}
        write_envelope(path, {**meta, "touched": touched_header}, {**payload, "touched": touched})
        return path

    def _ensure_root(self) -> None:
        try:
            make_parent_dirs(self.root)
            self.root.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UserError(
                f"cannot create the profile store {self.root} ({exc.strerror}); run as root "
                "or choose another directory with --store."
            ) from None
        # Refuse now rather than save a profile that `load` will refuse: a store others
        # can change lets them plant a pickle that root would then run.
        check_directory_trust(self.root)

    def load(self, name: str) -> LoadedProfile:
        envelope = read_envelope(self._inside(self._must_exist(name)))
        payload = envelope.payload
        if not isinstance(payload, dict) or "profile" not in payload:
            raise ProfileFileError(f"{self.path(name)} holds no profile; retrain it with "
                                   f"`sysgram train --proc {name}`.")
        _check_syscall_table(name, envelope.header)
        warnings = list(envelope.warnings)
        changed = binary_changed(envelope.header.get("binary") or {})
        if changed:
            warnings.append(changed)
        return LoadedProfile(payload["profile"], envelope.header, _unpack(payload.get("traces")),
                             warnings, payload.get("thread_profile"), payload.get("touched"))

    def header(self, name: str) -> dict:
        return read_header(self._inside(self._must_exist(name)))

    def remove(self, name: str) -> Path:
        path = self._must_exist(name)
        path.unlink()
        return path

    def _must_exist(self, name: str) -> Path:
        path = self.path(name)
        if not path.exists() and not path.is_symlink():
            known = ", ".join(self.names()) or "none"
            raise UserError(
                f"there is no profile for '{name}' in {self.root} (profiles there: {known}); "
                f"train one with `sysgram train --proc {name}`."
            )
        return path

    def _inside(self, path: Path) -> Path:
        """The file a store path names, refusing symlinks that lead out of the store."""
        if not path.is_symlink():
            return path
        real, root = path.resolve(), self.root.resolve()
        if not real.is_relative_to(root) or real.parent != root:
            raise ProfileFileError(
                f"refusing {path}: it is a symlink to {real}, outside the profile store "
                f"{root}; replace it with the profile file itself."
            )
        return real


def _pack(traces: Sequences | None) -> dict | None:
    if traces is None:
        return None
    return {"values": np.asarray(traces.values, dtype=np.uint16), "offsets": traces.offsets}


def _unpack(packed: dict | None) -> Sequences | None:
    if not packed:
        return None
    return Sequences(np.asarray(packed["values"]), np.asarray(packed["offsets"], dtype=np.int64))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def binary_changed(binary: dict) -> str | None:
    """A warning when the trained binary's file is gone or its sha256 changed, else None."""
    if not isinstance(binary, dict):
        return None
    path, trained = binary.get("path"), binary.get("sha256")
    # The header is data from disk: anything but two strings is no identity to check.
    if not (isinstance(path, str) and path and isinstance(trained, str) and trained):
        return None
    try:
        now = file_sha256(path)
    except OSError:
        return f"the binary {path} this profile was trained on is gone; retrain if it moved."
    if now != trained:
        return (
            f"the binary {path} changed since this profile was trained (sha256 {trained[:12]}… "
            f"is now {now[:12]}…); retrain with `sysgram train --proc {binary.get('name') or ''}`."
        )
    return None


def syscall_table_digest(arch: str) -> str:
    """sha256 of the arch's number -> name table, so a profile knows which table it used."""
    from sysgram.syscalls import table

    text = "\n".join(f"{nr} {name}" for nr, name in table(arch).items())
    return hashlib.sha256(text.encode()).hexdigest()


def _check_syscall_table(name: str, header: dict) -> None:
    """Refuse a profile whose syscall numbers would be read with another table than the
    one it was trained with (the names behind the numbers changed). A header that records
    no table (not one `train` writes) leaves the profile's own arch to say it."""
    recorded = header.get("syscall_table")
    arch = recorded.get("arch") if isinstance(recorded, dict) else None
    digest = recorded.get("sha256") if isinstance(recorded, dict) else None
    if not isinstance(arch, str) or not isinstance(digest, str):
        return
    if digest != syscall_table_digest(arch):
        raise ProfileFileError(
            f"the profile '{name}' was trained with another {arch} syscall table than this "
            f"sysgram has (its numbers would name other calls); retrain it with "
            f"`sysgram train --proc {name}`.")


def profile_meta(profile, *, binary: dict | None = None, sources: list | None = None,
                 thread_profile=None) -> dict:
    """The header fields describing a fitted profile (readable without unpickling)."""
    return {
        "thread_profile": None if thread_profile is None else thread_profile_meta(thread_profile),
        "binary": binary or {},
        "features": {
            "window": profile.window_,
            "stride": profile.stride_,
            "orders": list(profile.orders_),
            "detector": profile.detector_name_,
            "detector_params": profile.detector_.get_params(),
            "rollup": profile.rollup_name_,
        },
        "syscall_table": {"arch": profile.arch_, "sha256": syscall_table_digest(profile.arch_)},
        "training": {**profile.training_summary_, "sources": sources or []},
        "threshold": profile.threshold_,
        "thread_threshold": profile.thread_threshold_,
        "calibration": profile.calibration_,
        "novelty_curve": [int(v) for v in profile.novelty_curve_],
    }


def thread_profile_meta(profile) -> dict:
    """Header fields of a whole-thread profile: its detector, threshold and training."""
    s = profile.training_summary_
    return {
        "detector": profile.detector_name_,
        "threads": s["threads"],
        "fit_threads": s["fit_windows"],
        "calibration_threads": s["calibration_windows"],
        "threshold": profile.thread_threshold_,
        "calibration": profile.thread_calibration_,
    }
