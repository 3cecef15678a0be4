"""The SLURM launcher: one job-array task per grid cell, through submitit.

Each task runs `CellJob`, a submitit Checkpointable. On preemption or near
the time limit SLURM sends SIGUSR2 (submitit asks for it): CellJob turns it
into the trainer's clean stop (as SIGTERM: the partial epoch's energy is
measured into lost.jsonl), then lets submitit requeue the same task, which
resumes the cell from checkpoints/last.pt. See docs/cluster.md.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import submitit

from greensed.launch.cell import run_cell
from greensed.launch.outcome import CellOutcome, Progress, last_log_line, outcome_from_dir
from greensed.launch.plan import CellPlan, Resources, mark, prepare
from greensed.runlog import LaunchRecord, LaunchState, RunDir, RunStatus, Summary
from greensed.train.signals import request_stop

SUBMITIT_DIR = ".submitit"
# Requeues after a time-out before submitit gives up; preemptions do not count.
MAX_TIMEOUT_REQUEUES = 20


class CellJob(submitit.helpers.Checkpointable):
    """One grid cell as a SLURM task. ``checkpoint()`` (inherited) resubmits the
    same call; `run_cell` then sees the run log and resumes."""

    def __call__(self, run_dir: str) -> Summary | None:
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint-and-requeue
        asked: list[int] = []

        def on_usr2(signum: int, frame: Any) -> None:
            asked.append(signum)
            # Training: it stops after this step, cleanly (the partial epoch measured).
            # Not training yet: nothing to save, requeue now.
            if not request_stop(signal.SIGTERM) and callable(requeue):
                requeue(signum, frame)

        signal.signal(signal.SIGUSR2, on_usr2)
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or None
        summary = run_cell(run_dir, threads=threads,
                           report=lambda line: print(line, flush=True))
        if asked and summary is not None and summary.status is RunStatus.INTERRUPTED \
                and callable(requeue):
            requeue(signal.SIGUSR2, None)  # checkpoint() + scontrol requeue + exit
        return summary


def make_executor(folder: Path, name: str, res: Resources) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES)
    params: dict[str, Any] = dict(name=name, timeout_min=res.time_min, nodes=1,
                                  tasks_per_node=1)
    if res.max_parallel:
        params["slurm_array_parallelism"] = res.max_parallel
    if res.partition:
        params["slurm_partition"] = res.partition
    if res.gpus_per_run:
        params["gpus_per_node"] = res.gpus_per_run
    if res.cpus_per_run:
        params["cpus_per_task"] = res.cpus_per_run
    executor.update_parameters(**params)
    return executor


def run_slurm(grid_name: str, plans: list[CellPlan], out: Path, res: Resources,
              progress: Progress, *, wait: bool = True,
              poll_s: float = 2.0) -> list[CellOutcome]:
    """Submit the cells as one job array; with ``wait``, follow them to the end."""
    folder = (out / SUBMITIT_DIR).resolve()
    executor = make_executor(folder, f"greensed-{grid_name}", res)
    for plan in plans:
        prepare(plan, "slurm")
    jobs = executor.map_array(CellJob(), [str(p.run_dir) for p in plans])
    for plan, job in zip(plans, jobs, strict=True):
        # The marker makes the cell "queued" for `greensed status` until it starts.
        prepare(plan, "slurm", job_id=str(job.job_id), log=str(job.paths.stdout))
        progress.report(f"submitted {plan.label} as SLURM job {job.job_id}")
    if not wait:
        return [CellOutcome(p, "submitted") for p in plans]
    pending = dict(zip([j.job_id for j in jobs], zip(plans, jobs, strict=True), strict=True))
    started: dict[str, float] = {}
    announced: set[str] = set()  # jobs said to be requeued by SLURM
    outcomes: list[CellOutcome] = []
    try:
        while pending:
            for job_id, (plan, job) in list(pending.items()):
                d = RunDir(plan.run_dir)
                launch = d.read_launch() or LaunchRecord()
                if job_id not in started and launch.state is not LaunchState.SUBMITTED:
                    started[job_id] = time.monotonic()
                    progress.started(plan, f" (job {job_id})")
                if not job.done():
                    continue
                state = slurm_state(job)
                if state in STILL_TO_RUN:  # a result, but the task runs again (or is ending)
                    if state in REQUEUED and job_id not in announced:
                        announced.add(job_id)
                        progress.report(f"{plan.label}: job {job_id} stopped and requeued by "
                                        "SLURM; it resumes when it starts again")
                    continue
                del pending[job_id]
                t0 = started.get(job_id, time.monotonic())
                outcome = outcome_from_dir(plan, time.monotonic() - t0, job_error(job))
                launch = d.read_launch() or LaunchRecord()
                if outcome.state == "failed" and launch.state is not LaunchState.FAILED:
                    # Killed (no summary, no error of its own): keep SLURM's word for status.
                    mark(plan.run_dir, state="failed", error=outcome.error)
                progress.ended(outcome)
                outcomes.append(outcome)
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        progress.report("stopped waiting; the jobs keep running (follow them with "
                        f"`greensed status {out}`)")
        outcomes += [CellOutcome(p, "submitted") for p, _ in pending.values()]
    return outcomes


# SLURM states of a job that still runs or will run again (as submitit's unfinished ones).
REQUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")
STILL_TO_RUN = (*REQUEUED, "RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED",
                "PREEMPTED", "READY")


def slurm_state(job: submitit.Job[Any]) -> str:
    """SLURM's state of a job that has a result, asked now ('' if sacct fails). A clean
    stop on SIGTERM (``scontrol requeue``, a preemption that requeues) returns the
    interrupted summary, so submitit holds a result, yet SLURM runs the task again and
    it resumes; the old result stays until the next attempt writes its own."""
    try:
        state = job.watcher.get_state(job.job_id, mode="force")
    except Exception:  # sacct failing must not hide the outcome
        return ""
    return (state.upper().split() or [""])[0]


def job_error(job: submitit.Job[Any]) -> str | None:
    """The last line of a finished job's error, if it failed."""
    try:
        job.result()
    except submitit.core.utils.UncompletedJobError as exc:
        return f"job {job.job_id} {job.state.lower()}: " + (
            str(exc).strip().splitlines() or ["no result"])[0]
    except Exception as exc:
        err = last_log_line(Path(job.paths.stderr))
        return err or str(exc).strip().splitlines()[-1]
    return None
