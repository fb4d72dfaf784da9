"""ADFA-LD: the one parser for its text layout, and import / export between it and datasets.

Layout (Creech & Hu, 2013): `Training_Data_Master/` and `Validation_Data_Master/` hold
normal traces, `Attack_Data_Master/<Family>_<k>/` attack traces; one file per process
trace, space-separated decimal syscall numbers of the i386 table. A folder of trace files
with none of those three sub-folders is read as one unlabelled split (what `export_adfa`
writes for an unlabelled recording).

Parsing is vectorised over all files at once: the files are joined into one buffer and
tokenised with numpy, so the 3,396 traces of the dev split parse in a fraction of a second.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysgram.datasets.files import FILE_MODE, as_write_error, make_private_dir, write_all
from sysgram.datasets.reader import Dataset
from sysgram.datasets.trace import ThreadTrace
from sysgram.datasets.writer import DatasetWriter, claim_directory
from sysgram.errors import UserError

ADFA_ARCH = "i386"

# folder -> (split, label)
SPLIT_FOLDERS = {
    "Training_Data_Master": ("train", "normal"),
    "Validation_Data_Master": ("validation", "normal"),
    "Attack_Data_Master": ("attack", "attack"),
}
FOLDER_OF_SPLIT = {split: folder for folder, (split, _) in SPLIT_FOLDERS.items()}
_ATTACK_FOLDER = re.compile(r"^(?P<family>.+)_(?P<k>\d+)$")

# Syscall numbers stay below 1024 on every table sysgram uses (the translation table and
# the n-gram packing rely on it), so a larger number is garbage, not a syscall.
MAX_SYSCALL_NR = 1023
_MAX_DIGITS = 4
_LAYOUT_HINT = ("give the corpus's top folder, the one holding Training_Data_Master/, "
                "Validation_Data_Master/ and Attack_Data_Master/<Family>_<k>/")


@dataclass(frozen=True)
class _TraceFile:
    path: Path
    source: str  # relative to the corpus root
    split: str | None
    label: str | None
    family: str | None


# -- reading -----------------------------------------------------------------------------
def read_adfa(src: Path, arch: str = ADFA_ARCH) -> list[ThreadTrace]:
    """Every trace of an ADFA-LD-layout corpus at `src`, labelled by folder.

    Raises UserError naming the folder, or the file and line, when the layout or a file
    is wrong. `arch` is the syscall table the numbers belong to (ADFA-LD: i386).
    """
    src = Path(src)
    files = _layout(src)
    blobs = [_read_file(f) for f in files]
    ids_per_file = _parse_all(files, blobs)
    return [
        ThreadTrace(tid=i + 1, pid=i + 1, ids=ids, label=f.label, family=f.family,
                    split=f.split, arch=arch, source=f.source)
        for i, (f, ids) in enumerate(zip(files, ids_per_file, strict=True))
    ]


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _visible(folder: Path) -> list[os.DirEntry]:
    """The folder's entries but hidden ones, in natural order (scandir: no stat per file)."""
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise UserError(f"cannot list {folder} ({exc.strerror or exc}); check its "
                        "permissions.") from None
    return sorted(entries, key=lambda e: _natural_key(e.name))


def _layout(src: Path) -> list[_TraceFile]:
    if not src.is_dir():
        raise UserError(f"{src} is not a folder; {_LAYOUT_HINT}.")
    present = [name for name in SPLIT_FOLDERS if (src / name).is_dir()]
    if not present:
        return _flat_split(src)
    files: list[_TraceFile] = []
    for name in present:
        split, label = SPLIT_FOLDERS[name]
        if split == "attack":
            files += _attack_split(src / name)
        else:
            files += _trace_files(src / name, f"{name}/", split, label, None)
    return files


def _flat_split(src: Path) -> list[_TraceFile]:
    entries = _visible(src)
    nested = [e.path for e in entries if e.is_dir() and any(
        (Path(e.path) / name).is_dir() for name in SPLIT_FOLDERS)]
    if nested:
        raise UserError(f"{src} holds the corpus one level down; give {nested[0]} instead.")
    if not entries or any(e.is_dir() for e in entries):
        raise UserError(f"{src} does not have the ADFA-LD layout; {_LAYOUT_HINT}.")
    return _trace_files(src, "", None, None, None)


