"""Reliability, the faults that once left the log and the weights disagreeing, energy
miscounted, or a traceback: each ends right, or in one `error:` line (docs/reliability.md)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import (
    PARK,
    cli,
    park_and_signal,
    quiet,
    spawn,
    tiny_config,
    train_args,
    tweak,
    wait_for,
)

from greensed.config import FeatureConfig
from greensed.data.desed import load_dataset
from greensed.errors import DataError, GreensedError
from greensed.runlog import RunDir, RunStatus
from greensed.train.checkpoint import load_checkpoint, save_checkpoint
from greensed.train.loop import train

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def one_step(dataset: Path, cache: Path, epochs: int):
    return tweak(tiny_config(dataset, cache, epochs), **{"train.max_steps_per_epoch": 1})


def ledger_holds(run: Path) -> None:
    """total_kwh = the epochs' energy + every lost part, each exactly once; the steps of
    each record are the steps in last.pt."""
    d = RunDir(run)
    records, lost, s = d.read_epochs(strict=True), d.read_lost(), d.read_summary()
    assert [r.epoch for r in records] == list(range(1, len(records) + 1))
    assert s.total_kwh == pytest.approx(sum(r.energy_kwh for r in records)
                                        + sum(e.kwh for e in lost))
    assert s.lost_kwh == pytest.approx(sum(e.kwh for e in lost))
    ck = torch.load(d.last, weights_only=False)
    assert ck["step"] == records[-1].steps and ck["epoch"] == records[-1].epoch


# -- the run log and the weights agree after every resume --------------------------


def test_resume_restores_a_cut_last_record_from_the_checkpoint(tiny_dataset, cache, tmp_path):
    run = tmp_path / "run"
    cfg = one_step(tiny_dataset, cache, 2)
    train(cfg, run, report=quiet)
    d = RunDir(run)
    text = d.epochs.read_text()
    d.epochs.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 60])  # epoch 2 cut
    assert [r.epoch for r in d.read_epochs()] == [1]
    res = train(tweak(cfg, **{"train.epochs": 3}), run, resume=True, report=quiet)
    assert [r.steps for r in d.read_epochs(strict=True)] == [1, 2, 3]  # not [1, 3, ...]
    assert res.summary.finished and res.summary.steps == 3
    ledger_holds(run)


def test_a_checkpoint_without_its_record_cannot_hide_a_cut_log(tiny_dataset, cache, tmp_path):
    """Checkpoints of earlier greensed hold no record: the resume refuses, in one line,
    instead of training epoch 2 again on top of epoch 2's weights."""
    run = tmp_path / "run"
    cfg = one_step(tiny_dataset, cache, 2)
    train(cfg, run, report=quiet)
    d = RunDir(run)
    ck = load_checkpoint(d.last)
    del ck["record"]
    save_checkpoint(d.last, ck)
    lines = d.epochs.read_text().splitlines()
    d.epochs.write_text(lines[0] + "\n" + lines[1][:40])
    with pytest.raises(GreensedError, match=r"holds 1 epochs but .*last.pt holds 2") as err:
        train(tweak(cfg, **{"train.epochs": 3}), run, resume=True, report=quiet)
    assert "\n" not in str(err.value)


