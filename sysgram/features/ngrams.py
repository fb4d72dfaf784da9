"""N-gram vocabulary fixed at fit time, and windows -> sparse n-gram vectors.

Layout of a feature row: for each order n, one column per n-gram seen in training, then
one "unseen" column for that order. The unseen column carries the fraction of the
window's n-grams of that order that training never saw: novelty is the strongest signal
on syscall data, and a vocabulary that silently drops unknown n-grams throws it away.

Weighting "binary" (presence, each order's block L2-normalised) is the default: which
calls and short n-grams occur matters more than how often (see
../shared/notes/adfa-findings.md); "count" and "log" keep frequencies.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from sysgram.features.sequences import SYMBOL_BITS, SYMBOL_LIMIT, Sequences, ngram_codes

WEIGHTINGS = ("binary", "count", "log")

# Above this many slots, mapping n-gram codes goes through searchsorted instead of a
# dense lookup table over the compact alphabet.
_DENSE_LUT_LIMIT = 1 << 22
# Values handled at once when fitting a vocabulary or transforming (bounds temporaries).
_CHUNK_VALUES = 1 << 22


class NgramVocabulary:
    """The n-grams (per order) and syscalls seen in training; fit once, then fixed.

    `codes_[n]` holds the sorted packed codes (see `ngram_codes`) of the order-n n-grams.
    Fitting reads the batch in chunks and, when the compact alphabet is small enough,
    marks n-grams in a dense table instead of sorting them: linear time, bounded memory.
    """

    def __init__(self, orders: tuple[int, ...] = (1, 2, 3)) -> None:
        self.orders = orders

    def fit(self, seqs: Sequences) -> NgramVocabulary:
        present = np.zeros(SYMBOL_LIMIT, dtype=bool)
        for chunk in seqs.chunks(_CHUNK_VALUES):
            if len(chunk.values) and int(chunk.values.max()) >= SYMBOL_LIMIT:
                raise ValueError(f"syscall number >= {SYMBOL_LIMIT} cannot be encoded")
            present[chunk.values] = True
        self.symbols_ = np.flatnonzero(present).astype(np.int64)
        self.alphabet_ = np.zeros(SYMBOL_LIMIT + 1, dtype=np.int64)
        self.alphabet_[self.symbols_] = np.arange(1, len(self.symbols_) + 1)
        self.codes_ = {n: self._fit_order(seqs, n) for n in self.orders}
        return self

    @property
    def base(self) -> int:
        """Size of the compact alphabet: training's syscalls plus 0 for "anything else"."""
        return len(self.symbols_) + 1

    def compact(self, values: np.ndarray) -> np.ndarray:
        """Syscall numbers -> compact alphabet (1..A for training's syscalls, else 0)."""
        values = np.minimum(values.astype(np.int64, copy=False), SYMBOL_LIMIT)
        return self.alphabet_[values]

    def _fit_order(self, seqs: Sequences, n: int) -> np.ndarray:
        if self.base**n > _DENSE_LUT_LIMIT:
            found = [np.unique(ngram_codes(c, n)[0]) for c in seqs.chunks(_CHUNK_VALUES)]
            return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        seen = np.zeros(self.base**n, dtype=bool)
        for chunk in seqs.chunks(_CHUNK_VALUES):
            lengths = chunk.lengths
            if len(chunk) and bool(np.all(lengths == lengths[0])) and lengths[0] >= n:
                # Equal-length windows: a 2-D array of codes, no row bookkeeping.
                grid = self.compact(chunk.values).reshape(len(chunk), -1)
                seen[compact_grid_codes(grid, n, self.base)] = True
            else:
                codes = compact_ngram_codes(self.compact(chunk.values), chunk, n, self.base)[0]
                seen[codes] = True
        # Compact codes sort like packed ones: the alphabet keeps the numbers' order.
        digits = _digits(np.flatnonzero(seen), n, self.base)
        symbols = np.concatenate([[0], self.symbols_])[digits]
        codes = np.zeros(len(symbols), dtype=np.int64)
        for k in range(n):
            codes = (codes << SYMBOL_BITS) | symbols[:, k]
        return codes

    def unseen(self, seqs: Sequences, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, rows) of the n-grams in `seqs` that training never saw."""
        codes, rows = ngram_codes(seqs, n)
        known = _member(codes, self.codes_[n])
        return codes[~known], rows[~known]

    def size(self) -> int:
        return int(sum(len(c) for c in self.codes_.values()))

    def _seen(self, codes: np.ndarray, n: int) -> np.ndarray:
        """Whether training saw each order-n code (True where the order was not kept)."""
        if n == 1:
            return np.isin(codes, self.symbols_)
        if n in self.codes_:
            return _member(codes, self.codes_[n])
        return np.ones(len(codes), dtype=bool)

    def novel_events(self, seqs: Sequences, spliced: np.ndarray | None = None,
                     idiom: np.ndarray | None = None, waits: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per sequence, how many distinct *minimal* unseen n-grams it holds, and the
        (row, syscall) pairs of its new calls.

        An n-gram is minimal when training never saw it but saw both of its (n-1)-grams: a
        new call (n = 1), a new transition between known calls, a new three-call order of
        known transitions. Each novel thing a sequence does is counted once at the order
        where it first shows: one new call is one event, not also the two unseen pairs it
        sits in. A sequence holds an unseen n-gram of any order iff it holds a minimal one.

        Unseen n-grams (n >= 2) that hold a call of `spliced` are not counted: such a call
        marks where asynchronous work was spliced into the thread's own order (a signal
        handler returns with `rt_sigreturn` to wherever it interrupted), so the n-grams
        across it say when the signal came, not what the program does. The call itself,
        new, is still one event.

        Unseen n-grams (n >= 2) that hold a call of `waits` after their first call are not
        counted either: the call before an event loop's wait is whichever handler ran
        last, so they say which events coincided. One that starts with the wait (what the
        loop does first on waking) still counts.

        Calls of `idiom` count as known, and so do n-grams made only of them: a sequence
        the caller knows the binary performs whether or not training caught it (a
        threaded binary starting or ending a thread). An idiom call next to any other
        call is still a new transition.

        A known call repeated back to back is not an event: an event loop's `epoll_wait`
        that timed out and waits again, a `read` that came back short and reads on, say
        how fast the work came, not what it was. So every longer n-gram through the new
        repeat is not minimal either; a new call, or a new neighbour of the repeated
        call, still is.
        """
        values = seqs.values.astype(np.int64)
        new = ~np.isin(values, self.symbols_)
        new_rows, new_calls = seqs.row_of_position()[new], values[new]
        has_idiom = idiom is not None and len(idiom) > 0
        counted = ~np.isin(new_calls, idiom) if has_idiom else slice(None)
        events = _distinct_per_row(new_rows[counted], new_calls[counted], len(seqs))
        for n in sorted(o for o in self.orders if o >= 2):
            codes, rows = self.unseen(seqs, n)
            prefix = codes >> SYMBOL_BITS
            suffix = codes & ((1 << (SYMBOL_BITS * (n - 1))) - 1)
            prefix_seen, suffix_seen = self._seen(prefix, n - 1), self._seen(suffix, n - 1)
            if has_idiom:
                prefix_seen |= _only(prefix, n - 1, idiom)
                suffix_seen |= _only(suffix, n - 1, idiom)
            minimal = prefix_seen & suffix_seen
            if n == 2:
                minimal &= prefix != suffix          # a known call, repeated: pace
            if spliced is not None and len(spliced):
                minimal &= ~_holds_any(codes, n, spliced)
            if waits is not None and len(waits):
                minimal &= ~_holds_any(codes, n, waits, skip_first=True)
            if has_idiom:
                minimal &= ~_only(codes, n, idiom)
            events += _distinct_per_row(rows[minimal], codes[minimal], len(seqs))
        return events, new_rows, new_calls


