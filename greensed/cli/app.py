"""The typer app every command registers on, and what commands share."""

from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Energy-aware early-stopping training for sound event detection.",
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)



def emit_tables(tables: list, fmt: str) -> None:
    from greensed.study.tables import FORMATS, render

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    for i, table in enumerate(tables):
        if i:
            typer.echo("")
        if fmt == "csv":
            typer.echo(f"# {table.title}")  # several tables in one CSV stream
        typer.echo(render(table, fmt), nl=False)


