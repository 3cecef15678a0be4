"""PSDS1 + PSDS2 of a DESED-sized validation set: the sed_scores_eval path against greensed's.

    python benchmarks/psds_speed.py [--clips 1168] [--reps 3] [--out psds_speed.json]

The workload is DESED's validation set as psds_eval ships it (tests/fixtures/psds_eval:
1,168 clips, 10 classes, 4,251 reference events, 100 clips shorter than 10 s): its real
references and durations, with model-like frame probabilities generated for 156 frames
of 64 ms (each reference raised over a smooth noise floor with jittered edges and
random strength, plus random false alarms; float32, as a model hands them out).
``--clips`` below 1,168 takes the first clips. Each run times, on the same
probabilities and under the same machine load, the old implementation
(``greensed.metrics.psds_reference``: sed_scores_eval 0.0.4) and the new one
(``greensed.metrics.psds``), for the baseline's 50 thresholds (the default) and the exact
all-threshold PSDS, and prints the median wall and process-CPU seconds, their ratios
and the largest difference of PSDS1, PSDS2 and the per-class values (the CPU ratio is
the steadier one on a shared machine).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from greensed.metrics.events import Events
from greensed.metrics.psds import psds_scores

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "psds_eval"
FRAME_S = 0.064
N_FRAMES = 156


def desed_validation() -> tuple[list[str], list[str], Events, np.ndarray]:
    """Files, classes, references and durations of DESED's validation set (psds_eval's copy)."""
    with gzip.open(FIXTURES / "validation_metadata.tsv.gz", "rt") as f:
        meta = list(csv.DictReader(f, delimiter="\t"))
    with gzip.open(FIXTURES / "validation_groundtruth.tsv.gz", "rt") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["event_label"]]
    files = [m["filename"] for m in meta]
    classes = sorted({r["event_label"] for r in rows})
    truth = Events.from_labelled(
        [(r["filename"], r["event_label"], float(r["onset"]), float(r["offset"]))
         for r in rows], files, classes)
    return files, classes, truth, np.array([float(m["duration"]) for m in meta])


def model_like_probs(truth: Events, n_clips: int, n_classes: int, seed: int = 0,
                     n_frames: int = N_FRAMES, frame_s: float = FRAME_S) -> np.ndarray:
    """Frame probabilities [N, C, T] that look like a half-trained CRNN's (float32)."""
    rng = np.random.default_rng(seed)
    shape = (n_clips, n_classes, n_frames)
    kernel = np.hanning(9)
    kernel /= kernel.sum()
    noise = rng.normal(0.0, 1.0, shape)
    noise = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="same"), 2, noise)
    logit = -3.0 + 1.2 * noise
    for clip, k, onset, offset in truth.to_tuples():
        if clip >= n_clips:
            continue
        a = max(int(onset / frame_s + rng.normal(0, 2)), 0)
        b = min(int(offset / frame_s + rng.normal(0, 2)) + 1, n_frames)
        logit[clip, k, a:b] += rng.uniform(1.5, 6.0)
    for _ in range(n_clips // 2):  # false alarms
        clip, k = int(rng.integers(n_clips)), int(rng.integers(n_classes))
        a = int(rng.integers(n_frames))
        logit[clip, k, a:a + int(rng.integers(3, 30))] += rng.uniform(1.0, 4.0)
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def workload(n_clips: int, seed: int = 0) -> dict[str, Any]:
    files, classes, truth, durations = desed_validation()
    keep = truth.clip < n_clips
    truth = Events(truth.clip[keep], truth.cls[keep], truth.onset_s[keep], truth.offset_s[keep])
    return {"probs": model_like_probs(truth, n_clips, len(classes), seed),
            "truth": truth, "files": files[:n_clips], "classes": classes,
            "durations": durations[:n_clips]}


def _timed(fn, reps: int) -> tuple[list[float], list[float], dict[str, Any]]:
    """Wall seconds and this process's CPU seconds of each call, and the last result."""
    wall, cpu, out = [], [], {}
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, out


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    diffs = [abs(a[k] - b[k]) for k in ("psds1", "psds2")]
    for key in ("psds1_class", "psds2_class"):
        diffs += [abs(a[key][c] - b[key][c]) for c in a[key] if a[key][c] is not None]
    return max(diffs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=1168)
    ap.add_argument("--reps", type=int, default=3, help="runs of the new implementation")
    ap.add_argument("--old-reps", type=int, default=1, help="runs of the old implementation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from greensed.metrics.psds_reference import psds_scores_reference

    w = workload(args.clips, args.seed)
    call = dict(durations_s=w["durations"], median_window=7, frame_s=FRAME_S)
    report: dict[str, Any] = {
        "clips": args.clips, "classes": len(w["classes"]), "frames": N_FRAMES,
        "references": len(w["truth"]), "cpus": os.cpu_count(),
        "load_avg_before": os.getloadavg()[0], "modes": {},
    }
    for label, n_thr in (("50 thresholds", 50), ("exact", None)):
        def new(n_thr=n_thr):
            return psds_scores(w["probs"], w["truth"], w["files"], w["classes"],
                               n_thresholds=n_thr, **call)

        def old(n_thr=n_thr):
            return psds_scores_reference(w["probs"], w["truth"], w["files"], w["classes"],
                                         n_thresholds=n_thr, **call)

        new()  # warm both (imports, caches) before timing; the old one on a few clips
        few = w["truth"].clip < 8
        psds_scores_reference(w["probs"][:8], Events(*(a[few] for a in (
            w["truth"].clip, w["truth"].cls, w["truth"].onset_s, w["truth"].offset_s))),
            w["files"][:8], w["classes"], n_thresholds=n_thr, durations_s=w["durations"][:8],
            median_window=7, frame_s=FRAME_S)
        t_new, c_new, r_new = _timed(new, args.reps)
        t_old, c_old, r_old = _timed(old, args.old_reps)
        t_new2, c_new2, _ = _timed(new, args.reps)  # again after the old one: same load
        med = {"new": statistics.median(t_new + t_new2), "old": statistics.median(t_old),
               "new_cpu": statistics.median(c_new + c_new2),
               "old_cpu": statistics.median(c_old)}
        diff = _max_diff(r_new, r_old)
        report["modes"][label] = {
            "old_s": t_old, "new_s": t_new + t_new2, "old_cpu_s": c_old,
            "new_cpu_s": c_new + c_new2, "old_median_s": med["old"],
            "new_median_s": med["new"], "ratio": med["old"] / med["new"],
            "cpu_ratio": med["old_cpu"] / med["new_cpu"], "max_abs_diff": diff,
            "psds1": r_new["psds1"], "psds2": r_new["psds2"]}
        print(f"{label:>13}: old {med['old']:7.3f} s | new {med['new']:6.3f} s | "
              f"{med['old'] / med['new']:5.1f}x wall, {med['old_cpu'] / med['new_cpu']:5.1f}x "
              f"CPU ({med['old_cpu']:.2f} s / {med['new_cpu']:.3f} s) | PSDS1 "
              f"{r_new['psds1']:.4f} PSDS2 {r_new['psds2']:.4f} | largest difference {diff:.2e}")
    report["load_avg_after"] = os.getloadavg()[0]
    print(f"{args.clips} clips x {len(w['classes'])} classes x {N_FRAMES} frames, "
          f"{len(w['truth'])} references; load average {report['load_avg_before']:.1f} "
          f"before, {report['load_avg_after']:.1f} after, {os.cpu_count()} CPUs")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
