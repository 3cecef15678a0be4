"""User-facing errors: one line, naming the file, line or value at fault."""

from __future__ import annotations


class GreensedError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits 2."""


class DataError(GreensedError):
    """Bad or missing input data (tsv, audio, dataset layout)."""


class ConfigError(GreensedError):
    """Bad recipe, CLI value or config combination."""
