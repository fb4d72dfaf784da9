"""`sysgram eval` on the ADFA-LD dev split: the goals, the wall time, and detector variants.

usage: .venv/bin/python benchmarks/bench_eval.py [--adfa DIR] [--variants | --models]

Default: the whole eval as the CLI runs it (import, fit, score, 1,000 bootstrap
replicates, baselines) with its wall and CPU time, checked against the goals (AUC >= 0.93,
DR >= 0.60 at 5 % false alarms, <= 120 s). `--variants`: the main detector variants of
the "Detectors on ADFA-LD" table, rerun from the package code, as markdown rows.
`--models`: `eval --windows` for every `--model` (the live window profile with train's
defaults: 64-call windows every 16, the default roll-up), then the whole-thread eval, as
markdown rows; checks the window goal (default detector AUC >= 0.88) and that the
whole-thread figure is no worse than 0.887.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_AUC, GOAL_DR5, GOAL_SECONDS = 0.93, 0.60, 120.0
GOAL_WINDOWS_AUC, THREAD_AUC_BEFORE = 0.88, 0.887


def _adfa_default() -> str:
    return os.environ.get("SYSGRAM_ADFA_DIR") or str(ROOT.parent / "shared/datasets/adfa-ld-dev")


def _row(name: str, m, seconds: float) -> str:
    d = m.dr_at_far
    return (f"| {name} | {m.auc.value:.3f} [{m.auc.low:.3f}-{m.auc.high:.3f}] | "
            f"{d['0.01'].value:.2f} / {d['0.05'].value:.2f} / {d['0.10'].value:.2f} | "
            f"{seconds:.1f} s |")


def bench_eval(adfa: Path) -> int:
    from sysgram.evaluation.corpus import load_adfa
    from sysgram.evaluation.harness import run_all

    wall, cpu = time.perf_counter(), time.process_time()
    corpus = load_adfa(adfa)
    results = run_all(corpus)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print("| method | AUC [95 % CI] | DR @ 1 / 5 / 10 % FAR | fit + score |")
    print("|---|---:|---|---:|")
    for r in results:
        print(_row(f"{r.name}: {r.detector}", r.metrics, r.fit_seconds + r.score_seconds))
    main = results[0].metrics
    checks = [("AUC", main.auc.value, GOAL_AUC, ">="),
              ("DR@5%", main.dr_at_far["0.05"].value, GOAL_DR5, ">="),
              ("eval wall s", wall, GOAL_SECONDS, "<=")]
    print(f"\nwhole eval: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for name, value, goal, op in checks:
        ok = value >= goal if op == ">=" else value <= goal
        print(f"goal {name} {op} {goal}: {value:.3f} -> {'met' if ok else 'MISSED'}")
    return 0


def variants():
    """(name, make-profile-params or detector) for the main rows of the table."""
    from sysgram.evaluation.baselines import NaiveIForest, Stide
    from sysgram.models.detectors import IForestDetector, OCSVMDetector
    from sysgram.models.ensemble import FisherEnsemble, PresenceLM
    from sysgram.models.ngram_lm import NgramLanguageModel
    from sysgram.models.presence import PresenceOCSVM

    return [
        ("STIDE n=6", Stide(6)),
        ("naive IsolationForest, TF-IDF 1-3-grams (seed 0)", NaiveIForest()),
        ("n-gram LM order 6, Witten-Bell, mean NLL", NgramLanguageModel(6)),
        ("presence OCSVM 1+3-grams", PresenceOCSVM(unseen_weight=0.0)),
        ("presence OCSVM 1+3-grams + unseen-share column", PresenceOCSVM()),
        ("Fisher(presence OCSVM + LM6) [presence-lm]", PresenceLM()),
        ("Fisher(presence OCSVM with unseen column + LM6)",
         FisherEnsemble(members=(PresenceOCSVM(), NgramLanguageModel(6)))),
        ("IsolationForest on OOF (LM6 NLL, presence score), two-sided",
         IForestDetector(one_sided=False)),
        ("IsolationForest on OOF (LM6 NLL, presence score), one-sided [iforest]",
         IForestDetector()),
        ("OCSVM on OOF (LM6 NLL, presence score), two-sided [ocsvm]", OCSVMDetector()),
        ("OCSVM on OOF (LM6 NLL, presence score), one-sided", OCSVMDetector(one_sided=True)),
    ]


def window_variants():
    """(name, Profile params): window profiles (64/16) through a roll-up other than the
    default, to show what a roll-up of window scores reaches."""
    return [(f"{d}, 64/16 windows, max roll-up", {"detector": d, "rollup": "max"})
            for d in ("lm-stream", "ngram-lm", "presence", "iforest", "ocsvm")]


def bench_variants(adfa: Path) -> int:
    from sysgram.evaluation.corpus import load_adfa
    from sysgram.evaluation.harness import _finite, measure, trace_scores
    from sysgram.models.profile import Profile

    corpus = load_adfa(adfa)
    print("| variant (fit on whole training traces) | AUC [95 % CI] | DR @ 1 / 5 / 10 % FAR "
          "| fit + score |")
    print("|---|---:|---|---:|")
    for name, det in variants():
        start = time.perf_counter()
        scores = det.fit(corpus.train).score_samples(corpus.test)
        seconds = time.perf_counter() - start
        overall, _ = measure(corpus, scores, n_bootstrap=300)
        print(_row(name, overall, seconds), flush=True)
    for name, params in window_variants():
        start = time.perf_counter()
        profile = Profile(**params).fit(corpus.train)
        pieces = profile.score_threads(corpus.test)
        scores = _finite(trace_scores(pieces, corpus.test_owner, len(corpus.labels)))
        overall, _ = measure(corpus, scores, n_bootstrap=300)
        print(_row(name, overall, time.perf_counter() - start), flush=True)
    return 0


def bench_models(adfa: Path) -> int:
    from sysgram.evaluation.corpus import load_adfa
    from sysgram.evaluation.harness import run_sysgram
    from sysgram.models.defaults import DEFAULT_DETECTOR
    from sysgram.models.registry import detector_names

    corpus = load_adfa(adfa)
    print("| profile | AUC [95 % CI] | DR @ 1 / 5 / 10 % FAR | fit + score |")
    print("|---|---:|---|---:|")
    results = {}
    for name in [DEFAULT_DETECTOR] + [n for n in detector_names() if n != DEFAULT_DETECTOR]:
        r = run_sysgram(corpus, model=name, windows=True, n_bootstrap=300)
        results[name] = r.metrics
        print(_row(f"`eval --windows --model {name}`: {r.detector}", r.metrics,
                   r.fit_seconds + r.score_seconds), flush=True)
    thread = run_sysgram(corpus, n_bootstrap=300)
    print(_row(f"`eval` (thread profile): {thread.detector}", thread.metrics,
               thread.fit_seconds + thread.score_seconds))
    window_auc, thread_auc = results[DEFAULT_DETECTOR].auc.value, thread.metrics.auc.value
    print(f"\ngoal windows AUC >= {GOAL_WINDOWS_AUC} ({DEFAULT_DETECTOR}): {window_auc:.3f} -> "
          f"{'met' if window_auc >= GOAL_WINDOWS_AUC else 'MISSED'}")
    print(f"goal thread AUC no worse than {THREAD_AUC_BEFORE}: {thread_auc:.3f} -> "
          f"{'met' if thread_auc >= THREAD_AUC_BEFORE - 0.0005 else 'MISSED'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adfa", default=_adfa_default())
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--models", action="store_true")
    args = parser.parse_args()
    adfa = Path(args.adfa)
    if not adfa.is_dir():
        print(f"bench_eval: {adfa} is not a folder; give --adfa DIR or set SYSGRAM_ADFA_DIR",
              file=sys.stderr)
        return 2
    if args.models:
        return bench_models(adfa)
    return bench_variants(adfa) if args.variants else bench_eval(adfa)


if __name__ == "__main__":
    sys.exit(main())
