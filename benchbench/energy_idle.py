"""The idle baseline: GPU power measured before the load, whether it had settled, and its own
verdict. Net (marginal) energy = gross - idle W x window s (benchbench.energy)."""

from __future__ import annotations

from collections.abc import Sequence

from benchbench.energy_samples import DeviceSeries
from benchbench.energy_verdict import (
    INVALID_COVERAGE,
    DeviceEnergy,
    Finding,
    Verdict,
    device_energy,
)

__all__ = ["idle_baseline", "idle_settled", "idle_trend_w"]

IDLE_MIN_COVERAGE = 0.9
IDLE_SETTLE_TOLERANCE = 0.05  # first half of the idle window vs second half
IDLE_SETTLE_MIN_W = 5.0  # ... and at least this many watts apart


def idle_trend_w(devices: Sequence[DeviceSeries], i0_ns: int, i1_ns: int) -> tuple[float, float]:
    """(W in the first half, W in the second half) of [i0, i1], summed over GPUs: a settled
    idle has the two equal; a GPU cooling down after load reads higher in the first half.
    GPUs without samples in both halves count 0 in both."""
    mid = (i0_ns + i1_ns) // 2
    first = second = 0.0
    for s in devices:
        a = device_energy(s, i0_ns, mid, [])
        b = device_energy(s, mid, i1_ns, [])
        if a is not None and b is not None:
            first += a.energy_j / max(a.coverage, 1e-9) / ((mid - i0_ns) / 1e9)
            second += b.energy_j / max(b.coverage, 1e-9) / ((i1_ns - mid) / 1e9)
    return first, second


def idle_settled(first_w: float, second_w: float) -> bool:
    """Whether idle power has stopped falling (the two halves agree within tolerance)."""
    return first_w - second_w <= max(IDLE_SETTLE_TOLERANCE * second_w, IDLE_SETTLE_MIN_W)


def idle_baseline(
    chosen: Sequence[DeviceSeries], found: Sequence[DeviceEnergy], idle_window: tuple[int, int]
) -> tuple[float | None, Verdict]:
    """Idle W over the idle window (each GPU's energy over the part its samples cover) and
    the idle figure's own verdict: coverage, counter resolution, settled or still falling."""
    i0, i1 = idle_window
    if i1 <= i0:
        raise ValueError(f"idle window must have t1 > t0 (got {i0}..{i1} ns)")
    idle_s = (i1 - i0) / 1e9
    findings: list[Finding] = []
    parts = [device_energy(s, i0, i1, findings) for s in chosen]
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
