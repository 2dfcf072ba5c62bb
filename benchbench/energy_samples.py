"""One GPU's energy-related samples as the collectors stored them: the series a window is
read from (benchbench.energy_readings) and the grouping of store rows into them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["DeviceSeries", "Series", "series_from_rows"]

Series = Sequence[tuple[int, float]]  # (t_ns on the run clock, value), any order

_MIG_LABEL = "#GPU_I_ID="

# Store metric name -> (DeviceSeries field). DCGM names as the Prometheus collector stores them.
_METRIC_FIELD = {
    "energy_mj": "energy_mj",
    "power_instant_w": "power_instant_w",
    "power_avg_w": "power_avg_w",
    "power_limit_w": "power_limit_w",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total": "energy_mj",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy_mj",
    "DCGM_FI_DEV_POWER_USAGE_INSTANT": "power_instant_w",
    "DCGM_FI_DEV_POWER_USAGE": "power_avg_w",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "power_limit_w",
}


@dataclass(frozen=True, slots=True)
class DeviceSeries:
    """One GPU's energy-related samples. source: "nvml", "agent" or "dcgm". `instance` is the
    MIG GPU-instance id of a dcgm-exporter row that carries one."""

    device: str
    source: str = "nvml"
    energy_mj: Series = ()
    power_instant_w: Series = ()
    power_avg_w: Series = ()
    power_limit_w: float | None = None
    instance: str | None = None

    @property
    def physical(self) -> str:
        """The physical GPU this row reports: the device without its MIG instance."""
        return self.device.split(_MIG_LABEL, 1)[0]


def series_from_rows(rows: Iterable[tuple[str, str, int, str, float]]) -> list[DeviceSeries]:
    """Group stored sample rows (collector, device, t_ns, metric, value) into DeviceSeries.

    Rows that are not energy or power are ignored. Prometheus rows count only for DCGM
    metrics (source "dcgm"); collector "nvml" -> "nvml", "agent" -> "agent".
    """
    grouped: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for collector, device, t_ns, metric, value in rows:
        fld = _METRIC_FIELD.get(metric)
        if fld is None:
            continue
        if metric.startswith("DCGM_"):
            source = "dcgm"
        elif collector in ("nvml", "agent"):
            source = collector
        else:
            continue
        grouped.setdefault((source, device), {}).setdefault(fld, []).append((t_ns, value))
    out = []
    for (source, device), fields in sorted(grouped.items()):
        limits = fields.pop("power_limit_w", [])
        instance = device.split(_MIG_LABEL, 1)[1].split("#", 1)[0] if _MIG_LABEL in device else None
        out.append(
            DeviceSeries(
                device=device,
                source=source,
                power_limit_w=max(v for _, v in limits) if limits else None,
                instance=instance,
                **{k: tuple(v) for k, v in fields.items()},
            )
        )
    return out
