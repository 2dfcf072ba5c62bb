"""Energy over a measurement window, from the samples the collectors stored, with a verdict on
whether the figure can be trusted.

Pure functions. Per GPU, the preferred source is a cumulative energy counter (NVML's
nvmlDeviceGetTotalEnergyConsumption, dcgm-exporter's DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, or
the agent's copy of NVML's), read at the window edges by linear interpolation. Power is
integrated (trapezoid) where a GPU has no counter, or where its counter is too coarse for the
window or did not move at all (a frozen counter).

Real counters are not perfect integrals, and the arithmetic reads them for what they are:

- A counter refreshes at its own period: NVML's steps about every 100 ms; dcgm-exporter's
  every `-c/--collect-interval` ms (30 s by default), however often it is scraped. The period
  is detected from the data (the median time between changes). Its edges are then uncertain
  by up to one period, i.e. by period / window of the energy: above FINE_RESOLUTION the verdict
  is partial, above COARSE_RESOLUTION the counter is not used (power instead, saying so).
  A stale counter is read only at the samples where it changed (each one a fresh value), not
  at the repeats in between, and its last change is carried forward by its slope for at most
  one period.
- Only a large backward jump (below RESET_FRACTION of the previous value: a driver reload) is
  a reset; a small one (jitter, duplicated rows) is ignored by following the running maximum.
- The counter is always checked against integrated power, also when it reads 0 J.
- dcgm-exporter repeats each GPU's device counters on every MIG instance row (GPU_I_ID):
  one row per physical GPU is kept unless instances are asked for.

Conventions: gross energy is the headline; net = gross - idle W x window s is the *marginal*
energy the load added. Energy per request = window J per output token x the request's output
tokens (an attribution convention; the parts sum to the window total).

The verdict ("ok", "partial", "invalid", with reasons) says what a reader and the gate may do
with the figure: partial = a usable estimate with a stated weakness; invalid = do not compare.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DeviceEnergy",
    "DeviceSeries",
    "EnergyResult",
    "Verdict",
    "attribute_energy",
    "compute_energy",
    "counter_energy_j",
    "counter_refresh_s",
    "idle_trend_w",
    "power_integral_j",
    "series_from_rows",
]

Series = Sequence[tuple[int, float]]  # (t_ns on the run clock, value), any order

SHORT_WINDOW_AVG_POWER_S = 10.0  # below this, integrating a 1-s averaged power is misleading
COUNTER_VS_POWER_TOLERANCE = 0.05
POWER_LIMIT_TOLERANCE = 1.02  # averaged readings may overshoot the limit slightly
MIN_COVERAGE = 0.99
INVALID_COVERAGE = 0.5  # below this share of the window, the figure is not an estimate
FINE_RESOLUTION = 0.05  # counter period / window above which the figure is partial
COARSE_RESOLUTION = 0.25  # ... above which the counter is not used at all
STALL_PERIODS = 10  # a counter still for this many refresh periods inside the window stalled
RESET_FRACTION = 0.5  # a drop below half the previous value is a reset; smaller ones jitter
IDLE_MIN_COVERAGE = 0.9
IDLE_SETTLE_TOLERANCE = 0.05  # first half of the idle window vs second half
IDLE_SETTLE_MIN_W = 5.0  # ... and at least this many watts apart
# Explicit remote sources first: a local GPU is not the server's unless nothing else is known.
_SOURCE_PREFERENCE = ("agent", "dcgm", "nvml")
_MIG_LABEL = "#GPU_I_ID="
DCGM_HINT = (
    "set dcgm-exporter's collect interval to 1 s (-c 1000 or DCGM_EXPORTER_INTERVAL=1000; "
    "the default is 30000 ms) or measure a longer window"
)

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

_RANK = {"ok": 0, "partial": 1, "invalid": 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an energy figure can be trusted: "ok", "partial" (a usable estimate with a
    stated weakness) or "invalid" (do not compare it), and why."""

    status: str = "ok"
    reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "reasons": list(self.reasons)}

    @staticmethod
    def of(findings: Iterable[tuple[str, str]]) -> Verdict:
        """The worst status among (status, reason) findings, with every reason in order."""
        status, reasons = "ok", []
        for level, reason in findings:
            if _RANK[level] > _RANK[status]:
                status = level
            if reason not in reasons:
                reasons.append(reason)
        return Verdict(status, tuple(reasons))


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


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    device: str
    source: str  # e.g. "nvml_counter", "dcgm_power_integral"
    energy_j: float
    avg_w: float
    power_limit_w: float | None
    counter_resets: int
    refresh_s: float | None = None  # the counter's detected refresh period
    coverage: float = 1.0  # share of the window the samples cover


