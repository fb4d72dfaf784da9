"""CLI command groups. Each module has `register(app)`; the terminal lives here, not in the core."""

from __future__ import annotations

import importlib

import typer

# One module per command group. A module listed here that does not exist yet is skipped,
# so areas can land independently.
_MODULES = ("doctor", "record", "datasets", "train", "profiles", "score", "watch", "evaluate")


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(f"sysgram.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sysgram.commands.{name}":
                continue
            raise
        module.register(app)
