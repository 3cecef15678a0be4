"""NvmlMeter against a fake NVML counter: deltas, reset, wrap, giant jumps, failures."""

from __future__ import annotations

import pynvml
import pytest

from greensed.energy import CompositeMeter, MeterError, NvmlMeter, counter_delta_mj, make_meter


class FakeNvml:
    """The pynvml calls NvmlMeter makes; ``mj`` is the counter (millijoules)."""

    def __init__(self, mj: int = 1_000_000, supported: bool = True) -> None:
        self.mj = mj
        self.supported = supported
        self.fail_reads = False
        self.shutdowns = 0

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", i)

    def nvmlDeviceGetName(self, handle):
        return b"Fake A100"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        if self.fail_reads:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return self.mj

    def nvmlShutdown(self):
        self.shutdowns += 1


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def meter(nvml, clock, syncs=None):
    sync = (lambda: syncs.append(clock.t)) if syncs is not None else None
    m = NvmlMeter(0, sync=sync, nvml=nvml, clock=clock)
    m.start()
    return m


def window(m, nvml, clock, add_mj, seconds, set_mj=None):
    m.begin_window()
    clock.t += seconds
    nvml.mj = set_mj if set_mj is not None else nvml.mj + add_mj
    return m.end_window()


def test_counter_delta_and_sync_at_both_edges():
    nvml, clock, syncs = FakeNvml(), Clock(), []
    m = meter(nvml, clock, syncs)
    r = window(m, nvml, clock, add_mj=3_600_000, seconds=10.0)  # 3600 J over 10 s
    assert r.energy_kwh == pytest.approx(0.001)
    assert r.components_kwh == {"gpu": pytest.approx(0.001)}
    assert r.methods == {"gpu": "nvml counter"} and r.status == "ok" and r.meter == "nvml"
    assert r.avg_power_w == pytest.approx(360.0)
    assert syncs == [0.0, 10.0]  # synced before each read
    assert m.gpu_name == "Fake A100"


def test_counter_reset_counts_only_post_reset_energy():
    nvml, clock = FakeNvml(mj=50_000_000), Clock()
    m = meter(nvml, clock)
    r = window(m, nvml, clock, 0, seconds=10.0, set_mj=720_000)  # driver reloaded
    assert r.energy_kwh == pytest.approx(720 / 3.6e6)
    assert r.energy_kwh >= 0
    assert r.status.startswith("error: nvml counter reset")


def test_counter_64bit_wrap():
    nvml, clock = FakeNvml(mj=2**64 - 1000), Clock()
    m = meter(nvml, clock)
    r = window(m, nvml, clock, 0, seconds=1.0, set_mj=500)  # 1500 mJ across the wrap
    assert r.energy_kwh == pytest.approx(1.5 / 3.6e6) and r.status == "ok"
    assert counter_delta_mj(2**64 - 1000, 500, max_mj=1e9) == (1500, "wrap")
    assert counter_delta_mj(10_000, 500, max_mj=1e9) == (500, "reset")


def test_giant_jump_is_an_error_never_a_giant_epoch():
    nvml, clock = FakeNvml(), Clock()
    m = meter(nvml, clock)
    good = window(m, nvml, clock, add_mj=3_000_000, seconds=10.0)  # 300 W
    bad = window(m, nvml, clock, add_mj=10**12, seconds=20.0)  # 50 MW: a glitch
    assert bad.status.startswith("error: implausible counter jump")
    # Estimated from the previous window's 300 W, and labelled as a model.
    assert bad.energy_kwh == pytest.approx(2 * good.energy_kwh)
    assert bad.methods == {"gpu": "constant-power model"}
    assert "constant-power model" in bad.status


def test_giant_jump_without_history_has_no_energy():
    nvml, clock = FakeNvml(), Clock()
    m = meter(nvml, clock)
    r = window(m, nvml, clock, add_mj=10**12, seconds=1.0)
    assert r.energy_kwh is None and r.status.startswith("error: implausible")


def test_read_failure_is_recorded_not_raised():
    nvml, clock = FakeNvml(), Clock()
    m = meter(nvml, clock)
    m.begin_window()
    nvml.fail_reads = True
    clock.t += 5
    r = m.end_window()
    assert r.energy_kwh is None and "GPU_IS_LOST" in r.status and r.status.startswith("error:")


def test_unsupported_counter_fails_at_start():
    with pytest.raises(MeterError, match="not readable.*NOT_SUPPORTED"):
        NvmlMeter(0, sync=None, nvml=FakeNvml(supported=False)).start()


def test_close_shuts_nvml_down():
    nvml = FakeNvml()
    m = meter(nvml, Clock())
    m.close()
    m.close()
    assert nvml.shutdowns == 1


def test_auto_on_cuda_uses_nvml_when_the_counter_works(monkeypatch):
    """make_meter('auto') with the real pynvml module's functions monkeypatched."""
    fake = FakeNvml()
    for name in ("nvmlInit", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex",
                 "nvmlDeviceGetName", "nvmlDeviceGetTotalEnergyConsumption", "nvmlShutdown"):
        monkeypatch.setattr(pynvml, name, getattr(fake, name))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    m = make_meter("auto", device="cuda")
    assert isinstance(m, CompositeMeter) and m.name == "nvml+codecarbon"
    fake.supported = False
    assert make_meter("auto", device="cuda").name == "codecarbon"
