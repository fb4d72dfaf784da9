"""`sysgram train --proc NAME` on a live process, for real (needs the kernel)."""

import json
import subprocess

import pytest

from sysgram.cli import main
from sysgram.models.store import ProfileStore, file_sha256


@pytest.mark.kernel
def test_train_live_records_fits_and_saves(build_workload, tmp_path, capsys):
    binary = build_workload("victim")
    comm = binary.name
    proc = subprocess.Popen([str(binary), "0"], stdout=subprocess.DEVNULL)
    try:
        store = tmp_path / "store"
        code = main(["train", "--proc", comm, "--duration", "8s", "--store", str(store)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "saved" in captured.out
    header = ProfileStore(store).header(comm)
    (source,) = header["training"]["sources"]
    assert source["kind"] == "live" and source["syscalls"] > 0
    assert header["binary"]["path"] == str(binary)
    assert header["binary"]["sha256"] == file_sha256(binary)
    assert main(["profiles", "show", comm, "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == comm


@pytest.mark.kernel
def test_train_live_without_the_process_says_so(tmp_path, capsys):
    code = main(["train", "--proc", "nosuchproc1234", "--duration", "1s",
                 "--store", str(tmp_path / "s")])
    assert code == 2
    assert "no process named 'nosuchproc1234'" in capsys.readouterr().err


@pytest.mark.kernel
@pytest.mark.slow
def test_until_stable_stops_when_novelty_settles_and_says_when_it_does_not(
    build_workload, tmp_path, capsys
):
    binary = build_workload("victim")
    proc = subprocess.Popen([str(binary), "0"], stdout=subprocess.DEVNULL)
    store = str(tmp_path / "store")
    try:
        # Too short to ever see 1,000 windows: it must say loudly that it never settled.
        assert main(["train", "--proc", binary.name, "--duration", "8s", "--until-stable",
                     "--store", store]) == 0
        assert "never settled" in capsys.readouterr().err
        # The victim's loop is regular: novelty settles long before 60 s.
        assert main(["train", "--proc", binary.name, "--duration", "60s", "--until-stable",
                     "--stable-for", "3s", "--store", store]) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    err = capsys.readouterr().err
    assert "novelty settled" in err
    (source,) = ProfileStore(store).header(binary.name)["training"]["sources"]
    assert source["stable"] is True and source["seconds"] < 50
