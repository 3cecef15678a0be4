"""The typer app every command registers on, and what commands share."""

from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: no boxes that wrap in a narrow terminal or clutter a pipe, and no
    # "<bool>" type shown beside a flag.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        from greensed import __version__

        typer.echo(f"greensed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print greensed's version and exit.")) -> None:
    """Energy-aware early-stopping training for sound event detection (DCASE task 4).

    Start with `greensed train` (the quick recipe on the embedded synthetic data), then
    `greensed report runs/` and `greensed replay runs/ --policy plateau:patience=5`.
    Each command's -h shows its options and an example.
    """


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class ReaderLeft(Exception):
    """Standard output's reader left early (a pipe into ``head``)."""


def emit_tables(tables: list, fmt: str) -> None:
    from greensed.study.tables import FORMATS, render

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    try:
        for i, table in enumerate(tables):
            if i:
                typer.echo("")
            if fmt == "csv":
                typer.echo(f"# {table.title}")  # several tables in one CSV stream
            typer.echo(render(table, fmt), nl=False)
    except BrokenPipeError:
        raise ReaderLeft from None  # not an OSError: the CLI's main ends it quietly
