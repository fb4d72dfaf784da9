"""`sysgram doctor`: every check has a line, failures say the fix, exit code tells."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sysgram.commands import doctor
from sysgram.errors import UserError


def test_all_checks_pass_here(kernel):
    result = subprocess.run([sys.executable, "-m", "sysgram", "doctor"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines()[:-1]]
    assert names[:3] == ["privileges", "bpf()", "tracepoints"]
    assert "compile+load" in names and "sysgram" in names
    assert "FAIL" not in result.stdout


@pytest.mark.kernel
def test_unprivileged_user_gets_a_failure_with_the_fix_and_exit_1():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "sysgram", "doctor"],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PYTHONPATH": str(doctor.__file__).rsplit("/sysgram/", 1)[0], "PATH": "/usr/bin"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  privileges" in result.stdout and "CAP_BPF" in result.stdout
    assert "Traceback" not in result.stderr


def test_missing_tracefs_says_how_to_mount_it(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "TRACEFS_DIRS", (tmp_path / "tracing",))
    check = doctor.check_tracefs()
    assert check.status == doctor.FAIL and "mount -t tracefs" in check.message
    assert doctor.check_kprobes().status == doctor.NOTE


def test_missing_tracepoint_is_named(monkeypatch, tmp_path):
    fmt = tmp_path / "events" / "raw_syscalls" / "sys_enter"
    fmt.mkdir(parents=True)
    (fmt / "format").write_text("name: sys_enter\n")
    monkeypatch.setattr(doctor, "TRACEFS_DIRS", (tmp_path,))
    check = doctor.check_tracefs()
    assert check.status == doctor.FAIL and "sched/sched_process_exec" in check.message


def test_missing_headers_point_to_make_install(monkeypatch):
    monkeypatch.setattr(doctor.platform, "release", lambda: "0.0.0-no-such-kernel")
    check = doctor.check_headers()
    assert check.status == doctor.FAIL and "make install" in check.message


def test_privileges_without_root_or_capabilities_fail(monkeypatch):
    from sysgram.bpf import privileges

    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(privileges.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(privileges, "effective_capabilities", lambda: 0)
    assert doctor.check_privileges().status == doctor.FAIL
    both = (1 << privileges.CAP_BPF) | (1 << privileges.CAP_PERFMON)
    monkeypatch.setattr(privileges, "effective_capabilities", lambda: both)
    assert doctor.check_privileges().status == doctor.OK


def test_failed_basics_skip_the_compile_check_and_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "TRACEFS_DIRS", ())
    with pytest.raises(UserError) as exit_info:
        doctor.doctor()
    assert exit_info.value.exit_code == 1
    out = capsys.readouterr().out
    assert "FAIL  tracefs" in out and "skipped" in out
