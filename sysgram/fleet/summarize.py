"""One partition (a host's recordings of one binary name) -> what pooling needs of it.

Read file by file (each bounded by the writer), so a partition of any size streams
through a worker: per binary sha256 the distinct syscalls and n-grams (exact, merged
later across hosts) and a uniform random *sample* of loss-free chunks of calls, bounded
to `sample_calls` (bottom-k by random key: a chunk is kept when its key is among the
smallest, so samples of partitions merge into a uniform sample of the whole fleet).
A file that cannot be read is reported by name and skipped; the rest still counts.

"Binary" is the watched binary's build: the programs its processes run (the shell sshd
starts for a login, the `getent` a gunicorn worker runs) pool into the build of the
binary they belong to, as `train --from DATASET` pools them and as `watch` scores them
(one profile per watched binary, for its whole process tree). A separate profile per
child program would leave the server's own profile blind to its children's calls.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sysgram.datasets.parquet_read import TRAINING_COLUMNS, PieceTails, table_pieces
from sysgram.features import NgramVocabulary, Sequences
from sysgram.features.sequences import SYMBOL_LIMIT
from sysgram.fleet.partitions import Partition


@dataclass(frozen=True)
class Plan:
    orders: tuple[int, ...]
    window: int
    sample_calls: int            # calls kept per binary sha256 of this partition
    chunk_calls: int = 4096      # long pieces are sampled in chunks of this many calls
    seed: int = 0


@dataclass
class Sample:
    """Bottom-k sample of chunks: keys (uniform in [0, 1)) and the chunks themselves."""

    budget: int
    keys: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    held: int = 0
    cutoff: float = 1.0          # chunks keyed at or above it can never be kept

    def offer(self, seqs: Sequences, chunk_calls: int, rng: np.random.Generator) -> None:
        lengths = seqs.lengths
        per_piece = -(-lengths // chunk_calls)
        piece = np.repeat(np.arange(len(seqs)), per_piece)
        first = np.concatenate([[0], np.cumsum(per_piece)])[:-1]
        starts = seqs.offsets[piece] + (np.arange(len(piece)) - first[piece]) * chunk_calls
        ends = np.minimum(starts + chunk_calls, seqs.offsets[piece + 1])
        keys = rng.random(len(starts))
        for i in np.flatnonzero(keys < self.cutoff):
            self.keys.append(float(keys[i]))
            self.chunks.append(seqs.values[starts[i]:ends[i]].copy())
            self.held += int(ends[i] - starts[i])
        if self.held > 2 * self.budget:
            self.prune()

    def prune(self) -> None:
        """Keep the smallest keys holding at most `budget` calls."""
        order = np.argsort(self.keys)
        sizes = np.array([len(self.chunks[i]) for i in order], dtype=np.int64)
        keep = order[: int(np.searchsorted(np.cumsum(sizes), self.budget, side="right"))]
        if len(keep) < len(order):
            self.cutoff = float(self.keys[order[len(keep)]])
        self.keys = [self.keys[i] for i in keep]
        self.chunks = [self.chunks[i] for i in keep]
        self.held = int(sum(len(c) for c in self.chunks))


@dataclass
class BinarySlice:
    """What one partition holds of one binary (sha256)."""

    sha256: str | None
    comm: str
    exe: str | None
    arch: str
    symbols: np.ndarray
    codes: dict
    sample: Sample
    calls: int = 0
    pieces: int = 0
    unencodable: int = 0
    # What this host's processes of the build touched: each key's first record, with its
    # process's role from the row's `watched_parent` (a models.touched.FirstSeen).
    touched: object | None = None


@dataclass
class PartitionSummary:
    host: str
    binary_name: str
    slices: dict = field(default_factory=dict)      # sha256 (or None) -> BinarySlice
    failures: list = field(default_factory=list)    # (file, message)
    files: int = 0
    lost: int = 0
    attack_rows: int = 0
    build: str | None = None    # the watched binary's sha256, once a file showed it


def summarize_partition(part: Partition, plan: Plan) -> PartitionSummary:
    """Read the partition's files in order and summarise them (the Dask task)."""
    import fsspec

    fs, _ = fsspec.core.url_to_fs(part.url)
    seed = zlib.crc32(f"{part.host}/{part.binary_name}".encode()) ^ plan.seed
    rng = np.random.default_rng(seed)
    out = PartitionSummary(part.host, part.binary_name)
    tails = PieceTails(keep=max(plan.window, max(plan.orders)) - 1)
    for path in part.files:
        try:
            table = _read_file(path, fs)
            pieces = table_pieces(table)
        except Exception as exc:  # any damage: name the file, keep going without it
            out.failures.append((path, f"{type(exc).__name__}: {exc}"))
            tails.tails.clear()  # a trace must not be joined across the missing file
            continue
        out.files += 1
        out.lost += pieces.lost
        out.attack_rows += pieces.attack_rows
        _add_pieces(out, pieces, tails.join(pieces), plan, rng)
        try:
            _add_touched(out, table)
        except Exception as exc:  # its calls counted; what it touched did not: say so
            out.failures.append((path, f"its touched records: {type(exc).__name__}: {exc}"))
    for s in out.slices.values():
        s.sample.prune()
    return out


