"""The host watcher's configuration file (/etc/sysgram/sysgram.toml), read with tomllib.

    [watch]                 # any `sysgram watch` option; the command line wins
    store = "/var/lib/sysgram/profiles"
    alerts = "/var/log/sysgram/alerts.jsonl"
    json = true
    metrics = "127.0.0.1:9464"
    syslog = "/dev/log"     # or true for /dev/log
    cgroup = "/system.slice"
    warmup = "2s"
    aggregate = "5s"
    threshold = -80.0       # every binary (default: each profile's own)

    [binaries.nginx]        # per binary, by its profile name
    threshold = -75.5
    watch = false           # leave it out of --all

Every key is checked: a misspelt one is an error naming the file and the known keys,
never a setting silently ignored. Documented in docs/daemon.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sysgram.errors import UserError

DEFAULT_PATH = Path("/etc/sysgram/sysgram.toml")
_WATCH_KEYS = {"store": str, "alerts": str, "json": bool, "metrics": str, "syslog": (str, bool),
               "cgroup": str, "warmup": str, "aggregate": str, "threshold": (int, float)}
_BINARY_KEYS = {"threshold": (int, float), "watch": bool}


@dataclass(frozen=True)
class HostConfig:
    watch: dict = field(default_factory=dict)          # [watch] settings, as given
    thresholds: dict[str, float] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()             # binaries with watch = false
    path: Path | None = None


def _check(table: object, keys: dict, where: str, path: Path) -> dict:
    if not isinstance(table, dict):
        raise UserError(f"{where} in {path} must be a table; write it as [{where}].")
    for key, value in table.items():
        if key not in keys:
            raise UserError(f"unknown setting '{key}' in [{where}] of {path}; the known ones "
                            f"are {', '.join(sorted(keys))}.")
        kinds = keys[key] if isinstance(keys[key], tuple) else (keys[key],)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise UserError(f"'{key}' in [{where}] of {path} must be a {names}; fix its value.")
    return table


def parse_config(text: str, path: Path) -> HostConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML ({exc}); fix the file or give another "
                        "with --config.") from None
    unknown = set(data) - {"watch", "binaries"}
    if unknown:
        raise UserError(f"unknown section [{sorted(unknown)[0]}] in {path}; the known ones are "
                        "[watch] and [binaries.NAME].")
    watch = dict(_check(data.get("watch", {}), _WATCH_KEYS, "watch", path))
    if watch.get("syslog") is True:
        watch["syslog"] = ""                 # the default socket
    elif watch.get("syslog") is False:
        del watch["syslog"]
    binaries = data.get("binaries", {})
    if not isinstance(binaries, dict):
        raise UserError(f"binaries in {path} must be tables; write them as [binaries.NAME].")
    thresholds, excluded = {}, set()
    for name, table in binaries.items():
        settings = _check(table, _BINARY_KEYS, f"binaries.{name}", path)
        if "threshold" in settings:
            thresholds[name] = float(settings["threshold"])
        if settings.get("watch") is False:
            excluded.add(name)
    return HostConfig(watch=watch, thresholds=thresholds, excluded=frozenset(excluded),
                      path=path)


def load_config(path: str | Path | None) -> HostConfig:
    """The file given (it must exist), else the default one if there is one, else nothing."""
    if path is None:
        if not DEFAULT_PATH.is_file():
            return HostConfig()
        path = DEFAULT_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise UserError(f"cannot read the configuration {path} ({why}); give a readable file "
                        "with --config.") from None
    return parse_config(text, path)