def test_sigterm_then_sigkill_as_the_cut_is_logged_counts_it_once(
        tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    # The step ends, then the epoch is cut and measured.
    proc = park_and_signal(train_args(tiny_dataset, cache, run, 4), "step:2", signal.SIGTERM,
                           tmp_path / "parked")
    lost = RunDir(run).lost
    wait_for(lost.exists, proc, timeout_s=60)
    proc.kill()
    proc.communicate(timeout=180)
    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0
    (entry,) = RunDir(run).read_lost()  # the measured cut only: no estimate on top
    assert entry.epoch == 2 and entry.how == "measured: partial epoch cut by a signal"
    ledger_holds(run)


def test_a_fresh_command_on_an_interrupted_run_is_refused_and_resume_counts_once(
        tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    proc = park_and_signal(train_args(tiny_dataset, cache, run, 2), "step:1", signal.SIGINT,
                           tmp_path / "parked")
    proc.communicate(timeout=180)
    assert proc.returncode == 130
    code, _, err = cli(monkeypatch, capsys, *train_args(tiny_dataset, cache, run, 2))
    assert code == 2 and "already holds a run (summary.json, lost.jsonl); use --resume" in err
    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0
    ledger_holds(run)
    d = RunDir(run)
    assert d.read_epochs()[0].cumulative_kwh == pytest.approx(
        d.read_lost()[0].kwh + d.read_epochs()[0].energy_kwh)


def test_kill_9_late_in_a_long_step_misses_at_most_5_s(tiny_dataset, cache, tmp_path,
                                                       monkeypatch, capsys):
    run, parked = tmp_path / "run", tmp_path / "parked"
    proc = spawn([sys.executable, "-c", PARK, *train_args(tiny_dataset, cache, run, 3)],
                 GREENSED_TEST_PARK="step:2", GREENSED_TEST_PARK_S="30",
                 GREENSED_TEST_PARKED=str(parked))
    wait_for(parked.exists, proc)
    t0 = time.monotonic()
    time.sleep(12)  # deep inside one 30 s step: no step boundary to write a heartbeat at
    proc.kill()
    proc.communicate(timeout=180)
    in_epoch_s = time.monotonic() - t0
    beat = RunDir(run).read_heartbeat()
    assert beat.epoch == 2 and beat.elapsed_s >= in_epoch_s - 5.0
    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0
    (lost,) = RunDir(run).read_lost()
    assert lost.how.startswith("estimated") and lost.duration_s >= in_epoch_s - 5.0
    ledger_holds(run)


def test_sighup_stops_cleanly_and_resumably(tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    # A closed terminal or SSH session.
    proc = park_and_signal(train_args(tiny_dataset, cache, run, 3), "step:2", signal.SIGHUP,
                           tmp_path / "parked")
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130 and ": interrupted by SIGHUP\n" in out
    assert f"resume with: greensed train --resume {run}\n" in out
    s = RunDir(run).read_summary()
    assert s.status is RunStatus.INTERRUPTED and s.epochs == 1
    assert cli(monkeypatch, capsys, "train", "--resume", run)[0] == 0
    ledger_holds(run)


def test_ctrl_c_during_feature_extraction_exits_130_and_the_same_command_works(
        tiny_dataset, tmp_path, monkeypatch, capsys):
    run, parked, fresh = tmp_path / "run", tmp_path / "parked", tmp_path / "fresh-cache"
    args = train_args(tiny_dataset, fresh, run, 1)
    proc = spawn([sys.executable, "-c", PARK, *args], GREENSED_TEST_PARK="extract",
                 GREENSED_TEST_PARKED=str(parked))
    wait_for(parked.exists, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130 and "Traceback" not in err
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert RunDir(run).read_summary().finished


def test_two_trainings_on_a_fresh_cache_take_turns_generating(tmp_path):
    """Both want the embedded set at once: the second waits for the first, instead of
    deleting the set the first is reading."""
    fresh = tmp_path / "cache"
    procs = [spawn([sys.executable, "-m", "greensed.cli", "train", "--cache-dir", str(fresh),
                    "--out", str(tmp_path / name), "--epochs", "1", "--batch-size", "4",
                    "--max-steps-per-epoch", "1", "--meter", "constant:40"])
             for name in ("a", "b")]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for another process generating" in out + err for out, err in outs)


# -- flags, recipes and directories: one line, exit 2 --------------------------------


def test_resume_with_another_out_is_refused_and_keeps_its_recipe_name(
        tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "mine.toml"
    recipe.write_text("[train]\nprotocol = \"greensed\"\nmax_steps_per_epoch = 1\nbatch_size = 4\n"
                      "epochs = 1\n")  # 4 weak clips: too few to hold some out
    run = tmp_path / "run"
    args = ["train", "--recipe", recipe, "--data", tiny_dataset, "--cache-dir", cache,
            "--out", run, "--meter", "constant:40"]
    assert cli(monkeypatch, capsys, *args)[0] == 0
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", run, "--out", tmp_path / "x")
    assert code == 2 and "a resumed run stays in its directory" in err
    assert cli(monkeypatch, capsys, "train", "--resume", run, "--epochs", "2")[0] == 0
    assert RunDir(run).read_summary().recipe == "mine"  # not the directory's name


def test_stale_temp_files_of_a_killed_write_are_removed(tiny_dataset, cache, tmp_path):
    run = tmp_path / "run"
    cfg = one_step(tiny_dataset, cache, 1)
    train(cfg, run, report=quiet)
    stale = RunDir(run).checkpoints / ".last.pt.tmp-999999"  # no such process
    stale.write_bytes(b"x" * 1000)
    mine = RunDir(run).checkpoints / f".last.pt.tmp-{os.getppid()}"  # a live process
    mine.write_bytes(b"x")
    train(tweak(cfg, **{"train.epochs": 2}), run, resume=True, report=quiet)
    assert not stale.exists() and mine.exists()


def test_meter_none_closing_line_shows_no_energy_figure(tiny_dataset, cache, tmp_path):
    lines: list[str] = []
    cfg = tweak(one_step(tiny_dataset, cache, 1), **{"meter.spec": "none"})
    train(cfg, tmp_path / "run", report=lines.append)
    closing = lines[-1]
    assert "energy unavailable" in closing and "Wh" not in closing


def test_bad_directories_and_saved_configs_are_one_line(tiny_dataset, cache, tmp_path,
                                                        monkeypatch, capsys):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    code, _, err = cli(monkeypatch, capsys, *train_args(tiny_dataset, a_file, tmp_path / "r", 1))
    assert code == 2 and err.count("\n") == 1 and "cannot write the feature cache" in err
    run = tmp_path / "run"
    train(one_step(tiny_dataset, cache, 1), run, report=quiet)
    RunDir(run).config.write_text("[train\nepochs = 1\n")
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 2 and err.count("\n") == 1 and "config.toml: invalid TOML" in err


def test_disk_full_while_extracting_is_one_line_not_a_signal(tiny_dataset, tmp_path,
                                                             monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DataError, match="cannot write the feature cache \\(No space left"):
        load_dataset(tiny_dataset, FeatureConfig(), cache_dir=tmp_path / "cache")


def test_disk_full_on_a_real_small_filesystem(tiny_dataset, tmp_path):
    """A 2 MB tmpfs (needs root to mount; skipped elsewhere): the memmap's blocks are
    reserved before it is written, so ENOSPC is an error, not a SIGBUS."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code = ("import sys; from greensed.config import FeatureConfig; "
                "from greensed.data.desed import load_dataset; "
                f"load_dataset({str(tiny_dataset)!r}, FeatureConfig(), cache_dir={str(mnt)!r})")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 1 and "No space left on device" in p.stderr  # a DataError
        assert "DataError" in p.stderr.splitlines()[-1]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
