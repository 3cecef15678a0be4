"""The study tools' inputs: which runs a figure may come from and which metric it reads
(one rule, greensed.study.collect.select), and whose energy it counts (the ledger's
rules, summary.json or not). Each case was silent before: docs/reliability.md S9-S18."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, write_run

import greensed
from greensed.energy import ConstantPowerMeter
from greensed.errors import GreensedError
from greensed.study import bench as B
from greensed.study import replay as rpl
from greensed.study import report as rp
from greensed.study.collect import collect
from greensed.study.dcase import dcase_energy, dcase_table
from greensed.study.status import status_table

RISE = [0.10, 0.20, 0.30, 0.40, 0.50, 0.55, 0.60, 0.60, 0.60, 0.60]  # max 0.60 @ 7


def library_run(run_dir: Path, f1: list[float], **kw) -> Path:
    """A run written by greensed's library (RunRecorder), watching ``val_f1``: 1 kWh an
    epoch (a 3.6 MW meter ticking 1 s a window)."""
    ticks = iter(range(100_000))
    meter = ConstantPowerMeter(3.6e6, clock=lambda: float(next(ticks)))
    with greensed.EnergyMonitor(meter) as monitor, greensed.RunRecorder(
            run_dir, metric="val_f1", max_epochs=len(f1), batch_size=16, seed=1,
            monitor=monitor, **kw) as run:
        for epoch, value in enumerate(f1, start=1):
            with monitor.window() as w:
                pass
            run.add(epoch, {"val_f1": value}, w.reading, steps=5 * epoch)
    return run_dir


def rows(table) -> dict[str, list[str]]:
    return {r[0]: r[1:] for r in table.rows}


# --- the metric: each run's own, never all-missing values --------------------------

def test_replay_of_a_library_run_reads_the_metric_it_watches(tmp_path, monkeypatch, capsys):
    """Before: teacher_f1 (absent) fed the plateau, which stopped at epoch 3: "Saved 70 %"."""
    run = library_run(tmp_path / "lib", RISE)
    code, out, err = cli(monkeypatch, capsys, "replay", run, "--policy", "plateau:patience=2",
                         "--format", "csv")
    assert code == 0, err
    (r,) = rpl.replay([run], [rpl.parse_policy_spec("plateau:patience=2")])[0]
    # best 0.60 at epoch 7; 8 and 9 do not improve: stop after 9 of 10 epochs of 1 kWh
    assert (r.stop_epoch, r.stop_policy) == (9, "plateau")
    assert r.saved == pytest.approx(0.1) and r.max_f1 == 0.6 and r.f1_loss == 0.0
    assert "10.0%" in out and "70.0%" not in out
    # Asked for a metric the run lacks: one line naming it and what the run has.
    code, _, err = cli(monkeypatch, capsys, "replay", run, "--policy", "plateau",
                       "--metric", "teacher_f1")
    assert code == 2 and err.count("\n") == 1
    assert "--metric 'teacher_f1': no epoch of the 1 run(s)" in err and "val_f1" in err
    # A spec's own metric= that the run lacks: refused, never decided on missing values.
    with pytest.raises(GreensedError, match="watches 'student_f1', which no epoch has"):
        rpl.replay([run], [rpl.parse_policy_spec("plateau:patience=2,metric=student_f1")])


def test_report_reads_each_runs_own_metric_and_leaves_out_a_run_without_it(tmp_path):
    lib = library_run(tmp_path / "runs" / "lib", RISE)
    write_run(tmp_path / "runs" / "own", [0.3, 0.5, 0.4], 0.1)  # watches teacher_f1
    odd = write_run(tmp_path / "runs" / "odd", [0.3, 0.5], 0.1)
    (odd / "config.toml").write_text('[stop]\nmetric = "psds1"\n')  # watched, never logged
    rep = rp.build_report([tmp_path / "runs"], by="recipe", std="runs")
    stats = {s.run_dir.name: s for g in rep.groups.values() for s in g}
    assert set(stats) == {"lib", "own"}
    assert (stats["lib"].metric, stats["lib"].max_f1) == ("val_f1", 0.6)
    assert (stats["own"].metric, stats["own"].max_f1) == ("teacher_f1", 0.5)
    assert any(f"{odd}: no 'psds1' in any epoch (its metrics: student_f1, teacher_f1)" in w
               for w in rep.warnings)
    assert any("different metrics" in n and "val_f1: 1 run" in n for n in rep.notes)
    assert stats["lib"].run_dir == lib
    rep = rp.build_report([tmp_path / "runs"], by="recipe", metric="val_f1")
    assert [s.run_dir for g in rep.groups.values() for s in g] == [lib]
    assert sum(w.endswith("no 'val_f1' in any epoch (its metrics: student_f1, teacher_f1)")
               for w in rep.warnings) == 2


def test_a_run_watching_a_loss_is_left_out_unless_a_metric_is_given(tmp_path):
    run = write_run(tmp_path / "r", [0.3, 0.5], 0.1)
    (run / "config.toml").write_text('[stop]\nmetric = "loss.total"\nmode = "min"\n')
    with pytest.raises(GreensedError, match="watches 'loss.total' \\(mode min\\): not an F1"):
        rp.build_report([tmp_path])
    rep = rp.build_report([tmp_path], metric="teacher_f1")
    assert rep.groups["16"][0].max_f1 == 0.5
    (row,) = status_table([run]).rows  # status shows its loss as a loss: least is best
    assert row[3:6] == ["loss.total", "1 @1", "1"]


# --- bench-policies: full-length runs, a metric they have ----------------------------

def corpus(tmp_path: Path) -> Path:
    for seed in (1, 2):
        write_run(tmp_path / "c" / str(seed), RISE, 0.1, seed=seed, batch_size=8)
    return tmp_path / "c"


def test_bench_leaves_out_a_run_a_policy_stopped_early(tmp_path):
    """Before: benchmarked as a full-length run (4 of 10 epochs), no warning."""
    c = corpus(tmp_path)
    short = write_run(c / "3", RISE[:4], 0.1, seed=3, batch_size=8,
                      summary={"stop_policy": "plateau", "stop_reason": "plateau: ..."})
    (short / "config.toml").write_text("[train]\nbatch_size = 8\nseed = 3\nepochs = 10\n")
    runs, warnings = B.load_corpus([c], metric="teacher_f1")
    assert sorted(r.seed for r in runs) == [1, 2]
    assert warnings == [f"{short}: left out (stopped early by plateau at epoch 4 of 10: not "
                        "a full-length run)"]
    # A run that ran fewer epochs than its config planned, with no policy named, too.
    (short / "summary.json").write_text(json.dumps({
        **json.loads((short / "summary.json").read_text()), "stop_policy": ""}))
    assert "ran 4 of 10 epochs: not a full-length run" in B.load_corpus([c])[1][0]
    with pytest.raises(GreensedError, match=f"first: {short}: ran 4 of 10 epochs"):
        B.load_corpus([short])


def test_bench_names_a_misspelt_metric_and_the_ones_the_runs_have(tmp_path, monkeypatch,
                                                                   capsys):
    """Before: "no finished full-length run under ..." (the runs blamed)."""
    c = corpus(tmp_path)
    code, _, err = cli(monkeypatch, capsys, "bench-policies", c, "--metric", "student_f2",
                       "--out", tmp_path / "b")
    assert code == 2 and err.count("\n") == 1
    assert ("--metric 'student_f2': no epoch of the 2 run(s) under" in err
            and "(did you mean 'student_f1'?); they have: student_f1, teacher_f1" in err)
    assert not (tmp_path / "b").exists()
    runs, _ = B.load_corpus([c])  # no --metric: the runs' own (teacher_f1 by default)
    assert {r.metric for r in runs} == {"teacher_f1"}


# --- energy: the ledger's total with or without summary.json ------------------------

def killed_after_a_cut(tmp_path: Path) -> Path:
    """Two epochs of 0.1 kWh, then epoch 3 cut (0.013 kWh in lost.jsonl) and the process
    killed before summary.json was written."""
    run = write_run(tmp_path / "r", [0.3, 0.5], 0.1, write_summary=False)
    (run / "lost.jsonl").write_text(json.dumps(
        {"epoch": 3, "kwh": 0.013, "duration_s": 7.8,
         "how": "measured: partial epoch cut by a signal"}) + "\n")
    return run


def test_a_lost_partial_epoch_counts_without_a_summary(tmp_path):
    """Before: 0.200 kWh in report --include-unfinished and dcase; the writer says 0.213."""
    run = killed_after_a_cut(tmp_path)
    (sr,) = collect([run], include_unfinished=True).runs
    assert sr.energy.total_kwh == pytest.approx(0.213)
    rep = rp.build_report([run], include_unfinished=True)
    assert rep.groups["16"][0].total_kwh == pytest.approx(0.213)


def test_a_kill_9_in_flight_counts_the_heartbeat_estimate_as_resume_would(tmp_path):
    run = write_run(tmp_path / "r", [0.3, 0.5], 0.1, write_summary=False)
    (run / "heartbeat.json").write_text(json.dumps({"epoch": 3, "elapsed_s": 30.0,
                                                    "pid": 999999}))
    (sr,) = collect([run], include_unfinished=True).runs
    power_w = 0.1 * 3.6e6 / 60.0  # the finished epochs: 0.1 kWh in 60 s
    assert sr.energy.total_kwh == pytest.approx(0.2 + power_w * 30.0 / 3.6e6)  # 0.25
    assert any("epoch 3, in flight when the run was killed, counts 0.05 kWh" in n
               for n in collect([run], include_unfinished=True).notes())


def test_a_summary_total_that_disagrees_with_its_log_is_named_and_the_log_used(tmp_path):
    """Before: Total and Wh/epoch from the summary's 0.5 kWh, @Max F1 from the log."""
    run = write_run(tmp_path / "r", [0.3, 0.5], 0.1, summary={"total_kwh": 0.5})
    rep = rp.build_report([run])
    (s,) = rep.groups["16"]
    assert s.total_kwh == pytest.approx(0.2) and s.kwh_at_max == pytest.approx(0.2)
    note = f"{run / 'summary.json'}: total_kwh 0.5 disagrees with its log's 0.2 " \
           "(epochs.jsonl + lost.jsonl); the figures use the log's"
    assert note in rep.warnings and note in rp.tables(rep)[0].notes
    _, warnings = rpl.replay([run], [rpl.parse_policy_spec("plateau")])
    assert note in warnings


