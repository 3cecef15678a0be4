"""The training loop: set up, then epochs until a policy says stop, then the summary.

Read top to bottom: ``train()`` checks the config and picks one process, a
torchrun rank or a local launch of several; ``_run()`` opens the session
(greensed.train.session), asks the policy before each epoch, runs it
(greensed.train.epoch) and ends with the summary, whatever happened.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from greensed.config import RunConfig
from greensed.energy import Meter
from greensed.energy.carbon import CarbonIntensity
from greensed.errors import ConfigError, GreensedError
from greensed.runlog import EpochRecord, RunDir, RunStatus, Summary
from greensed.stopping import Policy, build_policy
from greensed.train import group, preflight
from greensed.train.batches import batch_composition
from greensed.train.epoch import run_epoch
from greensed.train.messages import banner, closing, epoch_line
from greensed.train.outcome import Finished, RunEnd
from greensed.train.session import Session, open_session
from greensed.train.spawn import raise_first_error, spawn

Reporter = Callable[[str], None]


@dataclass
class TrainResult:
    run_dir: Path
    summary: Summary
    history: list[EpochRecord] = field(default_factory=list)
    # SHA-256 of the final student and teacher weights: equal on every rank of a group.
    model_sha256: str = ""
    # A local multi-process launch: each rank's status, epochs, steps, model_sha256, exitcode.
    ranks: list[dict[str, Any]] = field(default_factory=list)


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
          meter: Meter | None = None, report: Reporter = print,
          recipe_name: str = "", nproc: int = 1) -> TrainResult:
    """Train one run into ``run_dir`` (see docs/training.md and docs/runlog.md).

    On several processes (docs/multigpu.md): with torchrun's environment
    variables set, this process joins that group as one rank; otherwise
    ``nproc`` > 1 starts that many local ranks (rank 0 prints with ``print``)
    and returns rank 0's result, with every rank's outcome in ``ranks``.
    """
    run_dir, env = Path(run_dir), group.env_from_environ()
    if nproc < 1 or (env is not None and nproc not in (1, env.world_size)):
        raise ConfigError(f"--nproc {nproc}: must be >= 1, and equal WORLD_SIZE "
                          f"({env.world_size if env else '-'}) under torchrun")
    shares = batch_composition(cfg.train.batch_size)
    group.check_batch(cfg.train.batch_size, env.world_size if env is not None else nproc)
    group.check_meter_mode(cfg.meter.tracking_mode, env.world_size if env is not None else nproc)
    carbon = preflight.check_run_config(cfg)
    policy = build_policy(cfg.stop, max_epochs=cfg.train.epochs)
    device = group.resolve_device(cfg.train.device)
    args = (cfg, run_dir, resume, force, meter, recipe_name)
    if env is None and nproc > 1:
        preflight.check_local_launch(cfg, RunDir(run_dir), device, nproc, meter, resume)
        outcomes = spawn(nproc, _rank_main, args)
        raise_first_error(outcomes)
        run = RunDir(run_dir)
        summary = run.read_summary()
        if summary is None:
            raise GreensedError(f"{run_dir}: the ranks ended without a summary")
        return TrainResult(run_dir, summary, run.read_epochs(), ranks=[
            {"rank": o.rank, "exitcode": o.exitcode, **o.value} for o in outcomes])
    if env is None:
        return _run(group.SOLO, device, policy, shares, *args, report=report, carbon=carbon)
    ranks = group.RankGroup(env, group.rank_device(device, env))
    try:
        return _run(ranks, ranks.device, policy, shares, *args,
                    report=report if env.is_main else _silent, carbon=carbon)
    finally:
        ranks.close()


def _run(ranks: group.Group, device: torch.device, policy: Policy, shares: tuple[int, ...],
         cfg: RunConfig, run_dir: Path, resume: bool, force: bool, meter: Meter | None,
         recipe_name: str, *, report: Reporter, carbon: CarbonIntensity) -> TrainResult:
    """The run on one process of ``ranks`` (group.SOLO: the only one)."""
    with open_session(ranks, cfg, run_dir, device, policy, shares, resume=resume, force=force,
                      meter=meter, report=report, recipe_name=recipe_name, carbon=carbon) as s:
        s.report(banner(s.shape, resume_at=s.resumed_at))
        end = RunEnd(RunStatus.FINISHED, "", "")
        try:
            with s.stop.installed():
                decision = s.decide()
                while not decision.stop:
                    outcome = run_epoch(s, len(s.history) + 1)
                    if not isinstance(outcome, Finished):
                        end = RunEnd.of(outcome)
                        break
                    s.history.append(outcome.record)
                    s.report(epoch_line(outcome.record, s.shape))
                    decision = s.decide()
                else:
                    end = RunEnd.stopped(decision)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            end = RunEnd.interrupted(s.stop.signum or signal.SIGINT)
        except GreensedError as exc:
            end = RunEnd.failed(str(exc))
            raise
        except OSError as exc:  # disk full, run dir removed or read-only mid-run
            end = RunEnd.failed(f"cannot write the run log or a checkpoint ({exc}); the "
                                "finished epochs are intact: free space or fix the "
                                "directory, then use --resume")
            raise GreensedError(end.reason) from None
        except Exception as exc:  # never leave a summary that says "finished"
            end = RunEnd.failed(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            summary = _finish(s, end)
        s.report(closing(summary, s.run.root, ranks=s.shape.world_size))
        return TrainResult(s.run.root, summary, s.history, s.state.model_sha256())


def _finish(s: Session, end: RunEnd) -> Summary:
    """The summary: rank 0 writes it to summary.json (no collective here)."""
    summary = s.summary(end)
    if s.group.is_main:
        try:
            s.writer.write_summary(summary)
        except OSError as exc:
            if end.error is None:  # else that error is already on its way up: keep it
                raise GreensedError(f"{s.run.summary}: cannot write ({exc}); "
                                    "epochs.jsonl is intact, use --resume") from None
    return summary


def _silent(_: str) -> None:
    pass


def _rank_main(cfg: RunConfig, run_dir: Path, resume: bool, force: bool,
               meter: Meter | None, recipe_name: str) -> dict[str, Any]:
    """One rank of a local launch (a spawned process): train, say how it ended."""
    res = train(cfg, run_dir, resume=resume, force=force, meter=meter, recipe_name=recipe_name)
    return {"status": res.summary.status.value, "epochs": len(res.history),
            "steps": res.summary.steps, "model_sha256": res.model_sha256}
