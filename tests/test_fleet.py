"""Fleet training: pooled profiles from Parquet, on a Dask LocalCluster and in process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import start_recorder

from sysgram.cli import main
from sysgram.datasets.parquet import ParquetRecordingWriter
from sysgram.datasets.parquet_read import TRAINING_COLUMNS, table_pieces
from sysgram.features import NgramVocabulary, Sequences
from sysgram.fleet.training import FleetOptions, fit_cost, train_fleet
from sysgram.models.profile import Profile

SHA = "ab" * 32
RARE = np.array([300, 301, 302], np.uint16)   # calls only host h0 makes
SEAM = (310, 311)   # h1 makes 310 at the end of one file and 311 at the start of the next


def write_fleet(root, hosts: int = 3, threads: int = 30, seed: int = 0,
                touched_captured: bool = True) -> None:
    """`hosts` hosts running one binary ("srv"): replays of one random stream, and h0
    alone also making the RARE calls once. Rows reach several files per host; h1 writes a
    file at every flush, so its traces span files (and SEAM's bigram spans two)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 40, size=3000).astype(np.uint16)
    for h in range(hosts):
        w = ParquetRecordingWriter(root, arch="x86_64", source="test", host=f"h{h}",
                                   max_calls=1 if h == 1 else 5000,
                                   touched_captured=touched_captured)
        for t in range(1, threads + 1):
            w.start_thread(t, pid=1, comm="srv", exe="/usr/sbin/srv", exe_sha256=SHA)
            start = int(rng.integers(0, 2000))
            w.append(t, base[start:start + 400])
            if h == 1 and t == 1:
                w.append(t, np.array(SEAM[:1], np.uint16))
            w.flush()
            if h == 0 and t == 1:
                w.append(t, RARE)
            if h == 1 and t == 1:
                w.append(t, np.array(SEAM[1:], np.uint16))
            w.append(t, base[start + 400:start + 800])
            w.end_thread(t)
        w.close()


def single_process_pieces(root) -> Sequences:
    """Every loss-free piece, read in one go with pyarrow (no sysgram.fleet)."""
    files = sorted(root.rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=TRAINING_COLUMNS) for f in files])
    pieces = table_pieces(table)
    return Sequences(pieces.values, pieces.offsets)


def assert_same_vocabulary(pooled, single) -> None:
    assert np.array_equal(pooled.symbols_, single.symbols_)
    for n in single.orders:
        assert np.array_equal(pooled.codes_[n], single.codes_[n]), f"order {n}"


def test_pooled_vocabulary_counts_hosts_and_equals_a_single_fit(tmp_path):
    write_fleet(tmp_path / "pq")
    result = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0))
    (pooled,) = result.binaries
    assert (pooled.hosts, pooled.sha256, pooled.exe, pooled.error) == (3, SHA, "/usr/sbin/srv",
                                                                      None)
    assert pooled.calls == 3 * 30 * 800 + 3 + 2
    # nothing sampled away; the fit also sees each trace's calls before a file seam again
    assert pooled.sampled_calls >= pooled.calls
    vocab = pooled.profile.vocabulary_
    single = NgramVocabulary((1, 2, 3)).fit(single_process_pieces(tmp_path / "pq"))
    assert_same_vocabulary(vocab, single)
    assert vocab.n_hosts_ == 3
    assert vocab.hosts_seen(RARE.astype(np.int64), 1).tolist() == [1, 1, 1]
    common = vocab.codes_[1][0]
    assert vocab.hosts_seen(np.array([common, 999]), 1).tolist() == [3, 0]
    rare_first = vocab.rarest(Sequences.from_list([RARE]), 2)[1]
    assert rare_first.tolist() == [1, 1]         # seen on 1 of 3 hosts, not "never"
    seam = vocab.rarest(Sequences.from_list([np.array(SEAM, np.uint16)]), 2)[1]
    assert seam.tolist() == [1]                  # joined across h1's two files