@dataclass(frozen=True, slots=True)
class EnergyResult:
    """Energy over [t0, t1] summed over GPUs, and what follows from it.

    Token-based fields are None when the token count is zero; idle-based fields are None
    without an idle window (or with an invalid one).
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
    verdict: Verdict = field(default_factory=Verdict)
    idle_verdict: Verdict | None = None
    notes: tuple[str, ...] = ()  # facts, not faults: which rows and source were used

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


def reset_corrected(values: np.ndarray) -> tuple[np.ndarray, int]:
    """A cumulative counter's running increase from its first sample, and the resets seen.

    Only a drop below RESET_FRACTION of the previous value is a reset (driver reload, server
    restart): the counter restarted from zero, so that interval contributes the new value.
    A smaller step back (jitter between duplicated rows, a late sample) is ignored: the
    counter is followed by its running maximum, so jitter adds nothing."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return v, 0
    resets = v[1:] < RESET_FRACTION * v[:-1]
    starts = np.concatenate(([0], np.flatnonzero(resets) + 1, [len(v)]))
    envelope = np.empty_like(v)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        envelope[a:b] = np.maximum.accumulate(v[a:b])
    step = np.diff(envelope)
    step[resets] = envelope[1:][resets]
    return np.concatenate(([0.0], np.cumsum(step))), int(resets.sum())


def counter_refresh_s(series: Series) -> tuple[float | None, bool]:
    """(refresh period in s, moved): the median time between the counter's changes, and
    whether it changed at all. With fewer than two changes the period is unknown but at least
    the span of the samples: that lower bound is returned. None with fewer than two samples."""
    t, v = _arrays(series, 0)
    if len(t) < 2:
        return None, False
    cumulative, _ = reset_corrected(v)
    changed = np.flatnonzero(np.diff(cumulative) > 0) + 1
    if len(changed) >= 3:
        return float(np.median(np.diff(t[changed]))), True
    return float(t[-1] - t[0]), len(changed) > 0


def _longest_still_s(series: Series, t0_ns: int, t1_ns: int) -> float:
    """The longest time inside [t0, t1] over which the counter did not change (a stall)."""
    t, v = _arrays(series, t0_ns)
    if len(t) < 2:
        return 0.0
    cumulative, _ = reset_corrected(v)
    changed = t[np.flatnonzero(np.diff(cumulative) > 0) + 1]
    window_s = (t1_ns - t0_ns) / 1e9
    marks = np.concatenate(([max(0.0, float(t[0]))], changed[(changed > 0) & (changed < window_s)],
                            [min(window_s, float(t[-1]))]))  # fmt: skip
    return float(np.max(np.diff(marks))) if len(marks) >= 2 else 0.0


def _sample_step_s(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) >= 2 else 0.0


def counter_energy_j(series: Series, t0_ns: int, t1_ns: int) -> tuple[float, int, float] | None:
    """(joules, resets seen, fraction of the window covered) from a cumulative mJ counter.

    A counter that changes at (about) every sample is read at t0 and t1 by linear
    interpolation between the samples either side, clamped to the sampled span. A stale one
    (it repeats values between refreshes) is read only at its changes, each stamped when it
    was first seen, and carried past its first and last change by the neighbouring slope for
    at most one refresh period (within the sampled span). None with too few samples or
    changes, or no overlap with the window.
    """
    t, v = _arrays(series, t0_ns)
    window_s = (t1_ns - t0_ns) / 1e9
    if len(t) < 2 or window_s <= 0:
        return None
    cumulative, resets = reset_corrected(v)
    lo, hi = _clamp(t, 0.0, window_s)
    if hi <= lo:
        return None
    changed = np.flatnonzero(np.diff(cumulative) > 0) + 1
    step_s = _sample_step_s(t)
    refresh_s = float(np.median(np.diff(t[changed]))) if len(changed) >= 3 else None
    if refresh_s is None or refresh_s <= 2.0 * step_s:
        e0, e1 = np.interp([lo, hi], t, cumulative)
        return float(e1 - e0) / 1000.0, resets, (hi - lo) / window_s
    tc, vc = t[changed], cumulative[changed]
    lo = max(lo, float(tc[0]) - refresh_s)
    hi = min(hi, float(tc[-1]) + refresh_s)
    if hi <= lo:
        return None
    e0, e1 = (_extrapolated(tc, vc, x) for x in (lo, hi))
    return (e1 - e0) / 1000.0, resets, (hi - lo) / window_s


