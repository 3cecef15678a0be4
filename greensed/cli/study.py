"""`greensed reproduce`, `report`, `dcase`, `replay`, `bench-policies`, `status` and
`evaluate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from greensed.cli.app import app, emit_tables, fail
from greensed.cli.options import (
    DATA_HELP,
    DEVICE_HELP,
    EPOCHS_HELP,
    FORMAT_HELP,
    METER_HELP,
    METRIC_HELP,
    RUNS_HELP,
    stop_options,
)
from greensed.numbers import count
from greensed.stopping.params import DEFAULT_METRIC
from greensed.study.bench import MAX_LOSS, MAX_TOO_EARLY, TOO_EARLY
from greensed.study.report import TARGET_F1

# --- study commands ------------------------------------------------------------


@app.command("reproduce")
def reproduce_cmd(
    grid_recipe: Path = typer.Argument(..., metavar="GRID_TOML", help="Grid recipe TOML (e.g. recipes/paper/grid.toml)."),
    data: Path | None = typer.Option(None, metavar="PATH", help=f"{DATA_HELP}, for every cell (overrides data.path)."),
    out: Path | None = typer.Option(None, metavar="DIR", help="Output folder; cells go to OUT/<batch>/<seed>/ (default runs/<grid name>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the cells and what would happen (skip/resume/start); run nothing."),
    launcher: str = typer.Option("local", metavar="local|slurm", help="Where the cells run: local | slurm"),
    max_parallel: int | None = typer.Option(None, metavar="N", help="Cells at once (local: subprocesses; slurm: array parallelism)."),
    partition: str | None = typer.Option(None, metavar="NAME", help="SLURM partition."),
    gpus_per_run: int | None = typer.Option(None, metavar="N", help="SLURM: GPUs per cell."),
    cpus_per_run: int | None = typer.Option(None, metavar="N", help="CPUs (threads) per cell."),
    time_min: int | None = typer.Option(None, metavar="MIN", help="SLURM time limit per job in minutes (a cell that runs longer is requeued and resumed)."),
    meter: str | None = typer.Option(None, metavar="SPEC", help=f"{METER_HELP}, for every cell."),
    epochs: int | None = typer.Option(None, metavar="N", help=f"{EPOCHS_HELP}, for every cell."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="slurm: follow the jobs to the end, or submit and return."),
) -> None:
    """Run every cell of a grid recipe (finished cells skipped, unfinished resumed).

    \b
    Examples:
      greensed reproduce recipes/paper/grid.toml --data /data/DESED --dry-run
      greensed reproduce recipes/paper/grid.toml --launcher slurm --partition gpu --time-min 240
    """
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
    emit_tables([status_table([result.out])], "table")
    failed = result.failed
    typer.echo(f"\n{count(len(result.plans), 'cell')} in {time.monotonic() - t0:.0f} s"
               + (f"; {len(failed)} failed: " + ", ".join(o.plan.label for o in failed)
                  if failed else ""))
    if failed:
        raise typer.Exit(1)
    if result.interrupted:
        raise typer.Exit(130)


@app.command("report")
def report_cmd(
    run_dirs: list[str] = typer.Argument(..., metavar="RUN_DIR", help=RUNS_HELP + "."),
    by: str = typer.Option("batch", "--by", metavar="KEY", help="Group runs by: batch | hardware | recipe."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP + "."),
    out: Path = typer.Option(Path("report"), "--out", metavar="DIR", help="Folder for the CSV tables and PNG plots (written before the tables print)."),
    metric: str | None = typer.Option(None, "--metric", metavar="METRIC", help=f"{METRIC_HELP}, used as F1 (default: each run's own watched metric)."),
    target_f1: float = typer.Option(TARGET_F1, "--target-f1", metavar="F1", help="Fixed F1 level (a fraction)."),
    reference: list[str] = typer.Option(
        None, "--reference", metavar="RUN_DIR", help="Reference (baseline) run on the same hardware; repeatable."),
    reference_kwh: float = typer.Option(
        None, "--reference-kwh", metavar="KWH", help="Reference energy in kWh, for every run."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots to --out."),
    std: str = typer.Option("seed", "--std", metavar="seed|runs", help="seed: the spread over seeds within each (group, other factor) cell, pooled, as the paper; runs: over all of a group's runs."),
    include_unfinished: bool = typer.Option(False, "--include-unfinished", help="Also count interrupted, diverged, failed and incomplete runs (their finished epochs)."),
) -> None:
    """Tables 1 and 2 of the paper (mean ± std per group), plots and CSVs.

    The CSVs in --out hold numbers: each "mean ± std" cell of the tables is a
    "<column> mean" and a "<column> std" column there (docs/report.md).

    \b
    Examples:
      greensed report runs/paper --by batch --out report
      greensed report runs/ --reference runs/baseline --format markdown | head -20
    """
    from greensed.study import report as rp
    from greensed.study.tables import render

    if reference and reference_kwh is not None:
        fail("give --reference RUN_DIR or --reference-kwh X, not both")
    rep = rp.build_report(run_dirs, by=by, metric=metric, target_f1=target_f1,
                          reference_dirs=reference or (), reference_kwh=reference_kwh,
                          std=std, include_unfinished=include_unfinished)
    tables = rp.tables(rep, target_f1)
    # The files first: a reader that leaves early (`| head`) still gets all of them.
    out.mkdir(parents=True, exist_ok=True)
    names = ["table1.csv", "table2.csv", "normalised.csv"]
    for name, table in zip(names, tables, strict=False):
        (out / name).write_text(render(table, "csv"))
    (out / "runs.csv").write_text(render(rp.runs_table(rep), "csv"))
    written = [out / n for n in names[: len(tables)]] + [out / "runs.csv"]
    if plots:
        from greensed.study.plots import plot_runs

        written += plot_runs(rep, out)
    for w in rep.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)
    emit_tables(tables, fmt)


@app.command("dcase")
def dcase_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="The system's run directory (with psds.json from `greensed evaluate`)."),
    baseline: Path = typer.Option(..., "--baseline", metavar="RUN_DIR", help="The baseline's run, trained on the same hardware."),
    baseline_epochs: int | None = typer.Option(None, "--baseline-epochs", min=1, metavar="N", help="Normalise by the energy of the baseline's first N epochs (DCASE 2024 task 4: N = 10; docs/report.md)."),
    include_unfinished: bool = typer.Option(False, "--include-unfinished", help="Use an interrupted or incomplete run's finished epochs anyway (flagged in the table)."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP + "."),
) -> None:
    """The energy figures of a DCASE task 4 submission, and the energy-weighted PSDS.

    Training kWh of the system and of the baseline, the normalised energy
    kWh_system / kWh_baseline, and EW-PSDS = PSDS x kWh_baseline / kWh_system
    (Ronchini & Serizel, 2023) for PSDS1 and PSDS2 from psds.json, with the
    evaluation's own energy on its own line. An unfinished run is refused unless
    --include-unfinished; unlike runs are warned about (docs/report.md).

    \b
    Examples:
      greensed evaluate runs/mine && greensed evaluate runs/baseline
      greensed dcase runs/mine --baseline runs/baseline
      greensed dcase runs/mine --baseline runs/baseline-10-epochs --baseline-epochs 10
    """
    from greensed.study.dcase import dcase_energy, dcase_table

    d = dcase_energy(run_dir, baseline, baseline_epochs=baseline_epochs,
                     include_unfinished=include_unfinished)
    for w in d.warnings:
        typer.echo(f"warning: {w}", err=True)
    emit_tables([dcase_table(d)], fmt)


@app.command("replay")
@stop_options
def replay_cmd(
    run_dirs: list[str] = typer.Argument(..., metavar="RUN_DIR", help="Full-run directories, or folders holding them."),
    policy: list[str] = typer.Option(
        None, "--policy", metavar="SPEC",
        help="Another policy to compare, e.g. 'plateau:patience=5' or 'budget:kwh=0.3'; "
             "repeatable."),
    metric: str | None = typer.Option(None, "--metric", metavar="METRIC", help=f"{METRIC_HELP}, that the policies watch and F1 is read from (default: each run's own watched metric)."),
    by: str = typer.Option("all", "--by", metavar="KEY", help="Aggregate by: all | batch | hardware | recipe."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP + "."),
    per_run: bool = typer.Option(True, "--per-run/--no-per-run", help="Show the per-run table."),
    csv_path: Path | None = typer.Option(None, "--csv", metavar="FILE", help="Also write one row per run x policy to this CSV file."),
    forecast_csv: Path | None = typer.Option(None, "--forecast-csv", metavar="FILE", help="Also write one row per run x epoch at which a forecast policy forecast: predicted best, lo95, hi95, lo50, hi50, ... (docs/forecast.md)."),
    stop_flags: dict[str, Any] | None = None,
) -> None:
    """Apply stopping policies offline to full-run logs: energy saved vs F1 lost.

    \b
    Examples:
      greensed replay runs/paper --policy plateau:patience=5 --policy budget:kwh=0.3
      greensed replay runs/paper --stop plateau --patience 10 --by batch --csv replay.csv
    """
    from greensed.config import StopConfig
    from greensed.stopping import describe
    from greensed.stopping import stop_flags as apply_stop_flags
    from greensed.study import replay as rpl

    policies = []
    base = StopConfig(metric=metric or DEFAULT_METRIC)  # replay() retargets to each run's
    if any(v is not None for v in (stop_flags or {}).values()):
        cfg = apply_stop_flags(base, **(stop_flags or {}))
        policies.append(rpl.NamedPolicy(describe(cfg), cfg))
    for spec in policy or []:
        policies.append(rpl.parse_policy_spec(spec, base))
    rows: list[list[Any]] | None = [] if forecast_csv is not None else None
    results, warnings = rpl.replay(run_dirs, policies, metric=metric, by=by, forecasts=rows)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    tables = ([rpl.per_run_table(results)] if per_run else []) + [
        rpl.summary_table(results, by)]
    tables[-1].notes += warnings
    emit_tables(tables, fmt)
    if csv_path is not None:
        rpl.write_csv(results, csv_path)
        typer.echo(f"wrote {csv_path}", err=True)
    if forecast_csv is not None and rows is not None:
        if not rows:
            typer.echo("warning: no forecast policy forecast (none in the policies, or "
                       "no epoch after its min_epochs); the forecast CSV has its header only",
                       err=True)
        rpl.write_forecast_csv(rows, forecast_csv)
        typer.echo(f"wrote {forecast_csv} ({len(rows)} forecasts)", err=True)


@app.command("bench-policies")
def bench_policies_cmd(
    corpus: list[str] = typer.Argument(..., metavar="RUN_DIR", help="Full-length runs (no early stop), or folders of them, e.g. benchmarks/curves."),
    metric: str | None = typer.Option(None, "--metric", metavar="METRIC", help=f"{METRIC_HELP}, that the policies watch and F1 loss is measured on (default: the runs' own watched metric)."),
    checkpoint_metric: str | None = typer.Option(None, "--checkpoint-metric", metavar="METRIC", help="Metric that picks the kept checkpoint (default: --metric)."),
    max_loss: float = typer.Option(MAX_LOSS, "--max-loss", min=0.0, metavar="FRACTION", help="Largest mean relative loss (kept test loss where the runs have test scores, else of the validation max) a setting chosen on the other seeds' runs may have."),
    max_too_early: float = typer.Option(MAX_TOO_EARLY, "--max-too-early", min=0.0, max=1.0, metavar="FRACTION", help=f"Largest share of those runs whose loss is above {TOO_EARLY:.0%} a chosen setting may have."),
    out: Path | None = typer.Option(None, "--out", metavar="DIR", help="Write outcomes.csv, settings.csv and pareto.png into this folder (default: no files, the tables only)."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP + "."),
) -> None:
    """Replay every policy family over a grid of its parameters on a corpus of full runs.

    \b
    Example:
      greensed bench-policies benchmarks/curves --metric student_f1
    """
    from greensed.study import bench as B
    from greensed.study.bench_grid import default_grid
    from greensed.study.bench_report import (
        bench_table,
        plot_pareto,
        write_outcomes_csv,
        write_summary_csv,
    )
    from greensed.study.calibration import calibration_tables, held_out_checks

    t0 = time.monotonic()
    runs, warnings = B.load_corpus(corpus, metric=metric, checkpoint_metric=checkpoint_metric)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    settings, left_out = _settings_that_apply(default_grid(runs[0].metric, runs), runs)
    for w in left_out:
        typer.echo(f"warning: {w}", err=True)
    result = B.run_benchmark(runs, settings, max_loss=max_loss, max_too_early=max_too_early)
    table = bench_table(result)
    table.notes += left_out
    emit_tables([table, *calibration_tables(held_out_checks(runs, runs[0].metric))], fmt)
    n_settings = len({o.setting.label for o in result.outcomes})
    done = (f"{count(n_settings, 'setting')} x {count(len(runs), 'run')} in "
            f"{time.monotonic() - t0:.1f} s")
    if out is None:  # files only where the user asks for them
        typer.echo(f"{done}; no files written (--out DIR writes outcomes.csv, settings.csv "
                   "and pareto.png)", err=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    write_outcomes_csv(result, out / "outcomes.csv")
    write_summary_csv(result, out / "settings.csv")
    plot_pareto(result, out / "pareto.png")
    typer.echo(f"{done}; wrote {out / 'outcomes.csv'}, {out / 'settings.csv'}, "
               f"{out / 'pareto.png'}", err=True)


def _settings_that_apply(settings: list[Any], runs: list[Any]) -> tuple[list[Any], list[str]]:
    """The settings a policy can be built with for the corpus's shortest run, and a note
    per family left out: a forecast needs 10 epochs before it may stop, so runs shorter
    than that get no forecast rather than an error about its settings."""
    from greensed.config import StopConfig
    from greensed.errors import GreensedError
    from greensed.stopping import POLICY_NAMES, make_policy

    shortest = min(r.epochs for r in runs)
    keep: list[Any] = []
    dropped: dict[str, list[str]] = {}
    for s in settings:
        if s.family in POLICY_NAMES and not s.oracle:
            try:
                make_policy(s.label, max_epochs=shortest, base=StopConfig(metric=runs[0].metric))
            except GreensedError as e:
                dropped.setdefault(s.family, []).append(str(e))
                continue
        keep.append(s)
    notes = [f"{family}: {count(len(why), 'setting')} left out, the runs are too short for "
             f"them (the shortest has {count(shortest, 'epoch')}: {why[0]})"
             for family, why in dropped.items()]
    return keep, notes


@app.command("status")
def status_cmd(
    run_dirs: list[str] = typer.Argument(..., metavar="RUN_DIR", help=RUNS_HELP + "."),
    metric: str | None = typer.Option(None, "--metric", metavar="METRIC", help=f"{METRIC_HELP}, shown as F1 (default: each run's own watched metric)."),
    fmt: str = typer.Option("table", "--format", metavar="FORMAT", help=FORMAT_HELP + "."),
) -> None:
    """Where each run stands: state, epochs done, best and last F1, energy so far.

    \b
    Example:
      greensed status runs/
    """
    from greensed.study.status import status_table

    emit_tables([status_table(run_dirs, metric)], fmt)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A run directory with checkpoints/best.pt"),
    data: Path | None = typer.Option(None, metavar="PATH", help=f"{DATA_HELP}: evaluate on its test set (else its validation set) instead of the run's"),
    model: str | None = typer.Option(None, metavar="student|teacher", help="student | teacher: whose scores psds.json's top-level fields hold (default: the run's model of record; both are scored)"),
    meter: str | None = typer.Option(None, metavar="SPEC", help=f"{METER_HELP}, for the evaluation's own energy"),
    device: str | None = typer.Option(None, metavar="DEVICE", help=DEVICE_HELP),
) -> None:
    """PSDS1, PSDS2 (greensed.metrics.psds) and intersection F1 of the best checkpoint's student
    and teacher on the run's test set (else its validation set), to psds.json.

    \b
    Example:
      greensed evaluate runs/quick-bs8-seed42-20240101-120000
    """
    from greensed.runlog import RunDir
    from greensed.train.evaluate import evaluate as run_eval

    res = run_eval(run_dir, data=str(data) if data else None, model=model, meter_spec=meter,
                   device=device, progress=lambda line: typer.echo(line, err=True))
    e = res["eval_energy"]
    energy = f"{e['energy_kwh'] * 1000:.3f} Wh" if e.get("energy_kwh") is not None else e.get("energy_status")
    typer.echo(f"{run_dir}: {res['subset']} set, {res['n_clips']} clips, epoch "
               f"{res['checkpoint_epoch']} (best by {res['checkpoint_metric']}), model of record "
               f"{res['model_of_record']}")
    for who, m in res["models"].items():
        mark = " (model of record)" if who == res["model_of_record"] else ""
        typer.echo(f"  {who}: PSDS1 {m['psds1']:.3f} | PSDS2 {m['psds2']:.3f} | intersection "
                   f"F1 {m['f1_05']:.3f} at DTC/GTC 0.5 (baseline), {m['f1']:.3f} at the run's "
                   f"DTC/GTC{mark}")
    typer.echo(f"  evaluation energy {energy} in {e['duration_s']:.1f} s -> {RunDir(run_dir).psds}")