def test_an_alert_of_a_pooled_profile_says_on_how_many_hosts_its_rarest_ngrams_were_seen(
        tmp_path):
    from sysgram.syscalls import table
    from sysgram.watch.alerts import Alert, ProcessContext
    from sysgram.watch.explain import explain_window
    from sysgram.watch.render import alert_text

    write_fleet(tmp_path / "pq")
    (pooled,) = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0)).binaries
    profile = pooled.profile
    common = pooled.profile.vocabulary_.symbols_[:2].astype(np.uint16)
    window = np.concatenate([np.resize(common, profile.window_ - 4), RARE, [299]])
    exp = explain_window(profile, window.astype(np.uint16))
    names = table(profile.arch_)
    assert exp.fleet["hosts"] == 3
    rarest = exp.fleet["rarest_seen"]
    assert rarest[0] == {"ngram": [names.name(c) for c in RARE], "hosts": 1}   # h0's alone
    assert all(r["hosts"] >= 1 for r in rarest)     # unseen ones are listed as unseen
    alert = Alert(1, 5, "srv", ProcessContext(7, 1, "srv", "/usr/sbin/srv", None, 7),
                  7, 2.0, 1.0, exp)
    assert alert.record()["fleet"] == exp.fleet
    text = alert_text(alert)
    assert "seen on none of 3 hosts" in text and "on 1 of 3 hosts" in text
    # A profile of one host says nothing of a fleet.
    single = Profile().fit(Sequences.from_list([np.resize(common, 2000)] * 30))
    assert explain_window(single, np.resize(common, single.window_)).fleet is None


def test_a_fit_budget_samples_windows_but_keeps_the_whole_vocabulary(tmp_path):
    write_fleet(tmp_path / "pq", hosts=3, threads=60)
    result = train_fleet([str(tmp_path / "pq")],
                         FleetOptions(params={}, workers=0, fit_calls=30_000))
    (pooled,) = result.binaries
    assert pooled.sampled_calls <= 30_000 < pooled.calls
    assert pooled.profile.training_summary_["syscalls"] == pooled.sampled_calls
    single = NgramVocabulary((1, 2, 3)).fit(single_process_pieces(tmp_path / "pq"))
    assert_same_vocabulary(pooled.profile.vocabulary_, single)


