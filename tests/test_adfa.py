"""ADFA-LD: the parser, import/export round trip, clear errors, and the real dev split."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from sysgram.datasets import Dataset, export_adfa, import_adfa, read_adfa
from sysgram.datasets.adfa import ids_to_text
from sysgram.errors import UserError

# relative path -> content, written by the tests (never the real corpus).
FIXTURE = {
    "Training_Data_Master/UTD-0001.txt": "6 6 63 6 42 120 ",
    "Training_Data_Master/UTD-0002.txt": "3 3 3 4 ",
    "Training_Data_Master/UTD-0010.txt": "5\n3 265\n",  # newlines and no trailing space
    "Validation_Data_Master/UVD-0001.txt": "340 0 1 ",
    "Validation_Data_Master/UVD-0002.txt": "\t 102   102 ",
    "Attack_Data_Master/Adduser_1/UAD-Adduser-1-1.txt": "11 11 5 ",
    "Attack_Data_Master/Adduser_10/UAD-Adduser-10-7.txt": "195 ",
    "Attack_Data_Master/Adduser_2/UAD-Adduser-2-3.txt": "4 4 4 4 4 ",
    "Attack_Data_Master/Hydra_FTP_1/UAD-Hydra-FTP-1-2.txt": "102 3 ",
}


def write_corpus(root: Path, files: dict[str, str] = FIXTURE) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def test_parser_reads_numbers_labels_families_in_natural_order(tmp_path):
    traces = read_adfa(write_corpus(tmp_path / "adfa"))
    assert [t.source for t in traces] == [
        "Training_Data_Master/UTD-0001.txt", "Training_Data_Master/UTD-0002.txt",
        "Training_Data_Master/UTD-0010.txt", "Validation_Data_Master/UVD-0001.txt",
        "Validation_Data_Master/UVD-0002.txt",
        "Attack_Data_Master/Adduser_1/UAD-Adduser-1-1.txt",
        "Attack_Data_Master/Adduser_2/UAD-Adduser-2-3.txt",
        "Attack_Data_Master/Adduser_10/UAD-Adduser-10-7.txt",
        "Attack_Data_Master/Hydra_FTP_1/UAD-Hydra-FTP-1-2.txt",
    ]
    for t in traces:
        assert t.ids.dtype == np.uint16 and t.arch == "i386"
        assert t.ids.tolist() == numbers(FIXTURE[t.source])
    labels = [(t.label, t.split, t.family) for t in traces]
    assert labels[:3] == [("normal", "train", None)] * 3
    assert labels[3:5] == [("normal", "validation", None)] * 2
    assert labels[5:] == [("attack", "attack", "Adduser")] * 3 + [("attack", "attack",
                                                                    "Hydra_FTP")]
    assert len({t.tid for t in traces}) == len(traces)


def test_import_export_round_trip_is_byte_identical(tmp_path):
    src = write_corpus(tmp_path / "adfa", {k: " ".join(v.split()) + " "
                                           for k, v in FIXTURE.items()})
    ds = import_adfa(src, tmp_path / "ds")
    assert ds.arch == "i386" and ds.warnings == [] and len(ds.threads) == len(FIXTURE)
    assert ds.summary()["families"] == {"Adduser": 3, "Hydra_FTP": 1}
    assert export_adfa(Dataset.open(tmp_path / "ds"), tmp_path / "out") == len(FIXTURE)
    for rel in FIXTURE:
        assert (tmp_path / "out" / rel).read_bytes() == (src / rel).read_bytes()
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*.txt")) == sorted(FIXTURE)


def test_unlabelled_recording_exports_to_one_folder_and_reads_back(tmp_path):
    from sysgram.datasets import DatasetWriter

    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.start_thread(10, pid=10, comm="ng/inx\x1b")  # a name that is no file name
        w.append(10, np.array([0, 1, 59, 231]))
        w.start_thread(11, pid=10, comm="nginx")  # no syscalls: skipped
    n = export_adfa(Dataset.open(tmp_path / "ds"), tmp_path / "out")
    files = list((tmp_path / "out").iterdir())
    assert n == 1 and [f.name for f in files] == ["ng_inx_-10-10-1.txt"]
    assert files[0].read_text() == "0 1 59 231 "
    (t,) = read_adfa(tmp_path / "out", arch="x86_64")
    assert t.ids.tolist() == [0, 1, 59, 231] and t.label is None and t.arch == "x86_64"


def test_export_refuses_a_non_empty_folder(tmp_path):
    ds = import_adfa(write_corpus(tmp_path / "adfa"), tmp_path / "ds")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty folder"):
        export_adfa(ds, tmp_path / "out")


def test_ids_to_text_matches_python_formatting():
    ids = np.array([0, 9, 10, 99, 100, 999, 1000, 65535], dtype=np.uint16)
    assert ids_to_text(ids) == b"".join(f"{n} ".encode() for n in ids.tolist())
    assert ids_to_text(np.zeros(0, dtype=np.uint16)) == b""


@pytest.mark.parametrize("rel, content, words", [
    ("Training_Data_Master/UTD-0002.txt", "3 3\n3 x4 ", r"UTD-0002.txt line 2, column 3: "
     r"unexpected character 'x'"),
    ("Training_Data_Master/UTD-0002.txt", "3 3 \0\0\0", r"UTD-0002.txt line 1, column 5: "
     r"unexpected character '\\x00'"),
    ("Validation_Data_Master/UVD-0001.txt", "1 2 -3 ", r"UVD-0001.txt line 1, column 5"),
    ("Validation_Data_Master/UVD-0001.txt", "1\n2\n\n 1024 ", r"UVD-0001.txt line 4, column 2: "
     r"1024 is above the highest syscall number"),
    ("Validation_Data_Master/UVD-0001.txt", "1 99999 ", r"UVD-0001.txt line 1, column 3: a "
     "number too large"),
    ("Training_Data_Master/UTD-0001.txt", "", r"UTD-0001.txt holds no syscall numbers"),
    ("Training_Data_Master/UTD-0001.txt", " \n ", r"UTD-0001.txt holds no syscall numbers"),
    ("Training_Data_Master/sub/UTD-9.txt", "1 ", r"sub is not a trace file"),
    ("Attack_Data_Master/loose.txt", "1 ", r"loose.txt is not an attack folder"),
    ("Attack_Data_Master/Adduser/x.txt", "1 ", r"Adduser is not an attack folder"),
])
def test_bad_files_and_layouts_name_the_file_and_line(tmp_path, rel, content, words):
    src = write_corpus(tmp_path / "adfa")
    write_corpus(src, {rel: content})
    with pytest.raises(UserError, match=words):
        read_adfa(src)
    with pytest.raises(UserError, match=words):
        import_adfa(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()  # nothing written before the corpus parsed


def test_wrong_layouts_are_explained(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        read_adfa(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="does not have the ADFA-LD layout"):
        read_adfa(tmp_path / "empty")
    write_corpus(tmp_path / "top" / "ADFA-LD")
    with pytest.raises(UserError, match="one level down; give .*ADFA-LD instead"):
        read_adfa(tmp_path / "top")


def test_an_unreadable_file_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    src = write_corpus(tmp_path / "adfa")
    os.chmod(src / "Training_Data_Master/UTD-0001.txt", 0)
    with pytest.raises(UserError, match="cannot read .*UTD-0001.txt"):
        read_adfa(src)


@pytest.mark.adfa
def test_real_dev_split_counts_and_round_trip(tmp_path, adfa_dev_split):
    start = time.perf_counter()
    traces = read_adfa(adfa_dev_split)
    parse_s = time.perf_counter() - start
    splits = [t.split for t in traces]
    assert (splits.count("train"), splits.count("validation"), splits.count("attack")) == (
        833, 2186, 377)
    assert {t.family for t in traces if t.split == "attack"} == {
        "Adduser", "Hydra_FTP", "Java_Meterpreter"}
    first = adfa_dev_split / traces[0].source
    assert traces[0].ids.tolist() == numbers(first.read_text())
    assert parse_s < 10  # a sanity bound only; the speed goal is checked in benchmarks/
    ds = import_adfa(adfa_dev_split, tmp_path / "ds")
    assert export_adfa(ds, tmp_path / "out") == 3396
    for t in traces[::97]:
        assert (tmp_path / "out" / t.source).read_bytes() == (adfa_dev_split /
                                                              t.source).read_bytes()