# --- dcase: unfinished runs, unlike runs, evaluation energy, the 2024 normalisation --

@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    system = write_run(tmp_path / "mine", [0.3, 0.4, 0.5, 0.5], 0.05,
                       psds={"psds1": 0.36, "psds2": 0.55,
                             "eval_energy": {"energy_kwh": 0.004}, "subset": "test",
                             "n_clips": 692})
    base = write_run(tmp_path / "baseline", [0.3] * 20, 0.1, psds={"psds1": 0.34})
    return system, base


def test_dcase_refuses_an_unfinished_baseline_or_system_unless_asked(pair, tmp_path):
    """Before: a baseline killed in epoch 3 was used as if complete (normalised 1.563)."""
    killed = write_run(tmp_path / "killed", [0.3, 0.4], 0.1, write_summary=False)
    (killed / "config.toml").write_text("[train]\nepochs = 20\n")
    with pytest.raises(GreensedError, match=f"{killed}: baseline run incomplete .*covers 2 "
                                            "of 20 epochs: finish it .*--include-unfinished"):
        dcase_energy(pair[0], killed)
    d = dcase_energy(pair[0], killed, include_unfinished=True)
    assert d.baseline.kwh == pytest.approx(0.2)
    assert any("baseline run incomplete" in w and "used anyway" in w for w in d.warnings)
    assert rows(dcase_table(d))["Training energy covers"][1] == "its 2 of 20 epochs, incomplete"
    system = write_run(tmp_path / "sys", [0.3, 0.4], 0.05, psds={"psds1": 0.3},
                       summary={"status": "interrupted", "stop_policy": "interrupted"})
    with pytest.raises(GreensedError, match="system run interrupted"):
        dcase_energy(system, pair[1])