def test_a_corrupt_partition_is_named_and_the_rest_trains(tmp_path, capsys):
    root = tmp_path / "pq"
    write_fleet(root)
    broken = sorted((root / "host=h1" / "binary_name=srv").glob("*.parquet"))
    for f in broken:                              # every file of h1: the whole partition
        f.write_bytes(f.read_bytes()[:200])
    code = main(["train", "--from", str(root), "--store", str(tmp_path / "store"),
                 "--workers", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for f in broken:
        assert f"skipped the unreadable Parquet file {f}" in err
    assert "pooled     srv" in out and " 2 hosts," in out
    assert (tmp_path / "store" / "srv.profile").exists()


def test_profiles_export_import_copies_the_checked_envelope(tmp_path, capsys):
    write_fleet(tmp_path / "pq")
    assert main(["train", "--from", str(tmp_path / "pq"), "--store", str(tmp_path / "central"),
                 "--workers", "0"]) == 0
    exported = tmp_path / "srv.profile"
    assert main(["profiles", "export", "srv", str(exported), "--store",
                 str(tmp_path / "central")]) == 0
    assert exported.read_bytes() == (tmp_path / "central" / "srv.profile").read_bytes()
    assert main(["profiles", "import", str(exported), "--store", str(tmp_path / "host")]) == 0
    assert (tmp_path / "host" / "srv.profile").read_bytes() == exported.read_bytes()
    capsys.readouterr()
    assert main(["profiles", "import", str(exported), "--store", str(tmp_path / "host")]) == 2
    assert "--replace" in capsys.readouterr().err
    tampered = tmp_path / "tampered.profile"
    tampered.write_bytes(exported.read_bytes()[:-1] + b"\0")
    tampered.chmod(0o600)
    assert main(["profiles", "import", str(tampered), "--store", str(tmp_path / "h2")]) == 2
    assert "does not match the sha256" in capsys.readouterr().err
    exported.chmod(0o666)                         # others could have planted a payload
    assert main(["profiles", "import", str(exported), "--store", str(tmp_path / "h3")]) == 2
    assert "users other than root or its owner can write it" in capsys.readouterr().err
    assert not (tmp_path / "h2" / "srv.profile").exists()
    assert not (tmp_path / "h3" / "srv.profile").exists()


@pytest.mark.kernel
@pytest.mark.slow
def test_a_local_cluster_trains_from_record_parquet_like_one_process(build_workload, tmp_path):
    exe = build_workload("pattern")
    root = tmp_path / "pq"
    recorder = start_recorder("--proc", exe.name, "--format", "parquet", "--out", str(root))
    for _ in range(3):                    # 3 runs x (4 threads + a forked child)
        subprocess.run([exe, "4", "3000", "1", "0"], check=True)
    time.sleep(0.5)
    recorder.send_signal(signal.SIGTERM)
    _, err = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, err
    result = train_fleet([str(root)], FleetOptions(params={}, workers=2, processes=False))
    assert result.runner == "LocalCluster of 2 workers" and not result.failures
    (pooled,) = result.binaries
    assert pooled.error is None and pooled.sha256 and pooled.calls >= 3 * 5 * 3000
    pieces = single_process_pieces(root)
    assert pooled.calls == int(pieces.offsets[-1])
    single = Profile().fit(pieces)
    assert_same_vocabulary(pooled.profile.vocabulary_, single.vocabulary_)
    assert pooled.profile.training_summary_["distinct_ngrams"] == \
        single.training_summary_["distinct_ngrams"]


def test_an_fsspec_url_trains_like_a_local_path(tmp_path):
    import fsspec

    write_fleet(tmp_path / "pq")
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "pq"), "/fleet-test", recursive=True)
    try:
        remote = train_fleet(["memory://fleet-test"], FleetOptions(params={}, workers=0))
    finally:
        fs.rm("/fleet-test", recursive=True)
    local = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0))
    assert remote.hosts == 3 and remote.partitions == local.partitions
    assert_same_vocabulary(remote.binaries[0].profile.vocabulary_,
                           local.binaries[0].profile.vocabulary_)


def test_programs_a_binary_starts_pool_into_its_own_profile_not_one_each(tmp_path):
    """sshd's login shells, a worker's `getent`: one profile per watched binary, as
    `train --from DATASET` makes and `watch` uses, whose vocabulary holds their calls."""
    rng = np.random.default_rng(5)
    shell = np.array([320, 321, 322, 323] * 50, np.uint16)     # calls only the child makes
    for h in range(2):
        w = ParquetRecordingWriter(tmp_path / "pq", arch="x86_64", source="test", host=f"h{h}")
        for t in range(1, 21):
            w.start_thread(t, pid=1, comm="srv", exe="/usr/sbin/srv", exe_sha256=SHA,
                           target="srv")
            w.append(t, rng.integers(0, 40, size=800).astype(np.uint16))
            w.end_thread(t)
        w.start_thread(99, pid=99, ppid=1, comm="sh", exe="/bin/sh", exe_sha256="cd" * 32,
                       target="srv")
        w.append(99, shell)
        w.end_thread(99)
        w.close()
    result = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0))
    (pooled,) = result.binaries
    assert (pooled.sha256, pooled.exe, pooled.comm, pooled.hosts) == (SHA, "/usr/sbin/srv",
                                                                      "srv", 2)
    assert set(shell.tolist()) <= set(pooled.profile.vocabulary_.symbols_.tolist())


