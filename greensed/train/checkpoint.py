"""Checkpoints: ``last.pt`` (the whole training state after the last finished
epoch) and ``best.pt`` (the weights of the best epoch), each written at once."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from greensed.errors import GreensedError
from greensed.runlog import EpochRecord, RunDir, atomic_write_bytes
from greensed.train.state import TrainState


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save into memory, then an atomic replace: a crash mid-write
    leaves the previous checkpoint intact."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # Not weights_only: the state holds numpy generator states and the config
        # text. Only greensed's own run directories are loaded here.
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise GreensedError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise GreensedError(f"{path}: unreadable checkpoint ({why})") from None


def save_epoch(run: RunDir, state: TrainState, record: EpochRecord, *, is_best: bool,
               metric: str, config_toml: str, rank_rngs: list[Any] | None = None) -> None:
    """best.pt when ``record`` is the best epoch so far, then last.pt."""
    if is_best:
        save_checkpoint(run.best, {
            "student": state.student.state_dict(), "teacher": state.teacher.state_dict(),
            "epoch": record.epoch, "metric": metric, "value": record.metric(metric),
            "config": config_toml})
    # last.pt after best.pt: if we die in between, resume redoes this epoch. It also
    # holds the epoch's record, so a log line cut later can be restored from it.
    save_checkpoint(run.last, {**state.state_dict(
        epoch=record.epoch, cumulative_kwh=record.cumulative_kwh, config_toml=config_toml,
        rank_rngs=rank_rngs), "record": record.to_json()})


def load_last(run: RunDir, state: TrainState, **kwargs: Any) -> tuple[int, EpochRecord | None]:
    """Restore ``state`` from last.pt: the epochs it holds (0: no checkpoint yet, the run
    starts from the seed's initial weights) and the record of its last epoch (None in
    checkpoints of earlier greensed versions)."""
    if not run.last.exists():
        return 0, None
    ck = load_checkpoint(run.last)
    held = state.load_state_dict(ck, where=str(run.last), **kwargs)
    raw = ck.get("record")
    return held, EpochRecord.from_json({"schema": 1, **raw}, str(run.last)) if raw else None
