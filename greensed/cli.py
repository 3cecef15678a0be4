"""The `greensed` command line: wires the layers together; nothing imports it."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from greensed.errors import GreensedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Energy-aware early-stopping training for sound event detection.",
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --- data commands (synth) ---------------------------------------------------

# --- training commands (train) ------------------------------------------------

# --- energy commands (meters) -------------------------------------------------

# --- study commands (reproduce, report, replay, evaluate, status) ------------


def main() -> None:
    try:
        app()
    except GreensedError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
