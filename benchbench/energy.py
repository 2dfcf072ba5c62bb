"""Energy over a measurement window, from the samples the collectors stored.

Pure functions. Per GPU, the preferred source is a cumulative energy counter (NVML's
nvmlDeviceGetTotalEnergyConsumption, dcgm-exporter's DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, or
the agent's copy of NVML's), read at the window edges by linear interpolation between the
samples either side. Only where a GPU has no counter is power integrated (trapezoid), over
instant power if recorded, else over averaged power, which on H100 is a 1-second average and
is wrong over short windows (warned).

Conventions: gross energy is the headline; net = gross - idle W x window s is the *marginal*
energy the load added. Energy per request = window J per output token x the request's output
tokens (an attribution convention; the parts sum to the window total).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DeviceEnergy",
    "DeviceSeries",
    "EnergyResult",
    "attribute_energy",
    "compute_energy",
    "counter_energy_j",
    "power_integral_j",
    "series_from_rows",
]

Series = Sequence[tuple[int, float]]  # (t_ns on the run clock, value), any order

SHORT_WINDOW_AVG_POWER_S = 10.0  # below this, integrating a 1-s averaged power is misleading
COUNTER_VS_POWER_TOLERANCE = 0.05
POWER_LIMIT_TOLERANCE = 1.02  # averaged readings may overshoot the limit slightly
MIN_COVERAGE = 0.99
_SOURCE_PREFERENCE = ("nvml", "agent", "dcgm")

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
    """One GPU's energy-related samples. source: "nvml", "agent" or "dcgm"."""

    device: str
    source: str = "nvml"
    energy_mj: Series = ()
    power_instant_w: Series = ()
    power_avg_w: Series = ()
    power_limit_w: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    device: str
    source: str  # e.g. "nvml_counter", "dcgm_power_integral"
    energy_j: float
    avg_w: float
    power_limit_w: float | None
    counter_resets: int


@dataclass(frozen=True, slots=True)
class EnergyResult:
    """Energy over [t0, t1] summed over GPUs, and what follows from it.

    Token-based fields are None when the token count is zero; idle-based fields are None
    without an idle window.
    """

    window_s: float
    source: str  # "nvml_counter", or several joined by "+" when GPUs differ
    gross_j: float  # the headline figure
    idle_w: float | None  # all GPUs together, measured before the load
    net_j: float | None  # marginal: gross - idle_w x window_s
    avg_w_total: float
    avg_w_per_gpu: float
    devices: tuple[DeviceEnergy, ...]
    output_tokens: int
    input_tokens: int
    j_per_output_token: float | None
    j_per_token: float | None  # per (input + output) token
    net_j_per_output_token: float | None  # marginal
    kwh_per_1m_output_tokens: float | None
    output_tokens_per_j: float | None
    tokens_per_j: float | None
    warnings: tuple[str, ...]

    @property
    def gross_kwh(self) -> float:
        return self.gross_j / 3.6e6


def series_from_rows(rows: Iterable[tuple[str, str, int, str, float]]) -> list[DeviceSeries]:
    """Group stored sample rows (collector, device, t_ns, metric, value) into DeviceSeries.

    Rows that are not energy or power are ignored. Prometheus rows count only for DCGM
    metrics (source "dcgm"); collector "nvml" -> "nvml", "agent" -> "agent".
    """
    grouped: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for collector, device, t_ns, metric, value in rows:
        field = _METRIC_FIELD.get(metric)
        if field is None:
            continue
        if metric.startswith("DCGM_"):
            source = "dcgm"
        elif collector in ("nvml", "agent"):
            source = collector
        else:
            continue
        grouped.setdefault((source, device), {}).setdefault(field, []).append((t_ns, value))
    out = []
    for (source, device), fields in sorted(grouped.items()):
        limits = fields.pop("power_limit_w", [])
        out.append(
            DeviceSeries(
                device=device,
                source=source,
                power_limit_w=max(v for _, v in limits) if limits else None,
                **{k: tuple(v) for k, v in fields.items()},
            )
        )
    return out