def test_dcase_2024_normalisation_by_the_baselines_first_10_epochs(pair, monkeypatch,
                                                                     capsys):
    d = dcase_energy(*pair, baseline_epochs=10)
    assert d.baseline.kwh == pytest.approx(1.0)  # 10 of its 20 epochs of 0.1 kWh
    assert d.normalised == pytest.approx(0.2 / 1.0)
    assert d.ew_psds("psds1") == pytest.approx(0.36 * 1.0 / 0.2)
    r = rows(dcase_table(d))
    assert r["Training energy covers"] == ["its 4 epochs", "its first 10 of 20 epochs"]
    assert r["Normalised energy (kWh / kWh_baseline of its first 10 epochs)"] == ["0.2", "1"]
    assert r["Training time (h)"] == ["0.06667", "0.1667"]  # 4 and 10 epochs of 60 s
    with pytest.raises(GreensedError, match="holds 20 epochs; --baseline-epochs 30 needs"):
        dcase_energy(*pair, baseline_epochs=30)
    code, out, err = cli(monkeypatch, capsys, "dcase", pair[0], "--baseline", pair[1],
                         "--baseline-epochs", "10", "--format", "csv")
    assert code == 0, err
    assert "Normalised energy (kWh / kWh_baseline of its first 10 epochs),0.2,1" in out


