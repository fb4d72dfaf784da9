"""The host configuration file: every key checked, per-binary settings, one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sysgram.errors import UserError
from sysgram.watch.hostconfig import load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[1] / "contrib" / "sysgram.toml"


def test_the_shipped_example_parses():
    config = load_config(EXAMPLE)
    assert config.watch["store"] == "/var/lib/sysgram/profiles"
    assert config.watch["syslog"] == ""               # true: the default socket


def test_watch_settings_thresholds_and_exclusions():
    config = parse_config('[watch]\nstore = "/s"\njson = true\nthreshold = -3\n'
                          '[binaries.nginx]\nthreshold = -75.5\n'
                          '[binaries.cron]\nwatch = false\n', Path("x.toml"))
    assert config.watch == {"store": "/s", "json": True, "threshold": -3}
    assert config.thresholds == {"nginx": -75.5} and config.excluded == {"cron"}


@pytest.mark.parametrize("text,message", [
    ('[watch]\nstor = "/s"\n', "unknown setting 'stor' in \\[watch\\]"),
    ("[watch]\njson = 1\n", "'json' in \\[watch\\] .* must be a bool"),
    ('[watch]\nthreshold = "high"\n', "must be a int or float"),
    ("[binaries.nginx]\nthreshold = true\n", "must be a int or float"),
    ("[binaries.nginx]\nwach = false\n", "unknown setting 'wach'"),
    ("[alerts]\nx = 1\n", "unknown section \\[alerts\\]"),
    ("[watch\n", "is not valid TOML"),
])
def test_mistakes_are_one_sentence(text, message):
    with pytest.raises(UserError, match=message):
        parse_config(text, Path("x.toml"))


def test_a_missing_file_given_is_an_error_and_no_default_is_fine(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="cannot read the configuration"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.setattr("sysgram.watch.hostconfig.DEFAULT_PATH", tmp_path / "absent.toml")
    assert load_config(None).watch == {}
