"""The kernel program (sysgram.bpf.c) and its ABI header (sysgram.h), shipped as package data."""

from __future__ import annotations

from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
PROGRAM = SOURCE_DIR / "sysgram.bpf.c"
HEADER = SOURCE_DIR / "sysgram.h"