def _trace_files(folder: Path, prefix: str, split: str | None, label: str | None,
                 family: str | None) -> list[_TraceFile]:
    """The trace files of one folder; `prefix` is the folder relative to the corpus root."""
    out = []
    for entry in _visible(folder):
        if not entry.is_file():
            raise UserError(f"{entry.path} is not a trace file; {folder.name}/ must hold only "
                            "trace files, move it out.")
        out.append(_TraceFile(Path(entry.path), prefix + entry.name, split, label, family))
    return out


def _attack_split(folder: Path) -> list[_TraceFile]:
    files = []
    for sub in _visible(folder):
        match = _ATTACK_FOLDER.match(sub.name)
        if not sub.is_dir() or not match:
            raise UserError(f"{sub.path} is not an attack folder; Attack_Data_Master/ must "
                            "hold only folders named <Family>_<k>, e.g. Adduser_1.")
        files += _trace_files(Path(sub.path), f"{folder.name}/{sub.name}/", "attack",
                              "attack", match["family"])
    return files


def _read_file(f: _TraceFile) -> bytes:
    try:
        return f.path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {f.path} ({exc.strerror or exc}); check the file "
                        "and its permissions.") from None


# Bytes allowed between numbers.
_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\n\r\v\f")] = True


def _parse_all(files: list[_TraceFile], blobs: list[bytes]) -> list[np.ndarray]:
    """Tokenise every file in one pass; the numbers of each file as uint16."""
    if not files:
        return []
    # One space before each file and at the end: no number spans two files, and every
    # number has a non-digit on both sides. starts[i] is file i's first byte.
    sizes = np.array([len(b) + 1 for b in blobs], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes + 1
    buf = np.frombuffer(b" " + b" ".join(blobs) + b" ", dtype=np.uint8)

    digit = (buf - 48) < 10  # uint8 arithmetic wraps, so this is '0' <= b <= '9'
    bad = ~(digit | _SPACE[buf])
    if bad.any():
        at = int(np.argmax(bad))
        _fail_at(files, blobs, starts, at, f"unexpected character {chr(buf[at])!r}")

    first = np.flatnonzero(digit[1:] & ~digit[:-1]) + 1  # each number's first digit
    last = np.flatnonzero(digit[:-1] & ~digit[1:])  # and its last
    too_long = (last - first) >= _MAX_DIGITS
    if too_long.any():
        at = int(first[np.argmax(too_long)])
        _fail_at(files, blobs, starts, at, "a number too large to be a syscall")

    values = _digits_to_values(buf, first, last)
    if len(values) and values.max() > MAX_SYSCALL_NR:
        at = int(first[np.argmax(values > MAX_SYSCALL_NR)])
        _fail_at(files, blobs, starts, at,
                 f"{values.max()} is above the highest syscall number ({MAX_SYSCALL_NR})")

    # Numbers before each file's start, hence numbers per file.
    bounds = np.searchsorted(first, np.append(starts, len(buf)))
    per_file = np.diff(bounds)
    empty = np.flatnonzero(per_file == 0)
    if len(empty):
        f = files[int(empty[0])]
        raise UserError(f"{f.path} holds no syscall numbers (empty or truncated); restore "
                        "the file or remove it.")
    return np.split(values.astype(np.uint16), bounds[1:-1])


def _digits_to_values(buf: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Decimal value of each number, one vectorised step per digit place (≤ 4)."""
    values = buf[last].astype(np.int32) - 48
    for place in range(1, _MAX_DIGITS):
        index = last - place  # never below -3: wraps harmlessly, masked out below
        digit = buf[index].astype(np.int32) - 48
        values += np.where(index >= first, digit, 0) * 10**place
    return values


def _fail_at(files: list[_TraceFile], blobs: list[bytes], starts: np.ndarray, at: int,
             what: str) -> None:
    """Raise the UserError for byte `at` of the joined buffer, naming file, line and column."""
    i = int(np.searchsorted(starts, at, side="right") - 1)
    data, local = blobs[i], at - int(starts[i])
    line = data.count(b"\n", 0, local) + 1
    column = local - (data.rfind(b"\n", 0, local) + 1) + 1
    raise UserError(f"{files[i].path} line {line}, column {column}: {what}; an ADFA-LD trace "
                    "holds only space-separated syscall numbers, fix or remove the file.")


# -- import ------------------------------------------------------------------------------
def import_adfa(src: Path, dst: Path, arch: str = ADFA_ARCH) -> Dataset:
    """Read the corpus at `src` (validated whole first) and write it as a dataset at `dst`."""
    claim_directory(Path(dst))  # refuse a bad destination before the work of parsing
    traces = read_adfa(src, arch=arch)
    with DatasetWriter(Path(dst), arch=arch, source="adfa-ld",
                       meta={"imported_from": str(Path(src).resolve())}) as writer:
        for t in traces:
            writer.start_thread(t.tid, pid=t.pid, label=t.label, family=t.family,
                                split=t.split, source=t.source)
            writer.append(t.tid, t.ids)
            writer.end_thread(t.tid)
    return Dataset.open(Path(dst))


# -- export ------------------------------------------------------------------------------
def export_adfa(dataset: Dataset, out: Path) -> int:
    """Write one text file per non-empty thread trace at `out`; returns the files written.

    Labelled traces go to the ADFA-LD folders of their split (attack traces under
    <Family>_<k>/); unlabelled ones to `out` itself. Numbers are of the dataset's arch;
    losses cannot be marked in this format (callers should say so).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; give a new or empty "
                        "folder for the export.")
    targets = _export_paths(dataset.threads)
    written = 0
    try:
        make_private_dir(out)
        for folder in sorted({(out / rel).parent for _, rel in targets}):
            make_private_dir(folder)
        for trace, rel in targets:
            _write_new_file(out / rel, ids_to_text(trace.ids))
            written += 1
    except OSError as exc:
        raise as_write_error(exc, out, f"trace {written + 1} of the export") from None
    return written


def _write_new_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _export_paths(threads: list[ThreadTrace]) -> list[tuple[ThreadTrace, str]]:
    """A unique relative path for each non-empty trace."""
    taken: set[str] = set()
    out = []
    for index, trace in enumerate(threads, 1):
        if not len(trace.ids):
            continue
        rel = _kept_source(trace) or _generated_path(trace, index)
        base, n = rel, 1
        while rel in taken:
            n += 1
            rel = f"{base.removesuffix('.txt')}-{n}.txt"
        taken.add(rel)
        out.append((trace, rel))
    return out


def _split_of(trace: ThreadTrace) -> str | None:
    if trace.split in FOLDER_OF_SPLIT:
        return trace.split
    return {"attack": "attack", "normal": "train"}.get(trace.label or "")


def _kept_source(trace: ThreadTrace) -> str | None:
    """The trace's original relative path, when it is safe and agrees with its split."""
    if not trace.source:
        return None
    parts = Path(trace.source).parts
    split = _split_of(trace)
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or Path(
            trace.source).is_absolute():
        return None
    if split is None:
        return parts[-1] if len(parts) == 1 else None
    if parts[0] != FOLDER_OF_SPLIT[split]:
        return None
    if split == "attack":
        return trace.source if len(parts) == 3 and _ATTACK_FOLDER.match(parts[1]) else None
    return trace.source if len(parts) == 2 else None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:60] or "_"


