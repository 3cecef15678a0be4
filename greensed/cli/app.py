"""The typer app every command registers on, and what commands share."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

# `greensed -h` lists the commands in the order a user meets them; any other follows.
ORDER = ("train", "status", "evaluate", "report", "replay", "dcase", "reproduce",
         "bench-policies", "synth", "meters")


def _argument_name(param: TyperArgument) -> str:
    """``RUN_DIR``, ``RUN_DIR...`` (several), ``[NAME]`` (optional): the metavar as
    written, without typer's ``{}`` and ``<list[str]>``."""
    name = param.display_name_raw + ("..." if param.nargs != 1 else "")
    return name if param.required else f"[{name}]"


class Command(TyperCommand):
    """A command whose usage line and argument list show the arguments by metavar only."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces += ([_argument_name(param)] if isinstance(param, TyperArgument)
                       else param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                args.append((_argument_name(param).strip("[]"), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class Group(TyperGroup):
    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


class _Typer(typer.Typer):
    def command(self, *args: Any, cls: type[TyperCommand] | None = None,
                **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or Command, **kwargs)


app = _Typer(
    cls=Group,
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


def terminal_width() -> int | None:
    """The terminal's width when standard output is one (read by rich, as `train`'s view
    reads it), else None: a pipe or a file gets whole lines."""
    import sys

    if not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console().width


def echo_fitted(text: str) -> None:
    """``text`` on standard output, wrapped to a terminal's width (its indent kept,
    continuations indented further); whole in a pipe."""
    import textwrap

    width = terminal_width()
    for line in text.split("\n"):
        lead = line[: len(line) - len(line.lstrip())]
        fits = width is None or len(line) <= width
        for part in [line] if fits else textwrap.wrap(
                line.strip(), width, initial_indent=lead, subsequent_indent=lead + "  "):
            typer.echo(part)


def emit_tables(tables: list, fmt: str) -> None:
    """The tables on standard output; text is fitted to a terminal's width."""
    from greensed.study.tables import FORMATS, render

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    width = terminal_width() if fmt == "table" else None
    try:
        for i, table in enumerate(tables):
            if i:
                typer.echo("")
            if fmt == "csv":
                typer.echo(f"# {table.title}")  # several tables in one CSV stream
            typer.echo(render(table, fmt, width), nl=False)
    except BrokenPipeError:
        raise ReaderLeft from None  # not an OSError: the CLI's main ends it quietly
