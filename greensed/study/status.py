"""One line per run directory: where each run stands (reads run logs only).

Besides the run log, a grid cell launched by `greensed reproduce` holds
``launch.json`` (written by the launcher, see docs/cluster.md): it makes a
cell visible before its run log exists (queued) and keeps the error of a cell
that failed before the trainer wrote anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from greensed import runlog
from greensed.runlog import LaunchRecord, LaunchState, RunDir
from greensed.study.collect import RunState, energy_of, own_metric, state_of
from greensed.study.runs import read_config
from greensed.study.tables import Table, decimals_for


def run_state(run: runlog.RunLog, launch: LaunchRecord | None = None) -> str:
    """The run's state (greensed.study.collect.state_of: finished, interrupted,
    diverged, failed, running, incomplete, damaged), or the launcher's word for a
    cell that has not started again: `queued` (submitted) or `failed` (its error)."""
    state, _ = state_of(run)
    if state is RunState.RUNNING:
        return state.value
    launched = launch.state if launch is not None else None
    # A resubmitted cell keeps its old summary until the new attempt ends.
    if launched is LaunchState.SUBMITTED and state is not RunState.FINISHED:
        return "queued"
    if launched is LaunchState.FAILED and state is not RunState.FINISHED:
        return "failed"
    return state.value


def find_cells(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories (with a run log) and launched grid cells (with
    launch.json) at or below ``paths``, sorted."""
    launched = {p for p in map(Path, paths) if RunDir(p).launch.exists()}
    found = set(runlog.find_runs([p for p in paths if Path(p) not in launched])) | launched
    name = RunDir(Path(".")).launch.name
    for p in map(Path, paths):
        if p not in launched and p.is_dir():
            found.update(f.parent for f in p.rglob(name))
    return sorted(found)


def status_table(run_dirs: Sequence[str | Path], metric: str | None = None) -> Table:
    """One row per run or launched cell; F1 is ``metric``, or each run's own watched one."""
    t = Table("Runs", ["Run", "State", "Epochs", "Metric", "Best F1", "Last F1", "kWh",
                       "Stop reason"])
    estimated = False
    for path in find_cells(run_dirs):
        run = runlog.load_run(path, need_epochs=False)
        launch = run.dir.read_launch() or LaunchRecord()
        state = run_state(run, launch)
        own, why = state_of(run)
        planned = read_config(run).get("train", {}).get("epochs")
        key, mode = (metric, "max") if metric else own_metric(run)
        values = [(r.epoch, r.metric(key)) for r in run.epochs]
        scored = [(v, e) for e, v in values if v is not None]
        pick = min if mode == "min" else max  # a watched loss: its best is its least
        best = pick(scored, key=lambda ve: ve[0], default=None)
        last = values[-1][1] if values else None
        shown = (lambda v: f"{v:.4g}") if mode == "min" else (lambda v: f"{v * 100:.1f}%")
        energy = energy_of(run, crashed=own is RunState.INCOMPLETE) if run.epochs else None
        kwh = energy.total_kwh if energy else None
        estimated |= bool(energy and energy.estimated)
        summary = run.summary
        error = summary.error if summary else None
        stop_reason = summary.stop_reason if summary else None
        if state == "failed":
            reason = launch.error or error or stop_reason
        elif state == "queued":
            reason = f"job {launch.job_id}" if launch.job_id else "waiting"
        elif state == "running":
            reason = f"epoch {len(run.epochs) + 1}"
        elif state in ("incomplete", "damaged"):
            reason = why
        else:
            reason = stop_reason or error
        mark = "~" if energy and energy.estimated else ""
        t.add([str(path), state,
               f"{len(run.epochs)}/{planned}" if planned else str(len(run.epochs)), key,
               f"{shown(best[0])} @{best[1]}" if best else "-",
               shown(last) if last is not None else "-",
               f"{mark}{kwh:.{decimals_for(kwh, 2)}f}" if kwh is not None else "-",
               str(reason or "-")])
    if estimated:
        t.notes.append("~: energy of some epochs estimated (the meter failed there): mean "
                       "power of the run's other epochs x their duration")
    return t
