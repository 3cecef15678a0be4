"""CodeCarbonMeter: a real reading on this machine, and its failure modes (fake tracker)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from greensed.energy import MEASURED, CodeCarbonMeter, MeterError, codecarbon_methods

HAS_RAPL = any(
    (zone / "energy_uj").exists() for zone in Path("/sys/class/powercap").glob("intel-rapl:*")
)


def busy(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """One real tracker for the module: hardware detection costs ~2 s."""
    cwd = tmp_path_factory.mktemp("cwd")
    mp = pytest.MonkeyPatch()
    mp.chdir(cwd)  # CodeCarbon must write nothing into the working directory
    meter = CodeCarbonMeter("machine")
    meter.start()
    yield meter, cwd
    meter.close()
    mp.undo()


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_real_reading_is_positive_labelled_and_split(started):
    meter, cwd = started
    meter.begin_window()
    busy(1.2)
    r = meter.end_window()
    assert r.status == "ok", r.status
    assert r.energy_kwh is not None and r.energy_kwh > 0
    assert 1.1 < r.duration_s < 3.0
    assert set(r.components_kwh) >= {"cpu", "ram"}
    assert all(v > 0 for v in r.components_kwh.values())
    assert sum(r.components_kwh.values()) == pytest.approx(r.energy_kwh, rel=1e-6)
    assert set(r.methods) == set(r.components_kwh)
    assert 0 < r.avg_power_w < 5000
    if not HAS_RAPL:  # this machine: CodeCarbon can only model the CPU
        assert r.methods["cpu"] in {"cpu-load model", "tdp constant"}
        assert not MEASURED & set(r.methods.values())
    assert r.methods["ram"] in {"constant ram model", "ram-usage model"}
    assert list(cwd.iterdir()) == []  # no emissions.csv, no lock file


def test_methods_come_from_the_tracker(started):
    meter, _ = started
    labels = codecarbon_methods(meter.tracker)
    assert labels == meter.describe()
    assert labels["cpu"] in ({"rapl counter"} if HAS_RAPL else {"cpu-load model", "tdp constant"})


def test_none_from_stop_task_is_an_error_not_zero(started, monkeypatch):
    meter, _ = started
    meter.begin_window()
    busy(0.2)
    good = meter.end_window()
    assert good.status == "ok"
    # CodeCarbon logs and swallows failures, returning None: must not read as 0 kWh.
    monkeypatch.setattr(meter.tracker, "stop_task", lambda *a, **k: None)
    meter.begin_window()
    busy(0.4)
    r = meter.end_window()
    assert r.status.startswith("error: codecarbon stop_task returned None")
    assert "constant-power model" in r.status
    assert set(r.methods.values()) == {"constant-power model"}
    assert r.energy_kwh == pytest.approx(good.avg_power_w * r.duration_s / 3.6e6, rel=1e-6)


# --- fake tracker: failure modes without the ~2 s hardware detection ----------


class CPU:
    def __init__(self, mode):
        self._mode = mode


class RAM:
    def __init__(self, tracking_mode="machine", force=None):
        self._tracking_mode = tracking_mode
        self._force_ram_power = force


class FakeTracker:
    def __init__(self, hardware, data):
        self._hardware = hardware
        self.data = data
        self.stopped = False

    def get_detected_hardware(self):
        return {"cpu_model": "fake"}

    def start_task(self, name):
        self.task = name

    def stop_task(self, name):
        assert name == self.task
        return self.data

    def stop(self):
        self.stopped = True


def fake_meter(data, hardware=None):
    hardware = hardware if hardware is not None else [RAM(), CPU("cpu_load")]
    tracker = FakeTracker(hardware, emissions(0.0, 0.0))
    meter = CodeCarbonMeter(tracker_factory=lambda **kw: tracker)
    meter.start()
    tracker.data = data
    return meter, tracker


def emissions(cpu, ram, gpu=0.0, total=None):
    total = cpu + ram + gpu if total is None else total
    return SimpleNamespace(energy_consumed=total, cpu_energy=cpu, ram_energy=ram,
                           gpu_energy=gpu, duration=1.0)


def test_fake_tracker_reading_and_close():
    meter, tracker = fake_meter(emissions(0.002, 0.001))
    meter.begin_window()
    r = meter.end_window()
    assert r.energy_kwh == pytest.approx(0.003) and r.status == "ok"
    assert r.components_kwh == {"cpu": 0.002, "ram": 0.001}  # no phantom "gpu": 0.0
    assert r.methods == {"cpu": "cpu-load model", "ram": "constant ram model"}
    meter.close()
    assert tracker.stopped


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "returned None"),
        (emissions(0.002, 0.001, total=float("nan")), "energy_consumed = nan"),
        (emissions(-0.002, 0.001, total=0.001), "cpu_energy = -0.002"),
        (emissions(0.002, 0.001, total=0.5), "sum to"),
    ],
)
def test_bad_codecarbon_data_is_an_error_without_history(data, match):
    meter, _ = fake_meter(data)
    meter.begin_window()
    r = meter.end_window()
    assert r.energy_kwh is None and r.status.startswith("error:") and match in r.status


def test_start_task_exception_is_recorded():
    meter, tracker = fake_meter(emissions(0.001, 0.001))

    def boom(name):
        raise RuntimeError("scheduler died")

    tracker.start_task = boom
    meter.begin_window()
    r = meter.end_window()
    assert "scheduler died" in r.status and r.energy_kwh is None


def test_task_api_without_data_fails_at_start():
    tracker = FakeTracker([RAM(), CPU("cpu_load")], None)
    with pytest.raises(MeterError, match="task API gave no data"):
        CodeCarbonMeter(tracker_factory=lambda **kw: tracker).start()
    assert tracker.stopped


def test_half_built_tracker_fails_at_start():
    class HalfBuilt:  # what a suppressed exception in __init__ leaves behind
        def get_detected_hardware(self):
            raise AttributeError("'OfflineEmissionsTracker' object has no attribute '_conf'")

    meter = CodeCarbonMeter(tracker_factory=lambda **kw: HalfBuilt())
    with pytest.raises(MeterError, match="did not initialise"):
        meter.start()


def test_method_labels_adapter():
    t = SimpleNamespace
    assert codecarbon_methods(t(_hardware=[CPU("intel_rapl"), RAM()])) == {
        "cpu": "rapl counter", "ram": "constant ram model"}
    assert codecarbon_methods(t(_hardware=[CPU("constant"), RAM("process")])) == {
        "cpu": "tdp constant", "ram": "ram-usage model"}
    # An upstream rename of the private layout degrades to an honest label.
    assert codecarbon_methods(t(_hardware=[CPU("new_mode")]))["cpu"] == (
        "codecarbon (method unknown)")
    assert codecarbon_methods(t()) == {"cpu": "codecarbon (method unknown)",
                                      "ram": "codecarbon (method unknown)"}


def test_bad_tracking_mode():
    with pytest.raises(MeterError, match="tracking_mode"):
        CodeCarbonMeter("host")
