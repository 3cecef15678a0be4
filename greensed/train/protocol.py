"""What ``train.protocol`` decides beyond the step schedule (step.py): which weak clips
train and which validate, the rule that picks the best epoch, and the model of record.

"baseline" is DESED_task 2022's recipe (train_sed.py, sed_trainer.py at commit
f0161eb); "greensed" is what greensed did before protocols existed, kept for CPU-sized
runs on the synthetic sets and for runs made then (docs/training.md, "Protocols").
"""

from __future__ import annotations

from dataclasses import dataclass

from greensed import config
from greensed.data.desed import Dataset, Subset
from greensed.errors import DataError

BASELINE = "baseline"
# The baseline's checkpoint metric (sed_trainer.py validation_epoch_end's obj_metric):
# student weak F1 on the held-out weak clips + student intersection F1 at DTC = GTC = 0.5.
OBJECTIVE = "objective"
MODELS = ("student", "teacher")


@dataclass(frozen=True)
class WeakSets:
    train: Subset
    heldout: Subset | None  # validated each epoch ("baseline"); None under "greensed"


def weak_split_seed(cfg: config.RunConfig) -> int:
    d = cfg.data
    return cfg.train.seed if d.weak_split_seed is None else d.weak_split_seed


def weak_sets(ds: Dataset, cfg: config.RunConfig) -> WeakSets:
    """The weak clips that train, and those held out for validation."""
    if cfg.train.protocol != BASELINE:
        return WeakSets(ds.weak, None)
    seed, frac = weak_split_seed(cfg), cfg.data.weak_split
    train, held = ds.split_weak(seed, frac)
    if len(held) == 0 or len(train) == 0:
        listed = len(ds.weak.tsv_rows or ds.weak.files)
        raise DataError(
            f"data.weak_split = {frac:g}: of {listed} weak clips, {len(train)} train and "
            f"{len(held)} are held out; the baseline protocol needs both (more weak clips, "
            "another weak_split, or [train] protocol = \"greensed\")")
    return WeakSets(train, held)


def describe_split(sets: WeakSets, cfg: config.RunConfig) -> str:
    """The line the trainer prints about the weak split."""
    if sets.heldout is None:
        return (f"protocol {cfg.train.protocol}: all {len(sets.train)} weak clips train; "
                "validation on the validation set only")
    return (f"protocol baseline: weak split {cfg.data.weak_split:g} (seed "
            f"{weak_split_seed(cfg)}): {len(sets.train)} weak clips train, "
            f"{len(sets.heldout)} held out; validation on the validation set and the "
            "held-out weak clips; best epoch by the objective, model of record: student")


def best_rule(cfg: config.RunConfig) -> tuple[str, str]:
    """(metric, mode) that picks ``checkpoints/best.pt`` and ``summary.best_*``: the
    baseline's objective, maximised, or under "greensed" the stopping metric."""
    if cfg.train.protocol == BASELINE:
        return OBJECTIVE, "max"
    return cfg.stop.metric, cfg.stop.mode


def model_of_record(cfg: config.RunConfig, metric: str | None = None) -> str:
    """The model whose scores a run reports: the student under "baseline" (the
    baseline's README figures are the student's); under "greensed" the model the
    best-epoch ``metric`` watched (``student_...``: student, anything else: teacher)."""
    if cfg.train.protocol == BASELINE:
        return "student"
    metric = cfg.stop.metric if metric is None else metric
    return "student" if metric.startswith("student") else "teacher"