def _generated_path(trace: ThreadTrace, index: int) -> str:
    split = _split_of(trace)
    name = f"{_safe(trace.comm or 'thread')}-{trace.pid}-{trace.tid}-{index}.txt"
    if split is None:
        return name
    folder = FOLDER_OF_SPLIT[split]
    if split == "attack":
        return f"{folder}/{_safe(trace.family or 'Unknown')}_1/{name}"
    return f"{folder}/{name}"


_WIDTH = 6


@functools.cache
def _number_texts() -> tuple[np.ndarray, np.ndarray]:
    """Each number 0..65535 as its decimal digits and a space, padded to 6 bytes; lengths."""
    texts = np.array([f"{n} ".encode() for n in range(1 << 16)], dtype=f"S{_WIDTH}")
    return texts, np.char.str_len(texts).astype(np.int64)


def ids_to_text(ids: np.ndarray) -> bytes:
    """Space-separated decimal numbers with a trailing space, as ADFA-LD files are (vectorised)."""
    texts, lengths = _number_texts()
    ids = np.asarray(ids, dtype=np.uint16)
    cells = texts[ids].view(np.uint8).reshape(-1, _WIDTH)
    keep = np.arange(_WIDTH) < lengths[ids][:, None]
    return cells[keep].tobytes()
