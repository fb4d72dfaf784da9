"""`sysgram datasets info`, `sysgram import` and `sysgram export` at the command line."""

from __future__ import annotations

import json

import numpy as np
from test_adfa import FIXTURE, write_corpus

from sysgram.cli import main
from sysgram.datasets import DatasetWriter


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_info_export(tmp_path, capsys):
    src = write_corpus(tmp_path / "adfa")
    code, out, err = run(capsys, "import", "--format", "adfa-ld", str(src), str(tmp_path / "ds"))
    assert code == 0 and err == ""
    assert f"imported {len(FIXTURE)} traces" in out and "Adduser 3" in out

    code, out, err = run(capsys, "datasets", "info", str(tmp_path / "ds"))
    assert code == 0 and err == ""
    assert "threads    9 in 9 processes" in out
    assert "syscall table i386" in out
    assert "labels     normal 5, attack 4" in out
    top = out.split("top syscalls\n")[1].splitlines()[0].split()
    assert top[:3] == ["write", "4", "6"]  # 4 is write on i386, the most frequent here

    code, out, _ = run(capsys, "datasets", "info", "--json", str(tmp_path / "ds"))
    summary = json.loads(out)
    assert code == 0 and summary["threads"] == 9 and summary["families"]["Hydra_FTP"] == 1

    code, out, err = run(capsys, "export", str(tmp_path / "ds"), "--format", "adfa-ld",
                         str(tmp_path / "out"))
    assert code == 0 and out.startswith("exported 9 traces (i386") and err == ""
    assert (tmp_path / "out" / "Attack_Data_Master/Adduser_10/UAD-Adduser-10-7.txt").exists()


def test_info_warns_about_an_unclosed_recording_and_escapes_names(tmp_path, capsys):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record",
                      target={"comm": "evil\x1b[31m"})
    w.start_thread(1, pid=1)
    w.append(1, np.array([39, 39, 0]), ts_ns=10)
    w.gap(1, 4, ts_ns=20)
    w.flush()
    code, out, err = run(capsys, "datasets", "info", str(tmp_path / "ds"))
    assert "collector" not in out  # not closed: no collector statistics yet
    assert code == 0
    assert "\x1b" not in out and "evil\\x1b[31m" in out
    assert "losses     4 events (57.14 %) in 1 gaps across 1 threads" in out
    assert "getpid" in out
    assert err.startswith("sysgram: warning: the recording was not closed")


def test_export_warns_about_losses_and_empty_threads(tmp_path, capsys):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record")
    w.start_thread(1, pid=1)
    w.append(1, np.array([1, 2]))
    w.gap(1, 3)
    w.append(1, np.array([3]))
    w.start_thread(2, pid=1)
    w.close(stats={"events": 3, "lost_events": 3, "recursion_misses": 0, "threads": 2})
    code, out, err = run(capsys, "export", str(tmp_path / "ds"), str(tmp_path / "out"))
    assert code == 0 and "exported 1 traces" in out
    assert "skipped 1 threads with no syscalls" in err
    assert "1 exported traces had 3 lost events" in err
    code, out, err = run(capsys, "datasets", "info", str(tmp_path / "ds"))
    assert "collector  lost_events 3, recursion_misses 0" in out


def test_errors_are_one_sentence_and_exit_2(tmp_path, capsys):
    code, out, err = run(capsys, "datasets", "info", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("sysgram: there is no dataset") and "Traceback" not in err
    code, _, err = run(capsys, "import", str(tmp_path), str(tmp_path / "ds"))
    assert code == 2 and "does not have the ADFA-LD layout" in err
    src = write_corpus(tmp_path / "adfa")
    code, _, err = run(capsys, "import", "--format", "csv", str(src), str(tmp_path / "ds"))
    assert code == 2 and "unknown format 'csv'" in err
    code, _, err = run(capsys, "import", "--arch", "pdp11", str(src), str(tmp_path / "ds"))
    assert code == 2 and "unsupported syscall table" in err
    assert not (tmp_path / "ds").exists()
    assert err.count("\n") == 1


def test_hostile_names_and_paths_with_spaces_round_trip_and_print_escaped(tmp_path, capsys):
    hostile = "a\udcff;$(rm -rf /)`\x07\x1b]0;x"  # non-UTF-8 byte, shell and C metacharacters
    out_dir = tmp_path / "my recordings" / "run 1"
    with DatasetWriter(out_dir, arch="x86_64", source="record", target={"comm": hostile}) as w:
        w.start_thread(1, pid=1, comm=hostile, exe="/opt/my app/bin " + "x" * 5000)
        w.append(1, np.array([1, 2, 3]))
        w.note("exec", tid=1, pid=1, filename=hostile)
    from sysgram.datasets import Dataset

    ds = Dataset.open(out_dir)
    (t,) = ds.threads
    assert t.comm == hostile and t.exe.endswith("x" * 5000) and ds.notes[0]["filename"] == hostile
    code, out, err = run(capsys, "datasets", "info", str(out_dir))
    assert code == 0 and err == ""
    assert "\x1b" not in out and "\x07" not in out and "\\udcff" in out
    code, out, err = run(capsys, "export", str(out_dir), str(tmp_path / "text out"))
    assert code == 0
    (name,) = [p.name for p in (tmp_path / "text out").iterdir()]
    assert name.startswith("a_") and "/" not in name and "$" not in name
