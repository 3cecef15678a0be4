"""The `greensed` command line: wires the layers together; nothing imports it.

Each command lives in a module of this package (``train``: synth, train, meters;
``study``: reproduce, report, replay, status, evaluate) and registers on ``app``.
"""

from __future__ import annotations

import os
import sys

import typer

from greensed.cli import study, train  # noqa: F401  (they register their commands)
from greensed.cli.app import ReaderLeft, app
from greensed.errors import GreensedError


def main() -> None:
    """Entry point: every user error is one line on stderr and exit status 2."""
    try:
        code = app(standalone_mode=False)
    except (BrokenPipeError, ReaderLeft):
        # The reader left (`greensed report runs | head`): what the command writes to
        # files is written already; end quietly, as `cat` does (128 + SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except GreensedError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors of typer's (vendored) click: bad flag, wrong type, no such command.
        if not hasattr(exc, "format_message"):
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
