"""Typed run configuration, loaded from TOML recipes and overridden by CLI flags.

One dataclass per recipe section. Loading is strict: an unknown key or a value
of the wrong type is a :class:`ConfigError` naming the file, section and key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed.errors import ConfigError


@dataclass
class DataConfig:
    # None: the embedded synthetic dataset, generated once into the cache dir.
    path: str | None = None
    preset: str = "quick"
    synth_seed: int = 0
    # None: $GREENSED_CACHE or ~/.cache/greensed (see docs/data.md).
    cache_dir: str | None = None
    # Leave out audio files that are unreadable or listed in a tsv but missing on disk.
    skip_bad_audio: bool = False
    # Fraction of the weak tsv's rows that train; the rest validate (the baseline's weak_split).
    weak_split: float = 0.9
    # Seed of that split; None: train.seed, as the baseline's one seed (42) does both.
    weak_split_seed: int | None = None


@dataclass
class FeatureConfig:
    sample_rate: int = 16000
    clip_s: float = 10.0
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    # Resampling of input not at sample_rate: "kaiser_best" (resampy, what the baseline's
    # _16k folders were made with) or "torchaudio" (functional.resample's defaults).
    resampler: str = "kaiser_best"


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 48
    seed: int = 42
    lr: float = 1e-3
    # Exponential lr and consistency ramp-up length, in epochs (baseline: 50).
    warmup_epochs: float = 50.0
    ema_factor: float = 0.999
    consistency_max: float = 2.0
    mixup_p: float = 0.5
    mixup_alpha: float = 0.2
    device: str = "auto"
    precision: str = "fp32"
    # torch.compile the student and teacher calls of the training step (docs/performance.md).
    compile: bool = False
    num_workers: int = 0
    # Cap on optimizer steps per epoch (0: no cap); for tests and smoke runs.
    max_steps_per_epoch: int = 0


@dataclass
class EvalConfig:
    threshold: float = 0.5
    median_window: int = 7
    dtc: float = 0.7
    gtc: float = 0.7
    cttc: float | None = None


@dataclass
class StopConfig:
    # Policies besides the max-epochs cap: "plateau", "budget", "target", "marginal".
    policies: list[str] = field(default_factory=list)
    combine: str = "any"
    metric: str = "teacher_f1"
    mode: str = "max"
    patience: int = 10
    min_delta: float = 0.0
    warmup_epochs: int = 0
    budget_kwh: float | None = None
    target_f1: float | None = None
    min_f1_per_kwh: float | None = None
    marginal_window: int = 5


@dataclass
class MeterConfig:
    # "codecarbon" | "nvml" | "constant:WATTS" | "auto"
    spec: str = "auto"
    tracking_mode: str = "machine"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    meter: MeterConfig = field(default_factory=MeterConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _coerce(value: Any, annotation: Any) -> Any:
    if annotation is float or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and float in typing.get_args(annotation)
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        return float(value) if value is not None else None
    return value


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# Keys whose value must be one of a few words (checked when a recipe or flag sets them).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("TrainConfig", "precision"): ("fp32", "bf16"),
    ("StopConfig", "combine"): ("any", "all"),
    ("StopConfig", "mode"): ("max", "min"),
    ("MeterConfig", "tracking_mode"): ("machine", "process"),
}


def update_section(section_obj: Any, values: dict[str, Any], where: str) -> None:
    """Set keys of one config section in place, checking names, types and choices."""
    hints = typing.get_type_hints(type(section_obj))
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"{where}: unknown key '{key}'{_suggest(key, list(hints))}"
            )
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"{where}: key '{key}' = {value!r} has the wrong type "
                f"(expected {_type_name(hints[key])})"
            )
        choices = CHOICES.get((type(section_obj).__name__, key))
        if choices and value not in choices:
            raise ConfigError(
                f"{where}: key '{key}' = {value!r} is not one of {', '.join(choices)}"
            )
        setattr(section_obj, key, _coerce(value, hints[key]))


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def apply_dict(cfg: RunConfig, raw: dict[str, Any], where: str) -> RunConfig:
    sections = {f.name for f in dataclasses.fields(cfg)}
    for name, values in raw.items():
        if name not in sections:
            hint = _suggest(name, sorted(sections))
            raise ConfigError(f"{where}: unknown section [{name}]{hint}")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{name}] must be a table, got {values!r}")
        update_section(getattr(cfg, name), values, f"{where} [{name}]")
    return cfg


def read_toml(path: Path, what: str = "recipe") -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML is one ConfigError line."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_recipe(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a TOML recipe onto ``base`` (defaults when None)."""
    path = Path(path)
    raw = read_toml(path)
    raw.pop("recipe", None)  # free-form metadata (name, description)
    return apply_dict(base or RunConfig(), raw, str(path))


def to_toml(cfg: RunConfig) -> str:
    """Serialise a config as TOML (None values are left out: they mean 'default')."""
    lines: list[str] = []
    for name, values in cfg.to_dict().items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def from_toml_text(text: str, where: str) -> RunConfig:
    return apply_dict(RunConfig(), tomllib.loads(text), where)


def diff(a: RunConfig, b: RunConfig) -> list[str]:
    """Keys that differ between two configs, as 'section.key: a -> b' lines."""
    out = []
    da, db = a.to_dict(), b.to_dict()
    for section in da:
        for key in da[section]:
            if da[section][key] != db[section][key]:
                out.append(f"{section}.{key}: {da[section][key]!r} -> {db[section][key]!r}")
    return out
