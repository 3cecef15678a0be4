"""The `greensed` command line: wires the layers together; nothing imports it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer

from greensed.errors import ConfigError, GreensedError

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

REPO_RECIPES = Path(__file__).resolve().parent / "recipes"  # package data: there after `pip install .`
DEFAULT_RECIPE = REPO_RECIPES / "quick.toml"


def _apply_train_flags(cfg: Any, *, data: Path | None, epochs: int | None,
                       batch_size: int | None, seed: int | None, device: str | None,
                       meter: str | None, skip_bad_audio: bool | None,
                       max_steps_per_epoch: int | None, cache_dir: Path | None,
                       precision: str | None = None, compile_: bool | None = None) -> None:
    """CLI flags override recipe keys (None: flag not given)."""
    from greensed.config import update_section

    pairs = {
        "data": {"path": str(data) if data else None, "skip_bad_audio": skip_bad_audio,
                 "cache_dir": str(cache_dir) if cache_dir else None},
        "train": {"epochs": epochs, "batch_size": batch_size, "seed": seed, "device": device,
                  "max_steps_per_epoch": max_steps_per_epoch, "precision": precision,
                  "compile": compile_},
        "meter": {"spec": meter},
    }
    for section, values in pairs.items():
        given = {k: v for k, v in values.items() if v is not None}
        update_section(getattr(cfg, section), given, f"command line [{section}]")
    for flag, value in (("--epochs", epochs), ("--batch-size", batch_size),
                        ("--max-steps-per-epoch", max_steps_per_epoch)):
        if value is not None and value < (0 if flag == "--max-steps-per-epoch" else 1):
            raise ConfigError(f"{flag} {value}: must be positive")


@app.command()
def train(
    data: Path | None = typer.Option(None, help="DESED-style root or dataset TOML; default: the embedded synthetic set"),
    recipe: Path | None = typer.Option(None, help="Recipe TOML (default: recipes/quick.toml)"),
    out: Path | None = typer.Option(None, help="Run directory (default: runs/<recipe>-bs<B>-seed<S>-<time>)"),
    resume: Path | None = typer.Option(None, help="Resume the run in this directory"),
    force: bool = typer.Option(False, help="Resume even if the config differs"),
    epochs: int | None = typer.Option(None, help="Epoch cap (the max-epochs policy)"),
    batch_size: int | None = typer.Option(None, help="Total batch size, a multiple of 4"),
    seed: int | None = typer.Option(None),
    device: str | None = typer.Option(None, help="auto | cpu | cuda"),
    precision: str | None = typer.Option(None, help="fp32 | bf16 (autocast of the forward passes; for GPUs)"),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the training step's forward passes (pays off after a few epochs; docs/performance.md)"),
    stop: list[str] | None = typer.Option(None, help="Stopping policy: plateau, budget, target, marginal, max-epochs (repeatable)"),
    patience: int | None = typer.Option(None, help="plateau: epochs without improvement"),
    min_delta: float | None = typer.Option(None, help="plateau: minimum improvement"),
    warmup: int | None = typer.Option(None, help="plateau/marginal: epochs before they may stop"),
    budget_kwh: float | None = typer.Option(None, help="budget: kWh ceiling"),
    target_f1: float | None = typer.Option(None, help="target: stop when the metric reaches this"),
    min_f1_per_kwh: float | None = typer.Option(None, help="marginal: minimum F1 gain per kWh"),
    metric: str | None = typer.Option(None, help="metric the policies watch (default teacher_f1)"),
    combine: str | None = typer.Option(None, help="any | all"),
    meter: str | None = typer.Option(None, help="auto | codecarbon | nvml | constant:WATTS"),
    skip_bad_audio: bool | None = typer.Option(None, "--skip-bad-audio", help="Skip unreadable audio files"),
    max_steps_per_epoch: int | None = typer.Option(None, help="Cap steps per epoch (smoke tests)"),
    cache_dir: Path | None = typer.Option(None, help="Cache for synthetic data and features"),
    nproc: int = typer.Option(1, "--nproc", help="Processes (GPUs) for one run; under torchrun leave it out (docs/multigpu.md)"),
) -> None:
    """Train the DCASE CRNN mean teacher with live energy readings and early stopping."""
    from rich.console import Console

    from greensed import config as C
    from greensed.runlog import RunDir, RunStatus
    from greensed.stopping import parse_stop_cli
    from greensed.train.loop import train as run_training

    console = Console(highlight=False)
    if resume is not None:
        saved = RunDir(resume).config
        if not saved.exists():
            raise GreensedError(f"{resume}: nothing to resume (no {saved.name})")
        cfg = C.from_toml_text(saved.read_text(), str(saved))
        if recipe is not None:
            cfg = C.load_recipe(recipe, cfg)
        run_dir = resume
        name = resume.name
    else:
        recipe_path = recipe or DEFAULT_RECIPE
        cfg = C.load_recipe(recipe_path)
        name = recipe_path.stem
    _apply_train_flags(cfg, data=data, epochs=epochs, batch_size=batch_size, seed=seed,
                       device=device, meter=meter, skip_bad_audio=skip_bad_audio,
                       max_steps_per_epoch=max_steps_per_epoch, cache_dir=cache_dir,
                       precision=precision, compile_=compile_)
    parse_stop_cli(cfg.stop, stop=stop, patience=patience, min_delta=min_delta,
                   budget_kwh=budget_kwh, target_f1=target_f1, min_f1_per_kwh=min_f1_per_kwh,
                   warmup=warmup, metric=metric, combine=combine)
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


# --- study commands (reproduce, report, replay, evaluate, status) ------------


def _emit_tables(tables: list, fmt: str) -> None:
    from greensed.study.tables import FORMATS, render

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    for i, table in enumerate(tables):
        if i:
            typer.echo("")
        if fmt == "csv":
            typer.echo(f"# {table.title}")  # several tables in one CSV stream
        typer.echo(render(table, fmt), nl=False)


@app.command("reproduce")
def reproduce_cmd(
    grid_recipe: Path = typer.Argument(..., help="Grid recipe TOML (e.g. recipes/paper/grid.toml)."),
    data: Path | None = typer.Option(None, help="DESED root or dataset TOML for every cell (overrides data.path)."),
    out: Path | None = typer.Option(None, help="Output folder; cells go to OUT/<batch>/<seed>/ (default runs/<grid name>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and what would happen (skip/resume/start); run nothing."),
    launcher: str = typer.Option("local", help="local | slurm"),
    max_parallel: int | None = typer.Option(None, help="Cells at once (local: subprocesses; slurm: array parallelism)."),
    partition: str | None = typer.Option(None, help="SLURM partition."),
    gpus_per_run: int | None = typer.Option(None, help="SLURM: GPUs per cell."),
    cpus_per_run: int | None = typer.Option(None, help="CPUs (threads) per cell."),
    time_min: int | None = typer.Option(None, help="SLURM time limit per job in minutes (a cell that runs longer is requeued and resumed)."),
    meter: str | None = typer.Option(None, help="Meter for every cell: auto | codecarbon | nvml | constant:WATTS"),
    epochs: int | None = typer.Option(None, help="Epoch cap for every cell."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="slurm: follow the jobs to the end, or submit and return."),
) -> None:
    """Run every cell of a grid recipe (finished cells are skipped, unfinished ones resumed)."""
    from greensed.launch import reproduce
    from greensed.launch.plan import resolve_resources
    from greensed.study.status import status_table

    res = resolve_resources(grid_recipe, partition=partition, gpus_per_run=gpus_per_run,
                            cpus_per_run=cpus_per_run, time_min=time_min,
                            max_parallel=max_parallel)
    t0 = time.monotonic()
    result = reproduce(grid_recipe, out=out, data=str(data) if data else None, epochs=epochs,
                       meter=meter, launcher=launcher, resources=res, dry_run=dry_run,
                       wait=wait, report=typer.echo)
    if dry_run:
        return
    typer.echo("")
    _emit_tables([status_table([result.out])], "table")
    failed = result.failed
    typer.echo(f"\n{len(result.plans)} cells in {time.monotonic() - t0:.0f} s"
               + (f"; {len(failed)} failed: " + ", ".join(o.plan.label for o in failed)
                  if failed else ""))
    if failed:
        raise typer.Exit(1)
    if result.interrupted:
        raise typer.Exit(130)


@app.command("report")
def report_cmd(
    run_dirs: list[str] = typer.Argument(..., help="Run directories, or folders holding them."),
    by: str = typer.Option("batch", "--by", help="Group runs by batch, hardware or recipe."),
    fmt: str = typer.Option("table", "--format", help="table, csv or markdown."),
    out: str = typer.Option("report", "--out", help="Folder for the PNG plots and CSV tables."),
    metric: str = typer.Option("teacher_f1", "--metric", help="Epoch metric used as F1."),
    target_f1: float = typer.Option(0.40, "--target-f1", help="Fixed F1 level (fraction)."),
    reference: list[str] = typer.Option(
        None, "--reference", help="Reference (baseline) run on the same hardware; repeatable."),
    reference_kwh: float = typer.Option(
        None, "--reference-kwh", help="Reference energy in kWh, for every run."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots to --out."),
) -> None:
    """Tables 1 and 2 of the paper (mean ± std per group), plots and CSVs."""
    from pathlib import Path

    from greensed.study import report as rp
    from greensed.study.tables import render

    if reference and reference_kwh is not None:
        fail("give --reference RUN_DIR or --reference-kwh X, not both")
    rep = rp.build_report(run_dirs, by=by, metric=metric, target_f1=target_f1,
                          reference_dirs=reference or (), reference_kwh=reference_kwh)
    for w in rep.warnings:
        typer.echo(f"warning: {w}", err=True)
    tables = rp.tables(rep, target_f1)
    _emit_tables(tables, fmt)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ["table1.csv", "table2.csv", "normalised.csv"]
    for name, table in zip(names, tables, strict=False):
        (out_dir / name).write_text(render(table, "csv"))
    (out_dir / "runs.csv").write_text(render(rp.runs_table(rep), "csv"))
    written = [out_dir / n for n in names[: len(tables)]] + [out_dir / "runs.csv"]
    if plots:
        from greensed.study.plots import plot_runs

        written += plot_runs(rep, out_dir)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)


@app.command("replay")
def replay_cmd(
    run_dirs: list[str] = typer.Argument(..., help="Full-run directories, or folders of them."),
    stop: list[str] = typer.Option(
        None, "--stop", help="Policies: plateau, budget, target, marginal (comma-separated)."),
    patience: int = typer.Option(None, "--patience"),
    min_delta: float = typer.Option(None, "--min-delta"),
    warmup: int = typer.Option(None, "--warmup", help="Epochs the policies ignore."),
    budget_kwh: float = typer.Option(None, "--budget-kwh"),
    target_f1: float = typer.Option(None, "--target-f1"),
    min_f1_per_kwh: float = typer.Option(None, "--min-f1-per-kwh"),
    window: int = typer.Option(None, "--window", help="Window of the marginal policy."),
    combine: str = typer.Option(None, "--combine", help="any or all."),
    policy: list[str] = typer.Option(
        None, "--policy",
        help="Another policy to compare, e.g. 'plateau:patience=5' or 'budget:kwh=0.3'; "
             "repeatable."),
    metric: str = typer.Option("teacher_f1", "--metric", help="Metric the policies and F1 use."),
    by: str = typer.Option("all", "--by", help="Aggregate by all, batch, hardware or recipe."),
    fmt: str = typer.Option("table", "--format", help="table, csv or markdown."),
    per_run: bool = typer.Option(True, "--per-run/--no-per-run", help="Show the per-run table."),
) -> None:
    """Apply stopping policies offline to full-run logs: energy saved vs F1 lost."""
    from greensed.config import StopConfig
    from greensed.stopping import parse_stop_cli
    from greensed.study import replay as rpl

    policies = []
    flags = dict(patience=patience, min_delta=min_delta, budget_kwh=budget_kwh,
                 target_f1=target_f1, min_f1_per_kwh=min_f1_per_kwh, warmup=warmup,
                 combine=combine, marginal_window=window)
    if stop or any(v is not None for v in flags.values()):
        cfg = StopConfig(metric=metric)
        parse_stop_cli(cfg, stop=stop, **flags)
        policies.append(rpl.NamedPolicy(rpl.describe(cfg), cfg))
    for spec in policy or []:
        policies.append(rpl.parse_policy_spec(spec, StopConfig(metric=metric)))
    results, warnings = rpl.replay(run_dirs, policies, metric=metric, by=by)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    tables = ([rpl.per_run_table(results)] if per_run else []) + [
        rpl.summary_table(results, by)]
    _emit_tables(tables, fmt)


@app.command("status")
def status_cmd(
    run_dirs: list[str] = typer.Argument(..., help="Run directories, or folders holding them."),
    metric: str = typer.Option("teacher_f1", "--metric", help="Epoch metric shown as F1."),
    fmt: str = typer.Option("table", "--format", help="table, csv or markdown."),
) -> None:
    """Where each run stands: state, epochs done, best and last F1, energy so far."""
    from greensed.study.status import status_table

    _emit_tables([status_table(run_dirs, metric)], fmt)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory with checkpoints/best.pt"),
    data: Path | None = typer.Option(None, help="Evaluate on this dataset's validation set instead"),
    model: str | None = typer.Option(None, help="student | teacher (default: the model the stopping metric watched)"),
    meter: str | None = typer.Option(None, help="Meter for the evaluation's own energy"),
    device: str | None = typer.Option(None, help="auto | cpu | cuda"),
) -> None:
    """PSDS1, PSDS2 (sed_scores_eval) and intersection F1 of the best checkpoint."""
    from greensed.runlog import RunDir
    from greensed.train.evaluate import evaluate as run_eval

    res = run_eval(run_dir, data=str(data) if data else None, model=model, meter_spec=meter,
                   device=device, progress=lambda line: typer.echo(line, err=True))
    e = res["eval_energy"]
    energy = f"{e['energy_kwh'] * 1000:.3f} Wh" if e.get("energy_kwh") is not None else e.get("energy_status")
    typer.echo(f"{run_dir} ({res['model']}, epoch {res['checkpoint_epoch']}, {res['n_clips']} clips): "
               f"PSDS1 {res['psds1']:.3f} | PSDS2 {res['psds2']:.3f} | intersection F1 "
               f"{res['f1']:.3f} (DTC/GTC from the run's config; no-TP class = 0) | "
               f"evaluation energy {energy} in {e['duration_s']:.1f} s -> {RunDir(run_dir).psds}")


def main() -> None:
    """Entry point: every user error is one line on stderr and exit status 2."""
    try:
        code = app(standalone_mode=False)
    except GreensedError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors of typer's (vendored) click: bad flag, wrong type, no such command.
        if not hasattr(exc, "format_message"):
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)

if __name__ == "__main__":
    main()
