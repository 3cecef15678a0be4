"""One line per run directory: where each run stands (reads run logs only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from greensed import runlog
from greensed.study.report import DEFAULT_METRIC, _config, run_total_kwh
from greensed.study.tables import Table, decimals_for

LOCK_FILE = "lock"


def run_state(run: runlog.RunLog) -> str:
    """`finished`, `interrupted`, `diverged`, `failed` (from summary.json),
    `running` (lock present, no summary yet) or `incomplete` (neither)."""
    if run.summary and run.summary.get("status"):
        return str(run.summary["status"])
    return "running" if (run.run_dir / LOCK_FILE).exists() else "incomplete"


def status_table(run_dirs: Sequence[str | Path], metric: str = DEFAULT_METRIC) -> Table:
    t = Table("Runs", ["Run", "State", "Epochs", "Best F1", "Last F1", "kWh", "Stop reason"])
    for path in runlog.find_runs(run_dirs):
        run = runlog.load_run(path)
        planned = _config(run).get("train", {}).get("epochs")
        values = [(r.get("epoch"), runlog.metric(r, metric)) for r in run.epochs]
        scored = [(v, e) for e, v in values if isinstance(v, (int, float)) and v == v]
        best = max(scored, key=lambda ve: ve[0], default=None)
        last = values[-1][1] if values else None
        kwh = run_total_kwh(run) if run.epochs else None
        reason = (run.summary or {}).get("stop_reason") or (run.summary or {}).get("error")
        t.add([str(path), run_state(run),
               f"{len(run.epochs)}/{planned}" if planned else str(len(run.epochs)),
               f"{best[0] * 100:.1f}% @{best[1]}" if best else "-",
               f"{last * 100:.1f}%" if isinstance(last, (int, float)) else "-",
               f"{kwh:.{decimals_for(kwh, 2)}f}" if kwh is not None else "-",
               str(reason or "-")])
    return t
