"""Partition summaries of one binary name -> one pooled profile per binary sha256.

The profile is fitted on the merged sample of every host's chunks (uniform over the
fleet: the bottom `budget` calls by random key), and its vocabulary is replaced by the
pooled one: every n-gram any host saw, with its host count. The novelty test and the
explanations then say what no host ever did, whatever the sample left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.fleet.summarize import PartitionSummary, Sample
from sysgram.fleet.vocabulary import PooledVocabulary


@dataclass
class PooledBinary:
    """One binary's pooled profile (or why there is none) and what it was made of."""

    binary_name: str
    sha256: str | None
    comm: str
    exe: str | None
    arch: str
    hosts: int
    calls: int                     # in all partitions
    sampled_calls: int             # what the profile was fitted on
    pieces: int
    unencodable: int = 0
    profile: object | None = None
    error: str | None = None
    fit_seconds: float = 0.0
    host_names: list = field(default_factory=list)
    touched: object | None = None  # the pooled models.touched.TouchedSets, or None


def fit_binary_name(binary_name: str, summaries: list[PartitionSummary], params: dict,
                    budget: int) -> list[PooledBinary]:
    """Fit one pooled profile per sha256 among the summaries of `binary_name` (Dask task)."""
    shas = dict.fromkeys(sha for s in summaries for sha in s.slices)
    return [_fit_one(binary_name, sha, summaries, params, budget) for sha in shas]


def _fit_one(binary_name: str, sha: str | None, summaries: list[PartitionSummary],
             params: dict, budget: int) -> PooledBinary:
    import time

    from sysgram.models.profile import Profile

    slices = [(s.host, s.slices[sha]) for s in summaries if sha in s.slices]
    per_host: dict[str, dict] = {}
    for host, sl in slices:
        mine = per_host.setdefault(host, {"symbols": [], "codes": {n: [] for n in sl.codes}})
        mine["symbols"].append(sl.symbols)
        for n, codes in sl.codes.items():
            mine["codes"][n].append(codes)
    orders = tuple(slices[0][1].codes)
    per_host = {h: {"symbols": np.unique(np.concatenate(v["symbols"])),
                    "codes": {n: np.unique(np.concatenate(c)) for n, c in v["codes"].items()}}
                for h, v in per_host.items()}
    sample = merged_sample([sl.sample for _, sl in slices], budget)
    first = slices[0][1]
    pooled = PooledBinary(
        binary_name, sha, first.comm, first.exe, first.arch, len(per_host),
        calls=sum(sl.calls for _, sl in slices), sampled_calls=int(sample.offsets[-1]),
        pieces=sum(sl.pieces for _, sl in slices),
        unencodable=sum(sl.unencodable for _, sl in slices), host_names=sorted(per_host))
    started = time.perf_counter()
    try:
        profile = Profile(**{**params, "arch": params.get("arch") or first.arch}).fit(sample)
    except UserError as err:   # NotEnoughData and the like: this binary only
        pooled.error = err.message
        return pooled
    profile.vocabulary_ = PooledVocabulary.merge(orders, per_host)
    profile.training_summary_ = {
        **profile.training_summary_,
        "distinct_syscalls": len(profile.vocabulary_.symbols_),
        "distinct_ngrams": {str(n): len(c) for n, c in profile.vocabulary_.codes_.items()},
    }
    pooled.profile = profile
    pooled.touched = pooled_touched([(host, sl.touched) for host, sl in slices])
    pooled.fit_seconds = time.perf_counter() - started
    return pooled


def pooled_touched(per_host: list) -> object | None:
    """The touched sets every host's records teach, with how many hosts touched each
    item; None when no host's recordings captured them. Captured and empty (a memcached
    that touched nothing while recorded) learns empty sets: whatever it touches is new.

    Each host's times are made relative to its own first record (hosts' monotonic clocks
    do not compare), so the novelty curve reads "new items for the fleet, by minutes
    into each host's recording". Peers are not generalised to subnets: those are each
    host's own (loopback and "any client" still are). Roles come from the rows'
    `watched_parent`, so a listener is judged by what listeners touched."""
    from sysgram.models.touched import TouchedSets

    seen = [(host, first) for host, first in per_host
            if first is not None and (first.records or first.captured)]
    if not seen:
        return None
    records, hosts_of, longest = [], {}, 0
    for host, first in seen:
        start, end = first.span
        longest = max(longest, end - start)
        for record in first.first_records():
            ts = int(record.get("ts_ns") or 0)
            records.append({**record, "ts_ns": ts - start + 1 if ts and start else ts})
        for key in first.keys:
            hosts_of.setdefault(key, set()).add(host)
    sets = TouchedSets(networks=()).fit(records, span_ns=(1, longest + 1))
    sets.records_ = sum(first.records for _, first in seen)
    sets.hosts_ = len({host for host, _ in seen})
    sets.item_hosts_ = {f"{name} {key}": len(hosts) for (name, key), hosts in hosts_of.items()}
    return sets


def merged_sample(samples: list[Sample], budget: int) -> Sequences:
    """The chunks with the smallest keys over all samples, at most `budget` calls."""
    keys = np.array([k for s in samples for k in s.keys], dtype=np.float64)
    chunks = [c for s in samples for c in s.chunks]
    order = np.argsort(keys, kind="stable")
    sizes = np.array([len(chunks[i]) for i in order], dtype=np.int64)
    keep = np.sort(order[: int(np.searchsorted(np.cumsum(sizes), budget, side="right"))])
    return Sequences.from_list([chunks[i] for i in keep])
