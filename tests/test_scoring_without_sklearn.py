"""A watcher loads and scores a default profile without importing scikit-learn (issue #14:
sklearn costs the daemon ~75 MiB of RSS). Checked in a fresh interpreter, as the daemon
starts; the profile is trained here, where sklearn may be loaded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models import envelope
from sysgram.models.envelope import ProfileFileError
from sysgram.models.profile import Profile
from sysgram.models.store import ProfileStore
from sysgram.models.touched import TouchedSets
from sysgram.models.training import train_on_streams

ROOT = Path(__file__).resolve().parents[1]

# What the daemon does with a store: import the watcher, load, build an engine, score
# windows and streams (running, as the live verdicts do, and whole).
WATCHER = """
import json, sys
import numpy as np
import sysgram.watch.hostprofiles as hp
from sysgram.models.running import running_scores
from sysgram.models.store import ProfileStore

loaded = ProfileStore(sys.argv[1]).load("demo")
hp.build_engine(loaded, "demo", hp.EngineSettings())
profile, threads = loaded.profile, loaded.thread_profile
traces = loaded.traces.take(np.arange(12))
windows = profile.windows(traces).seqs
scores = profile.score_windows(windows)
profile.is_anomalous(scores, windows)
for model in (profile.detector_, threads.detector_):
    running = running_scores(model)
    for i in range(len(traces)):
        running.add(i, traces[i])
    running.update()
    running.score(list(range(len(traces))))
threads.score_threads(traces)
print(json.dumps({"sklearn": sorted(m for m in sys.modules if m.split(".")[0] == "sklearn"),
                  "thread_detector": type(threads.detector_).__name__,
                  "detector": type(profile.detector_).__name__}))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A default profile with a thread profile and touched sets, as `train` saves one."""
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(30), np.random.default_rng(1))
    traces = Sequences.from_list([sample_chain(chain, int(rng.integers(150, 600)), rng)
                                  for _ in range(300)])
    trained = train_on_streams("demo", traces, Profile(target_far=1e-3, arch="x86_64"))
    assert trained.thread_profile is not None, trained.notes
    trained.touched = TouchedSets(networks=()).fit(
        [{"kind": "open", "path": "/etc/hosts", "result": 3, "ts_ns": 1}])
    root = tmp_path_factory.mktemp("store") / "profiles"
    ProfileStore(root).save(trained)
    return root


def test_loading_and_scoring_a_default_profile_imports_no_sklearn(store):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", WATCHER, str(store)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["detector"] == "LMStreamDetector"      # the default, as `train` makes it
    assert seen["thread_detector"] == "PresenceLM"
    assert seen["sklearn"] == [], f"scoring imported {seen['sklearn'][:5]}"


def test_a_profile_saved_before_is_refused_with_retrain(store, monkeypatch):
    """A version-2 profile (it holds sklearn SVMs) is refused in one sentence, unread."""
    path = ProfileStore(store).path("demo")
    raw = path.read_bytes()
    size = int.from_bytes(raw[len(envelope.MAGIC):len(envelope.MAGIC) + 8], "big")
    start = len(envelope.MAGIC) + 8
    header = json.loads(raw[start:start + size])
    header["format_version"] = 2
    head = json.dumps(header, sort_keys=True).encode()
    old = store.parent / "old"
    old.mkdir(mode=0o700)
    (old / "demo.profile").write_bytes(envelope.MAGIC + len(head).to_bytes(8, "big") + head
                                       + raw[start + size:])
    os.chmod(old / "demo.profile", 0o600)
    with pytest.raises(ProfileFileError, match="format version 2 .*retrain") as err:
        ProfileStore(old).load("demo")
    assert "\n" not in err.value.message
