"""The energy figures of a DCASE task 4 submission, from two run directories.

A submission reports its training energy in kWh and that energy normalised by
the baseline's, trained on the same hardware; the challenge also ranks by the
energy-weighted PSDS of Ronchini & Serizel (2023):

    EW-PSDS = PSDS x kWh_baseline / kWh_system

(a system that costs the baseline's energy keeps its PSDS; half the energy doubles
it). PSDS1 and PSDS2 come from each run's ``psds.json`` (``greensed evaluate``),
with the evaluation's own energy, shown on its own line; training kWh from its log
(lost partial epochs included, docs/runlog.md). kWh_baseline is the baseline run's
whole training, or with ``baseline_epochs`` the energy of its first N epochs: the
DCASE 2024 task 4 rules ask for the baseline trained 10 epochs on the
participant's hardware (docs/report.md cites them). A run that is not finished is
refused unless ``include_unfinished`` (then flagged), on either side; runs that
differ in hardware, carbon source, steps per epoch or length are warned about.
Reads run directories only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.study.collect import RunState, StudyRun, collect
from greensed.study.runs import hardware_key, read_config
from greensed.study.tables import Table

PSDS_KEYS = ("psds1", "psds2")


@dataclass(frozen=True)
class Side:
    """One run's figures: the system's or the baseline's."""

    run_dir: Path
    kwh: float
    hardware: str
    psds: dict[str, float]
    total_s: float | None = None
    co2_kg: float | None = None
    energy_estimated: bool = False
    covers: str = ""  # which epochs ``kwh`` is the energy of, in words
    state: str = "finished"
    epochs: int = 0
    eval_kwh: float | None = None  # the evaluation's own energy (psds.json)
    eval_what: str = ""  # "test set, 1168 clips"
    carbon_source: str = ""
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class DcaseEnergy:
    system: Side
    baseline: Side
    warnings: list[str] = field(default_factory=list)
    baseline_epochs: int | None = None

    @property
    def normalised(self) -> float:
        """kWh_system / kWh_baseline."""
        return self.system.kwh / self.baseline.kwh

    def ew_psds(self, key: str) -> float | None:
        """PSDS x kWh_baseline / kWh_system of the system (None without that PSDS)."""
        p = self.system.psds.get(key)
        return None if p is None else p * self.baseline.kwh / self.system.kwh


def _side(path: str | Path, what: str, *, need_psds: bool, include_unfinished: bool,
          first_epochs: int | None, warnings: list[str]) -> Side:
    found = collect([path], include_unfinished=True)
    if not found.runs:
        why = found.left_out[0][1] if found.left_out else "no run log (epochs.jsonl)"
        raise GreensedError(f"{path}: {what} run not readable ({why})")
    if len(found.runs) > 1:
        raise GreensedError(f"{path}: holds {len(found.runs)} runs; name one {what} run "
                            "directory")
    sr: StudyRun = found.runs[0]
    n = len(sr.log.epochs)
    planned = read_config(sr.log).get("train", {}).get("epochs")
    of = f" of {planned}" if isinstance(planned, int) and planned != n else ""
    if first_epochs is not None:  # the first N epochs are finished, whatever came after
        if n < first_epochs:
            raise GreensedError(f"{sr.path}: {what} run holds {n} epochs; --baseline-epochs "
                                f"{first_epochs} needs its first {first_epochs}")
        kwh = sr.energy.cumulative_kwh[first_epochs - 1]
        covers = f"its first {first_epochs} of {n} epochs" if n > first_epochs \
            else f"its {n} epochs"
    else:
        kwh = sr.energy.total_kwh
        covers = f"its {n}{of} epochs"
        if sr.state is not RunState.FINISHED:
            why = (f"{sr.path}: {what} run {sr.state.value} ({sr.why or 'not finished'}); "
                   f"its energy covers {n}{of} epochs")
            if not include_unfinished:
                raise GreensedError(f"{why}: finish it (greensed train --resume) or pass "
                                    "--include-unfinished")
            warnings.append(f"{why}, used anyway (--include-unfinished)")
            covers += f", {sr.state.value}"
    if kwh is None or not kwh > 0:
        raise GreensedError(f"{sr.path}: {what} run has no energy reading (meter none or "
                            "unavailable); its training kWh is unknown")
    warnings += sr.energy.notes
    raw = sr.log.dir.read_object(sr.log.dir.psds)
    psds = {k: v for k, v in ((k, finite_float((raw or {}).get(k))) for k in PSDS_KEYS)
            if v is not None}
    if need_psds and not psds:
        raise GreensedError(f"{sr.log.dir.psds}: no PSDS1 or PSDS2 for the {what} run "
                            f"({'missing' if raw is None else 'no psds1/psds2 in it'}); "
                            f"run `greensed evaluate {sr.path}` first")
    ev = (raw or {}).get("eval_energy")
    ev = ev if isinstance(ev, dict) else {}
    s = sr.log.summary
    total_s = finite_float(s.total_s) if s else None
    co2_kg = finite_float(s.total_co2_kg) if s else None
    if first_epochs is not None:  # time and CO2 of the same epochs as the energy
        head = sr.log.epochs[:first_epochs]
        secs = [finite_float(r.duration_s) for r in head]
        total_s = math.fsum(secs) if all(x is not None for x in secs) else None  # type: ignore[arg-type]
        co2_kg = finite_float(head[-1].cumulative_co2_kg)
    return Side(sr.path, kwh, hardware_key(sr.log), psds, total_s=total_s, co2_kg=co2_kg,
                energy_estimated=sr.energy.estimated, covers=covers, state=sr.state.value,
                epochs=n, eval_kwh=finite_float(ev.get("energy_kwh")),
                eval_what=f"{(raw or {}).get('subset', '?')} set, "
                          f"{(raw or {}).get('n_clips', '?')} clips" if ev else "",
                carbon_source=s.carbon_source if s else "",
                steps_per_epoch=s.steps_per_epoch if s else None)


