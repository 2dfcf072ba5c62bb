"""The per-GPU choice between a counter and integrated power, and the verdict on the figure:
"ok", "partial" (a usable estimate with a stated weakness) or "invalid" (do not compare it),
with the reasons (see benchbench.energy for the rules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchbench.energy_readings import (
    counter_energy_j,
    counter_refresh_s,
    longest_still_s,
    power_integral_j,
)
from benchbench.energy_samples import DeviceSeries

__all__ = ["DCGM_HINT", "DeviceEnergy", "Finding", "Verdict", "device_energy"]

SHORT_WINDOW_AVG_POWER_S = 10.0  # below this, integrating a 1-s averaged power is misleading
COUNTER_VS_POWER_TOLERANCE = 0.05
POWER_LIMIT_TOLERANCE = 1.02  # averaged readings may overshoot the limit slightly
MIN_COVERAGE = 0.99
INVALID_COVERAGE = 0.5  # below this share of the window, the figure is not an estimate
FINE_RESOLUTION = 0.05  # counter period / window above which the figure is partial
COARSE_RESOLUTION = 0.25  # ... above which the counter is not used at all
STALL_PERIODS = 10  # a counter still for this many refresh periods inside the window stalled
DCGM_HINT = (
    "set dcgm-exporter's collect interval to 1 s (-c 1000 or DCGM_EXPORTER_INTERVAL=1000; "
    "the default is 30000 ms) or measure a longer window"
)


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
class DeviceEnergy:
    device: str
    source: str  # e.g. "nvml_counter", "dcgm_power_integral"
    energy_j: float
    avg_w: float
    power_limit_w: float | None
    counter_resets: int
    refresh_s: float | None = None  # the counter's detected refresh period
    coverage: float = 1.0  # share of the window the samples cover


Finding = tuple[str, str]  # (verdict status, reason)


def _hint(source: str) -> str:
    return f"; {DCGM_HINT}" if source == "dcgm" else ""


@dataclass(frozen=True, slots=True)
class _Readings:
    """What one GPU's samples say over the window, before choosing between them."""

    label: str
    window_s: float
    counter: tuple[float, int, float] | None  # (J, resets, coverage)
    refresh_s: float | None
    moved: bool
    integral: tuple[float, float] | None  # (J, coverage)
    integral_kind: str  # "instant" or "avg"
    short_avg: bool  # averaged power over a window too short for it


def _read(s: DeviceSeries, t0_ns: int, t1_ns: int) -> _Readings:
    window_s = (t1_ns - t0_ns) / 1e9
    refresh_s, moved = counter_refresh_s(s.energy_mj)
    integral, integral_kind = None, ""
    if len(s.power_instant_w) >= 2:
        integral, integral_kind = power_integral_j(s.power_instant_w, t0_ns, t1_ns), "instant"
    if integral is None and len(s.power_avg_w) >= 2:
        integral, integral_kind = power_integral_j(s.power_avg_w, t0_ns, t1_ns), "avg"
    return _Readings(
        label=f"GPU {s.device} ({s.source})",
        window_s=window_s,
        counter=counter_energy_j(s.energy_mj, t0_ns, t1_ns),
        refresh_s=refresh_s,
        moved=moved,
        integral=integral,
        integral_kind=integral_kind,
        short_avg=integral_kind == "avg" and window_s < SHORT_WINDOW_AVG_POWER_S,
    )


def _counter_usable(s: DeviceSeries, r: _Readings, findings: list[Finding]) -> bool | None:
    """Whether to read the counter; None when neither it nor power can give a figure."""
    if r.refresh_s is None or len(s.energy_mj) < 2:
        return False
    window_s, refresh_s, integral = r.window_s, r.refresh_s, r.integral
    if not r.moved:
        problem = f"energy counter did not move over {refresh_s:.1f} s"
    elif r.counter is None or refresh_s / window_s > COARSE_RESOLUTION:
        problem = (
            f"energy counter refreshes only every {refresh_s:.1f} s, too coarse for a "
            f"{window_s:.1f} s window"
        )
    else:
        return True
    # dcgm-exporter refreshes every field at one collect interval: its power is as stale as
    # its counter. NVML's and the agent's instant power is read fresh at every sample.
    power_period_s = refresh_s if s.source == "dcgm" else None
    if integral is not None:
        stale = power_period_s is not None and power_period_s / window_s > COARSE_RESOLUTION
        level = "invalid" if stale or r.short_avg else "partial"
        findings.append(
            (level, f"{r.label}: {problem}; integrated {r.integral_kind} power instead"
             + (f" (it refreshes as slowly){_hint(s.source)}" if stale else _hint(s.source)))
        )  # fmt: skip
        return False
    if r.counter is not None:
        findings.append(("invalid", f"{r.label}: {problem} and no power reading to fall back "
                         f"on{_hint(s.source)}"))  # fmt: skip
        return True
    findings.append(("invalid", f"{r.label}: {problem}{_hint(s.source)}"))
    return None


