"""greensed benchmark: what an epoch costs, and where greensed saves against the
baseline-style reference step. Writes a JSON report and prints a summary.

    python benchmarks/bench.py [--out benchmarks/results/NAME.json] [--reps 3] [--quick]

Every figure is the median of ``--reps`` repetitions after one warm-up. On a
GPU (``--device cuda``) it also reads the NVML energy counter per epoch.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from greensed.config import FeatureConfig, TrainConfig
from greensed.data.audio import load_clip
from greensed.data.features import compute_mels, mel_module
from greensed.data.spec import CLASSES, OUT_FRAME_S
from greensed.energy import make_meter
from greensed.library.hardware import hardware_info
from greensed.metrics.events import Events, decode
from greensed.metrics.intersection import intersection_f1
from greensed.model.crnn import CRNN
from greensed.model.teacher import make_teacher
from greensed.train.reference import reference_step
from greensed.train.step import Batch, optimize
from greensed.train.validate import predict


def median_time(fn: Callable[[], Any], reps: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: allocator, kernels, first-touch
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_audio_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Random-noise 10 s, 16 kHz wavs: the reference step reads audio like the baseline."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"clip{i:04d}.wav"
        sf.write(p, (0.1 * rng.standard_normal(160_000)).astype(np.float32), 16000,
                 subtype="PCM_16")
        paths.append(p)
    return paths


def step_bench(device: torch.device, bs: int, reps: int, sync: Callable[[], None],
               mels_all: torch.Tensor, files: list[Path], mel: torch.nn.Module,
               tc: TrainConfig, compiled: bool) -> tuple[dict[str, float], Any, Any, Any]:
    """greensed's step (cached features) vs the reference step (audio every batch),
    and greensed's step with torch.compile'd forward passes (train.compile)."""
    s, w = bs // 4, bs // 4
    y_strong = (torch.rand(s, 10, 156, device=device) > 0.8).float()
    y_weak = (torch.rand(w, 10, device=device) > 0.7).float()
    torch.manual_seed(0)
    student = CRNN().to(device)
    teacher = make_teacher(student)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3, foreach=True)
    ref_opt = torch.optim.Adam(student.parameters(), lr=1e-3, foreach=False)
    rng = np.random.default_rng(0)
    batch = Batch(mels_all[:bs].float(), y_strong, y_weak)
    paths = files[:bs]
    step = [0]

    def ours() -> None:
        optimize(student, teacher, opt, batch, step=step[0], rampup_steps=1000, tc=tc, rng=rng)
        step[0] += 1

    def reference() -> None:
        # As the baseline: read and decode audio, then the mel, for every batch.
        audio = torch.stack([torch.from_numpy(load_clip(p).wave) for p in paths]).to(device)
        reference_step(student, teacher, ref_opt, audio, Batch(audio, y_strong, y_weak), mel,
                       step=step[0] + 1, lr=1e-3, consistency_weight=2.0, mixup_p=0.5,
                       mixup_alpha=0.2, ema_factor=0.999, rng=rng)
        step[0] += 1

    t_ours = median_time(ours, reps, sync)
    t_ref = median_time(reference, reps, sync)
    res = {"greensed_step_s": t_ours, "greensed_clips_per_s": bs / t_ours,
           "reference_step_s": t_ref, "reference_clips_per_s": bs / t_ref,
           "speedup": t_ref / t_ours}
    if compiled:
        # Wrappers share the parameters, as in the trainer with train.compile = true.
        c_student, c_teacher = torch.compile(student), torch.compile(teacher)

        def ours_compiled() -> None:
            optimize(c_student, c_teacher, opt, batch, step=step[0], rampup_steps=1000, tc=tc,
                     rng=rng)
            step[0] += 1

        t = time.perf_counter()
        ours_compiled()  # the compilation itself: a one-off cost paid in a run's first step
        sync()
        res["compile_first_step_s"] = time.perf_counter() - t
        t_comp = median_time(ours_compiled, reps, sync)
        res.update({"compiled_step_s": t_comp, "compiled_clips_per_s": bs / t_comp,
                    "compiled_speedup_vs_eager": t_ours / t_comp,
                    "compiled_speedup_vs_reference": t_ref / t_comp})
    return res, student, teacher, opt


def bench(device: torch.device, reps: int, batch_sizes: list[int], n_val: int,
          epoch_steps: int, compiled: bool = True) -> dict[str, Any]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fc = FeatureConfig()
    mel = mel_module(fc).to(device)
    tc = TrainConfig()
    out: dict[str, Any] = {"hardware": hardware_info(device), "python": sys.version.split()[0],
                           "torch_threads": torch.get_num_threads(), "reps": reps,
                           "device": str(device), "steps": {}}
    tmp = Path(tempfile.mkdtemp(prefix="greensed-bench-"))
    files = make_audio_files(tmp, max(batch_sizes))
    audio_all = torch.stack([torch.from_numpy(load_clip(p).wave) for p in files]).to(device)
    mels_all = compute_mels(audio_all, mel).half()  # what the feature cache holds

    # 1. Train step, student + teacher, fp32: greensed vs the reference.
    for bs in batch_sizes:
        res, student, teacher, opt = step_bench(device, bs, reps, sync, mels_all, files, mel, tc,
                                                compiled)
        out["steps"][str(bs)] = res
        print(f"batch {bs}: greensed {res['greensed_clips_per_s']:.2f} clips/s, reference "
              f"{res['reference_clips_per_s']:.2f} clips/s, speed-up x{res['speedup']:.2f}",
              flush=True)
        if compiled:
            print(f"batch {bs}: compiled {res['compiled_clips_per_s']:.2f} clips/s "
                  f"(x{res['compiled_speedup_vs_eager']:.2f} vs eager, "
                  f"x{res['compiled_speedup_vs_reference']:.2f} vs reference; first step "
                  f"{res['compile_first_step_s']:.0f} s)", flush=True)

    # 2. Validation: forward student + teacher, decode, intersection F1.
    val_mels = mels_all.repeat((n_val + len(mels_all) - 1) // len(mels_all), 1, 1)[:n_val]
    rng_np = np.random.default_rng(1)
    truth = Events.from_tuples(
        [(i, int(rng_np.integers(10)), 1.0, 3.0 + float(rng_np.random())) for i in range(n_val)])
    student.eval()

    def validation() -> None:
        for model in (student, teacher):
            probs, _ = predict(model, val_mels)
            det = decode(probs.float().cpu().numpy(), frame_s=OUT_FRAME_S)
            intersection_f1(det, truth, n_classes=len(CLASSES))

    t_val = median_time(validation, reps, sync)
    probs_np = np.random.default_rng(2).random((n_val, 10, 156))
    t_dec = median_time(lambda: intersection_f1(decode(probs_np, frame_s=OUT_FRAME_S), truth,
                                                n_classes=10), reps, lambda: None)
    out["validation"] = {"clips": n_val, "seconds": t_val, "clips_per_s": n_val / t_val,
                         "seconds_per_1000_clips": 1000 * t_val / n_val,
                         "decode_f1_ms_per_1000_clips": 1000 * 1000 * t_dec / n_val}
    print(f"validation (student + teacher, decode, F1): {n_val / t_val:.1f} clips/s, "
          f"{1000 * t_val / n_val:.1f} s per 1,000 clips; decode+F1 alone "
          f"{1e6 * t_dec / n_val:.1f} ms per 1,000 clips", flush=True)

    # 3. Epoch from the cache vs features recomputed from audio every epoch.
    bs = 12
    y_strong = (torch.rand(bs // 4, 10, 156, device=device) > 0.8).float()
    y_weak = (torch.rand(bs // 4, 10, device=device) > 0.7).float()
    paths = (files * (bs // len(files) + 1))[:bs]
    rng = np.random.default_rng(3)
    student.train()
    step = [0]

    def epoch_cached() -> None:
        for _ in range(epoch_steps):
            idx = torch.randint(0, len(mels_all), (bs,), device=device)
            optimize(student, teacher, opt, Batch(mels_all[idx].float(), y_strong, y_weak),
                     step=step[0], rampup_steps=1000, tc=tc, rng=rng)
            step[0] += 1

    def epoch_from_audio() -> None:
        for _ in range(epoch_steps):
            audio = torch.stack([torch.from_numpy(load_clip(p).wave) for p in paths]).to(device)
            feats = compute_mels(audio, mel)
            optimize(student, teacher, opt, Batch(feats, y_strong, y_weak), step=step[0],
                     rampup_steps=1000, tc=tc, rng=rng)
            step[0] += 1

    def data_cached() -> None:
        for _ in range(epoch_steps):
            idx = torch.randint(0, len(mels_all), (bs,), device=device)
            mels_all[idx].float()

    def data_from_audio() -> None:
        for _ in range(epoch_steps):
            audio = torch.stack([torch.from_numpy(load_clip(p).wave) for p in paths]).to(device)
            compute_mels(audio, mel)

    t_c, t_a = median_time(epoch_cached, reps, sync), median_time(epoch_from_audio, reps, sync)
    d_c, d_a = median_time(data_cached, reps, sync), median_time(data_from_audio, reps, sync)
    out["epoch"] = {"batch_size": bs, "steps": epoch_steps, "cached_s": t_c, "from_audio_s": t_a,
                    "ratio": t_a / t_c, "data_only_cached_s": d_c, "data_only_from_audio_s": d_a,
                    "data_only_ratio": d_a / d_c}
    print(f"epoch of {epoch_steps} steps at batch {bs}: cached {t_c:.2f} s, from audio "
          f"{t_a:.2f} s (x{t_a / t_c:.2f}); data side alone x{d_a / d_c:.0f} "
          f"({d_c * 1000:.1f} ms vs {d_a * 1000:.0f} ms)", flush=True)

    # 4. Energy-meter overhead per epoch window.
    meter = make_meter("auto", device=str(device))
    meter.start()
    pairs = []
    for _ in range(max(reps, 5)):
        t = time.perf_counter()
        meter.begin_window()
        reading = meter.end_window()
        pairs.append(time.perf_counter() - t)
    meter.close()
    overhead_ms = 1000 * statistics.median(pairs)
    out["meter"] = {"name": meter.name, "window_overhead_ms": overhead_ms,
                    "methods": reading.methods,
                    "percent_of_cached_epoch": 100 * overhead_ms / 1000 / t_c}
    print(f"meter {meter.name}: {overhead_ms:.2f} ms per epoch window "
          f"({out['meter']['percent_of_cached_epoch']:.4f} % of the cached epoch above)",
          flush=True)

    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", default="24,48")
    ap.add_argument("--val-clips", type=int, default=192)
    ap.add_argument("--epoch-steps", type=int, default=4)
    ap.add_argument("--no-compile", action="store_true",
                    help="skip the torch.compile step (compiling costs up to ~90 s per "
                         "batch size on 2 CPU cores)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    device = torch.device(args.device)
    res = bench(device, args.reps, [int(b) for b in args.batch_sizes.split(",")],
                args.val_clips, args.epoch_steps, compiled=not args.no_compile)
    res["wall_s"] = time.perf_counter() - t0
    res["machine"] = platform.platform()
    out = args.out or Path("benchmarks/results") / (
        f"{platform.node()}-{device.type}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"peak RSS {res['peak_rss_mb']:.0f} MB; total {res['wall_s']:.0f} s -> {out}")


if __name__ == "__main__":
    main()
