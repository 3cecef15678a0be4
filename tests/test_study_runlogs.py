"""Hand-made run logs read back through greensed.runlog, and the study layer's imports."""

from __future__ import annotations

from pathlib import Path

from helpers import write_run


def test_hand_made_log_reads_back_through_runlog(tmp_path: Path) -> None:
    from greensed import runlog

    d = write_run(tmp_path / "r", [0.1, None, 0.3], [0.1, 0.2, 0.3], 30.0, batch_size=8)
    run = runlog.load_run(d)
    assert run.series("teacher_f1") == [0.1, None, 0.3]
    assert run.series("cumulative_kwh") == [0.1, 0.3, 0.6]
    assert run.summary.total_kwh == 0.6 and run.summary.total_s == 90.0
    assert runlog.find_runs([tmp_path]) == [d]


def test_study_layer_imports_no_training_code() -> None:
    import subprocess
    import sys

    code = ("import sys, greensed.study.report, greensed.study.replay, "
            "greensed.study.status, greensed.study.dcase, greensed.study.bench; "
            "bad = [m for m in ('torch', 'torchaudio', 'greensed.train', 'greensed.data', "
            "'greensed.model', 'matplotlib') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