def test_the_largest_binary_is_summarised_and_fitted_first_and_results_come_by_name(
        tmp_path, monkeypatch):
    """Fits are the fleet's long tasks: the largest one starts first, so a cluster's last
    task is a short one (in name order, the largest could start last on an idle cluster)."""
    from sysgram.fleet import training

    rng = np.random.default_rng(6)
    w = ParquetRecordingWriter(tmp_path / "pq", arch="x86_64", source="test", host="h0")
    for t, (name, calls) in enumerate([("aaa", 300), ("zzz", 3000), ("mmm", 1000)], 1):
        w.start_thread(t, pid=t, comm=name, exe=f"/usr/sbin/{name}", exe_sha256=SHA,
                       target=name)
        w.append(t, rng.integers(0, 40, size=calls).astype(np.uint16))
        w.end_thread(t)
    w.close()
    order: list[str] = []
    original = training.summarize_partition

    def noting(part, plan):
        order.append(part.binary_name)
        return original(part, plan)

    monkeypatch.setattr(training, "summarize_partition", noting)
    result = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0))
    assert order == ["zzz", "mmm", "aaa"]
    assert [b.binary_name for b in result.binaries] == ["aaa", "mmm", "zzz"]


FIT_PROBE = """
import resource, sys
import numpy as np
from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import Profile
rng = np.random.default_rng(0)
chain = random_chain(np.arange(3, 60), rng)
n = int(sys.argv[1]) // 20_000
seqs = Sequences.from_list([sample_chain(chain, 20_000, rng) for _ in range(n)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Profile(**({"detector": sys.argv[2]} if sys.argv[2] != "-" else {})).fit(seqs)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("detector", [None, "ocsvm"])
def test_a_fit_stays_within_what_the_fleet_budgets_for_it(detector):
    # The fleet sizes each fit from the worker's memory limit with these costs; a fit
    # that grows past them gets its worker killed at the limit (as 2.8 M calls did).
    calls = 1_000_000
    out = subprocess.run([sys.executable, "-c", FIT_PROBE, str(calls), detector or "-"],
                         capture_output=True, text=True, check=True)
    grown = int(out.stdout.strip())
    fixed, per_call = fit_cost(detector)
    assert grown <= fixed + per_call * calls, (grown, grown / calls)


def write_touching_fleet(root, hosts: int = 3) -> None:
    """`hosts` hosts of "srv" opening its config and connecting to its database; h0
    alone also reads a rare file; every call stream the same."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 40, size=2000).astype(np.uint16)
    for h in range(hosts):
        w = ParquetRecordingWriter(root, arch="x86_64", source="test", host=f"h{h}")
        for t in range(1, 31):
            w.start_thread(t, pid=1, comm="srv", exe="/usr/sbin/srv", exe_sha256=SHA)
            w.append(t, base[t * 20:t * 20 + 800])
            ts = (1000 + h) * 10**9 + t * 10**8      # each host its own monotonic clock
            w.touched(t, 1, ts, path="/etc/srv.conf", kind="open", syscall=257, flags=0)
            w.touched(t, 1, ts + 1, kind="connect", syscall=42, result=0, protocol="tcp",
                      peer={"family": "ipv4", "address": "127.0.0.1", "port": 5432})
            if h == 0 and t == 5:
                w.touched(t, 1, ts + 2, path="/srv/rare\udcff", kind="open", syscall=257)
            w.end_thread(t)
        w.close()


def test_a_pooled_profile_learns_what_every_host_touched_and_counts_hosts_per_item(tmp_path):
    from fakes import FakeProfile

    from sysgram.collector.items import Peer, ThreadStart, Touched
    from sysgram.syscalls import table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine
    from sysgram.watch.touched import TouchedWatch, touched_text

    write_touching_fleet(tmp_path / "pq")
    (pooled,) = train_fleet([str(tmp_path / "pq")], FleetOptions(params={}, workers=0)).binaries
    sets = pooled.touched
    assert sets.hosts_ == 3 and sets.records_ == 3 * 30 * 2 + 1
    assert sets.item_hosts_ == {"files /etc/srv.conf": 3, "files /srv/rare\udcff": 1,
                                "peers connect tcp loopback:5432": 3}
    assert sets.new_items([{"kind": "open", "path": "/srv/rare\udcff"}]) == []
    # Three hosts' clocks made relative: the curve spans seconds, not 2,000 s of offsets.
    assert len(sets.novelty_curve_) == 1
    watch = TouchedWatch(sets, "srv")
    eng = WatchEngine(ThresholdScorer(FakeProfile()), WatchConfig(binary="srv", warmup_s=0),
                      table("x86_64"), touched=watch)
    start = ThreadStart(7, 7, 1, "srv", "/usr/sbin/srv", None, 0)
    known = Touched(tid=7, pid=7, ts_ns=1, kind="connect", syscall=42, result=0,
                    protocol="tcp", peer=Peer("ipv4", "127.0.0.1", 5432))
    shadow = Touched(tid=7, pid=7, ts_ns=2, kind="open", syscall=257, path="/etc/shadow")
    (alert,) = eng.ingest([start, known, shadow])
    assert alert.record()["new"]["seen_on_hosts"] == 0
    assert alert.record()["new"]["of_hosts"] == 3
    assert "never seen on any of the 3 hosts" in touched_text(alert)


