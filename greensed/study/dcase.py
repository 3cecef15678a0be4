"""The energy figures of a DCASE task 4 submission, from two run directories.

A submission reports its training energy in kWh and that energy normalised by
the baseline's, trained on the same hardware; the challenge also ranks by the
energy-weighted PSDS of Ronchini & Serizel (2023):

    EW-PSDS = PSDS x kWh_baseline / kWh_system

(a system that costs the baseline's energy keeps its PSDS; half the energy doubles
it). PSDS1 and PSDS2 come from each run's ``psds.json`` (``greensed evaluate``);
training kWh from its log (lost partial epochs included, docs/runlog.md). Reads
run directories only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.study.collect import StudyRun, collect
from greensed.study.runs import hardware_key
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


@dataclass(frozen=True)
class DcaseEnergy:
    system: Side
    baseline: Side
    warnings: list[str] = field(default_factory=list)

    @property
    def normalised(self) -> float:
        """kWh_system / kWh_baseline."""
        return self.system.kwh / self.baseline.kwh

    def ew_psds(self, key: str) -> float | None:
        """PSDS x kWh_baseline / kWh_system of the system (None without that PSDS)."""
        p = self.system.psds.get(key)
        return None if p is None else p * self.baseline.kwh / self.system.kwh


def _side(path: str | Path, what: str, *, need_psds: bool) -> Side:
    found = collect([path], include_unfinished=True)
    if not found.runs:
        why = found.left_out[0][1] if found.left_out else "no run log (epochs.jsonl)"
        raise GreensedError(f"{path}: {what} run not readable ({why})")
    if len(found.runs) > 1:
        raise GreensedError(f"{path}: holds {len(found.runs)} runs; name one {what} run "
                            "directory")
    sr: StudyRun = found.runs[0]
    kwh = sr.energy.total_kwh
    if kwh is None or not kwh > 0:
        raise GreensedError(f"{sr.path}: {what} run has no energy reading (meter none or "
                            "unavailable); its training kWh is unknown")
    raw = sr.log.dir.read_object(sr.log.dir.psds)
    psds = {k: v for k, v in ((k, finite_float((raw or {}).get(k))) for k in PSDS_KEYS)
            if v is not None}
    if need_psds and not psds:
        raise GreensedError(f"{sr.log.dir.psds}: no PSDS1 or PSDS2 for the {what} run "
                            f"({'missing' if raw is None else 'no psds1/psds2 in it'}); "
                            f"run `greensed evaluate {sr.path}` first")
    s = sr.log.summary
    return Side(sr.path, kwh, hardware_key(sr.log), psds,
                total_s=finite_float(s.total_s) if s else None,
                co2_kg=finite_float(s.total_co2_kg) if s else None,
                energy_estimated=sr.energy.estimated)


def dcase_energy(run: str | Path, baseline: str | Path) -> DcaseEnergy:
    """The system's and the baseline's figures; warns when they ran on other hardware
    (the normalisation then compares the machines too)."""
    system = _side(run, "system", need_psds=True)
    base = _side(baseline, "baseline", need_psds=False)
    warnings = []
    if system.hardware != base.hardware:
        warnings.append(f"{system.run_dir} ran on {system.hardware!r}, the baseline "
                        f"{base.run_dir} on {base.hardware!r}: DCASE normalises by the "
                        "baseline trained on the same hardware")
    for side in (system, base):
        if side.energy_estimated:
            warnings.append(f"{side.run_dir}: part of its energy is estimated (meter gaps)")
    return DcaseEnergy(system, base, warnings)


def dcase_table(d: DcaseEnergy) -> Table:
    t = Table("DCASE task 4 energy (EW-PSDS = PSDS x kWh_baseline / kWh_system, Ronchini "
              "& Serizel 2023)", ["Figure", "System", "Baseline"])
    s, b = d.system, d.baseline
    t.add(["Run", str(s.run_dir), str(b.run_dir)])
    t.add(["Hardware", s.hardware, b.hardware])
    t.add(["Training energy (kWh)", _n(s.kwh), _n(b.kwh)])
    t.add(["Normalised energy (kWh / kWh_baseline)", _n(d.normalised), _n(1.0)])
    for key in PSDS_KEYS:
        if key in s.psds or key in b.psds:
            name = key.upper()
            t.add([name, _n(s.psds.get(key)), _n(b.psds.get(key))])
            t.add([f"EW-{name}", _n(d.ew_psds(key)), _n(b.psds.get(key))])
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