def _extrapolated(t: np.ndarray, v: np.ndarray, x: float) -> float:
    """Linear interpolation inside [t0, tn]; outside it, the end segment's slope."""
    if x < t[0]:
        slope = (v[1] - v[0]) / (t[1] - t[0])
        return float(v[0] + slope * (x - t[0]))
    if x > t[-1]:
        slope = (v[-1] - v[-2]) / (t[-1] - t[-2])
        return float(v[-1] + slope * (x - t[-1]))
    return float(np.interp(x, t, v))


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


Finding = tuple[str, str]  # (verdict status, reason)


def _hint(source: str) -> str:
    return f"; {DCGM_HINT}" if source == "dcgm" else ""


def _device_energy(
    s: DeviceSeries, t0_ns: int, t1_ns: int, findings: list[Finding]
) -> DeviceEnergy | None:
    """One GPU's energy over the window, appending what weakens it to `findings`."""
    window_s = (t1_ns - t0_ns) / 1e9
    label = f"GPU {s.device} ({s.source})"
    counter = counter_energy_j(s.energy_mj, t0_ns, t1_ns)
    refresh_s, moved = counter_refresh_s(s.energy_mj)
    integral, integral_kind = None, ""
    if len(s.power_instant_w) >= 2:
        integral, integral_kind = power_integral_j(s.power_instant_w, t0_ns, t1_ns), "instant"
    if integral is None and len(s.power_avg_w) >= 2:
        integral, integral_kind = power_integral_j(s.power_avg_w, t0_ns, t1_ns), "avg"
    short_avg = integral_kind == "avg" and window_s < SHORT_WINDOW_AVG_POWER_S
    # dcgm-exporter refreshes every field at one collect interval: its power is as stale as
    # its counter. NVML's and the agent's instant power is read fresh at every sample.
    power_period_s = refresh_s if s.source == "dcgm" else None
    resets = 0
    use_counter = False
    if refresh_s is not None and len(s.energy_mj) >= 2:
        resolution = refresh_s / window_s
        if not moved:
            problem = f"energy counter did not move over {refresh_s:.1f} s"
        elif counter is None or resolution > COARSE_RESOLUTION:
            problem = (
                f"energy counter refreshes only every {refresh_s:.1f} s, too coarse for a "
                f"{window_s:.1f} s window"
            )
        else:
            problem = ""
            use_counter = True
        if problem and integral is not None:
            stale = power_period_s is not None and power_period_s / window_s > COARSE_RESOLUTION
            level = "invalid" if stale or short_avg else "partial"
            findings.append(
                (level, f"{label}: {problem}; integrated {integral_kind} power instead"
                 + (f" (it refreshes as slowly){_hint(s.source)}" if stale else _hint(s.source)))
            )  # fmt: skip
        elif problem and counter is not None:
            findings.append(("invalid", f"{label}: {problem} and no power reading to fall back "
                             f"on{_hint(s.source)}"))  # fmt: skip
            use_counter = True
        elif problem:
            findings.append(("invalid", f"{label}: {problem}{_hint(s.source)}"))
            return None
    if use_counter and counter is not None:
        energy_j, resets, cover = counter
        source = f"{s.source}_counter"
        assert refresh_s is not None
        resolution = refresh_s / window_s
        if moved and FINE_RESOLUTION < resolution <= COARSE_RESOLUTION:
            findings.append(
                ("partial", f"{label}: energy counter steps every {refresh_s * 1000:.0f} ms: "
                 f"a {window_s:.1f} s window is good to about ±{resolution:.0%}"
                 f"{_hint(s.source)}")
            )  # fmt: skip
        if resets:
            findings.append(
                ("ok", f"{label}: energy counter went backwards {resets}x (treated as a reset, "
                 "e.g. a driver reload: counted from the restart)")
            )  # fmt: skip
        # The check runs whatever the counter says, 0 J included: a frozen or stuck counter
        # against a GPU drawing power is the failure it exists for.
        if integral is not None and not short_avg:
            base = energy_j if energy_j > 0 else integral[0]
            gap = abs(integral[0] - energy_j) / base if base > 0 else 0.0
            still_s = _longest_still_s(s.energy_mj, t0_ns, t1_ns)
            if (
                gap > COUNTER_VS_POWER_TOLERANCE
                and energy_j < integral[0]
                and (still_s > STALL_PERIODS * refresh_s)
            ):
                # A counter that stopped while power kept reading: trust the power.
                findings.append(
                    ("partial", f"{label}: energy counter stalled for {still_s:.1f} s of the "
                     f"window ({energy_j:.1f} J) while {integral_kind} power read "
                     f"{integral[0]:.1f} J; integrated power instead")
                )  # fmt: skip
                energy_j, cover = integral
                source = f"{s.source}_power_integral"
            elif gap > COUNTER_VS_POWER_TOLERANCE:
                findings.append(
                    ("partial", f"{label}: energy counter ({energy_j:.1f} J) and integrated "
                     f"power ({integral[0]:.1f} J) disagree by {gap:.0%}")
                )  # fmt: skip
    elif integral is not None:
        energy_j, cover = integral
        source = f"{s.source}_power_integral"
        if short_avg:
            findings.append(
                ("partial", f"{label}: no usable energy counter; integrated averaged power over "
                 f"a {window_s:.1f} s window (the reading is a ~1 s average: use windows >= "
                 f"{SHORT_WINDOW_AVG_POWER_S:.0f} s)")
            )  # fmt: skip
    else:
        return None
    if cover < MIN_COVERAGE:
        level = "invalid" if cover < INVALID_COVERAGE else "partial"
        findings.append(
            (level, f"{label}: samples cover only {cover:.0%} of the window; energy is "
             "underestimated")
        )  # fmt: skip
    avg_w = energy_j / window_s
    if s.power_limit_w and avg_w > s.power_limit_w * POWER_LIMIT_TOLERANCE:
        findings.append(
            ("partial", f"{label}: average power {avg_w:.0f} W is above its power limit "
             f"{s.power_limit_w:.0f} W; check the samples")
        )  # fmt: skip
    return DeviceEnergy(
        s.device, source, energy_j, avg_w, s.power_limit_w, resets, refresh_s, min(cover, 1.0)
    )


