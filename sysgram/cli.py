"""The `sysgram` command line: composes collector, datasets, features and models.

Each command group lives in `sysgram/commands/<area>.py` and registers itself here;
this module only assembles them and turns `UserError` into one sentence and exit 2.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Annotated

import typer

from sysgram import __version__
from sysgram.commands import register_all
from sysgram.errors import UserError
from sysgram.sanitize import printable

app = typer.Typer(
    name="sysgram",
    help="Learn what each Linux binary normally does at the system-call level; "
    "alert when it does something else.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sysgram {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """sysgram: per-binary syscall profiles and live alerts."""


register_all(app)


class _Terminated(BaseException):
    """SIGTERM in a command that does not handle it itself (record and watch do)."""


_terminated_by_signal = False


def _raise_terminated(_signum, _frame) -> None:
    # Unwinding like Ctrl-C lets half-done work clean up after itself (a profile's tmp
    # file is removed); the default action would kill the process where it stands.
    global _terminated_by_signal
    _terminated_by_signal = True
    raise _Terminated


@contextlib.contextmanager
def _sigterm_unwinds():
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:      # not the main thread (an embedding caller): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, print user errors as one line, never a traceback."""
    with _sigterm_unwinds():
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        # Without standalone mode, click returns what a command returned, and a
        # `typer.Exit(code)` raised inside a command comes back as that int.
        result = app(args=argv, standalone_mode=False)
    except UserError as err:
        # Messages can carry names from disk or from processes: never raw to the terminal.
        print(f"sysgram: {printable(err.message)}", file=sys.stderr)
        return err.exit_code
    except typer.Exit as ex:
        return ex.exit_code
    except typer.Abort:
        print("sysgram: aborted.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("sysgram: interrupted.", file=sys.stderr)
        return 130
    except _Terminated:
        print("sysgram: terminated.", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:
        # A SIGTERM that lands while a C extension initialises (scipy's, on a lazy import)
        # comes back as that module's ImportError: it is still the termination.
        if _terminated_by_signal:
            print("sysgram: terminated.", file=sys.stderr)
            return 128 + signal.SIGTERM
        # Usage errors from click (which typer may bundle privately): print the usage
        # message, no traceback. Recognised by shape so either click works.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
