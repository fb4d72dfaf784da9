"""Hostile ADFA-LD *layouts* (the datasets' own fuzz covers file contents): odd entries
where traces or folders should be give one sentence naming the entry, never a hang.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sysgram.cli import main
from sysgram.datasets import read_adfa
from sysgram.errors import UserError


def _fifo(root: Path, training: Path) -> str:
    os.mkfifo(training / "UTD-0002.txt")
    return "UTD-0002.txt"


def _symlink_loop(root: Path, training: Path) -> str:
    (training / "loop").symlink_to(training)
    return "loop"


def _subfolder(root: Path, training: Path) -> str:
    (training / "sub").mkdir()
    (training / "sub" / "x.txt").write_text("4 5")
    return "sub"


def _dangling_symlink(root: Path, training: Path) -> str:
    (training / "UTD-0003.txt").symlink_to(root / "nope")
    return "UTD-0003.txt"


def _device(root: Path, training: Path) -> str:
    (training / "UTD-0005.txt").symlink_to("/dev/zero")  # would never end if read
    return "UTD-0005.txt"


def _attack_file_not_folder(root: Path, training: Path) -> str:
    (root / "Attack_Data_Master").mkdir()
    (root / "Attack_Data_Master" / "Adduser_1").write_text("1 2")
    return "Adduser_1"


def _huge_number(root: Path, training: Path) -> str:
    (training / "UTD-0004.txt").write_text("99999999999999999999999 1")
    return "UTD-0004.txt"


@pytest.mark.parametrize("damage", [_fifo, _symlink_loop, _subfolder, _dangling_symlink, _device,
                                    _attack_file_not_folder, _huge_number],
                         ids=lambda f: f.__name__.strip("_"))
def test_odd_layout_entries_are_one_sentence_naming_them(tmp_path, damage):
    training = tmp_path / "Training_Data_Master"
    training.mkdir()
    (training / "UTD-0001.txt").write_text("1 2 3")
    name = damage(tmp_path, training)
    box: list = []

    def run() -> None:
        try:
            read_adfa(tmp_path)
            box.append(None)
        except UserError as err:
            box.append(err.message)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    assert box, "read_adfa hangs"
    assert box[0] is not None and name in box[0] and "\n" not in box[0]


def test_importing_an_empty_or_foreign_folder_is_one_sentence(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    for src in (empty, tmp_path / "foreign", tmp_path / "missing"):
        code = main(["import", "--format", "adfa-ld", str(src), str(tmp_path / f"out-{src.name}")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("sysgram: ") and err.count("\n") == 1 and "Traceback" not in err