def test_a_fleet_that_touched_nothing_learns_empty_sets_one_not_captured_none(tmp_path):
    # memcached in bench_pooled: under a steady load it opened no file and made no
    # connection while recorded, so the injected connect must be new (it was missed when
    # an empty capture pooled no sets at all).
    write_fleet(tmp_path / "quiet")
    (pooled,) = train_fleet([str(tmp_path / "quiet")],
                            FleetOptions(params={}, workers=0)).binaries
    assert pooled.touched.hosts_ == 3 and pooled.touched.records_ == 0
    connect = {"kind": "connect", "result": 0, "protocol": "tcp",
               "peer": {"family": "ipv4", "address": "127.0.0.1", "port": 4444}}
    assert [s for s, _, _ in pooled.touched.new_items([connect])] == ["peers"]
    # Exported from recordings that could not capture them: no sets, watch only lists.
    write_fleet(tmp_path / "old", touched_captured=False)
    (pooled,) = train_fleet([str(tmp_path / "old")], FleetOptions(params={}, workers=0)).binaries
    assert pooled.touched is None


def test_a_pooled_listener_is_judged_by_what_listeners_touched(tmp_path):
    """sshd in bench_pooled: the listener reading /etc/shadow went unseen, as the role-less
    pooled sets knew the file from the sessions. The rows' watched_parent gives roles."""
    root = tmp_path / "pq"
    for h in range(2):
        w = ParquetRecordingWriter(root, arch="x86_64", source="test", host=f"h{h}")
        w.start_thread(1, pid=1, comm="srv", exe="/usr/sbin/srv", exe_sha256=SHA,
                       watched_parent=False)
        w.start_thread(2, pid=2, ppid=1, comm="srv", exe="/usr/sbin/srv", exe_sha256=SHA,
                       watched_parent=True)
        for t in (1, 2):
            w.append(t, np.resize(np.arange(20, dtype=np.uint16), 3000))
        w.touched(1, 1, 5, kind="accept", syscall=288, result=4, protocol="tcp",
                  peer={"family": "ipv4", "address": "127.0.0.1", "port": 40000})
        w.touched(2, 2, 6, path="/etc/shadow", kind="open", syscall=257)
        for t in (1, 2):
            w.end_thread(t)
        w.close()
    (pooled,) = train_fleet([str(root)], FleetOptions(params={}, workers=0)).binaries
    sets = pooled.touched
    shadow = {"kind": "open", "path": "/etc/shadow"}
    assert sets.new_items([{**shadow, "role": "child"}]) == []
    assert [k for _, k, _ in sets.new_items([{**shadow, "role": "root"}])] == ["/etc/shadow"]
    assert sets.item_hosts_["files /etc/shadow"] == 2


def test_train_from_a_touching_fleet_saves_the_pooled_sets_and_show_lists_rare_items(
        tmp_path, capsys):
    write_touching_fleet(tmp_path / "pq")
    store = str(tmp_path / "store")
    assert main(["train", "--from", str(tmp_path / "pq"), "--store", store,
                 "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["profiles", "show", "srv", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "/etc/srv.conf" in out and "connect tcp loopback:5432" in out
    assert "pooled from 3 hosts; 1 of 3 items were touched on one host only" in out
    assert "1 of 3  files /srv/rare\\udcff" in out      # the odd byte shown escaped
