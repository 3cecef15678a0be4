"""`greensed synth`, `greensed train` and `greensed meters`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import typer

from greensed.cli.app import app
from greensed.cli.options import stop_options
from greensed.errors import GreensedError
from greensed.recipes import RECIPES_DIR, recipe_path
from greensed.stopping.params import DEFAULT_METRIC

# --- data commands (synth) ---------------------------------------------------


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to create (must not exist or be empty)."),
    preset: str = typer.Option("quick", help="quick | small | paper-like (docs/data.md)."),
    seed: int = typer.Option(0, help="Same seed and preset: byte-identical output."),
    workers: int = typer.Option(1, min=1, help="Processes; the output does not depend on it."),
) -> None:
    """Generate a synthetic DESED-like dataset (audio/ + metadata/ layout)."""
    import time as _time

    from greensed.data.synth import SUBSETS, generate, get_preset

    p = get_preset(preset)
    t0 = _time.perf_counter()
    generate(out_dir, p, seed, workers=workers)
    sizes = ", ".join(f"{s} {p.size(s)}" for s in SUBSETS)
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
                 protocol: str | None = None) -> dict[str, dict[str, Any]]:
    """The training flags that were given, as config sections (paths made absolute,
    so a run directory names its data wherever it is read from)."""
    pairs = {
        "data": {"path": str(data.expanduser().resolve()) if data else None,
                 "skip_bad_audio": skip_bad_audio,
                 "cache_dir": str(cache_dir.expanduser().resolve()) if cache_dir else None},
        "train": {"protocol": protocol, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                  "device": device,
                  "max_steps_per_epoch": max_steps_per_epoch, "precision": precision,
                  "compile": compile_},
        "meter": {"spec": meter},
    }
    return {section: {k: v for k, v in values.items() if v is not None}
            for section, values in pairs.items()}


@app.command()
@stop_options
def train(
    data: Path | None = typer.Option(None, help="DESED root (DESED_task 2022 layout), greensed layout or dataset TOML; default: the embedded synthetic set"),
    recipe: Path | None = typer.Option(None, help="Recipe TOML (default: the quick recipe)"),
    out: Path | None = typer.Option(None, help="Run directory (default: runs/<recipe>-bs<B>-seed<S>-<time>)"),
    resume: Path | None = typer.Option(None, help="Resume the run in this directory"),
    force: bool = typer.Option(False, help="Resume even if the config differs"),
    epochs: int | None = typer.Option(None, help="Epoch cap (the max-epochs policy)"),
    batch_size: int | None = typer.Option(None, help="Total batch size, a multiple of 4"),
    seed: int | None = typer.Option(None),
    device: str | None = typer.Option(None, help="auto | cpu | cuda"),
    precision: str | None = typer.Option(None, help="fp32 | bf16 (autocast of the forward passes; for GPUs)"),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the training step's forward passes (pays off after a few epochs; docs/performance.md)"),
    metric: str | None = typer.Option(None, help=f"metric the policies watch (default {DEFAULT_METRIC}, or the recipe's)"),
    meter: str | None = typer.Option(None, help="auto | codecarbon | nvml | constant:WATTS | none"),
    protocol: str | None = typer.Option(None, help="baseline (DESED_task 2022's weak split, validation, best-epoch rule and step schedule) | greensed (greensed's earlier protocol, for CPU-sized synthetic runs); default: the recipe's (docs/training.md)"),
    skip_bad_audio: bool | None = typer.Option(None, "--skip-bad-audio", help="Train without the audio files a tsv lists but the disk lacks, and without unreadable ones (each subset's count and first names are printed at start-up; summary.json left_out_audio counts them per reason)"),
    max_steps_per_epoch: int | None = typer.Option(None, help="Cap steps per epoch (smoke tests)"),
    cache_dir: Path | None = typer.Option(None, help="Cache for synthetic data and features"),
    nproc: int = typer.Option(1, "--nproc", help="Processes (GPUs) for one run; under torchrun leave it out (docs/multigpu.md)"),
    stop_flags: dict[str, Any] | None = None,
) -> None:
    """Train the DCASE CRNN mean teacher with live energy readings and early stopping."""
    from rich.console import Console

    from greensed import config as C
    from greensed.runlog import RunDir, RunStatus
    from greensed.stopping import stop_flags as apply_stop_flags
    from greensed.train.loop import train as run_training

    # Lines as they are: no markup ("[train] protocol" is text), no wrapping (a log file
    # keeps the one-line layout and epoch reports whole).
    console = Console(highlight=False, markup=False, soft_wrap=True)
    if resume is not None:
        if out is not None and out.resolve() != resume.resolve():
            raise GreensedError(f"--resume {resume} --out {out}: a resumed run stays in its "
                                "directory; give one of them")
        d = RunDir(resume)
        if not d.config.exists():
            raise GreensedError(f"{resume}: nothing to resume (no {d.config.name})")
        text = d.read_config_text() or ""
        cfg = C.from_toml_text(text, str(d.config))
        if recipe is not None:
            cfg = C.load_recipe(_recipe(recipe), cfg)
        run_dir = resume
        # The run keeps the recipe name it started with (the summary, else the launcher's).
        before = d.read_summary()
        name = (before.recipe if before and before.recipe else
                str((d.read_object(d.launch) or {}).get("recipe") or resume.name))
    else:
        path = _recipe(recipe) if recipe else DEFAULT_RECIPE
        cfg = C.load_recipe(path)
        name = path.stem
    cfg = C.override(cfg, _train_flags(
        data=data, epochs=epochs, batch_size=batch_size, seed=seed, device=device, meter=meter,
        skip_bad_audio=skip_bad_audio, max_steps_per_epoch=max_steps_per_epoch,
        cache_dir=cache_dir, precision=precision, compile_=compile_, protocol=protocol),
        "command line")
    cfg = dataclasses.replace(cfg, stop=apply_stop_flags(cfg.stop, metric=metric,
                                                         **(stop_flags or {})))
    if resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = out or Path("runs") / f"{name}-bs{cfg.train.batch_size}-seed{cfg.train.seed}-{stamp}"
    result = run_training(cfg, run_dir, resume=resume is not None, force=force,
                          report=lambda line: console.print(line), recipe_name=name, nproc=nproc)
    if result.summary.status is RunStatus.FAILED:
        raise typer.Exit(1)
    if result.summary.status is RunStatus.INTERRUPTED:
        raise typer.Exit(130)


# --- energy commands (meters) -------------------------------------------------


@app.command()
def meters(
    measure: float = typer.Option(
        0.0, min=0.0, help="Also take one window of this many seconds with --meter and print it"
    ),
    meter: str = typer.Option(
        "auto", help="auto | codecarbon | nvml | constant:WATTS[+DEVICE_W] | none (for --measure)"
    ),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N (for --measure)"),
    tracking_mode: str = typer.Option("machine", help="machine | process (CodeCarbon)"),
) -> None:
    """What this machine can measure (hardware counters) and what is only modelled."""
    import time as _time

    from greensed.energy import make_meter, probe, window_overhead_ms

    rows = probe(tracking_mode=tracking_mode)
    widths = [max(len(r[k]) for r in rows + [dict(source="source", component="component",
              method="method", kind="kind")]) for k in ("source", "component", "method", "kind")]
    header = ("source", "component", "method", "kind")
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  detail")
    for r in rows:
        cells = [r[k].ljust(w) for k, w in zip(header, widths, strict=True)]
        typer.echo("  ".join(cells) + "  " + r["detail"])
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
    typer.echo(f"\n{m.name}: one {reading.duration_s:.2f} s window (idle: this process sleeps)")
    energy = "none" if reading.energy_kwh is None else f"{reading.energy_kwh * 1000:.4f} Wh"
    power = "none" if reading.avg_power_w is None else f"{reading.avg_power_w:.1f} W"
    typer.echo(f"  energy {energy}, average power {power}, status {reading.status}")
    for comp, kwh in reading.components_kwh.items():
        typer.echo(f"  {comp}: {kwh * 1000:.4f} Wh ({reading.methods.get(comp, '?')})")
    typer.echo(f"  window overhead: {overhead_ms:.2f} ms per begin/end pair")