def _only(codes: np.ndarray, n: int, calls: np.ndarray) -> np.ndarray:
    """Whether each packed order-n code is made only of `calls`."""
    out = np.ones(len(codes), dtype=bool)
    for k in range(n):
        out &= np.isin((codes >> (SYMBOL_BITS * k)) & (SYMBOL_LIMIT - 1), calls)
    return out


def _holds_any(codes: np.ndarray, n: int, calls: np.ndarray,
               skip_first: bool = False) -> np.ndarray:
    """Whether each packed order-n code holds one of `calls` (after its first call, with
    `skip_first`: the first call is the most significant digit)."""
    out = np.zeros(len(codes), dtype=bool)
    for k in range(n - 1 if skip_first else n):
        out |= np.isin((codes >> (SYMBOL_BITS * k)) & (SYMBOL_LIMIT - 1), calls)
    return out


def _distinct_per_row(rows: np.ndarray, codes: np.ndarray, n_rows: int) -> np.ndarray:
    """How many distinct codes each row holds."""
    if len(codes) == 0:
        return np.zeros(n_rows, dtype=np.int64)
    pairs = np.unique(np.stack([rows, codes]), axis=1)
    return np.bincount(pairs[0], minlength=n_rows)


def _digits(codes: np.ndarray, n: int, base: int) -> np.ndarray:
    """(len(codes), n) base-`base` digits of compact codes, most significant first."""
    out = np.empty((len(codes), n), dtype=np.int64)
    for k in range(n - 1, -1, -1):
        out[:, k] = codes % base
        codes = codes // base
    return out


