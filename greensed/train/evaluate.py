"""Final evaluation of a run's best checkpoint, as the baseline's test step: PSDS1,
PSDS2 and intersection F1 of the student and the teacher on the recorded validation
set (the ``test`` subset; the validation set where the dataset has none), with each
clip's duration, and the energy of the evaluation itself. Writes RUN_DIR/psds.json."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greensed import config, runlog
from greensed.data.desed import load_run_dataset
from greensed.data.spec import CLASSES
from greensed.energy import make_meter
from greensed.energy.base import MeterWindow
from greensed.errors import GreensedError
from greensed.metrics.events import Events
from greensed.metrics.intersection import intersection_f1
from greensed.metrics.psds import psds_scores
from greensed.runlog import RunDir
from greensed.train.checkpoint import load_checkpoint
from greensed.train.group import resolve_device
from greensed.train.protocol import MODELS, model_of_record
from greensed.train.state import make_model, model_frame_s, model_time_pooling
from greensed.train.validate import baseline_f1, detections, predict


def evaluate(run_dir: str | Path, *, data: str | None = None, model: str | None = None,
             meter_spec: str | None = None, device: str | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score ``checkpoints/best.pt`` (student and teacher) on the run's test set, else its
    validation set (or those of ``data``). ``model`` names the model whose scores are
    the result's top-level ones (default: the run's model of record); ``progress`` hears
    which set is scored, of one-off data generation and of feature extraction."""
    run = RunDir(Path(run_dir))
    text = run.read_config_text()
    if text is None:
        raise GreensedError(f"{run.root}: not a run directory (no {run.config.name})")
    cfg = config.from_toml_text(text, str(run.config))
    if data is not None:
        cfg = config.override(cfg, {"data": {"path": str(Path(data).expanduser().resolve())}},
                         "--data")
    if model not in (None, *MODELS):
        raise GreensedError(f"--model {model!r}: expected student or teacher")
    ck = load_checkpoint(run.best)
    of_record = model_of_record(cfg, str(ck.get("metric", "")) or None)
    dev = resolve_device(device or cfg.train.device)
    net = make_model(cfg)
    nets = {}
    for who in MODELS:
        nets[who] = copy.deepcopy(net)
        nets[who].load_state_dict(ck[who])
        nets[who].to(dev)
    ds = load_run_dataset(cfg, progress=progress, time_pooling=model_time_pooling(cfg))
    name, subset = ("test", ds.test) if ds.test is not None else ("validation", ds.validation)
    if progress is not None:
        progress(f"evaluate: scoring the {name} set ({len(subset)} clips, durations from "
                 f"{subset.durations_from}) with the student and the teacher of epoch "
                 f"{ck.get('epoch')}; model of record: {of_record}")
    truth = Events.from_tuples(subset.events or [])
    durations = subset.metric_durations_s(cfg.features.clip_s)
    meter = make_meter(meter_spec or cfg.meter.spec, device=str(dev),
                       tracking_mode=cfg.meter.tracking_mode)
    meter.start()
    try:
        with MeterWindow(meter) as window:
            mels = torch.from_numpy(np.array(subset.mels)).to(dev)  # a writable copy
            scores = {who: _score(nets[who], mels, truth, list(subset.files), durations, cfg)
                      for who in MODELS}
            reading = window.end()
    finally:
        meter.close()
    top = scores[model or of_record]
    result = {
        "schema": runlog.SCHEMA_VERSION, "model": model or of_record,
        "model_of_record": of_record, "checkpoint_epoch": ck.get("epoch"),
        "checkpoint_metric": ck.get("metric"), "subset": name,
        **{k: top[k] for k in ("psds1", "psds2", "f1", "f1_05", "class_f1")},
        "n_thresholds": top["n_thresholds"],
        "classes_without_ground_truth": top["classes_without_ground_truth"],
        "models": scores, "n_clips": len(subset), "durations_from": subset.durations_from,
        "data": cfg.data.path or f"synthetic:{cfg.data.preset}-seed{cfg.data.synth_seed}",
        "eval_energy": {**reading.to_record(), "duration_s": reading.duration_s},
    }
    runlog.atomic_write_json(run.psds, result)
    return result


def _score(net: torch.nn.Module, mels: torch.Tensor, truth: Events, files: list[str],
           durations: np.ndarray, cfg: config.RunConfig) -> dict[str, Any]:
    """One model's PSDS1, PSDS2, intersection F1 (the run's DTC/GTC) and the baseline's
    F1 (DTC = GTC = 0.5), none of them scoring the zero padding of short clips."""
    ec = cfg.eval
    strong, _ = predict(net, mels, precision=cfg.train.precision)
    probs = strong.float().cpu().numpy()
    det = detections(probs, cfg)
    f1 = intersection_f1(det, truth, n_classes=len(CLASSES), durations_s=durations,
                         dtc=ec.dtc, gtc=ec.gtc, cttc=ec.cttc)
    psds = psds_scores(probs, truth, files, list(CLASSES), durations_s=durations,
                       median_window=ec.median_window, frame_s=model_frame_s(cfg))
    return {"psds1": psds["psds1"], "psds2": psds["psds2"], "f1": float(f1.macro_f1),
            "f1_05": baseline_f1(det, truth, durations),
            "class_f1": f1.per_class(list(CLASSES)),
            "n_thresholds": psds.get("n_thresholds"),
            "classes_without_ground_truth": psds.get("classes_without_ground_truth", [])}
