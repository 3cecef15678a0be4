"""`greensed synth`, `greensed train` and `greensed meters`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import typer

from greensed.cli.app import app, echo_fitted, emit_tables
from greensed.cli.options import (
    DATA_HELP,
    DEVICE_HELP,
    EPOCHS_HELP,
    METER_HELP,
    METRIC_HELP,
    stop_options,
)
from greensed.errors import GreensedError
from greensed.recipes import RECIPES_DIR, recipe_name, recipe_path
from greensed.stopping.params import DEFAULT_METRIC

# --- data commands (synth) ---------------------------------------------------


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="Folder to create (must not exist or be empty)."),
    preset: str = typer.Option("quick", metavar="NAME", help="quick | small | paper-like (docs/data.md)."),
    seed: int = typer.Option(0, metavar="N", help="Same seed and preset: byte-identical output."),
    workers: int = typer.Option(1, min=1, metavar="N", help="Processes; the output does not depend on it."),
) -> None:
    """Generate a synthetic DESED-like dataset (audio/ + metadata/ layout).

    \b
    Example:
      greensed synth data/small --preset small && greensed train --data data/small
    """
    import time as _time

    from greensed.data.synth import generate, get_preset

    p = get_preset(preset)
    t0 = _time.perf_counter()
    generate(out_dir, p, seed, workers=workers)
    sizes = ", ".join(f"{s} {p.size(s)}" for s in p.subsets)
    typer.echo(f"wrote {out_dir} ({sizes} clips) in {_time.perf_counter() - t0:.1f} s")


# --- training commands (train) ------------------------------------------------

DEFAULT_RECIPE = RECIPES_DIR / "quick.toml"


def _recipe(path: Path) -> Path:
    """A recipe file as given, else the shipped recipe of that name (after `pip install .`,
    `--recipe paper/bs32.toml` or `recipes/paper/bs32.toml` still finds it)."""
    if path.exists() or path.is_absolute():
        return path
    try:
        return recipe_path(str(path))
    except GreensedError:
        return path  # the loader says it is not found, naming the path as typed


def _train_flags(*, data: Path | None, epochs: int | None, batch_size: int | None,
                 seed: int | None, device: str | None, meter: str | None,
                 skip_bad_audio: bool | None, max_steps_per_epoch: int | None,
                 cache_dir: Path | None, precision: str | None, compile_: bool | None,
                 protocol: str | None = None, tensorboard: bool | None = None,
                 carbon_intensity: float | None = None, country_iso_code: str | None = None,
                 region: str | None = None, psds: bool | None = None,
                 test: bool | None = None
                 ) -> dict[str, dict[str, Any]]:
    """The training flags that were given, as config sections (paths made absolute,
    so a run directory names its data wherever it is read from)."""
    pairs = {
        "data": {"path": str(data.expanduser().resolve()) if data else None,
                 "skip_bad_audio": skip_bad_audio,
                 "cache_dir": str(cache_dir.expanduser().resolve()) if cache_dir else None},
        "train": {"protocol": protocol, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                  "device": device,
                  "max_steps_per_epoch": max_steps_per_epoch, "precision": precision,
                  "compile": compile_, "tensorboard": tensorboard},
        "meter": {"spec": meter, "carbon_intensity": carbon_intensity,
                  "country_iso_code": country_iso_code, "region": region},
        "validate": {"psds": psds},
        "eval": {"test": test},
    }
    return {section: {k: v for k, v in values.items() if v is not None}
            for section, values in pairs.items()}


@app.command()
@stop_options
def train(
    data: Path | None = typer.Option(None, metavar="PATH", help=f"{DATA_HELP}; default: the embedded synthetic set"),
    recipe: Path | None = typer.Option(None, metavar="TOML", help="Recipe TOML, a file or a shipped recipe's name such as paper/bs16.toml (default: the quick recipe)"),
    out: Path | None = typer.Option(None, metavar="DIR", help="Run directory (default: runs/<recipe>-bs<B>-seed<S>-<time>)"),
    resume: Path | None = typer.Option(None, metavar="DIR", help="Resume the run in this directory"),
    force: bool = typer.Option(False, "--force", help="Resume even if the config differs"),
    epochs: int | None = typer.Option(None, metavar="N", help=EPOCHS_HELP),
    batch_size: int | None = typer.Option(None, metavar="B", help="Total batch size, a multiple of 4"),
    seed: int | None = typer.Option(None, metavar="N", help="Seed of initialisation, dropout, mixup and batch order"),
    device: str | None = typer.Option(None, metavar="DEVICE", help=DEVICE_HELP),
    precision: str | None = typer.Option(None, metavar="fp32|bf16", help="fp32 | bf16 (autocast of the forward passes; for GPUs)"),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the training step's forward passes (pays off after a few epochs; docs/performance.md)"),
    metric: str | None = typer.Option(None, metavar="METRIC", help=f"{METRIC_HELP}, that the policies watch (default {DEFAULT_METRIC}, or the recipe's)"),
    meter: str | None = typer.Option(None, metavar="SPEC", help=METER_HELP),
    protocol: str | None = typer.Option(None, metavar="baseline|greensed", help="baseline (DESED_task 2022's weak split, validation, best-epoch rule and step schedule) | greensed (greensed's earlier protocol, for CPU-sized synthetic runs); default: the recipe's (docs/training.md)"),
    carbon_intensity: float | None = typer.Option(None, metavar="G_PER_KWH", min=0.0, help="Grid carbon intensity in g CO2eq/kWh for the CO2 figures (default: CodeCarbon's for --country-iso-code)"),
    country_iso_code: str | None = typer.Option(None, metavar="ISO3", help="Country of the machine, ISO 3166 alpha-3 (e.g. FRA): CodeCarbon's offline grid intensity (default: its world average)"),
    region: str | None = typer.Option(None, metavar="REGION", help="Region within the country where CodeCarbon has regional data (e.g. california, ontario)"),
    psds: bool | None = typer.Option(None, "--psds/--no-psds", help="Score PSDS1 and PSDS2 of both models every epoch (student_psds1 ... teacher_psds2; [validate] psds; default: only when --metric is one of them; docs/metrics.md)"),
    tensorboard: bool | None = typer.Option(None, "--tensorboard", help="Also write TensorBoard scalars to RUN_DIR/tensorboard/ (pip install 'greensed[tensorboard]')"),
    skip_bad_audio: bool | None = typer.Option(None, "--skip-bad-audio", help="Train without the audio files a tsv lists but the disk lacks, and without unreadable ones (each subset's count and first names are printed at start-up; summary.json left_out_audio counts them per reason)"),
    test: bool | None = typer.Option(None, "--test/--no-test", help="Score the student and the teacher on the held-out test subset after every epoch (record.test; no policy or best-epoch rule reads it; [eval] test, docs/training.md)"),
    max_steps_per_epoch: int | None = typer.Option(None, metavar="N", help="Cap steps per epoch (smoke tests)"),
    cache_dir: Path | None = typer.Option(None, metavar="DIR", help="Cache for synthetic data and features"),
    nproc: int = typer.Option(1, "--nproc", metavar="N", help="Processes (GPUs) for one run; under torchrun leave it out (docs/multigpu.md)"),
    stop_flags: dict[str, Any] | None = None,
) -> None:
    """Train the DCASE CRNN mean teacher, measuring each epoch's energy, until a policy stops it.

    In a terminal a progress bar runs inside each epoch and the lines fit its width;
    piped to a file, every epoch is one whole line (docs/training.md).

    \b
    Examples:
      greensed train
      greensed train --data /data/DESED --recipe paper/bs16.toml --stop plateau --patience 10
      greensed train --stop plateau,budget --budget-kwh 0.5 --country-iso-code FRA
      greensed train --resume runs/quick-bs8-seed42-20240101-120000 --epochs 20
    """
    from greensed import config
    from greensed.runlog import RunStatus
    from greensed.stopping import stop_flags as apply_stop_flags
    from greensed.train.loop import train as run_training
    from greensed.train.resume import resume_target, resumed_config, resumed_name

    if resume is not None:
        d = resume_target(resume, out)
        cfg = resumed_config(d, _recipe(recipe) if recipe is not None else None)
        if recipe is not None:
            _model_folder(cfg, _recipe(recipe))
        run_dir, name = resume, resumed_name(d)
    else:
        path = _recipe(recipe) if recipe else DEFAULT_RECIPE
        cfg = config.load_recipe(path)
        name = recipe_name(path)
        _model_folder(cfg, path)
    cfg = config.override(cfg, _train_flags(
        data=data, epochs=epochs, batch_size=batch_size, seed=seed, device=device, meter=meter,
        skip_bad_audio=skip_bad_audio, max_steps_per_epoch=max_steps_per_epoch,
        cache_dir=cache_dir, precision=precision, compile_=compile_, protocol=protocol,
        tensorboard=tensorboard, psds=psds, test=test,
        carbon_intensity=carbon_intensity, country_iso_code=country_iso_code, region=region),
        "command line")
    cfg = dataclasses.replace(cfg, stop=apply_stop_flags(cfg.stop, metric=metric,
                                                         **(stop_flags or {})))
    if resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = out or Path("runs") / f"{name}-bs{cfg.train.batch_size}-seed{cfg.train.seed}-{stamp}"
    with console_view() as view:
        result = run_training(cfg, run_dir, resume=resume is not None, force=force,
                              report=view, recipe_name=name, nproc=nproc)
    if result.summary.status is RunStatus.FAILED:
        raise typer.Exit(1)
    if result.summary.status is RunStatus.INTERRUPTED:
        raise typer.Exit(130)


def _model_folder(cfg: Any, recipe: Path) -> None:
    """A recipe's own model module may sit beside it (``factory = "mymodel:build"``)."""
    if cfg.model.factory:
        from greensed.model.factory import search_folder

        search_folder(recipe.parent)