def _member(codes: np.ndarray, sorted_vocab: np.ndarray) -> np.ndarray:
    if len(sorted_vocab) == 0:
        return np.zeros(len(codes), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_vocab, codes), len(sorted_vocab) - 1)
    return sorted_vocab[pos] == codes


class NgramFeaturizer:
    """Sequences -> CSR matrix of n-gram features (scikit-learn style: fit / transform).

    Parameters: `orders` of the n-grams, `weighting` in WEIGHTINGS, `normalize` each
    order's block to unit L2 norm, `unseen_weight` scale of the unseen columns (0 drops
    the signal but keeps the columns).
    """

    def __init__(
        self,
        orders: tuple[int, ...] = (1, 2, 3),
        weighting: str = "binary",
        normalize: bool = True,
        unseen_weight: float = 1.0,
    ) -> None:
        self.orders = orders
        self.weighting = weighting
        self.normalize = normalize
        self.unseen_weight = unseen_weight

    def fit(self, seqs: Sequences) -> NgramFeaturizer:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        self.orders_ = tuple(sorted(set(int(n) for n in self.orders)))
        self.vocabulary_ = NgramVocabulary(self.orders_).fit(seqs)
        # N-gram codes in the vocabulary's compact alphabet index a dense lookup table
        # (compact code -> column) when it is small enough.
        self.block_starts_ = {}
        self.luts_ = {}
        start = 0
        for n in self.orders_:
            vocab = self.vocabulary_.codes_[n]
            self.block_starts_[n] = start
            self.luts_[n] = self._lookup_table(vocab, n, start)
            start += len(vocab) + 1  # + the unseen column
        self.n_features_ = start
        return self

    def _lookup_table(self, vocab: np.ndarray, n: int, start: int) -> np.ndarray | None:
        """Dense table: compact n-gram code -> column (or -1), if it fits in memory."""
        base = self.vocabulary_.base
        if base**n > _DENSE_LUT_LIMIT:
            return None
        lut = np.full(base**n, -1, dtype=np.int32)
        symbols = _decode_all(vocab, n)
        compact = np.zeros(len(vocab), dtype=np.int64)
        for k in range(n):  # loop over the order
            compact = compact * base + self.vocabulary_.compact(symbols[:, k])
        lut[compact] = start + np.arange(len(vocab), dtype=np.int32)
        return lut

    def transform(self, seqs: Sequences) -> sp.csr_matrix:
        """One CSR row per sequence, canonical (sorted, no duplicates), weighted."""
        if len(seqs.values) > _CHUNK_VALUES:
            return sp.vstack([self.transform(c) for c in seqs.chunks(_CHUNK_VALUES)],
                             format="csr")
        lengths = seqs.lengths
        equal = len(seqs) and bool(np.all(lengths == lengths[0])) and all(
            lut is not None for lut in self.luts_.values()
        )
        if equal and self.weighting == "binary":
            return self._binary_equal_length(seqs, int(lengths[0]))
        if equal:
            indptr, indices, counts = self._counts_equal_length(seqs, int(lengths[0]))
        else:
            indptr, indices, counts = self._counts_ragged(seqs)
        data = self._weights(indptr, indices, counts)
        x = sp.csr_matrix((data, indices, indptr), shape=(len(seqs), self.n_features_))
        x.has_canonical_format = True
        return x

    def _order_columns(self, compact: np.ndarray, n: int) -> np.ndarray:
        """(rows, width) feature columns of every order-n n-gram of equal-length rows."""
        cols = self.luts_[n][compact_grid_codes(compact, n, self.vocabulary_.base)]
        cols[cols < 0] = self._unseen_column(n)
        return cols

    def _binary_equal_length(self, seqs: Sequences, length: int) -> sp.csr_matrix:
        """The default weighting on equal-length windows, built straight into CSR.

        Per order: sort each row's columns, mark first occurrences; a block's seen entries
        all get 1/sqrt(distinct seen) (or 1) and its unseen column comes last, so the data
        array is one np.repeat of per-(row, order) values. Blocks occupy increasing
        column ranges, so concatenating them keeps every row sorted (canonical CSR).
        """
        n_rows = len(seqs)
        compact = self.vocabulary_.compact(seqs.values).reshape(n_rows, length)
        orders = [n for n in self.orders_ if length - n + 1 > 0]
        all_cols, all_first = [], []
        per_block = np.zeros((n_rows, len(orders), 2))  # value of seen / unseen entries
        count = np.zeros((n_rows, len(orders), 2), dtype=np.int64)  # how many of each
        for j, n in enumerate(orders):  # loop over orders; each is whole-array work
            cols = np.sort(self._order_columns(compact, n), axis=1)
            first = np.ones(cols.shape, dtype=bool)
            first[:, 1:] = cols[:, 1:] != cols[:, :-1]
            unseen = np.count_nonzero(cols == self._unseen_column(n), axis=1)
            has_unseen = unseen > 0
            seen = first.sum(axis=1) - has_unseen
            count[:, j, 0], count[:, j, 1] = seen, has_unseen
            per_block[:, j, 0] = 1.0 / np.sqrt(np.maximum(seen, 1)) if self.normalize else 1.0
            per_block[:, j, 1] = self.unseen_weight * unseen / cols.shape[1]
            all_cols.append(cols)
            all_first.append(first)
        if not orders:
            return sp.csr_matrix((n_rows, self.n_features_))
        cols = np.concatenate(all_cols, axis=1)
        first = np.concatenate(all_first, axis=1)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(count.sum(axis=(1, 2)), out=indptr[1:])
        data = np.repeat(per_block.reshape(-1), count.reshape(-1))
        x = sp.csr_matrix((data, cols[first], indptr), shape=(n_rows, self.n_features_))
        x.has_canonical_format = True
        return x

    def _counts_equal_length(
        self, seqs: Sequences, length: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fast path for equal-length windows: a 2-D array of columns, sorted row-wise."""
        n_rows = len(seqs)
        compact = self.vocabulary_.compact(seqs.values).reshape(n_rows, length)
        base = self.vocabulary_.base
        blocks = []
        for n in self.orders_:  # loop over orders; each is whole-array work
            width = length - n + 1
            if width <= 0:
                continue
            code = np.zeros((n_rows, width), dtype=np.int64)
            for k in range(n):
                code = code * base + compact[:, k : k + width]
            cols = self.luts_[n][code]
            cols[cols < 0] = self._unseen_column(n)
            blocks.append(cols)
        if not blocks:
            return np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0)
        cols = np.sort(np.concatenate(blocks, axis=1), axis=1)
        first = np.ones(cols.shape, dtype=bool)
        first[:, 1:] = cols[:, 1:] != cols[:, :-1]
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(first.sum(axis=1), out=indptr[1:])
        starts = np.flatnonzero(first.reshape(-1))
        # Runs never cross rows (a row's first element always starts a run).
        counts = np.diff(np.append(starts, first.size)).astype(np.float64)
        return indptr, cols.reshape(-1)[starts], counts

    def _counts_ragged(self, seqs: Sequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.concatenate([self._columns(seqs, n)[1] for n in self.orders_])
        cols = np.concatenate([self._columns(seqs, n)[0] for n in self.orders_])
        ones = np.ones(len(rows), dtype=np.float64)
        x = sp.csr_matrix((ones, (rows, cols)), shape=(len(seqs), self.n_features_))
        x.sum_duplicates()
        return x.indptr.astype(np.int64), x.indices, x.data

    def unseen_columns(self) -> np.ndarray:
        """The column of each order's unseen fraction, in order of `orders_`."""
        return np.array([self._unseen_column(n) for n in self.orders_], dtype=np.int64)

    def unseen_fractions(self, seqs: Sequences) -> np.ndarray:
        """(len(seqs), len(orders_)) fraction of each order's n-grams training never saw."""
        out = np.zeros((len(seqs), len(self.orders_)))
        for j, n in enumerate(self.orders_):
            codes, rows = ngram_codes(seqs, n)
            known = _member(codes, self.vocabulary_.codes_[n])
            total = np.bincount(rows, minlength=len(seqs))
            out[:, j] = np.bincount(rows[~known], minlength=len(seqs)) / np.maximum(total, 1)
        return out * self.unseen_weight

    def _unseen_column(self, n: int) -> int:
        return self.block_starts_[n] + len(self.vocabulary_.codes_[n])

    def _columns(self, seqs: Sequences, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Column of every n-gram (unseen ones -> the order's unseen column), and its row."""
        lut = self.luts_[n]
        if lut is not None:
            codes, rows = compact_ngram_codes(
                self.vocabulary_.compact(seqs.values), seqs, n, self.vocabulary_.base
            )
            cols = lut[codes].astype(np.int64)
            cols[cols < 0] = self._unseen_column(n)
        else:
            codes, rows = ngram_codes(seqs, n)
            known = _member(codes, self.vocabulary_.codes_[n])
            pos = np.searchsorted(self.vocabulary_.codes_[n], codes)
            cols = np.where(known, self.block_starts_[n] + pos, self._unseen_column(n))
        return cols, rows

    def _weights(self, indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Presence / counts / log counts per block; unseen columns get the unseen fraction."""
        n_rows, n_blocks = len(indptr) - 1, len(self.orders_)
        starts = np.array([self.block_starts_[n] for n in self.orders_])
        unseen_cols = np.array([self._unseen_column(n) for n in self.orders_])
        block = np.searchsorted(starts, indices, side="right") - 1
        is_unseen = indices == unseen_cols[block]
        row = np.repeat(np.arange(n_rows), np.diff(indptr))
        cell = row * n_blocks + block
        size = n_rows * n_blocks
        block_total = np.bincount(cell, weights=counts, minlength=size)
        if self.weighting == "binary":
            data = np.ones(len(counts))
        elif self.weighting == "log":
            data = np.log1p(counts)
        else:
            data = counts.astype(np.float64, copy=True)
        if self.normalize:
            seen = np.where(is_unseen, 0.0, data)
            norm = np.sqrt(np.bincount(cell, weights=seen * seen, minlength=size))
            data /= np.maximum(norm[cell], 1e-12)
        data[is_unseen] = (
            self.unseen_weight * counts[is_unseen] / np.maximum(block_total[cell[is_unseen]], 1.0)
        )
        return data


def _decode_all(codes: np.ndarray, n: int) -> np.ndarray:
    """(len(codes), n) syscall numbers of packed n-gram codes."""
    shifts = SYMBOL_BITS * (n - 1 - np.arange(n))
    return (codes[:, None] >> shifts[None, :]) & (SYMBOL_LIMIT - 1)


def compact_grid_codes(grid: np.ndarray, n: int, base: int) -> np.ndarray:
    """(rows, width - n + 1) codes of the n-grams of each row of a 2-D compact array.

    Only used where base**n is below _DENSE_LUT_LIMIT, so int32 codes suffice.
    """
    width = grid.shape[1] - n + 1
    code = grid[:, :width].astype(np.int32)
    for k in range(1, n):  # loop over the order
        code *= base
        code += grid[:, k : k + width]
    return code


def compact_ngram_codes(
    compact_values: np.ndarray, seqs: Sequences, n: int, base: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like `ngram_codes`, over values already mapped to a compact alphabet of `base`."""
    total = len(compact_values) - n + 1
    if total <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes = np.zeros(total, dtype=np.int64)
    for k in range(n):  # loop over the order, not over syscalls
        codes = codes * base + compact_values[k : k + total]
    rows = seqs.row_of_position()[:total]
    keep = np.arange(total) + n <= seqs.offsets[1:][rows]
    return codes[keep], rows[keep]
