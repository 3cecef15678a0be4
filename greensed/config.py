"""Typed run configuration, loaded from TOML recipes and overridden by CLI flags.

One frozen dataclass per recipe section; each key's type, choices (``Literal``)
and range (``Range``) are declared on its field and checked when a recipe, a
saved ``config.toml`` or a flag sets it: an unknown key, a wrong type or a value
out of range is one :class:`ConfigError` line naming the file, section and key.
Sections are changed only through :func:`override`, which returns a new config.
Keys of earlier greensed versions are still read (``LEGACY``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from greensed.errors import ConfigError
from greensed.fields import (
    FRACTION,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    load,
    suggest,
)
from greensed.stopping.params import StopConfig

# A threshold or a DTC/GTC ratio: in (0, 1].
Ratio = Annotated[float, Range(gt=0, le=1)]


@dataclass(frozen=True)
class DataConfig:
    # None: the embedded synthetic dataset, generated once into the cache dir.
    path: str | None = None
    preset: str = "quick"
    synth_seed: NonNegativeInt = 0
    # None: $GREENSED_CACHE or ~/.cache/greensed (see docs/data.md).
    cache_dir: str | None = None
    # Leave out audio files that are unreadable or listed in a tsv but missing on disk.
    skip_bad_audio: bool = False
    # Fraction of the weak tsv's rows that train; the rest validate (the baseline's weak_split).
    weak_split: Ratio = 0.9
    # Seed of that split; None: train.seed, as the baseline's one seed (42) does both.
    weak_split_seed: NonNegativeInt | None = None


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: PositiveInt = 16000
    clip_s: PositiveFloat = 10.0
    n_fft: PositiveInt = 2048
    win_length: PositiveInt = 2048
    hop_length: PositiveInt = 256
    n_mels: PositiveInt = 128
    f_min: NonNegativeFloat = 0.0
    f_max: PositiveFloat = 8000.0
    # Resampling of input not at sample_rate: "kaiser_best" (resampy, what the baseline's
    # _16k folders were made with) or "torchaudio" (functional.resample's defaults).
    resampler: Literal["kaiser_best", "torchaudio"] = "kaiser_best"


# The training protocol (docs/training.md, "Protocols"): "baseline" is DESED_task 2022's
# (weak split, both validation sets, best epoch by its objective with the student as model
# of record, its step schedule); "greensed" is what greensed did before protocols existed.
Protocol = Literal["baseline", "greensed"]


@dataclass(frozen=True)
class TrainConfig:
    protocol: Protocol = "baseline"
    epochs: PositiveInt = 200
    batch_size: PositiveInt = 48
    seed: NonNegativeInt = 42
    lr: PositiveFloat = 1e-3
    # Exponential lr and consistency ramp-up length, in epochs (baseline: 50).
    rampup_epochs: NonNegativeFloat = 50.0
    ema_factor: Annotated[float, FRACTION] = 0.999
    consistency_max: NonNegativeFloat = 2.0
    mixup_p: Fraction = 0.5
    mixup_alpha: PositiveFloat = 0.2
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch.compile the student and teacher calls of the training step (docs/performance.md).
    compile: bool = False
    # Cap on optimizer steps per epoch (0: no cap); for tests and smoke runs.
    max_steps_per_epoch: NonNegativeInt = 0
    # Also write TensorBoard scalars to RUN_DIR/tensorboard/ (extra greensed[tensorboard]).
    tensorboard: bool = False


@dataclass(frozen=True)
class EvalConfig:
    threshold: Annotated[float, Range(gt=0, lt=1)] = 0.5
    median_window: PositiveInt = 7
    dtc: Ratio = 0.7
    gtc: Ratio = 0.7
    cttc: Ratio | None = None
    # Also score the student and the teacher on the dataset's held-out test subset after
    # every epoch (EpochRecord.test, docs/runlog.md), outside the epoch's energy window:
    # no policy, objective or best-epoch rule reads those scores (docs/training.md).
    test: bool = False


@dataclass(frozen=True)
class ValidateConfig:
    # PSDS1 and PSDS2 of student and teacher every epoch (student_psds1, ..., teacher_psds2;
    # docs/metrics.md). None: only when [stop] metric is one of them.
    psds: bool | None = None


@dataclass(frozen=True)
class MeterConfig:
    # "auto" | "codecarbon" | "nvml" | "constant:WATTS[+DEVICE_W[xN]]" | "none"
    spec: str = "auto"
    tracking_mode: Literal["machine", "process"] = "machine"
    # kg CO2eq = kWh x g CO2eq/kWh / 1000 (greensed.energy.carbon, docs/energy.md): this
    # intensity when given, else CodeCarbon's offline data for the country (ISO 3166
    # alpha-3, e.g. "FRA") and region (e.g. "california"), else its world average.
    carbon_intensity: NonNegativeFloat | None = None
    country_iso_code: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    # "package.module:function" returning an nn.Module with the baseline's I/O contract
    # (log-mel [B, T, F] in; strong [B, C, T'], weak [B, C] out); None: the baseline CRNN.
    # See docs/library.md.
    factory: str | None = None
    # Keyword arguments of the factory, a TOML table ([model.kwargs]).
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    # T / T', feature frames per output frame; None: the model's `time_pooling` attribute.
    time_pooling: PositiveInt | None = None


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    meter: MeterConfig = field(default_factory=MeterConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys of earlier greensed versions (old recipes, run directories' config.toml):
# (section, old key) -> the key path it became, or None when it is no longer used.
LEGACY: dict[tuple[str, str], tuple[str, ...] | None] = {
    ("train", "warmup_epochs"): ("rampup_epochs",),
    ("train", "num_workers"): None,
    ("stop", "patience"): ("plateau", "patience"),
    ("stop", "min_delta"): ("plateau", "min_delta"),
    ("stop", "budget_kwh"): ("budget", "kwh"),
    ("stop", "target_f1"): ("target", "value"),
    ("stop", "min_f1_per_kwh"): ("marginal", "min_f1_per_kwh"),
    ("stop", "marginal_window"): ("marginal", "window"),
}

# Keys a saved config (a run's config.toml, a cell's cell.toml) of an earlier greensed
# lacks, with the value that run trained with; a recipe without them gets the default.
# (section, key) -> value.
SAVED_BEFORE: dict[tuple[str, str], Any] = {
    # Runs from before protocols existed trained the "greensed" way.
    ("train", "protocol"): "greensed",
}


def _modern(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A section's table with legacy keys moved to where they live now."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if (section, key) not in LEGACY:
            out[key] = value
            continue
        path = LEGACY[(section, key)]
        if path is None:
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(path[-1], value)  # the modern key, if also given, wins
    return out


def override(cfg: RunConfig, raw: Mapping[str, Any], where: str) -> RunConfig:
    """``cfg`` with the sections and keys of ``raw`` (a parsed TOML document or the
    command line's values) set, every name and value checked; ``raw`` may also
    hold a ``[recipe]`` table of free-form metadata, which is ignored."""
    sections = [f.name for f in dataclasses.fields(cfg)]
    changed: dict[str, Any] = {}
    for name, values in raw.items():
        if name == "recipe":
            continue
        if name not in sections:
            raise ConfigError(f"{where}: unknown section [{name}]{suggest(name, sections)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table, got {values!r}")
        current = changed.get(name, getattr(cfg, name))
        changed[name] = load(type(current), _modern(name, values), f"{where} [{name}]", current)
    out = dataclasses.replace(cfg, **changed)
    check(out, where)
    return out


def check(cfg: RunConfig, where: str) -> None:
    """What no single key can say: values that must agree with each other."""
    f = cfg.features
    if f.f_max > f.sample_rate / 2:
        raise ConfigError(f"{where} [features]: f_max = {f.f_max:g} is above the Nyquist "
                          f"frequency of sample_rate = {f.sample_rate} ({f.sample_rate / 2:g})")
    if f.f_min >= f.f_max:
        raise ConfigError(f"{where} [features]: f_min = {f.f_min:g} must be below "
                          f"f_max = {f.f_max:g}")
    if f.win_length > f.n_fft:
        raise ConfigError(f"{where} [features]: win_length = {f.win_length} exceeds "
                          f"n_fft = {f.n_fft}")
    if cfg.train.protocol == "baseline" and f.resampler != "kaiser_best":
        raise ConfigError(f"{where} [features]: resampler = {f.resampler!r} is not the "
                          "baseline's (kaiser_best, as its _16k folders); set it back or "
                          "choose [train] protocol = \"greensed\"")


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with ``data.path`` and ``data.cache_dir`` made absolute (from the current
    folder, as the loader reads them), so a run directory names its data wherever it is
    read from."""
    d = cfg.data
    paths = {key: str(Path(value).expanduser().resolve())
             for key, value in (("path", d.path), ("cache_dir", d.cache_dir))
             if value is not None}
    return dataclasses.replace(cfg, data=dataclasses.replace(d, **paths))


def read_toml(path: str | Path, what: str = "recipe") -> dict[str, Any]:
    """Parse a TOML file; every way of not being one is one ConfigError line."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: {what} is a directory, not a TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_recipe(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """Read a TOML recipe onto ``base`` (defaults when None)."""
    return override(base or RunConfig(), read_toml(path), str(path))


def from_toml_text(text: str, where: str) -> RunConfig:
    """A saved, complete config (a run's config.toml, a cell's cell.toml): a key that an
    earlier greensed did not write reads as what that run used (``SAVED_BEFORE``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    for (section, key), value in SAVED_BEFORE.items():
        table = raw.setdefault(section, {})
        if isinstance(table, dict):
            table.setdefault(key, value)
    return override(RunConfig(), raw, where)


def to_toml(cfg: RunConfig) -> str:
    """Serialise a config as TOML (None values are left out: they mean 'default')."""
    return toml_text(cfg.to_dict())


def toml_text(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML of ``{section: {key: value, sub: {...}}}`` (None values left out)."""
    lines: list[str] = []

    def table(name: str, values: Mapping[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = {k: v for k, v in values.items() if isinstance(v, Mapping)}
        for key, value in values.items():
            if value is not None and key not in subs:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
        for key, sub in subs.items():
            table(f"{name}.{key}", sub)

    for name, values in sections.items():
        table(name, values)
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"stop": {"plateau": {"patience": 5}}}`` -> ``{"stop.plateau.patience": 5}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        out.update(flat(value, name + ".") if isinstance(value, Mapping) else {name: value})
    return out


def diff(a: RunConfig, b: RunConfig) -> list[str]:
    """Keys that differ between two configs, as 'section.key: a -> b' lines."""
    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return [f"{k}: {fa[k]!r} -> {fb[k]!r}" for k in fa if fa[k] != fb[k]]