def dcase_energy(run: str | Path, baseline: str | Path, *, baseline_epochs: int | None = None,
                 include_unfinished: bool = False) -> DcaseEnergy:
    """The system's and the baseline's figures. ``baseline_epochs``: normalise by the
    energy of the baseline's first N epochs (DCASE 2024: 10). A run that is not
    finished is refused unless ``include_unfinished`` (then flagged); unlike runs
    (hardware, carbon source, steps per epoch, a baseline shorter than the system)
    are warned about."""
    warnings: list[str] = []
    system = _side(run, "system", need_psds=True, include_unfinished=include_unfinished,
                   first_epochs=None, warnings=warnings)
    base = _side(baseline, "baseline", need_psds=False, include_unfinished=include_unfinished,
                 first_epochs=baseline_epochs, warnings=warnings)
    if system.hardware != base.hardware:
        warnings.append(f"{system.run_dir} ran on {system.hardware!r}, the baseline "
                        f"{base.run_dir} on {base.hardware!r}: DCASE normalises by the "
                        "baseline trained on the same hardware")
    if system.co2_kg is not None and base.co2_kg is not None \
            and system.carbon_source != base.carbon_source:
        warnings.append(f"the CO2 figures use different carbon intensities: system "
                        f"{system.carbon_source!r}, baseline {base.carbon_source!r}")
    if system.steps_per_epoch and base.steps_per_epoch \
            and system.steps_per_epoch != base.steps_per_epoch:
        warnings.append(f"an epoch is {system.steps_per_epoch} steps in the system run, "
                        f"{base.steps_per_epoch} in the baseline's: unlike epochs")
    if baseline_epochs is None and base.epochs < system.epochs:
        warnings.append(f"the baseline {base.run_dir} ran {base.epochs} epochs, the system "
                        f"{system.epochs}: a short baseline inflates EW-PSDS; for the DCASE "
                        "2024 reference (the baseline's first 10 epochs) pass "
                        "--baseline-epochs 10")
    for side in (system, base):
        if side.energy_estimated:
            warnings.append(f"{side.run_dir}: part of its energy is estimated (meter gaps)")
    return DcaseEnergy(system, base, warnings, baseline_epochs)


def dcase_table(d: DcaseEnergy) -> Table:
    t = Table("DCASE task 4 energy (EW-PSDS = PSDS x kWh_baseline / kWh_system, Ronchini "
              "& Serizel 2023)", ["Figure", "System", "Baseline"])
    s, b = d.system, d.baseline
    t.add(["Run", str(s.run_dir), str(b.run_dir)])
    t.add(["Hardware", s.hardware, b.hardware])
    t.add(["Training energy (kWh)", _n(s.kwh), _n(b.kwh)])
    t.add(["Training energy covers", s.covers, b.covers])
    first = f" of its first {d.baseline_epochs} epochs" if d.baseline_epochs else ""
    t.add([f"Normalised energy (kWh / kWh_baseline{first})", _n(d.normalised), _n(1.0)])
    for key in PSDS_KEYS:
        if key in s.psds or key in b.psds:
            name = key.upper()
            t.add([name, _n(s.psds.get(key)), _n(b.psds.get(key))])
            t.add([f"EW-{name}", _n(d.ew_psds(key)), _n(b.psds.get(key))])
    if s.eval_kwh is not None or b.eval_kwh is not None:
        t.add(["Evaluation energy (kWh, psds.json; not in the above)",
               _n(s.eval_kwh) + (f" ({s.eval_what})" if s.eval_what else ""),
               _n(b.eval_kwh) + (f" ({b.eval_what})" if b.eval_what else "")])
    if s.total_s is not None or b.total_s is not None:
        t.add(["Training time (h)", _n(_h(s.total_s)), _n(_h(b.total_s))])
    if s.co2_kg is not None or b.co2_kg is not None:
        t.add(["CO2 (kg CO2eq)", _n(s.co2_kg), _n(b.co2_kg)])
    t.notes += d.warnings
    return t


def _h(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
