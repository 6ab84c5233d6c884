"""Measured resource use of a block of work: wall time, CPU-seconds, energy and CO2.

CPU-seconds come from the kernel's accounting of this process (all its threads,
so OpenMP fits are counted) plus any child processes it waited for. Energy and
CO2 come from CodeCarbon's *offline* tracker (no network: the carbon intensity is
CodeCarbon's bundled figure for the configured country). When no power sensor is
readable (typical in a VM) CodeCarbon estimates CPU power from the processor's
TDP and this process's CPU load; the tracker's own figures (CPU and RAM power)
are kept with the result so the estimate's basis is visible. If the tracker
cannot run, energy and CO2 are ``None`` with the reason, never a guessed number.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.core.observability import get_logger

log = get_logger(__name__)


@dataclass
class ResourceUsage:
    """Filled in when the ``measure_resources`` block exits."""

    label: str
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    energy_kwh: float | None = None
    emissions_kg: float | None = None
    cpu_power_w: float | None = None
    ram_power_w: float | None = None
    country_iso_code: str | None = None
    energy_source: str = "not measured"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def per(self, units: float, scale: float = 1000.0) -> dict[str, float | None]:
        """Figures per ``scale`` units of output (e.g. per 1,000 predictions)."""
        if units <= 0:
            raise ValueError("cannot express cost per unit of an empty workload")
        f = scale / units
        return {
            "cpu_seconds": self.cpu_seconds * f,
            "wall_seconds": self.wall_seconds * f,
            "energy_kwh": None if self.energy_kwh is None else self.energy_kwh * f,
            "emissions_kg": None if self.emissions_kg is None else self.emissions_kg * f,
        }


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _start_tracker(country_iso_code: str, label: str) -> tuple[Any, str]:
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(
            country_iso_code=country_iso_code,
            project_name=label,
            save_to_file=False,
            log_level="error",
            tracking_mode="process",
            measure_power_secs=1,
        )
        tracker.start()
        return tracker, ""
    except Exception as exc:  # the energy estimate is optional; CPU-seconds are still measured
        return None, f"unavailable because CodeCarbon failed to start: {type(exc).__name__}: {exc}"


@contextmanager
def measure_resources(label: str, *, country_iso_code: str, energy: bool = True) -> Iterator[ResourceUsage]:
    """Measure the block; the yielded object is complete after the block exits."""
    usage = ResourceUsage(label=label, country_iso_code=country_iso_code if energy else None)
    tracker, why = _start_tracker(country_iso_code, label) if energy else (None, "energy not requested")
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    try:
        yield usage
    finally:
        usage.wall_seconds = time.perf_counter() - wall0
        usage.cpu_seconds = _cpu_seconds() - cpu0
        if tracker is not None:
            try:
                tracker.stop()
                data = tracker.final_emissions_data
                usage.energy_kwh = float(data.energy_consumed)
                usage.emissions_kg = float(data.emissions)
                usage.cpu_power_w = float(data.cpu_power)
                usage.ram_power_w = float(data.ram_power)
                mode = data.tracking_mode
                usage.energy_source = f"codecarbon {_codecarbon_version()} offline ({mode} mode)"
            except Exception as exc:
                usage.energy_source = f"unavailable because CodeCarbon failed to stop: {exc}"
        else:
            usage.energy_source = why
        log.info("resources_measured", **{k: v for k, v in usage.to_dict().items() if v is not None})


def _codecarbon_version() -> str:
    from importlib.metadata import version

    return version("codecarbon")


def cost_metrics(prefix: str, usage: ResourceUsage, units: float | None = None) -> dict[str, float]:
    """MLflow metric dict: totals, or per 1,000 units when ``units`` is given; unmeasured omitted."""
    values: dict[str, float | None]
    if units is None:
        values = {
            "cpu_seconds": usage.cpu_seconds,
            "wall_seconds": usage.wall_seconds,
            "energy_kwh": usage.energy_kwh,
            "emissions_kg": usage.emissions_kg,
        }
    else:
        values = usage.per(units)
    suffix = "" if units is None else "_per_1k"
    return {f"{prefix}_{k}{suffix}": float(v) for k, v in values.items() if v is not None}
