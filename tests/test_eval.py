"""`sysgram eval`: the ADFA-LD importer on a fixture, the harness on synthetic corpora with a
known answer, the `--json` schema, datasets with labels and losses, the HTML report, and
(with the dev split, `adfa` marker) the real dev split's reference numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sysgram.cli import main
from sysgram.datasets import DatasetWriter
from sysgram.errors import UserError
from sysgram.evaluation.corpus import load_adfa, load_datasets
from sysgram.evaluation.harness import run_all, run_baseline, run_sysgram
from sysgram.evaluation.report import write_html

N_SYMBOLS = 40


def markov_chain(seed: int) -> np.ndarray:
    """A sparse random transition matrix: each call has 3 likely successors."""
    rng = np.random.default_rng(seed)
    p = np.full((N_SYMBOLS, N_SYMBOLS), 1e-3)
    for s in range(N_SYMBOLS):
        p[s, rng.choice(N_SYMBOLS, 3, replace=False)] += rng.dirichlet(np.ones(3))
    return p / p.sum(1, keepdims=True)


def sample(chain: np.ndarray, n: int, seed: int, lo: int = 60, hi: int = 200) -> list:
    rng = np.random.default_rng(seed)
    cum = chain.cumsum(1)
    out = []
    for length in rng.integers(lo, hi, n):  # loop over traces; calls below are vectorised
        u = rng.random(length)
        ids = np.empty(length, dtype=np.int64)
        ids[0] = rng.integers(N_SYMBOLS)
        for i in range(1, length):  # test data generator only
            ids[i] = min(np.searchsorted(cum[ids[i - 1]], u[i]), N_SYMBOLS - 1)
        out.append(ids.astype(np.uint16))
    return out


NORMAL, OTHER = markov_chain(1), markov_chain(2)


def write_adfa(root: Path, n_train=300, n_val=120, n_attack=40) -> Path:
    def put(rel: str, ids) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(map(str, ids)) + " ")

    for i, ids in enumerate(sample(NORMAL, n_train, 10)):
        put(f"Training_Data_Master/UTD-{i:04d}.txt", ids)
    for i, ids in enumerate(sample(NORMAL, n_val, 11)):
        put(f"Validation_Data_Master/UVD-{i:04d}.txt", ids)
    for i, ids in enumerate(sample(OTHER, n_attack, 12)):
        family = "Alpha" if i % 2 else "Beta"
        put(f"Attack_Data_Master/{family}_{i % 3 + 1}/UAD-{i}.txt", ids)
    return root


@pytest.fixture(scope="module")
def adfa_dir(tmp_path_factory) -> Path:
    return write_adfa(tmp_path_factory.mktemp("adfa"))


@pytest.fixture(scope="module")
def corpus(adfa_dir):
    return load_adfa(adfa_dir)


def test_importer_reads_the_layout(corpus):
    assert corpus.arch == "i386"
    assert corpus.n_train_threads == 300
    assert (corpus.n_normal, corpus.n_attack) == (120, 40)
    assert corpus.attack_families() == ["Alpha", "Beta"]
    assert sorted(set(corpus.families)) == ["Alpha", "Beta", "normal"]
    assert len(corpus.test) == len(corpus.labels)  # no losses: one piece per trace
    assert corpus.notes == []


def test_importer_refuses_a_corpus_without_attacks(tmp_path):
    (tmp_path / "Training_Data_Master").mkdir()
    (tmp_path / "Training_Data_Master" / "a.txt").write_text("1 2 3 ")
    with pytest.raises(UserError, match="Attack_Data_Master"):
        load_adfa(tmp_path)


def test_sysgram_separates_two_markov_chains(corpus):
    result = run_sysgram(corpus, n_bootstrap=200)
    assert result.metrics.auc.value > 0.97
    assert result.metrics.dr_at_far["0.05"].value > 0.9
    assert set(result.per_family) == {"Alpha", "Beta"}
    assert result.config["profile"] == "threads"
    assert len(result.scores) == corpus.n_normal + corpus.n_attack
    # The alert policy at the calibrated threshold, as watch decides: every attack, and
    # no more false alarms than the target rate allows (1e-4 of 120 traces: none).
    assert result.extra["alerts"] == {"false_alarms": 0, "normal": 120, "detected": 40,
                                      "attacks": 40}


def test_baselines_run_in_the_same_harness(corpus):
    stide = run_baseline(corpus, "stide", n_bootstrap=200)
    assert stide.metrics.auc.value > 0.9  # the other chain's 6-grams are unseen
    naive = run_baseline(corpus, "iforest-naive", n_bootstrap=200)
    # Blind to n-grams it never saw (the vocabulary is training's), it still sees the
    # shared n-grams' frequencies shift, and ranks below STIDE.
    assert 0.6 < naive.metrics.auc.value < stide.metrics.auc.value


def test_window_profile_is_evaluated_through_its_rollup(corpus):
    result = run_sysgram(corpus, windows=True, n_bootstrap=200)
    assert result.config["profile"] == "windows"
    assert result.config["window"] < 1000
    assert result.metrics.auc.value > 0.9


def test_json_schema(adfa_dir, capsys):
    code = main(["eval", str(adfa_dir), "--format", "adfa-ld", "--json",
                 "--bootstrap", "200"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("auc", "dr_at_far", "per_family", "n_normal", "n_attack", "detector"):
        assert key in out
    assert set(out["dr_at_far"]) == {"0.01", "0.05", "0.10"}
    assert isinstance(out["auc"], float) and 0.9 < out["auc"] <= 1.0
    assert out["auc_ci95"][0] <= out["auc"] <= out["auc_ci95"][1]
    assert (out["n_normal"], out["n_attack"]) == (120, 40)
    assert set(out["per_family"]) == {"Alpha", "Beta"}
    assert set(out["per_family"]["Alpha"]["dr_at_far"]) == {"0.01", "0.05", "0.10"}
    assert [m["method"] for m in out["methods"]] == ["sysgram", "stide", "iforest-naive"]


def test_text_output_and_report(adfa_dir, tmp_path, capsys):
    report = tmp_path / "eval.html"
    code = main(["eval", str(adfa_dir), "--format", "adfa-ld", "--bootstrap", "100",
                 "--no-baselines", "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "AUC [95% CI]" in out and "Alpha" in out and "stide" not in out
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 2  # ROC + one distribution
    assert "<table>" in page and "Beta" in page


def test_cli_errors_are_one_sentence(adfa_dir, tmp_path, capsys):
    assert main(["eval", str(adfa_dir), "--format", "nope"]) == 2
    assert main(["eval", str(tmp_path / "missing"), "--format", "adfa-ld"]) == 2
    assert main(["eval", str(adfa_dir), "--bootstrap", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("sysgram: ") == 3 and "Traceback" not in err


def _write_dataset(path: Path, traces: list, *, label=None, split=None, family=None,
                   gap_in_first=False) -> Path:
    with DatasetWriter(path, arch="x86_64", source="test") as w:
        for tid, ids in enumerate(traces, 1):
            w.start_thread(tid, pid=tid, label=label, split=split, family=family)
            if gap_in_first and tid == 1:
                w.append(tid, ids[: len(ids) // 2])
                w.gap(tid, 7)
                w.append(tid, ids[len(ids) // 2 :])
            else:
                w.append(tid, ids)
            w.end_thread(tid)
    return path


def test_datasets_train_normal_attack(tmp_path):
    train = _write_dataset(tmp_path / "train", sample(NORMAL, 300, 20))
    normal = _write_dataset(tmp_path / "normal", sample(NORMAL, 60, 21), gap_in_first=True)
    attack = _write_dataset(tmp_path / "attack", sample(OTHER, 20, 22))
    corpus = load_datasets(train=[train], normal=[normal], attack=[attack])
    assert (corpus.n_train_threads, corpus.n_normal, corpus.n_attack) == (300, 60, 20)
    assert corpus.attack_families() == ["attack"]  # the dataset's name
    assert len(corpus.test) == 81  # the lossy thread is two pieces
    assert any("lost events" in n for n in corpus.notes)
    results = run_all(corpus, n_bootstrap=100)
    assert results[0].metrics.auc.value > 0.95


def test_datasets_with_their_own_labels(tmp_path):
    labelled = tmp_path / "labelled"
    traces = sample(NORMAL, 300, 30) + sample(NORMAL, 40, 31) + sample(OTHER, 15, 32)
    with DatasetWriter(labelled, arch="x86_64", source="test") as w:
        for tid, ids in enumerate(traces, 1):
            split, label = (("train", "normal") if tid <= 300 else
                            ("validation", "normal") if tid <= 340 else ("attack", "attack"))
            w.start_thread(tid, pid=tid, label=label, split=split,
                           family="Gamma" if label == "attack" else None)
            w.append(tid, ids)
            w.end_thread(tid)
    corpus = load_datasets(labelled=[labelled])
    assert (corpus.n_train_threads, corpus.n_normal, corpus.n_attack) == (300, 40, 15)
    assert corpus.attack_families() == ["Gamma"]


def test_too_few_training_threads_says_how_many(tmp_path):
    train = _write_dataset(tmp_path / "train", sample(NORMAL, 20, 40))
    normal = _write_dataset(tmp_path / "normal", sample(NORMAL, 10, 41))
    attack = _write_dataset(tmp_path / "attack", sample(OTHER, 5, 42))
    corpus = load_datasets(train=[train], normal=[normal], attack=[attack])
    with pytest.raises(UserError, match="only 20 normal training threads"):
        run_sysgram(corpus, n_bootstrap=100)


def test_missing_attacks_is_a_user_error(tmp_path):
    train = _write_dataset(tmp_path / "train", sample(NORMAL, 5, 50))
    normal = _write_dataset(tmp_path / "normal", sample(NORMAL, 5, 51))
    with pytest.raises(UserError, match="both normal and attack"):
        load_datasets(train=[train], normal=[normal])


@pytest.mark.adfa
@pytest.mark.slow
def test_adfa_dev_split_reference_numbers(tmp_path, adfa_dev_split):
    """STIDE n=6 reproduces the reference exactly; sysgram stays far ahead of it."""
    corpus = load_adfa(adfa_dev_split)
    assert (corpus.n_train_threads, corpus.n_normal, corpus.n_attack) == (833, 2186, 377)
    results = {r.name: r for r in run_all(corpus, n_bootstrap=200)}
    stide = results["stide"].metrics
    assert stide.auc.value == pytest.approx(0.833, abs=0.0015)
    assert stide.dr_at_far["0.05"].value == pytest.approx(0.21, abs=0.006)
    assert results["iforest-naive"].metrics.auc.value < 0.55  # at or below chance
    sysgram = results["sysgram"].metrics
    assert sysgram.auc.value > 0.87
    assert sysgram.dr_at_far["0.10"].value > 0.5
    write_html(corpus, list(results.values()), tmp_path / "adfa.html")