def _checked_counter(
    s: DeviceSeries, r: _Readings, t0_ns: int, t1_ns: int, findings: list[Finding]
) -> tuple[float, float, str, int]:
    """(J, coverage, source, resets) from the counter, checked against integrated power."""
    assert r.counter is not None and r.refresh_s is not None
    energy_j, resets, cover = r.counter
    source = f"{s.source}_counter"
    label, window_s, refresh_s, integral = r.label, r.window_s, r.refresh_s, r.integral
    resolution = refresh_s / window_s
    if r.moved and FINE_RESOLUTION < resolution <= COARSE_RESOLUTION:
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
    if integral is None or r.short_avg:
        return energy_j, cover, source, resets
    base = energy_j if energy_j > 0 else integral[0]
    gap = abs(integral[0] - energy_j) / base if base > 0 else 0.0
    still_s = longest_still_s(s.energy_mj, t0_ns, t1_ns)
    if (
        gap > COUNTER_VS_POWER_TOLERANCE
        and energy_j < integral[0]
        and (still_s > STALL_PERIODS * refresh_s)
    ):
        # A counter that stopped while power kept reading: trust the power.
        findings.append(
            ("partial", f"{label}: energy counter stalled for {still_s:.1f} s of the "
             f"window ({energy_j:.1f} J) while {r.integral_kind} power read "
             f"{integral[0]:.1f} J; integrated power instead")
        )  # fmt: skip
        energy_j, cover = integral
        source = f"{s.source}_power_integral"
    elif gap > COUNTER_VS_POWER_TOLERANCE:
        findings.append(
            ("partial", f"{label}: energy counter ({energy_j:.1f} J) and integrated "
             f"power ({integral[0]:.1f} J) disagree by {gap:.0%}")
        )  # fmt: skip
    return energy_j, cover, source, resets


def device_energy(
    s: DeviceSeries, t0_ns: int, t1_ns: int, findings: list[Finding]
) -> DeviceEnergy | None:
    """One GPU's energy over the window, appending what weakens it to `findings`."""
    r = _read(s, t0_ns, t1_ns)
    use_counter = _counter_usable(s, r, findings)
    if use_counter is None:
        return None
    resets = 0
    if use_counter and r.counter is not None:
        energy_j, cover, source, resets = _checked_counter(s, r, t0_ns, t1_ns, findings)
    elif r.integral is not None:
        energy_j, cover = r.integral
        source = f"{s.source}_power_integral"
        if r.short_avg:
            findings.append(
                ("partial", f"{r.label}: no usable energy counter; integrated averaged power "
                 f"over a {r.window_s:.1f} s window (the reading is a ~1 s average: use "
                 f"windows >= {SHORT_WINDOW_AVG_POWER_S:.0f} s)")
            )  # fmt: skip
    else:
        return None
    if cover < MIN_COVERAGE:
        level = "invalid" if cover < INVALID_COVERAGE else "partial"
        findings.append(
            (level, f"{r.label}: samples cover only {cover:.0%} of the window; energy is "
             "underestimated")
        )  # fmt: skip
    avg_w = energy_j / r.window_s
    if s.power_limit_w and avg_w > s.power_limit_w * POWER_LIMIT_TOLERANCE:
        findings.append(
            ("partial", f"{r.label}: average power {avg_w:.0f} W is above its power limit "
             f"{s.power_limit_w:.0f} W; check the samples")
        )  # fmt: skip
    return DeviceEnergy(
        s.device, source, energy_j, avg_w, s.power_limit_w, resets, r.refresh_s, min(cover, 1.0)
    )