def _arrays(series: Series, ref_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Times (s since ref_ns, float) and values, sorted by time."""
    if len(series) == 0:
        return np.empty(0), np.empty(0)
    t = np.fromiter((p[0] for p in series), dtype=np.int64, count=len(series))
    v = np.fromiter((p[1] for p in series), dtype=np.float64, count=len(series))
    order = np.argsort(t, kind="stable")
    # Subtract in integer ns first so float64 keeps ns precision on long-uptime clocks.
    return (t[order] - ref_ns).astype(np.float64) / 1e9, v[order]


def _clamp(t: np.ndarray, t0_s: float, t1_s: float) -> tuple[float, float]:
    return max(t0_s, float(t[0])), min(t1_s, float(t[-1]))


def counter_energy_j(series: Series, t0_ns: int, t1_ns: int) -> tuple[float, int, float] | None:
    """(joules, resets seen, fraction of the window covered) from a cumulative mJ counter.

    The counter is read at t0 and t1 by linear interpolation between the samples either side,
    clamped to the sampled span. A decrease is a reset (driver reload, wraparound): the
    counter is taken to restart from zero, so that interval contributes the new value.
    None with fewer than two samples or no overlap with the window.
    """
    t, v = _arrays(series, t0_ns)
    window_s = (t1_ns - t0_ns) / 1e9
    if len(t) < 2 or window_s <= 0:
        return None
    lo, hi = _clamp(t, 0.0, window_s)
    if hi <= lo:
        return None
    cumulative, resets = reset_corrected(v)
    e0, e1 = np.interp([lo, hi], t, cumulative)
    return float(e1 - e0) / 1000.0, resets, (hi - lo) / window_s


def reset_corrected(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A cumulative counter's running increase from its first sample, and the resets seen.
    A decrease is a reset (driver reload, server restart, wraparound): the counter is taken
    to restart from zero, so that interval contributes the new value."""
    step = np.diff(np.asarray(values, dtype=np.float64))
    resets = step < 0
    step[resets] = np.asarray(values, dtype=np.float64)[1:][resets]
    return np.concatenate(([0.0], np.cumsum(step))), int(resets.sum())


def power_integral_j(series: Series, t0_ns: int, t1_ns: int) -> tuple[float, float] | None:
    """(joules, fraction of the window covered): trapezoid over power samples in W, with
    values interpolated at the window edges. None with fewer than two samples."""
    t, w = _arrays(series, t0_ns)
    window_s = (t1_ns - t0_ns) / 1e9
    if len(t) < 2 or window_s <= 0:
        return None
    lo, hi = _clamp(t, 0.0, window_s)
    if hi <= lo:
        return None
    inside = (t > lo) & (t < hi)
    xs = np.concatenate(([lo], t[inside], [hi]))
    ys = np.interp(xs, t, w)
    joules = float(np.sum((ys[1:] + ys[:-1]) * 0.5 * np.diff(xs)))
    return joules, (hi - lo) / window_s


def _device_energy(
    s: DeviceSeries, t0_ns: int, t1_ns: int, warnings: list[str], check: bool
) -> DeviceEnergy | None:
    window_s = (t1_ns - t0_ns) / 1e9
    counter = counter_energy_j(s.energy_mj, t0_ns, t1_ns)
    integral = None
    integral_kind = ""
    if len(s.power_instant_w) >= 2:
        integral = power_integral_j(s.power_instant_w, t0_ns, t1_ns)
        integral_kind = "instant"
    if integral is None and len(s.power_avg_w) >= 2:
        integral = power_integral_j(s.power_avg_w, t0_ns, t1_ns)
        integral_kind = "avg"
    label = f"GPU {s.device} ({s.source})"
    resets = 0
    if counter is not None:
        energy_j, resets, cover = counter
        source = f"{s.source}_counter"
        if check and resets:
            warnings.append(f"{label}: energy counter went backwards {resets}x (treated as reset)")
        if check and integral is not None and energy_j > 0:
            short_avg = integral_kind == "avg" and window_s < SHORT_WINDOW_AVG_POWER_S
            gap = abs(integral[0] - energy_j) / energy_j
            if not short_avg and gap > COUNTER_VS_POWER_TOLERANCE:
                warnings.append(
                    f"{label}: energy counter ({energy_j:.1f} J) and integrated power "
                    f"({integral[0]:.1f} J) disagree by {gap:.0%}"
                )
    elif integral is not None:
        energy_j, cover = integral
        source = f"{s.source}_power_integral"
        if check and integral_kind == "avg" and window_s < SHORT_WINDOW_AVG_POWER_S:
            warnings.append(
                f"{label}: no energy counter; integrated averaged power over a {window_s:.1f} s "
                f"window (the reading is a ~1 s average: use windows >= "
                f"{SHORT_WINDOW_AVG_POWER_S:.0f} s)"
            )
    else:
        return None
    if check and cover < MIN_COVERAGE:
        warnings.append(
            f"{label}: samples cover only {cover:.0%} of the window; energy is underestimated"
        )
    avg_w = energy_j / window_s
    if check and s.power_limit_w and avg_w > s.power_limit_w * POWER_LIMIT_TOLERANCE:
        warnings.append(
            f"{label}: average power {avg_w:.0f} W is above its power limit "
            f"{s.power_limit_w:.0f} W; check the samples"
        )
    return DeviceEnergy(s.device, source, energy_j, avg_w, s.power_limit_w, resets)


def _pick_source(devices: Sequence[DeviceSeries], warnings: list[str]) -> list[DeviceSeries]:
    """One source for the whole run, else the same GPUs would be counted twice."""
    present = {d.source for d in devices}
    for source in _SOURCE_PREFERENCE:
        if source in present:
            ignored = sorted(present - {source})
            if ignored:
                warnings.append(
                    f"energy from {source}; ignored {', '.join(ignored)} samples of the same run"
                )
            return [d for d in devices if d.source == source]
    return list(devices)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def compute_energy(
    devices: Sequence[DeviceSeries],
    t0_ns: int,
    t1_ns: int,
    output_tokens: int,
    input_tokens: int = 0,
    idle_window: tuple[int, int] | None = None,
) -> EnergyResult | None:
    """Energy over the window [t0_ns, t1_ns] summed over GPUs, with derived figures and
    warnings. None when no GPU has usable energy or power samples in the window."""
    if t1_ns <= t0_ns:
        raise ValueError(f"energy window must have t1 > t0 (got {t0_ns}..{t1_ns} ns)")
    warnings: list[str] = []
    chosen = _pick_source(devices, warnings)
    per_device = [_device_energy(s, t0_ns, t1_ns, warnings, check=True) for s in chosen]
    found = [d for d in per_device if d is not None]
    if not found:
        return None
    missing = [s.device for s, d in zip(chosen, per_device, strict=True) if d is None]
    if missing:
        warnings.append(f"no energy samples in the window for GPU(s) {', '.join(missing)}")
    window_s = (t1_ns - t0_ns) / 1e9
    gross_j = sum(d.energy_j for d in found)
    avg_w_total = gross_j / window_s

    idle_w = None
    if idle_window is not None:
        i0, i1 = idle_window
        if i1 <= i0:
            raise ValueError(f"idle window must have t1 > t0 (got {i0}..{i1} ns)")
        idle_parts = [_device_energy(s, i0, i1, [], check=False) for s in chosen]
        idle = [d for d in idle_parts if d is not None]
        if len(idle) == len(found):
            idle_w = sum(d.energy_j for d in idle) / ((i1 - i0) / 1e9)
            if avg_w_total < idle_w:
                warnings.append(
                    f"average power under load ({avg_w_total:.0f} W) is below idle power "
                    f"({idle_w:.0f} W): the idle window was not idle, or the load was too light"
                )
        else:
            warnings.append("idle window lacks samples for some GPUs; no net (marginal) energy")
    net_j = None if idle_w is None else gross_j - idle_w * window_s

    all_tokens = output_tokens + input_tokens
    j_per_out = _ratio(gross_j, output_tokens)
    return EnergyResult(
        window_s=window_s,
        source="+".join(sorted({d.source for d in found})),
        gross_j=gross_j,
        idle_w=idle_w,
        net_j=net_j,
        avg_w_total=avg_w_total,
        avg_w_per_gpu=avg_w_total / len(found),
        devices=tuple(found),
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        j_per_output_token=j_per_out,
        j_per_token=_ratio(gross_j, all_tokens),
        net_j_per_output_token=None if net_j is None else _ratio(net_j, output_tokens),
        kwh_per_1m_output_tokens=None if j_per_out is None else j_per_out / 3.6e6 * 1e6,
        output_tokens_per_j=_ratio(output_tokens, gross_j),
        tokens_per_j=_ratio(all_tokens, gross_j),
        warnings=tuple(warnings),
    )


def attribute_energy(total_j: float, request_output_tokens: Sequence[int]) -> list[float]:
    """Energy per request: total_j shared in proportion to output tokens (a convention, not a
    measurement; requests overlap in time). The parts sum to total_j."""
    tokens = sum(request_output_tokens)
    if tokens <= 0:
        return [0.0] * len(request_output_tokens)
    per_token = total_j / tokens
    return [per_token * n for n in request_output_tokens]
