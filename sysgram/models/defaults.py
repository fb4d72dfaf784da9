"""Defaults shared by `train`, `Profile()` and `eval`: what sysgram uses unless told otherwise.

Set by the detector research on ADFA-LD (docs/evaluation.md; every variant tried is in
the "Detectors on ADFA-LD" table of benchmarks/README.md).

Two jobs, two profiles of the same threads:
- **Windows** (live alerts, `watch`): a detector fast enough for >= 60 k windows/s scores
  every window of DEFAULT_WINDOW calls, DEFAULT_STRIDE apart. The default (`lm-stream`)
  also keeps a model of whole streams, and its "running" roll-up judges each thread's
  stream so far as the live verdicts do: one detector path for windows and threads.
- **Threads** (one score per thread stream: `eval`, per-thread verdicts): the research
  found that learning and scoring *whole* streams beats any roll-up of window scores by
  far (AUC 0.89 against 0.81 for the max over 64-call windows on ADFA-LD), so the thread
  profile sees each stream as one window (STREAM_WINDOW calls, longer streams are cut)
  and scores it whole with THREAD_DETECTOR. `thread_profile_params()` gives the
  `Profile(**params)` for it.
"""

DEFAULT_DETECTOR = "lm-stream"
DEFAULT_WINDOW = 64
DEFAULT_STRIDE = 16
DEFAULT_ORDERS = (1, 2, 3)
DEFAULT_ROLLUP = "running"

# A running stream (a long-lived thread) is judged whole once it holds this many calls,
# and again as it grows; shorter streams are judged at their end (short prefixes are
# noisy). The live verdicts and the "running" roll-up `eval` measures both use it.
RUNNING_CHECK_CALLS = 1024

# A detector learns a separate model of whole streams only from at least this many
# training streams (out-of-fold scores of 50 calibrate a thread threshold); with fewer,
# streams are judged by a model of windows.
MIN_STREAMS = 50

# Thread streams: the detector, and the "window" that makes a stream one sequence.
THREAD_DETECTOR = "presence-lm"
THREAD_ROLLUP = "whole"
STREAM_WINDOW = 1 << 20

# Extra detectors the registry loads lazily: name -> "module:Class".
EXTRA_DETECTORS: dict[str, str] = {
    "lm-stream": "sysgram.models.lm_stream:LMStreamDetector",
    "presence-lm": "sysgram.models.ensemble:PresenceLM",
    "presence": "sysgram.models.presence:PresenceOCSVM",
    "ngram-lm": "sysgram.models.ngram_lm:NgramLanguageModel",
}

# Extra thread roll-ups: name -> "module:function".
EXTRA_ROLLUPS: dict[str, str] = {}


def thread_profile_params(detector: str | None = None) -> dict:
    """`Profile(**thread_profile_params())`: the profile that scores whole thread streams."""
    return {
        "detector": detector or THREAD_DETECTOR,
        "window": STREAM_WINDOW,
        "stride": STREAM_WINDOW,
        "rollup": THREAD_ROLLUP,
    }