# What a row of what threads touched adds to TRAINING_COLUMNS, where the file has them.
TOUCHED_COLUMNS = ("touched", "pid", "watched_parent")


def _read_file(path: str, fs):
    """One file's training columns, and the touched columns it has (older files lack
    some): one open, one read."""
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        names = set(parquet.schema_arrow.names)
        return parquet.read(columns=TRAINING_COLUMNS + [c for c in TOUCHED_COLUMNS
                                                        if c in names])


def _runs_own_file(exe: str | None, binary_name: str) -> bool:
    """Whether a process runs the watched binary's own file (by name: the `comm` column is
    the partition's binary name for every row of the tree)."""
    return bool(exe) and os.path.basename(exe)[:15] == binary_name[:15]


def _is_own(pieces, i: int, binary_name: str) -> bool:
    """Whether piece i runs the watched binary's own file."""
    return _runs_own_file(pieces.exe[i], binary_name)


def _builds(out: PartitionSummary, pieces) -> list:
    """The build each piece pools into: its own sha256 for the binary's own pieces, the
    binary's build for the programs it started. The build is the most common sha256 of
    its own pieces (here or in an earlier file); an interpreted server whose file is not
    its name (gunicorn runs python) shows none, and then it is the sha256 that ran most
    calls, the server's interpreter rather than a `getent` it ran now and then."""
    own = [_is_own(pieces, i, out.binary_name) for i in range(len(pieces))]
    seen = Counter(sha for sha, mine in zip(pieces.sha256, own, strict=True) if mine and sha)
    if seen:
        out.build = seen.most_common(1)[0][0]
    elif out.build is None and len(pieces):
        calls = Counter()
        for sha, n in zip(pieces.sha256, np.diff(pieces.offsets).tolist(), strict=True):
            calls[sha] += n
        out.build = calls.most_common(1)[0][0]
    return [sha if mine else out.build for sha, mine in zip(pieces.sha256, own, strict=True)]


def _add_pieces(out: PartitionSummary, pieces, ids: list, plan: Plan, rng) -> None:
    shas = _builds(out, pieces)
    for sha in dict.fromkeys(shas):  # loop over binaries of the file, not pieces
        mine = [i for i, s in enumerate(shas) if s == sha]
        seqs = Sequences.from_list([ids[i] for i in mine])
        beyond = seqs.values >= SYMBOL_LIMIT
        slice_ = out.slices.get(sha)
        if slice_ is None:
            first = next((i for i in mine if _is_own(pieces, i, out.binary_name)), mine[0])
            slice_ = out.slices[sha] = BinarySlice(
                sha, pieces.comm[first] or out.binary_name, pieces.exe[first],
                pieces.arch[first],
                np.zeros(0, np.int64), {n: np.zeros(0, np.int64) for n in plan.orders},
                Sample(plan.sample_calls))
        if beyond.any():  # folded like sysgram.models.training_data.to_streams does
            seqs.values[beyond] = SYMBOL_LIMIT - 1
            slice_.unencodable += int(beyond.sum())
        vocab = NgramVocabulary(plan.orders).fit(seqs)
        slice_.symbols = np.union1d(slice_.symbols, vocab.symbols_)
        for n in plan.orders:
            slice_.codes[n] = np.union1d(slice_.codes[n], vocab.codes_[n])
        # Real calls only: a continuation's `ids` repeat the earlier file's tail.
        slice_.calls += int(np.diff(pieces.offsets)[mine].sum())
        slice_.pieces += len(seqs)
        slice_.sample.offer(seqs, plan.chunk_calls, rng)


def _add_touched(out: PartitionSummary, table) -> None:
    """The file's touched records (normal rows only), each into the build its row pools
    into, as its calls do. A file written before the column existed has none."""
    import json

    from sysgram.datasets.format import with_faithful_path
    from sysgram.datasets.parquet import touched_captured
    from sysgram.models.touched import FirstSeen, process_role, with_roles

    if "touched" not in table.column_names:
        return
    captured = touched_captured(table.schema)
    columns = ["touched", "binary_sha256", "exe", "label", "pid", "watched_parent"]
    column = {c: table[c].to_pylist() if c in table.column_names else [None] * table.num_rows
              for c in columns}
    for records, sha, exe, label, pid, watched_parent in zip(*column.values(), strict=True):
        if label == "attack" or not (records or captured):
            continue
        slice_ = out.slices.get(sha if _runs_own_file(exe, out.binary_name) else out.build)
        if slice_ is None:       # a build with no loss-free calls here: nothing to pool into
            continue
        if slice_.touched is None:
            slice_.touched = FirstSeen()
        slice_.touched.mark_captured()
        # The root process (a master, a listener) or a child, as the recorder said.
        role = process_role(watched_parent)
        slice_.touched.add(with_roles((with_faithful_path(json.loads(r)) for r in records),
                                      {pid: role} if role else {}))
