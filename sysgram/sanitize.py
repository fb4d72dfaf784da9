"""Make untrusted text (process names, paths) safe to show on a terminal.

A process can name itself anything, including escape sequences that move the cursor,
rewrite earlier lines or change the window title. Everything the terminal shows that
came from a watched process, a file or a profile goes through `for_terminal`; JSON
output is already safe because `json.dumps` escapes control characters.
"""

from __future__ import annotations

import unicodedata

# Unicode categories that never belong on screen: controls (C0, C1, DEL), format
# characters (bidi overrides that reorder text), surrogates, private use, unassigned.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def for_terminal(text: object, limit: int | None = 200) -> str:
    """`text` with every unsafe character written as a visible escape, cut at `limit`."""
    if text is None:
        return "?"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    text = str(text)
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in _UNSAFE_CATEGORIES:
            out.append(_escape(char))
        else:
            out.append(char)
    safe = "".join(out)
    return safe if limit is None or len(safe) <= limit else safe[: limit - 1] + "…"


def printable(text: object) -> str:
    """`for_terminal` without a length limit: for whole messages (errors, warnings)."""
    return for_terminal(text, limit=None)
