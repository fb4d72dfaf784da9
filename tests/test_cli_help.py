"""`sysgram --help` and each command's --help load no numerical stack (fast on any box)."""

import subprocess
import sys

import pytest

HEAVY = ("numpy", "sklearn", "scipy", "bcc")
PROBE = """
import sys
from sysgram.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["watch", "--help"],
                                  ["score", "--help"], ["profiles", "--help"],
                                  ["datasets", "--help"], ["import", "--help"]])
def test_help_imports_no_numerical_stack(args):
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert "Usage" in done.stdout
    assert done.stderr.strip().splitlines()[-1:] in ([], [""]), done.stderr


def test_a_user_error_is_escaped_once(capsys):
    """The CLI escapes a UserError's message when it prints it; commands raise raw text."""
    from sysgram.cli import main

    assert main(["import", "/nonexistent", "/nonexistent2", "--format", "a\x1bb"]) == 2
    err = capsys.readouterr().err
    assert "unknown format 'a\\x1bb'" in err and "\\\\x1b" not in err
