"""What `greensed train` prints, formatted from the run's records alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from greensed.runlog import EpochRecord, Summary


@dataclass(frozen=True)
class RunShape:
    """The facts of a run the banner and epoch lines show."""

    run_dir: Path
    device: str
    meter: str
    batch_size: int
    shares: tuple[int, int, int]
    sizes: tuple[int, int, int]  # strong, weak, unlabelled clips
    n_validation: int
    steps_per_epoch: int
    world_size: int = 1
    protocol: str = "baseline"
    n_heldout: int | None = None  # held-out weak clips validated each epoch (baseline)


def banner(shape: RunShape, *, resume_at: int | None) -> str:
    s = shape
    ranks = (f" | {s.world_size} ranks, {s.batch_size // s.world_size} clips each per step"
             if s.world_size > 1 else "")
    verb = f"resuming at epoch {resume_at}" if resume_at is not None else "training"
    held = f" + {s.n_heldout} held-out weak" if s.n_heldout is not None else ""
    return (f"greensed: {verb} -> {s.run_dir} | protocol {s.protocol} | device {s.device} | "
            f"meter {s.meter} | batch {s.batch_size} {s.shares} | clips "
            f"strong/weak/unlabelled/val {s.sizes[0]}/{s.sizes[1]}/{s.sizes[2]}/"
            f"{s.n_validation}{held} | {s.steps_per_epoch} steps/epoch" + ranks)


def epoch_line(r: EpochRecord, shape: RunShape) -> str:
    clips_s = shape.steps_per_epoch * shape.batch_size / max(r.train_s or 0.0, 1e-9)
    if r.energy_kwh is not None:
        cum = f"{r.cumulative_kwh * 1000:.2f} Wh" if r.cumulative_kwh is not None else "n/a"
        energy = f"{r.energy_kwh * 1000:.3f} Wh (cum {cum}, {r.avg_power_w or 0:.0f} W)"
    else:
        energy = f"energy {r.energy_status}"
    m = r.metric
    objective = f" | objective {_f(m('objective'), 3)}" if m("objective") is not None else ""
    return (f"epoch {r.epoch:3d} | loss {_f(r.loss.total)} | F1 student "
            f"{_f(m('student_f1'), 3)} teacher {_f(m('teacher_f1'), 3)} | weak F1 "
            f"{_f(m('teacher_weak_f1'), 3)}{objective} | {r.train_s or 0:.1f}+"
            f"{r.val_s or 0:.1f} s ({clips_s:.1f} clips/s) | {energy}" + forecast_part(r))


def forecast_part(r: EpochRecord) -> str:
    """`` | to epoch 100: 0.0061 kWh, 20 min, student_f1 0.701 ± 0.012`` from the record's
    forecast (Carbontracker-style), or nothing at the cap or without one."""
    f = r.forecast or {}
    if not f.get("epochs_left"):
        return ""
    kwh, secs = f.get("remaining_kwh"), f.get("remaining_s")
    parts = [f"{kwh * 1000:.3g} Wh" if isinstance(kwh, (int, float)) else "energy n/a"]
    if isinstance(secs, (int, float)):
        parts.append(f"{secs / 60:.0f} min" if secs >= 60 else f"{secs:.0f} s")
    at_cap, std = f.get("metric_at_cap"), f.get("metric_std")
    if isinstance(at_cap, (int, float)) and isinstance(std, (int, float)):
        parts.append(f"{f.get('metric')} {at_cap:.3f} ± {std:.3f}")
    return f" | to epoch {f.get('max_epochs')}: " + ", ".join(parts)


def closing(s: Summary, run_dir: Path) -> str:
    kwh = s.total_kwh
    energy = f"{kwh * 1000:.2f} Wh ({kwh:.5f} kWh)" if kwh is not None else "unavailable"
    at = (f"{s.best_cumulative_kwh * 1000:.2f} Wh" if s.best_cumulative_kwh is not None
          else "energy unavailable")
    record = f", model of record {s.model_of_record}" if s.model_of_record else ""
    best = (f"best {s.best_metric} {_f(s.best_value, 3)} at epoch {s.best_epoch} "
            f"({at}{record})"
            if s.best_epoch else "no finished epoch")
    return (f"stopped after {s.epochs} epochs: {s.stop_reason}\n"
            f"energy {energy} in {s.total_s or 0:.0f} s | {best} | run log {run_dir}")


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