def _pick_source(devices: Sequence[DeviceSeries], notes: list[str]) -> list[DeviceSeries]:
    """One source for the whole run, else the same GPUs would be counted twice. Explicit
    remote sources (agent, then dcgm-exporter) win over local NVML."""
    present = {d.source for d in devices}
    for source in _SOURCE_PREFERENCE:
        if source in present:
            ignored = sorted(present - {source})
            if ignored:
                notes.append(
                    f"energy from {source}; ignored {', '.join(ignored)} samples of the same run"
                )
            return [d for d in devices if d.source == source]
    return list(devices)


def _one_row_per_gpu(
    devices: Sequence[DeviceSeries], instances: Collection[str] | None, notes: list[str]
) -> list[DeviceSeries]:
    """dcgm-exporter repeats a GPU's device-level counters on each of its MIG instance rows:
    keep one row per physical GPU (the first instance's), or with `instances`, the rows of
    those GPU-instance ids (each then reports its whole GPU's energy, said in a note)."""
    if instances is not None:
        chosen = [d for d in devices if d.instance is None or d.instance in instances]
        if any(d.instance is not None for d in chosen):
            notes.append(
                "MIG instance rows report their whole GPU's energy (shared by every instance)"
            )
        return chosen
    by_gpu: dict[str, list[DeviceSeries]] = {}
    for d in devices:
        by_gpu.setdefault(d.physical, []).append(d)
    out = []
    for physical, rows in by_gpu.items():
        rows.sort(key=lambda d: (d.instance is not None, _num(d.instance)))
        out.append(rows[0])
        if len(rows) > 1:
            notes.append(
                f"GPU {physical}: {len(rows)} MIG instance rows repeat one GPU's counters; "
                "one row counted"
            )
    return out


def _num(text: str | None) -> tuple[int, str]:
    return (int(text), "") if text and text.isdigit() else (0, text or "")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def idle_trend_w(devices: Sequence[DeviceSeries], i0_ns: int, i1_ns: int) -> tuple[float, float]:
    """(W in the first half, W in the second half) of [i0, i1], summed over GPUs: a settled
    idle has the two equal; a GPU cooling down after load reads higher in the first half.
    GPUs without samples in both halves count 0 in both."""
    mid = (i0_ns + i1_ns) // 2
    first = second = 0.0
    for s in devices:
        a = _device_energy(s, i0_ns, mid, [])
        b = _device_energy(s, mid, i1_ns, [])
        if a is not None and b is not None:
            first += a.energy_j / max(a.coverage, 1e-9) / ((mid - i0_ns) / 1e9)
            second += b.energy_j / max(b.coverage, 1e-9) / ((i1_ns - mid) / 1e9)
    return first, second


def idle_settled(first_w: float, second_w: float) -> bool:
    """Whether idle power has stopped falling (the two halves agree within tolerance)."""
    return first_w - second_w <= max(IDLE_SETTLE_TOLERANCE * second_w, IDLE_SETTLE_MIN_W)


