"""Constant, unavailable and composite meters, Reading, make_meter, probe (no hardware)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from greensed.energy import (
    MEASURED,
    CodeCarbonMeter,
    CompositeMeter,
    ConstantPowerMeter,
    NvmlMeter,
    Reading,
    UnavailableMeter,
    make_meter,
    probe,
)
from greensed.errors import ConfigError


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_constant_power_meter_exact_kwh():
    clock = FakeClock()
    m = ConstantPowerMeter(40.0, device_w=250.0, n_devices=2, clock=clock)
    m.start()
    m.begin_window()
    clock.t += 90.0
    r = m.end_window()
    # 40 W x 90 s = 3600 J = 0.001 kWh; 2 x 250 W x 90 s = 45000 J = 0.0125 kWh.
    assert r.components_kwh == {"cpu": pytest.approx(0.001, rel=1e-12),
                                "gpu": pytest.approx(0.0125, rel=1e-12)}
    assert r.energy_kwh == pytest.approx(0.0135, rel=1e-12)
    assert r.duration_s == 90.0
    assert r.avg_power_w == pytest.approx(540.0)
    assert r.methods == {"cpu": "constant-power model", "gpu": "constant-power model"}
    assert r.meter == "constant:40+250x2" and r.status == "ok"
    # A second window starts from its own begin.
    clock.t += 1000.0
    m.begin_window()
    clock.t += 36.0
    assert m.end_window().components_kwh["cpu"] == pytest.approx(40 * 36 / 3.6e6)


def test_constant_meter_without_device_part():
    m = ConstantPowerMeter(40.0, clock=FakeClock())
    assert m.name == "constant:40" and m.describe() == {"cpu": "constant-power model"}


@pytest.mark.parametrize(("node", "device", "n"), [(-1.0, 0.0, 1), (0.0, 0.0, 1), (40.0, 0.0, 0)])
def test_constant_meter_rejects_bad_power(node, device, n):
    with pytest.raises(ConfigError):
        ConstantPowerMeter(node, device, n)


def test_reading_record_fields():
    r = Reading(0.002, 7.2, {"cpu": 0.002}, {"cpu": "cpu-load model"}, "codecarbon")
    rec = r.to_record()
    assert rec == {
        "energy_kwh": 0.002,
        "energy_components_kwh": {"cpu": 0.002},
        "energy_methods": {"cpu": "cpu-load model"},
        "avg_power_w": pytest.approx(1000.0),
        "meter": "codecarbon",
        "energy_status": "ok",
    }


def test_unavailable_meter():
    clock = FakeClock()
    m = UnavailableMeter("no RAPL and no NVML", clock=clock)
    m.begin_window()
    clock.t += 5
    r = m.end_window()
    assert r.energy_kwh is None and r.avg_power_w is None and r.duration_s == 5
    assert r.status == "unavailable: no RAPL and no NVML"
    assert set(r.methods.values()) == {"unavailable"}


class StubMeter:
    def __init__(self, name, reading):
        self.name, self.reading, self.calls = name, reading, []

    def start(self):
        self.calls.append("start")

    def begin_window(self):
        self.calls.append("begin")

    def end_window(self):
        self.calls.append("end")
        return self.reading

    def close(self):
        self.calls.append("close")

    def describe(self):
        return dict(self.reading.methods)


def test_composite_takes_gpu_from_gpu_meter_and_host_rest():
    gpu = StubMeter("nvml", Reading(0.03, 10.0, {"gpu": 0.03}, {"gpu": "nvml counter"}, "nvml"))
    host = StubMeter("codecarbon", Reading(
        0.05, 10.1, {"cpu": 0.01, "ram": 0.002, "gpu": 0.038},
        {"cpu": "rapl counter", "ram": "constant ram model", "gpu": "nvml counter"}, "codecarbon"))
    m = CompositeMeter(gpu, host)
    m.start()
    m.begin_window()
    r = m.end_window()
    assert m.name == "nvml+codecarbon" and r.meter == "nvml+codecarbon"
    assert r.components_kwh == {"cpu": 0.01, "ram": 0.002, "gpu": 0.03}
    assert r.energy_kwh == pytest.approx(0.042)  # host's own GPU figure dropped
    assert r.duration_s == 10.1 and r.status == "ok"
    assert gpu.calls == ["start", "begin", "end"] and host.calls == ["start", "begin", "end"]


def test_composite_with_a_missing_part_reports_no_total():
    gpu = StubMeter("nvml", Reading(None, 10.0, {}, {"gpu": "unavailable"}, "nvml",
                                    "error: nvml read failed"))
    host = StubMeter("codecarbon", Reading(0.01, 10.0, {"cpu": 0.01}, {"cpu": "cpu-load model"},
                                           "codecarbon"))
    r = CompositeMeter(gpu, host).end_window()
    assert r.energy_kwh is None
    assert r.status.startswith("error:") and "nvml" in r.status


def test_make_meter_specs():
    assert isinstance(make_meter("codecarbon"), CodeCarbonMeter)
    assert isinstance(make_meter("auto"), CodeCarbonMeter)  # device cpu: no NVML
    m = make_meter("constant:40")
    assert isinstance(m, ConstantPowerMeter) and m.node_w == 40 and m.device_w == 0
    m = make_meter("Constant:60+300")
    assert (m.node_w, m.device_w, m.name) == (60, 300, "constant:60+300")
    assert isinstance(make_meter("none"), UnavailableMeter)


@pytest.mark.parametrize(
    ("spec", "kwargs", "match"),
    [
        ("codecarbn", {}, "'codecarbn' unknown.*did you mean 'codecarbon'"),
        ("constant:forty", {}, "constant:NODE_W"),
        ("constant:-5", {}, "must be >= 0"),
        ("nvml", {"device": "cpu"}, "measures a GPU"),
        ("auto", {"tracking_mode": "host"}, "tracking_mode"),
    ],
)
def test_make_meter_errors(spec, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_meter(spec, **kwargs)


def test_make_meter_nvml_on_cuda(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    m = make_meter("nvml", device="cuda:1")
    assert isinstance(m, NvmlMeter) and m.device_index == 1  # torch cuda:1 is NVML GPU 1
    m = make_meter("nvml", device="cuda:0")
    assert m.device_index == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f2a")
    with pytest.raises(ConfigError, match="cannot map"):
        make_meter("nvml", device="cuda")


def test_probe_without_rapl_or_nvml(tmp_path):
    rows = probe(rapl_root=tmp_path, nvml=BrokenNvml(), codecarbon=False)
    by_source = {r["source"]: r for r in rows}
    assert by_source["rapl"]["method"] == "unavailable"
    assert by_source["nvml"]["kind"] == "unavailable" and "no driver" in by_source["nvml"]["detail"]


def test_probe_sees_readable_rapl(tmp_path):
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "energy_uj").write_text("123456\n")
    rows = probe(rapl_root=tmp_path, nvml=BrokenNvml(), codecarbon=False)
    rapl = next(r for r in rows if r["source"] == "rapl")
    assert rapl["method"] == "rapl counter" and rapl["kind"] == "measured"
    assert "intel-rapl:0" in rapl["detail"]
    assert "rapl counter" in MEASURED


class BrokenNvml:
    def nvmlInit(self):
        raise RuntimeError("no driver")


def test_energy_package_imports_neither_torch_nor_codecarbon():
    code = ("import sys, greensed.energy, greensed.stopping; "
            "print('torch' in sys.modules, 'codecarbon' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
