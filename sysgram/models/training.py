"""The training service: thread traces in, a trained result out; nothing printed.

`train_profile` is the one way a profile is made, by `sysgram train` (live or from
recordings, `--append`), by `watch --learn` (`retrain_with_streams`), by fleet training
(`pooled_result` wraps what sysgram.fleet fitted) and by the benchmarks that save one
(`train_on_streams`; bench_models times `Profile.fit` alone): traces ->
loss-free streams in the profile's arch -> the window profile -> the whole-thread profile
(when there are threads enough) -> binary identity. What the caller should tell the user
comes back as `notes` (information) and `warnings` (something is off);
`ProfileStore.save` takes the result whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sysgram.features import Sequences
from sysgram.models.roles import (
    merge_roles,
    multithreaded,
    once_seen_warnings,
    startup_warnings,
    summarise_roles,
)
from sysgram.models.training_data import binary_identity, to_streams, unencodable_warning


@dataclass
class TrainedProfile:
    name: str
    profile: object  # a fitted Profile (windows)
    thread_profile: object | None  # a fitted Profile over whole thread streams, or None
    streams: Sequences | None  # the loss-free streams both were fitted on (for --append)
    sources: list[dict] = field(default_factory=list)
    binary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fit_seconds: float = 0.0
    touched: object | None = None  # the learned sets (models.touched.TouchedSets), or None
    fleet: dict | None = None  # a pooled profile's fleet: hosts, how the vocabulary pooled
    roles: dict | None = None  # thread roles seen while training (models.roles)

    def meta(self) -> dict:
        """The header fields describing this result (readable without unpickling)."""
        from sysgram.models.store import profile_meta
        from sysgram.models.touched import touched_meta

        meta = profile_meta(self.profile, binary=self.binary, sources=self.sources,
                            thread_profile=self.thread_profile)
        if self.touched is not None:
            meta["touched"] = touched_meta(self.touched)
        if self.fleet is not None:
            meta["fleet"] = self.fleet
        if self.roles is not None:
            meta["roles"] = self.roles
        return meta


def train_profile(
    name: str, threads: list, profile, *, sources: list[dict] | None = None,
    previous=None, touched=None,
) -> TrainedProfile:
    """Fit `profile` (an unfitted Profile, its arch set) and a thread profile on `threads`,
    and the touched sets from `touched` (a models.touched.FirstSeen of the same processes).

    With `previous` (a LoadedProfile), its training streams come first and its sources,
    binary identity and touched sets carry over when the new data name none.
    """
    from sysgram.models.touched import fit_touched

    streams = to_streams(threads, profile.arch)
    notes, warnings = [], []
    if streams.lost_events:
        notes.append(f"{streams.lost_events:,} events were lost in the recordings; threads "
                     "are cut there.")
    if streams.unencodable:
        warnings.append(unencodable_warning(streams.unencodable, profile.arch))
    pieces, described = streams.pieces, list(sources or [])
    if previous is not None:
        pieces = Sequences.concat([previous.traces, pieces])
        described = list((previous.header.get("training") or {}).get("sources") or []) + described
    binary = binary_identity(threads, name)
    if previous is not None and not binary.get("sha256"):
        binary = previous.header.get("binary") or binary
    threaded = multithreaded(threads) or (
        previous is not None and getattr(previous.profile, "threaded_", False))
    result = _fit(name, profile, pieces, described, binary, notes, warnings, threaded=threaded)
    result.touched = fit_touched(touched, previous.touched if previous is not None else None)
    result.roles = merge_roles(previous.header.get("roles") if previous is not None else None,
                               summarise_roles(threads))
    result.warnings.extend(once_seen_warnings(result.roles) + startup_warnings(result.roles))
    return result


def train_on_streams(name: str, streams: Sequences, profile, *,
                     sources: list[dict] | None = None) -> TrainedProfile:
    """Fit on streams already loss-free and in the profile's arch (benchmarks, tests)."""
    return _fit(name, profile, streams, list(sources or []), {"name": name}, [], [])


def pooled_result(name: str, profile, *, sources: list[dict], binary: dict,
                  fleet: dict, touched=None) -> TrainedProfile:
    """A profile fitted on a fleet's pooled recordings (sysgram.fleet), as a result the
    store saves like any other, with the same calibration warnings, and the touched sets
    pooled beside it (sysgram.fleet.pooling.pooled_touched) when the recordings had any."""
    return TrainedProfile(name, profile, None, None, sources=sources, binary=binary,
                          warnings=calibration_warnings(profile.calibration_), fleet=fleet,
                          touched=touched)