def _idle(
    chosen: Sequence[DeviceSeries], found: Sequence[DeviceEnergy], idle_window: tuple[int, int]
) -> tuple[float | None, Verdict]:
    """Idle W over the idle window (each GPU's energy over the part its samples cover) and
    the idle figure's own verdict: coverage, counter resolution, settled or still falling."""
    i0, i1 = idle_window
    if i1 <= i0:
        raise ValueError(f"idle window must have t1 > t0 (got {i0}..{i1} ns)")
    idle_s = (i1 - i0) / 1e9
    findings: list[Finding] = []
    parts = [_device_energy(s, i0, i1, findings) for s in chosen]
    idle = [d for d in parts if d is not None]
    if len(idle) < len(found):
        findings.append(("invalid", "idle window lacks samples for some GPUs"))
        return None, Verdict.of(findings)
    idle_w = 0.0
    for d in idle:
        if d.coverage < IDLE_MIN_COVERAGE:
            findings.append(
                ("partial" if d.coverage >= INVALID_COVERAGE else "invalid",
                 f"idle samples of GPU {d.device} cover only {d.coverage:.0%} of the idle "
                 "window (idle W taken over the covered part)")
            )  # fmt: skip
        idle_w += d.energy_j / max(d.coverage, 1e-9) / idle_s
    first, second = idle_trend_w(chosen, i0, i1)
    if not idle_settled(first, second):
        findings.append(
            ("partial", f"idle power was still falling ({first:.0f} W in the first half of the "
             f"idle window, {second:.0f} W in the second): idle is overstated, net energy "
             "understated; wait longer after load")
        )  # fmt: skip
    return idle_w, Verdict.of(findings)


def compute_energy(
    devices: Sequence[DeviceSeries],
    t0_ns: int,
    t1_ns: int,
    output_tokens: int,
    input_tokens: int = 0,
    idle_window: tuple[int, int] | None = None,
    mig_instances: Collection[str] | None = None,
) -> EnergyResult | None:
    """Energy over the window [t0_ns, t1_ns] summed over GPUs, with derived figures, a
    verdict and warnings. None when no GPU has usable energy or power samples in the window.
    `mig_instances`: dcgm-exporter GPU-instance ids to count (default: one row per GPU)."""
    if t1_ns <= t0_ns:
        raise ValueError(f"energy window must have t1 > t0 (got {t0_ns}..{t1_ns} ns)")
    notes: list[str] = []
    findings: list[Finding] = []
    chosen = _one_row_per_gpu(_pick_source(devices, notes), mig_instances, notes)
    per_device = [_device_energy(s, t0_ns, t1_ns, findings) for s in chosen]
    found = [d for d in per_device if d is not None]
    if not found:
        return None
    missing = [s.device for s, d in zip(chosen, per_device, strict=True) if d is None]
    if missing:
        findings.append(
            ("partial", f"no usable energy samples in the window for GPU(s) {', '.join(missing)}")
        )
    window_s = (t1_ns - t0_ns) / 1e9
    gross_j = sum(d.energy_j for d in found)
    avg_w_total = gross_j / window_s

    idle_w, idle_verdict = None, None
    if idle_window is not None:
        idle_w, idle_verdict = _idle([s for s, d in zip(chosen, per_device, strict=True)
                                      if d is not None], found, idle_window)  # fmt: skip
        if idle_w is not None and avg_w_total < idle_w:
            idle_verdict = Verdict.of(
                [(idle_verdict.status, r) for r in idle_verdict.reasons]
                + [("partial", f"average power under load ({avg_w_total:.0f} W) is below idle "
                    f"power ({idle_w:.0f} W): the idle window was not idle, or the load was too "
                    "light")]
            )  # fmt: skip
        if idle_verdict.status == "invalid":
            idle_w = None
    net_j = None if idle_w is None else gross_j - idle_w * window_s
    verdict = Verdict.of(f for f in findings if f[0] != "ok")
    warnings = [r for _, r in findings]
    if idle_verdict is not None:
        warnings += [r for r in idle_verdict.reasons if r not in warnings]
        if idle_w is None:
            warnings.append("idle baseline unusable; no net (marginal) energy")

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
        verdict=verdict,
        idle_verdict=idle_verdict,
        notes=tuple(notes),
    )


def attribute_energy(total_j: float, request_output_tokens: Sequence[int]) -> list[float]:
    """Energy per request: total_j shared in proportion to output tokens (a convention, not a
    measurement; requests overlap in time). The parts sum to total_j."""
    tokens = sum(request_output_tokens)
    if tokens <= 0:
        return [0.0] * len(request_output_tokens)
    per_token = total_j / tokens
    return [per_token * n for n in request_output_tokens]
