"""Durations and process names given on the command line."""

import pytest

from sysgram.commands.common import kernel_comm, parse_duration
from sysgram.errors import UserError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0), ("10m", 600.0), ("1.5h", 5400.0),
        ("250ms", 0.25), ("7", 7.0), ("2d", 172800.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "0s", "1e9h", "5 m s"])
def test_bad_durations_are_one_sentence(text):
    with pytest.raises(UserError, match="duration"):
        parse_duration(text)


def test_long_names_are_cut_to_the_kernel_form(capsys):
    assert kernel_comm("a-very-long-process-name") == "a-very-long-pro"
    assert "first 15 bytes" in capsys.readouterr().err
    assert kernel_comm("nginx") == "nginx"


def test_the_cut_warning_escapes_the_name(capsys):
    cut = kernel_comm("\n\x1b[2Jabcdefghijklmnopq")
    assert cut == "\n\x1b[2Jabcdefghij"           # the kernel's bytes, kept exactly
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert err.startswith("sysgram: warning: the kernel keeps only the first 15 bytes")


@pytest.mark.parametrize("name", ["", "/usr/sbin/nginx", "a\x00b"])
def test_bad_names(name):
    with pytest.raises(UserError):
        kernel_comm(name)


def test_usage_errors_exit_2_without_traceback(capsys):
    from sysgram.cli import main

    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_version():
    from sysgram.cli import main

    assert main(["--version"]) == 0


def test_exit_codes_of_commands_reach_the_shell():
    import typer

    from sysgram import cli

    probe = typer.Typer()

    @probe.command()
    def fail() -> None:
        raise typer.Exit(code=3)

    @probe.command()
    def ok() -> None:
        pass

    saved = cli.app
    try:
        cli.app = probe
        assert cli.main(["fail"]) == 3
        assert cli.main(["ok"]) == 0
    finally:
        cli.app = saved
