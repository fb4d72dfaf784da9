"""A profile on disk: a JSON header and a pickled payload, versioned and hashed.

Layout: MAGIC, the header's length (8 bytes, big-endian), the header (UTF-8 JSON), then
the payload (a pickle, zlib-compressed; up to format 2 it was joblib's, which cost a
watcher ~7 MiB of imports to read what plain pickle reads as well: issue #14). The
header says everything `profiles list/show` needs without unpickling anything: format
version, library versions, feature configuration, syscall table and arch, the binary's
identity, a training summary, and the sha256 and size of the payload.

Loading a pickle as root runs whatever code it holds, so `read_envelope` refuses, each
with one sentence: a file or directory that users other than root/the owner can write,
a symlink, a wrong magic or format version, a payload whose sha256 does not match, and
one that does not decompress.
The hash catches corruption and truncation; the permission checks are what keep others
from planting a payload (anyone able to write the file could also rewrite the hash).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from sysgram.datasets.files import fsync_dir
from sysgram.errors import UserError

MAGIC = b"SYSGRAM-PROFILE\n"
# 2: the detectors of issue #12 (`lm-stream` default; `iforest`/`ocsvm` rebuilt on
# out-of-fold features): a version-1 payload would unpickle into objects that cannot score.
# 3: no scikit-learn object in a default profile (issue #14): its estimators subclass
# sysgram's own base and its SVMs are kept as numpy decision functions; a version-2 payload
# would import scikit-learn and hold SVMs the scorers no longer read. The payload is a
# zlib-compressed pickle, no longer joblib's.
FORMAT_VERSION = 3
_HEADER_LIMIT = 16 << 20  # a header larger than this is not ours
_COMPRESS_LEVEL = 3


class ProfileFileError(UserError):
    """A profile file that sysgram refuses to load."""


@dataclass
class Envelope:
    header: dict
    payload: object = None
    warnings: list[str] = field(default_factory=list)


def library_versions() -> dict:
    import numpy
    import scipy
    import sklearn

    from sysgram import __version__

    return {
        "sysgram": __version__,
        "sklearn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def write_envelope(path: Path, meta: dict, payload: object) -> dict:
    """Atomically write `payload` with `meta` to `path` (tmp + fsync + rename, mode 0600)."""
    body = zlib.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL),
                         _COMPRESS_LEVEL)
    header = {
        "format": "sysgram-profile",
        "format_version": FORMAT_VERSION,
        "versions": library_versions(),
        "payload_sha256": hashlib.sha256(body).hexdigest(),
        "payload_bytes": len(body),
        **meta,
    }
    head = json.dumps(header, sort_keys=True).encode()
    write_bytes_atomic(path, MAGIC + len(head).to_bytes(8, "big") + head + body)
    return header


def read_header(path: Path) -> dict:
    """The header alone (no unpickling, so no trust needed)."""
    with _open_checked(path, check_trust=False) as f:
        return _read_header(f, path)


def read_envelope(path: Path) -> Envelope:
    """Header and payload, after the trust, version and integrity checks."""
    with _open_checked(path, check_trust=True) as f:
        header = _read_header(f, path)
        body = f.read()
    if len(body) != header.get("payload_bytes") or (
        hashlib.sha256(body).hexdigest() != header.get("payload_sha256")
    ):
        raise ProfileFileError(
            f"{path} is corrupt or was modified (its payload does not match the sha256 "
            "recorded in it); retrain the profile with `sysgram train`."
        )
    return Envelope(header, _unpickle(path, body), _version_warnings(path, header))


def _unpickle(path: Path, body: bytes) -> object:
    """The payload of a file that passed the trust and hash checks."""
    try:
        raw = zlib.decompress(body)
    except zlib.error:
        raise ProfileFileError(f"{path} holds a damaged payload; retrain the profile with "
                               "`sysgram train`.") from None
    return pickle.loads(raw)


def _version_warnings(path: Path, header: dict) -> list[str]:
    """A warning per library the payload depends on whose version changed since saving.

    scikit-learn counts only when it is loaded: a default profile holds none of its
    objects, and importing it just to compare versions would cost a watcher ~75 MiB.
    """
    import numpy

    mine = {"numpy": numpy.__version__}
    if "sklearn" in sys.modules:  # the payload (a non-default model) or the caller loaded it
        mine["sklearn"] = sys.modules["sklearn"].__version__
    theirs = header["versions"] if isinstance(header.get("versions"), dict) else {}
    return [f"{path.name} was saved with {lib} {theirs[lib]} and this is {mine[lib]}; "
            "retrain it if scores look wrong."
            for lib in ("sklearn", "numpy")
            if lib in mine and theirs.get(lib) and theirs[lib] != mine[lib]]


def read_verified_bytes(path: Path) -> tuple[dict, bytes]:
    """The header and the whole file's bytes, after the trust, version and hash checks
    (nothing unpickled): what `profiles export/import` copy, read once."""
    with _open_checked(path, check_trust=True) as f:
        raw = f.read()
    with io.BytesIO(raw) as f:
        header = _read_header(f, path)
        body = f.read()
    if len(body) != header.get("payload_bytes") or (
        hashlib.sha256(body).hexdigest() != header.get("payload_sha256")
    ):
        raise ProfileFileError(f"{path} is corrupt or was modified (its payload does not match "
                               "the sha256 recorded in it); export it again from its source.")
    return header, raw


def write_bytes_atomic(path: Path, raw: bytes) -> None:
    """Write `raw` to `path` as write_envelope does (tmp, mode 0600, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _open_checked(path: Path, check_trust: bool):
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not hang
    except FileNotFoundError:
        raise ProfileFileError(f"there is no profile file {path}; list them with "
                               "`sysgram profiles list`.") from None
    except OSError as exc:
        if path.is_symlink():
            raise ProfileFileError(
                f"{path} is a symlink and profiles are only read from regular files; "
                "replace it with the file itself."
            ) from None
        raise ProfileFileError(f"cannot read {path} ({exc.strerror}); check its permissions.") \
            from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a directory, FIFO or device is no profile
            raise ProfileFileError(f"{path} is not a regular file; profiles are regular files.")
        if check_trust:
            _check_trust(path, st)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _others_can_change(st: os.stat_result, sticky_ok: bool = False) -> bool:
    """Owned by someone other than root or us, or writable by group or others (in a
    sticky directory, with `sticky_ok`, others cannot rename what they do not own)."""
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if sticky_ok and st.st_mode & stat.S_ISVTX:
        writable = 0
    return not _trusted_owner(st.st_uid) or bool(writable)


def _check_trust(path: Path, st: os.stat_result) -> None:
    if _others_can_change(st):
        raise ProfileFileError(
            f"refusing to load {path}: users other than root or its owner can write it, and "
            f"loading it would run their code; fix it with `chmod go-w {path}` and check "
            "who changed it."
        )
    check_directory_trust(path.parent)


def check_directory_trust(directory: Path) -> None:
    """Refuse a profile directory that users other than root or its owner could change.

    Nobody else may write the directory itself, nor any directory above it (following
    the path as given and as it resolves): whoever can rename an ancestor can swap the
    whole store for one of theirs. A sticky ancestor (/tmp) is fine, as others cannot
    rename what they do not own there. Checked before saving and before loading.
    """
    if _others_can_change(os.stat(directory)):
        raise ProfileFileError(
            f"refusing to use profiles in {directory}: users other than root or its owner "
            f"can write that directory; fix it with `chmod go-w {directory}` or choose "
            "another directory with --store."
        )
    for ancestor in _ancestors(directory):
        if _others_can_change(os.stat(ancestor), sticky_ok=True):
            raise ProfileFileError(
                f"refusing to use profiles in {directory}: {ancestor} above it can be changed "
                "by users other than root or its owner, who could swap the store; keep the "
                "store under directories only root can write (--store)."
            )


def _ancestors(directory: Path) -> list[Path]:
    given = Path(os.path.abspath(directory)).parents
    resolved = Path(os.path.realpath(directory)).parents
    return list(dict.fromkeys([*given, *resolved]))


def _read_header(f, path: Path) -> dict:
    if f.read(len(MAGIC)) != MAGIC:
        raise ProfileFileError(f"{path} is not a sysgram profile; remove it or point "
                               "--store at the right directory.")
    size = int.from_bytes(f.read(8), "big")
    raw = f.read(size) if 0 < size <= _HEADER_LIMIT else b""
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ProfileFileError(f"{path} has a damaged header; retrain the profile with "
                               "`sysgram train`.")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ProfileFileError(
            f"{path} uses profile format version {version} and this sysgram reads version "
            f"{FORMAT_VERSION}; retrain it with `sysgram train`."
        )
    return header
