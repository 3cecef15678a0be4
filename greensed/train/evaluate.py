"""Final evaluation of a run's best checkpoint: PSDS1, PSDS2 and intersection F1,
with the energy of the evaluation itself. Writes RUN_DIR/psds.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greensed import config as C
from greensed import runlog
from greensed.data.desed import load_run_dataset
from greensed.data.spec import CLASSES
from greensed.energy import make_meter
from greensed.energy.base import MeterWindow
from greensed.errors import GreensedError
from greensed.metrics.events import Events
from greensed.metrics.psds import psds_scores
from greensed.runlog import RunDir
from greensed.train.checkpoint import load_checkpoint
from greensed.train.group import resolve_device
from greensed.train.state import make_model, model_frame_s, model_time_pooling
from greensed.train.validate import predict, score_events


def evaluate(run_dir: str | Path, *, data: str | None = None, model: str | None = None,
             meter_spec: str | None = None, device: str | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score ``checkpoints/best.pt`` on the run's validation set (or ``data``);
    ``progress`` hears of one-off data generation and feature extraction."""
    run = RunDir(Path(run_dir))
    text = run.read_config_text()
    if text is None:
        raise GreensedError(f"{run.root}: not a run directory (no {run.config.name})")
    cfg = C.from_toml_text(text, str(run.config))
    if data is not None:
        cfg = C.override(cfg, {"data": {"path": str(Path(data).expanduser().resolve())}},
                         "--data")
    ck = load_checkpoint(run.best)
    # The model the stopping metric watched (teacher_f1 -> teacher) unless told.
    which = model or ("student" if str(ck.get("metric", "")).startswith("student") else "teacher")
    if which not in ("student", "teacher"):
        raise GreensedError(f"--model {which!r}: expected student or teacher")
    dev = resolve_device(device or cfg.train.device)
    net = make_model(cfg)
    net.load_state_dict(ck[which])
    net.to(dev)
    ds = load_run_dataset(cfg, progress=progress, time_pooling=model_time_pooling(cfg))
    val = ds.validation
    meter = make_meter(meter_spec or cfg.meter.spec, device=str(dev),
                       tracking_mode=cfg.meter.tracking_mode)
    meter.start()
    try:
        with MeterWindow(meter) as window:
            mels = torch.from_numpy(np.array(val.mels)).to(dev)  # a writable copy of the memmap
            strong, _ = predict(net, mels, precision=cfg.train.precision)
            probs = strong.float().cpu().numpy()
            truth = Events.from_tuples(val.events or [])
            f1 = score_events(probs, truth, cfg)
            scores = psds_scores(probs, truth, list(val.files), list(CLASSES),
                                 durations_s=cfg.features.clip_s,
                                 median_window=cfg.eval.median_window, frame_s=model_frame_s(cfg))
            reading = window.end()
    finally:
        meter.close()
    result = {
        "schema": runlog.SCHEMA_VERSION, "model": which, "checkpoint_epoch": ck.get("epoch"),
        "psds1": scores["psds1"], "psds2": scores["psds2"],
        "n_thresholds": scores.get("n_thresholds"),
        "classes_without_ground_truth": scores.get("classes_without_ground_truth", []),
        "f1": float(f1.macro_f1),
        "class_f1": f1.per_class(list(CLASSES)), "n_clips": len(val),
        "data": cfg.data.path or f"synthetic:{cfg.data.preset}-seed{cfg.data.synth_seed}",
        "eval_energy": {**reading.to_record(), "duration_s": reading.duration_s},
    }
    runlog.atomic_write_json(run.psds, result)
    return result