def console_view() -> Any:
    """A LiveView (bars, lines fitted to the width) on a terminal, else whole lines."""
    import sys

    from greensed.train.console import LiveView, PlainView

    if sys.stdout.isatty():
        from rich.console import Console

        return LiveView(Console(highlight=False))
    return PlainView()


# --- energy commands (meters) -------------------------------------------------


@app.command()
def meters(
    measure: float = typer.Option(
        0.0, min=0.0, metavar="SECONDS", help="Also take one window of this many seconds with --meter and print it"
    ),
    meter: str = typer.Option("auto", metavar="SPEC", help=f"{METER_HELP} (for --measure)"),
    device: str = typer.Option("cpu", metavar="DEVICE", help=f"{DEVICE_HELP} (for --measure)"),
    tracking_mode: str = typer.Option("machine", metavar="machine|process", help="CodeCarbon's tracking mode: machine | process"),
) -> None:
    """What this machine can measure (hardware counters) and what is only modelled.

    \b
    Examples:
      greensed meters
      greensed meters --measure 5 --meter nvml --device cuda
    """
    import time as _time

    from greensed.energy import make_meter, probe, window_overhead_ms
    from greensed.study.tables import Table

    columns = ["source", "component", "method", "kind", "detail"]
    table = Table("What this machine can measure (measured: a hardware counter; modelled: "
                  "an estimate from a model)", columns, key_columns=2)
    for r in probe(tracking_mode=tracking_mode):
        table.add([r[c] for c in columns])
    emit_tables([table], "table")  # fitted to a terminal, whole lines in a pipe
    if measure <= 0:
        return
    m = make_meter(meter, device=device, tracking_mode=tracking_mode)
    m.start()
    try:
        overhead_ms = window_overhead_ms(m, 10)
        m.begin_window()
        _time.sleep(measure)
        reading = m.end_window()
    finally:
        m.close()
    echo_fitted(f"\n{m.name}: one {reading.duration_s:.2f} s window (idle: this process sleeps)")
    energy = "none" if reading.energy_kwh is None else f"{reading.energy_kwh * 1000:.4f} Wh"
    power = "none" if reading.avg_power_w is None else f"{reading.avg_power_w:.1f} W"
    echo_fitted(f"  energy {energy}, average power {power}, status {reading.status}")
    for comp, kwh in reading.components_kwh.items():
        echo_fitted(f"  {comp}: {kwh * 1000:.4f} Wh ({reading.methods.get(comp, '?')})")
    echo_fitted(f"  window overhead: {overhead_ms:.2f} ms per begin/end pair")


