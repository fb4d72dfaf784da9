"""Rows of a Parquet recording -> loss-free pieces of thread traces (numpy, no ML stack).

Rows of one trace are joined in `piece` order into one stream, cut where `lost_before`
says events were lost: a window must never span a loss. A trace may continue in a later
file of its partition (each writer flush bound starts a new file); `PieceTails` carries
the end of each unfinished trace over to the next file so nothing is lost at the seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The columns a trainer reads (the rest stay on disk).
TRAINING_COLUMNS = ["recording", "trace", "piece", "lost_before", "syscalls", "binary_sha256",
                    "comm", "exe", "arch", "label", "thread_end_ns"]


@dataclass
class Pieces:
    """Loss-free pieces: piece i is values[offsets[i]:offsets[i+1]]; per-piece columns."""

    values: np.ndarray        # uint16
    offsets: np.ndarray       # int64
    key: list                 # (recording, trace) of each piece
    sha256: list              # binary sha256 (None = unknown) of each piece
    comm: list
    exe: list
    arch: list
    label: list
    ends_trace: np.ndarray    # bool: the trace's last row is in this piece, and it ended
    continues: np.ndarray     # bool: goes on from a row of an earlier file, with no loss
    lost: int = 0             # events lost inside these rows (the cuts)
    attack_rows: int = 0      # rows labelled "attack", left out

    def __len__(self) -> int:
        return len(self.offsets) - 1


def table_pieces(table, keep_attacks: bool = False) -> Pieces:
    """A pyarrow Table of TRAINING_COLUMNS -> its loss-free pieces, in trace order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    attack = pc.fill_null(pc.equal(table["label"], "attack"), False)
    attack_rows = int(pc.sum(attack).as_py() or 0)
    if attack_rows and not keep_attacks:
        table = table.filter(pc.invert(attack))
    table = table.sort_by([("recording", "ascending"), ("trace", "ascending"),
                           ("piece", "ascending")])
    syscalls = table["syscalls"].combine_chunks() if table.num_rows else pa.array(
        [], pa.list_(pa.uint16()))
    row_offsets = np.asarray(syscalls.offsets, dtype=np.int64)
    values = np.asarray(syscalls.flatten(), dtype=np.uint16)
    row_offsets -= row_offsets[0] if len(row_offsets) else 0
    recording = table["recording"].to_pylist()
    trace = np.asarray(table["trace"], dtype=np.int64)
    lost = np.asarray(table["lost_before"], dtype=np.int64)
    n = table.num_rows
    new_trace = np.ones(n, dtype=bool)
    if n > 1:
        same_rec = np.array([a == b for a, b in zip(recording[1:], recording[:-1], strict=True)])
        new_trace[1:] = ~(same_rec & (trace[1:] == trace[:-1]))
    starts = np.flatnonzero(new_trace | (lost > 0))
    ended = ~pc.is_null(table["thread_end_ns"]).to_numpy(zero_copy_only=False)
    last_row = np.append(starts[1:], n) - 1
    next_is_new = np.append(new_trace[1:], True)
    sha, comm, exe = (table[c].to_pylist() for c in ("binary_sha256", "comm", "exe"))
    arch, label = table["arch"].to_pylist(), table["label"].to_pylist()
    return Pieces(
        values=values,
        offsets=np.append(row_offsets[starts], row_offsets[-1] if n else 0).astype(np.int64),
        key=[(recording[i], int(trace[i])) for i in starts],
        sha256=[sha[i] for i in starts], comm=[comm[i] for i in starts],
        exe=[exe[i] for i in starts],
        arch=[arch[i] for i in starts], label=[label[i] for i in starts],
        ends_trace=ended[last_row] & next_is_new[last_row],
        continues=new_trace[starts] & (lost[starts] == 0)
        & (np.asarray(table["piece"], dtype=np.int64)[starts] > 0),
        lost=int(lost.sum()), attack_rows=attack_rows if not keep_attacks else 0,
    )


@dataclass
class PieceTails:
    """The last calls of each trace still open at the end of a file, for the next file."""

    keep: int                                  # calls kept per trace (window - 1 suffices)
    tails: dict = field(default_factory=dict)  # (recording, trace) -> uint16 array

    def join(self, pieces: Pieces) -> list[np.ndarray]:
        """Each piece's calls, with the earlier file's tail in front of a continuation."""
        out = []
        for i in range(len(pieces)):
            ids = pieces.values[pieces.offsets[i]:pieces.offsets[i + 1]]
            tail = self.tails.pop(pieces.key[i], None) if pieces.continues[i] else None
            out.append(ids if tail is None else np.concatenate([tail, ids]))
        last_of_key = np.array([pieces.key[i] != pieces.key[i + 1]
                                for i in range(len(pieces) - 1)] + [True] * bool(len(pieces)),
                               dtype=bool)
        for i in np.flatnonzero(last_of_key & ~pieces.ends_trace):
            self.tails[pieces.key[i]] = out[i][len(out[i]) - self.keep:].copy()
        return out
