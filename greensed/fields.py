"""Typed, checked fields of frozen dataclasses: the one place that reads a value
against its annotation (type, ``Literal`` choices, ``Range``) and says in one
line what is wrong with it. Config sections and stopping policies both use it,
so each parameter's type, range and default are declared once, on its field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from greensed.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``ge``/``gt`` below, ``le``/``lt`` above (None: unbounded)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def violated(self, v: float) -> bool:
        return ((self.ge is not None and v < self.ge) or (self.gt is not None and v <= self.gt)
                or (self.le is not None and v > self.le) or (self.lt is not None and v >= self.lt))

    def __str__(self) -> str:
        parts = [f"{op} {b:g}" for op, b in ((">=", self.ge), (">", self.gt), ("<=", self.le),
                                              ("<", self.lt)) if b is not None]
        return " and ".join(parts)


@dataclass(frozen=True)
class NonEmpty:
    """A string that must hold something other than spaces."""


# Common ranges, by meaning.
POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
AT_LEAST_1 = Range(ge=1)
FRACTION = Range(ge=0, le=1)

PositiveFloat = Annotated[float, POSITIVE]
NonNegativeFloat = Annotated[float, NON_NEGATIVE]
Fraction = Annotated[float, FRACTION]
PositiveInt = Annotated[int, AT_LEAST_1]
NonNegativeInt = Annotated[int, NON_NEGATIVE]
Mode = Literal["max", "min"]
Name = Annotated[str, NonEmpty()]


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {type_name(args[0])}"
    if origin in (dict, Mapping):
        return "a table"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def check_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` read as ``hint`` (a TOML or CLI value: ints widen to floats, lists to
    tuples); ConfigError ``"{where} = {value!r} ..."`` when it does not fit."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        out = check_value(value, args[0], where)
        for meta in args[1:]:
            if isinstance(meta, Range) and out is not None and meta.violated(out):
                raise ConfigError(f"{where} = {value!r} must be {meta}")
            if isinstance(meta, NonEmpty) and isinstance(out, str) and not out.strip():
                raise ConfigError(f"{where} = {value!r} must not be empty")
        return out
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return check_value(value, a, where)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where} = {value!r} has the wrong type (expected {type_name(hint)})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r} is not one of "
                              + ", ".join(str(a) for a in args))
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} has the wrong type (expected "
                              f"{type_name(hint)})")
        return tuple(check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {value!r} has the wrong type (expected a table)")
        return {str(k): check_value(v, args[1], f"{where}.{k}") for k, v in value.items()} \
            if args else dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r} has the wrong type (expected float)")
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} must be a finite number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r} has the wrong type (expected int)")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {value!r} must be a table")
        return load(hint, value, where)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where} = {value!r} has the wrong type (expected {type_name(hint)})")
    return value


def load(cls: type[Any], values: Mapping[str, Any], where: str, base: Any = None) -> Any:
    """An instance of dataclass ``cls``: ``base`` (default: the class defaults) with
    ``values`` set, each name and value checked. ``where`` names the table."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{key}'{suggest(key, names)}")
        sub = base is not None and dataclasses.is_dataclass(getattr(base, key, None))
        if sub and isinstance(value, Mapping):  # a sub-table updates, not replaces
            checked[key] = load(type(getattr(base, key)), value, f"{where}.{key}",
                                getattr(base, key))
        else:
            checked[key] = check_value(value, hints[key], f"{where}: key '{key}'")
    return dataclasses.replace(base, **checked) if base is not None else cls(**checked)


def check_fields(obj: Any, where: str) -> None:
    """Every field of a dataclass instance against its annotation (for ``__post_init__``
    of objects built in code, not from a file)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        if f.init:
            check_value(getattr(obj, f.name), hints[f.name], f"{where}: {f.name}")