def retrain_with_streams(name: str, loaded, learned: Sequences, source: dict) -> TrainedProfile:
    """`watch --learn`: the loaded profile refitted (same parameters) on its training
    streams plus the streams learned live. The thread profile is kept as it was: the
    learned streams are stitched from windows, not whole threads."""
    from sysgram.models.estimator import clone

    pieces = learned if loaded.traces is None else Sequences.concat([loaded.traces, learned])
    sources = list((loaded.header.get("training") or {}).get("sources") or []) + [source]
    binary = loaded.header.get("binary")
    result = _fit(name, clone(loaded.profile), pieces, sources,
                  binary if isinstance(binary, dict) else {}, [], [], thread_profile=False,
                  threaded=getattr(loaded.profile, "threaded_", False))
    result.thread_profile = loaded.thread_profile
    result.touched = loaded.touched
    result.roles = loaded.header.get("roles")  # learned windows carry no thread timing
    return result


def _fit(name: str, profile, pieces: Sequences, sources: list[dict], binary: dict,
         notes: list[str], warnings: list[str], thread_profile: bool = True,
         threaded: bool = False) -> TrainedProfile:
    started = time.perf_counter()
    profile.fit(pieces, threaded=threaded)
    took = time.perf_counter() - started
    warnings.extend(calibration_warnings(profile.calibration_))
    tp = _fit_thread_profile(pieces, profile, notes, threaded) if thread_profile else None
    if tp is not None and tp.thread_calibration_ is not None:
        warnings.extend(f"thread profile: {message}"
                        for message in calibration_warnings(tp.thread_calibration_))
    return TrainedProfile(name, profile, tp, pieces, sources, binary, notes, warnings, took)


def _fit_thread_profile(pieces: Sequences, profile, notes: list[str], threaded: bool):
    """The whole-thread profile beside the window one, when there are threads enough.

    It is the detector `sysgram eval` measures (defaults.thread_profile_params), with the
    window profile's target false-alarm rate: each thread stream is scored whole. It
    calibrates on held-out threads, so it needs a few hundred of them.
    """
    from sysgram.models.defaults import thread_profile_params
    from sysgram.models.profile import Profile
    from sysgram.models.threshold import DegenerateScores

    thread_profile = Profile(**thread_profile_params(), arch=profile.arch_,
                             target_far=profile.target_far)
    need = thread_profile.min_windows()
    if len(pieces) < need:
        notes.append(f"thread profile: not fitted, {len(pieces):,} thread streams where it "
                     f"needs {need:,}; record longer, or more processes, to get one.")
        return None
    started = time.perf_counter()
    try:
        thread_profile.fit(pieces, threaded=threaded)
    except DegenerateScores as err:
        notes.append(f"thread profile: not fitted; {err.message}")
        return None
    notes.append(f"thread profile: {thread_profile.detector_name_} on {len(pieces):,} whole "
                 f"thread streams in {time.perf_counter() - started:.1f}s")
    return thread_profile


def calibration_warnings(calibration: dict) -> list[str]:
    """What the reachability check changed or found, for the user (profile.py)."""
    out = []
    lowered = calibration.get("lowered_to_reach")
    if lowered:
        out.append(
            f"the calibrated threshold {lowered['was']:.6g} was above the score of "
            f"{_PROBES[lowered['probe']]} ({lowered['probe_score']:.6g}); lowered to "
            f"{calibration['threshold']:.6g} so they alert ({lowered['held_out_above']} "
            "held-out normal windows score above it; the novelty rule keeps them quiet).")
    spliced = calibration.get("spliced_below_threshold")
    if spliced:
        out.append(
            f"{_PROBES['spliced']} score {spliced['probe_score']:.6g}, below the threshold "
            f"{calibration['threshold']:.6g}, and lowering it would put "
            f"{spliced['held_out_above']} held-out normal windows above it: an attack that "
            "adds only a few new calls to otherwise normal behaviour may not alert with this "
            "detector (`sysgram eval` compares detectors).")
    return out


_PROBES = {
    "foreign": "windows made only of calls this binary never made",
    "spliced": "normal windows with a few calls this binary never made spliced in",
}
