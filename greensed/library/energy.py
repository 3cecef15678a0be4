"""Energy windows around any code: a meter started once, one labelled Reading per
window (docs/library.md). Importing this imports neither torch nor codecarbon."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from greensed.energy import Meter, Reading, make_meter
from greensed.energy.base import MeterWindow
from greensed.energy.carbon import CarbonIntensity, carbon_intensity
from greensed.errors import GreensedError


def default_device() -> str:
    """"cuda" when torch sees a GPU, else "cpu" (what "auto" then measures)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class EnergyMonitor:
    """A meter started once, giving one measured window at a time::

        with EnergyMonitor("auto") as monitor:
            for epoch in ...:
                with monitor.window() as w:
                    ...                 # any code: an epoch, an evaluation
                print(w.reading)        # a labelled Reading

    ``meter`` is a spec as ``greensed train --meter`` takes (auto, codecarbon, nvml,
    constant:WATTS[+DEVICE_W], none) or a :class:`~greensed.energy.Meter`. ``device``
    (for auto and nvml: the GPU to read) defaults to cuda when torch sees one.
    ``carbon_intensity`` (g CO2eq/kWh), else ``country_iso_code`` (and ``region``):
    the grid whose CO2 a window's ``co2_kg`` counts, as ``greensed train`` takes
    them; without either, CodeCarbon's world average. ``carbon`` holds it and its
    source, resolved once here.
    """

    def __init__(self, meter: str | Meter = "auto", *, device: str | None = None,
                 tracking_mode: str = "machine",
                 carbon_intensity: float | CarbonIntensity | None = None,
                 country_iso_code: str | None = None, region: str | None = None) -> None:
        self.carbon = resolve_carbon(carbon_intensity, country_iso_code, region)
        if isinstance(meter, str):
            self.spec: str | None = meter
            needs_device = meter.strip().lower() in ("auto", "nvml")
            dev = device or (default_device() if needs_device else "cpu")
            self.meter: Meter = make_meter(meter, device=dev, tracking_mode=tracking_mode)
        else:
            self.spec, self.meter = None, meter
        self.started = False
        # The reading of the last window left by an exception (None once another begins).
        self.abandoned: Reading | None = None
        # Called as each window begins (a RunRecorder's heartbeat of the epoch in flight).
        self.on_window: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self.meter.name

    def describe(self) -> dict[str, str]:
        """Component -> how it is measured (``nvml counter``, ``cpu-load model``, ...)."""
        return self.meter.describe()

    def start(self) -> Self:
        """Start the meter (once; CodeCarbon takes a few seconds); MeterError if it cannot."""
        if not self.started:
            self.meter.start()
            self.started = True
        return self

    def window(self) -> EnergyWindow:
        """One measured window, a context manager (the monitor starts if it has not)."""
        return EnergyWindow(self)

    def close(self) -> None:
        if self.started:
            self.meter.close()
            self.started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


class EnergyWindow:
    """One measured window: ``reading`` holds its labelled :class:`Reading` once the
    block is left (or ``end()`` was called in it). Leaving by an exception still ends
    the window; that reading is kept too, and in the monitor's ``abandoned``."""

    def __init__(self, monitor: EnergyMonitor, *, owns_monitor: bool = False) -> None:
        self.monitor, self.owns_monitor = monitor, owns_monitor
        self._window: MeterWindow | None = None
        self.reading: Reading | None = None

    def __enter__(self) -> Self:
        self.monitor.start()
        self.monitor.abandoned = None
        for begins in self.monitor.on_window:
            begins()
        self._window = MeterWindow(self.monitor.meter).__enter__()
        return self

    @property
    def co2_kg(self) -> float | None:
        """kg CO2eq of the window's reading at the monitor's carbon intensity."""
        return self.monitor.carbon.kg(self.reading.energy_kwh) if self.reading else None

    def end(self) -> Reading:
        """End the window now; its reading (later calls return the same)."""
        if self._window is None:
            raise GreensedError("energy window: end() outside its with-block")
        if not self._window.ended:
            self.reading = self._window.end()
        assert self._window.reading is not None
        return self._window.reading

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._window is not None
        try:
            if exc_type is None:
                self.end()
            elif not self._window.ended:
                self.reading = self.monitor.abandoned = self._window.abandon()
        finally:
            if self.owns_monitor:
                self.monitor.close()


def measure(meter: str | Meter = "auto", *, device: str | None = None,
            tracking_mode: str = "machine",
            carbon_intensity: float | CarbonIntensity | None = None,
            country_iso_code: str | None = None, region: str | None = None) -> EnergyWindow:
    """The energy of one block of code::

        with greensed.measure("auto", country_iso_code="FRA") as m:
            ...
        print(m.reading.energy_kwh, m.reading.methods, m.co2_kg)

    The meter starts on entry and closes on exit; for many windows (every epoch)
    use one :class:`EnergyMonitor`, which starts once. The carbon arguments: as
    :class:`EnergyMonitor`'s."""
    return EnergyWindow(EnergyMonitor(meter, device=device, tracking_mode=tracking_mode,
                                      carbon_intensity=carbon_intensity,
                                      country_iso_code=country_iso_code, region=region),
                        owns_monitor=True)


def resolve_carbon(given: float | CarbonIntensity | None = None,
                   country_iso_code: str | None = None,
                   region: str | None = None) -> CarbonIntensity:
    """A run's carbon intensity, as greensed's trainer resolves its [meter] keys: the
    given g CO2eq/kWh (or :class:`CarbonIntensity`), else CodeCarbon's offline data
    for the country (and region), else its world average; an unknown country is a
    ConfigError."""
    if isinstance(given, CarbonIntensity):
        return given
    return carbon_intensity(given, country_iso_code, region)
