"""The lost-energy ledger's arithmetic, on hand-made records: no torch, no files."""

from __future__ import annotations

import pytest

from greensed.errors import GreensedError
from greensed.runlog import EpochRecord, Heartbeat, LostEntry, ledger


def records(kwh: list[float], power_w: float = 100.0) -> list[EpochRecord]:
    out, cum = [], 0.0
    for i, e in enumerate(kwh, start=1):
        cum += e
        out.append(EpochRecord(epoch=i, energy_kwh=e, cumulative_kwh=cum, duration_s=10.0,
                               avg_power_w=power_w, time_utc=f"t{i}"))
    return out


def test_resume_with_the_log_one_epoch_ahead_moves_its_energy_once():
    recs = records([0.1, 0.2])
    beat = Heartbeat(0, 0.0, 7)  # the attempt finished its epoch (heartbeat cleared)
    plan = ledger.plan_resume(recs, 1, [], beat, checkpoint="last.pt")
    assert plan.history == recs[:1] and plan.truncate_to == 1
    (moved,) = plan.moved
    assert (moved.epoch, moved.kwh, moved.record_time_utc) == (2, 0.2, "t2")
    assert moved.how == ledger.REDONE
    # A resume that died after moving it, before truncating, does not move it again.
    again = ledger.plan_resume(recs, 1, [moved], beat, checkpoint="last.pt")
    assert again.moved == [] and again.truncate_to == 1


def test_redone_epoch_names_its_heartbeat_so_no_estimate_is_added():
    recs = records([0.1, 0.2])
    beat = Heartbeat(2, 9.0, 7)  # died between the record and the heartbeat reset
    plan = ledger.plan_resume(recs, 1, [], beat, checkpoint="last.pt")
    assert [e.how for e in plan.moved] == [ledger.REDONE]
    assert plan.moved[0].heartbeat_pid_epoch == "7:2"


def test_log_two_epochs_ahead_of_the_checkpoint_is_refused():
    with pytest.raises(GreensedError, match="last.pt: holds epoch 1 but the log has 3 epochs"):
        ledger.plan_resume(records([0.1, 0.1, 0.1]), 1, [], None, checkpoint="last.pt")


def test_an_older_checkpoint_redoes_every_later_epoch_when_allowed():
    """A loop that keeps older checkpoints (Lightning) may resume from any: each
    logged epoch after it moves to the ledger, measured, once."""
    recs = records([0.1, 0.2, 0.3])
    plan = ledger.plan_resume(recs, 1, [], None, checkpoint="epoch=0.ckpt", max_ahead=None)
    assert plan.history == recs[:1] and plan.truncate_to == 1
    assert [(e.epoch, e.kwh, e.how) for e in plan.moved] == [
        (2, 0.2, ledger.REDONE_OLDER), (3, 0.3, ledger.REDONE_OLDER)]
    again = ledger.plan_resume(recs, 1, plan.moved, None, checkpoint="epoch=0.ckpt",
                               max_ahead=None)  # a resume that died before truncating
    assert again.moved == []


def test_crash_is_estimated_from_mean_power_once_per_attempt():
    recs = records([0.1, 0.1], power_w=50.0)
    beat = Heartbeat(3, 72.0, 11)
    (est,) = ledger.plan_resume(recs, 2, [], beat, checkpoint="x").moved
    assert est.epoch == 3 and est.kwh == pytest.approx(50.0 * 72.0 / 3.6e6)
    assert est.how == ledger.ESTIMATED and est.heartbeat_pid_epoch == "11:3"
    assert ledger.crash_estimate(recs, [est], beat) is None
    # A cut measured cleanly names the same heartbeat: no estimate on top (SIGKILL
    # after lost.jsonl was appended but before the heartbeat was cleared).
    cut = ledger.cut_entry(3, 0.004, 60.0, "a signal", beat)
    assert ledger.crash_estimate(recs, [cut], beat) is None
    assert ledger.crash_estimate(recs, [], Heartbeat(2, 5.0, 11)) is None  # epoch 2 is done


def test_crash_in_the_first_epoch_is_unknown_then_settled_by_the_redo():
    (unknown,) = ledger.plan_resume([], 0, [], Heartbeat(1, 30.0, 5), checkpoint="x").moved
    assert unknown.kwh is None and unknown.how == ledger.UNKNOWN
    assert ledger.settle_unknown([unknown], 1, None) is None
    assert ledger.settle_unknown([unknown], 2, 40.0) is None  # another epoch's redo
    (settled,) = ledger.settle_unknown([unknown], 1, 40.0)
    assert settled.kwh == pytest.approx(40.0 * 30.0 / 3.6e6)
    assert settled.how == ledger.ESTIMATED_FROM_REDO


def test_lost_energy_is_counted_in_its_own_epoch_record():
    lost = [LostEntry(2, 0.05), LostEntry(2, 0.01), LostEntry(3, None), LostEntry(4, 0.5)]
    assert ledger.lost_kwh_of(lost, 2) == pytest.approx(0.06)
    assert ledger.lost_kwh_of(lost, 3) == 0.0
    prev = records([0.1])[0]
    assert ledger.cumulative_kwh(prev, 0.06, 0.2) == pytest.approx(0.36)
    assert ledger.cumulative_kwh(None, 0.0, 0.2) == 0.2
    assert ledger.cumulative_kwh(prev, 0.0, None) is None  # unknown from here on
    unknown_before = EpochRecord(epoch=1, cumulative_kwh=None)
    assert ledger.cumulative_kwh(unknown_before, 0.0, 0.2) is None


def test_totals_count_every_epoch_and_every_lost_part_once():
    recs = records([0.1, 0.2])
    recs[1] = EpochRecord(epoch=2, energy_kwh=0.2, cumulative_kwh=0.1 + 0.05 + 0.2,
                          duration_s=10.0)  # epoch 2's record holds its lost 0.05
    lost = [LostEntry(2, 0.05, 3.0), LostEntry(3, 0.02, 1.0)]  # epoch 3: cut just now
    t = ledger.totals(recs, lost)
    assert t.total_kwh == pytest.approx(0.1 + 0.05 + 0.2 + 0.02)
    assert t.lost_kwh == pytest.approx(0.07) and t.total_s == pytest.approx(24.0)
    none = ledger.totals([], [LostEntry(1, 0.01, 2.0)])
    assert none.total_kwh == pytest.approx(0.01) and none.total_s == 2.0
    assert ledger.totals([], []).total_kwh is None


def test_ledger_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, greensed.runlog.ledger; "
            "print([m for m in ('torch', 'codecarbon') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
