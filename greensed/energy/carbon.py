"""Carbon intensity of the electricity a run used, and kg CO2eq from kWh (docs/energy.md).

kg CO2eq = kWh x intensity (g CO2eq/kWh) / 1000. The intensity is given
(``[meter] carbon_intensity``, ``--carbon-intensity``) or resolved offline from
CodeCarbon's data files through its public classes (``codecarbon.input.DataSource``,
``codecarbon.core.emissions.Emissions``): the country's grid mix
(``[meter] country_iso_code``), or a region's where CodeCarbon has regional data
(USA states, Canadian provinces, Chinese provinces, Nordic bidding zones:
``[meter] region``). Without either, CodeCarbon's world average, named as such.
Every intensity carries its source, a short label shown beside the figures.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from greensed.errors import ConfigError


@dataclass(frozen=True)
class CarbonIntensity:
    """g CO2eq per kWh and where the number came from."""

    g_per_kwh: float
    source: str

    def kg(self, kwh: float | None) -> float | None:
        """kg CO2eq of ``kwh`` (None stays None: no energy, no CO2)."""
        return None if kwh is None else kwh * self.g_per_kwh / 1000.0


def carbon_intensity(given_g_per_kwh: float | None = None, country_iso_code: str | None = None,
                     region: str | None = None) -> CarbonIntensity:
    """The intensity a run's figures use: the given one, else CodeCarbon's for the
    country (and region), else CodeCarbon's world average. An unknown country is a
    ConfigError (a typo would otherwise silently give the world average)."""
    if given_g_per_kwh is not None:
        if not given_g_per_kwh >= 0:
            raise ConfigError(f"[meter] carbon_intensity = {given_g_per_kwh!r}: g CO2eq/kWh "
                              "must be >= 0")
        return CarbonIntensity(float(given_g_per_kwh), f"given: {given_g_per_kwh:g} g/kWh")
    return _codecarbon(country_iso_code.upper() if country_iso_code else None,
                       region.lower() if region else None)


@functools.lru_cache(maxsize=16)
def _codecarbon(iso: str | None, region: str | None) -> CarbonIntensity:
    try:
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.external.geography import GeoMetadata
        from codecarbon.input import DataSource
    except ImportError as exc:  # codecarbon is a dependency; say so if it is broken
        raise ConfigError(f"carbon intensity: cannot import codecarbon ({exc}); give "
                          "[meter] carbon_intensity or --carbon-intensity G_PER_KWH") from None
    data = DataSource()
    if iso is None:
        world = data.get_carbon_intensity_per_source_data()["world_average"]
        return CarbonIntensity(float(world), "codecarbon: world average (no country given)")
    mix = data.get_global_energy_mix_data()
    if iso not in mix:
        raise ConfigError(f"[meter] country_iso_code = {iso!r}: not in CodeCarbon's grid "
                          "data (an ISO 3166 alpha-3 code such as FRA, DEU or USA)")
    # CodeCarbon logs a warning and falls back to the country when a region is unknown.
    cc_log = logging.getLogger("codecarbon")
    level = cc_log.level
    cc_log.setLevel(logging.CRITICAL)
    try:
        emissions = Emissions(data)
        geo = GeoMetadata(country_iso_code=iso, region=region)
        g = round(emissions.get_private_infra_emissions(Energy(kWh=1.0), geo) * 1000.0, 4)
        country_g = round(emissions.get_country_emissions(Energy(kWh=1.0), geo) * 1000.0, 4)
    finally:
        cc_log.setLevel(level)
    year = mix[iso].get("year")
    name = f"{iso} grid mix" + (f" {year}" if year else "")
    if region and g != country_g:
        return CarbonIntensity(g, f"codecarbon: {iso} {region} regional data")
    if region:
        name += f" (no regional data for {region!r})"
    return CarbonIntensity(g, f"codecarbon: {name}")
