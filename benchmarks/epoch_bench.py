"""One DESED-sized epoch on random data of the right shapes: training steps through
greensed's own step, then validation (student + teacher, decoding, F1), timed and,
on an NVIDIA GPU, measured with the NVML energy counter.

    python benchmarks/epoch_bench.py --device cuda [--precision bf16] [--epochs 2]

Sizes default to DESED 2022 at batch 48: 118 steps x 48 = 5,664 training clips
(1,416 strong + 1,416 weak + 2,832 unlabelled) and 2,700 validation clips.
Features stay resident on the device in fp16 (as the trainer keeps them).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greensed.config import RunConfig, override
from greensed.data.spec import CLASSES
from greensed.energy import make_meter
from greensed.metrics.events import Events
from greensed.model.crnn import CRNN
from greensed.model.teacher import make_teacher
from greensed.train.step import Batch, optimize
from greensed.train.validate import validate


class GpuUtilisation:
    """Samples NVML's GPU utilisation every 100 ms in a thread (mean over a window)."""

    def __init__(self, index: int = 0) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __enter__(self) -> GpuUtilisation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean_percent(self) -> float | None:
        return float(np.mean(self._samples)) if self._samples else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=118)
    ap.add_argument("--val-clips", type=int, default=2700)
    ap.add_argument("--heldout-clips", type=int, default=158,
                    help="held-out weak clips validated each epoch (the baseline protocol's)")
    ap.add_argument("--epochs", type=int, default=2, help="the first one is warm-up")
    ap.add_argument("--meter", default="auto")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the step's forward passes (train.compile); "
                         "epoch 1 compiles")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfg = override(RunConfig(), {"train": {"precision": args.precision}}, "--precision")
    bs = args.batch_size
    s, w, u = bs // 4, bs // 4, bs // 2
    g = torch.Generator(device="cpu").manual_seed(0)

    def mels(n: int) -> torch.Tensor:  # linear-mel-like positive values, fp16, on the device
        return (torch.rand(n, 626, 128, generator=g) ** 4 * 50).half().to(device)

    strong, weak, unlab = mels(s * args.steps), mels(w * args.steps), mels(u * args.steps)
    y_strong = (torch.rand(s * args.steps, 10, 156, generator=g) > 0.85).float().to(device)
    y_weak = (torch.rand(w * args.steps, 10, generator=g) > 0.7).float().to(device)
    rng = np.random.default_rng(0)
    events = [(i, int(rng.integers(10)), float(a), float(a) + 2.0)
              for i, a in enumerate(rng.uniform(0, 7, args.val_clips))]
    val = {"mels": mels(args.val_clips),
           "strong": (torch.rand(args.val_clips, 10, 156, generator=g) > 0.85).float().to(device),
           "weak": np.zeros((args.val_clips, len(CLASSES)), dtype=np.uint8),
           "events": Events.from_tuples(events)}
    for c, k, _, _ in events:
        val["weak"][c, k] = 1
    if args.heldout_clips:
        val["heldout"] = {"mels": mels(args.heldout_clips),
                          "weak": np.eye(len(CLASSES), dtype=np.uint8)[
                              np.arange(args.heldout_clips) % len(CLASSES)]}

    torch.manual_seed(0)
    student = CRNN().to(device)
    teacher = make_teacher(student)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3, foreach=True,
                           fused=None if device.type == "cpu" else True)
    # As the trainer: compiled wrappers for the step; validation uses the eager modules.
    step_student, step_teacher = student, teacher
    if args.compile:
        step_student, step_teacher = torch.compile(student), torch.compile(teacher)
    meter = make_meter(args.meter, device=str(device))
    meter.start()
    results: list[dict[str, Any]] = []
    step = 0
    for epoch in range(args.epochs):
        perm = [torch.randperm(len(x), device=device) for x in (strong, weak, unlab)]
        sync()
        meter.begin_window()
        t0 = time.perf_counter()
        util = GpuUtilisation() if device.type == "cuda" else None
        if util:
            util.__enter__()
        student.train()
        teacher.train()
        for i in range(args.steps):
            i_s, i_w, i_u = (p[i * k:(i + 1) * k] for p, k in zip(perm, (s, w, u), strict=True))
            batch = Batch(torch.cat([strong[i_s], weak[i_w], unlab[i_u]]).float(),
                          y_strong[i_s], y_weak[i_w])
            optimize(step_student, step_teacher, opt, batch, step=step, rampup_steps=1000,
                     tc=cfg.train, rng=rng)
            step += 1
        sync()
        t1 = time.perf_counter()
        metrics = validate(student, teacher, val, cfg)
        sync()
        t2 = time.perf_counter()
        if util:
            util.__exit__()
        reading = meter.end_window()
        res = {"epoch": epoch + 1, "train_s": t1 - t0, "val_s": t2 - t1, "epoch_s": t2 - t0,
               "train_clips_per_s": args.steps * bs / (t1 - t0),
               "val_clips_per_s": 2 * args.val_clips / (t2 - t1),
               "energy_wh": None if reading.energy_kwh is None else reading.energy_kwh * 1000,
               "energy_components_wh": {k: v * 1000 for k, v in reading.components_kwh.items()},
               "energy_methods": reading.methods, "gpu_util_percent":
               util.mean_percent if util else None, "teacher_f1": metrics["teacher_f1"]}
        results.append(res)
        print(f"epoch {epoch + 1}: {res['epoch_s']:.2f} s (train {res['train_s']:.2f} s, "
              f"{res['train_clips_per_s']:.0f} clips/s; validation {res['val_s']:.2f} s) | "
              f"energy {res['energy_wh']} Wh {res['energy_components_wh']} "
              f"{reading.methods} | GPU util {res['gpu_util_percent']}", flush=True)
    meter.close()
    report = {"device": str(device), "gpu": torch.cuda.get_device_name(device)
              if device.type == "cuda" else None, "torch": torch.__version__,
              "precision": args.precision, "compile": args.compile, "batch_size": bs,
              "steps": args.steps, "val_clips": args.val_clips, "epochs": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