def test_dcase_shows_the_evaluation_energy_and_warns_on_unlike_runs(pair, tmp_path):
    r = rows(dcase_table(dcase_energy(*pair)))
    assert r["Evaluation energy (kWh, psds.json; not in the above)"] == [
        "0.004 (test set, 692 clips)", "n/a"]
    assert r["Training energy (kWh)"] == ["0.2", "2"]  # the evaluation is not in it
    system = write_run(tmp_path / "s", [0.3] * 30, 0.01, psds={"psds1": 0.4}, summary={
        "steps_per_epoch": 50, "total_co2_kg": 0.1, "carbon_source": "codecarbon: FRA"})
    (pair[1] / "summary.json").write_text(json.dumps({
        **json.loads((pair[1] / "summary.json").read_text()), "steps_per_epoch": 100,
        "total_co2_kg": 0.5, "carbon_source": "given: 300 g/kWh"}))
    w = dcase_energy(system, pair[1]).warnings
    assert any("different carbon intensities: system 'codecarbon: FRA', baseline "
               "'given: 300 g/kWh'" in x for x in w)
    assert any("an epoch is 50 steps in the system run, 100 in the baseline's" in x for x in w)
    assert any("ran 20 epochs, the system 30: a short baseline" in x for x in w)
    assert len(w) == 3


def test_report_refuses_an_unfinished_reference_unless_asked(tmp_path):
    write_run(tmp_path / "runs" / "a", [0.3, 0.5], 0.1)
    ref = write_run(tmp_path / "ref", [0.3], 0.1, write_summary=False)
    with pytest.raises(GreensedError, match="reference run incomplete"):
        rp.build_report([tmp_path / "runs"], reference_dirs=[ref])
    rep = rp.build_report([tmp_path / "runs"], reference_dirs=[ref], include_unfinished=True)
    assert any("used as the reference anyway" in w for w in rep.warnings)
