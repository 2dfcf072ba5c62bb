"""Rate multipliers over time (daily cycles, hand-drawn profiles) for RateModulated arrivals.

A profile maps seconds since the run start to a multiplier of the base rate. Both here
evaluate whole numpy arrays (``values``) and single floats (``__call__``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Diurnal", "PiecewiseLinear", "VectorProfile"]


@runtime_checkable
class VectorProfile(Protocol):
    """A rate multiplier that evaluates a whole array of times (seconds) at once."""

    def values(self, t_s: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Diurnal:
    """A smooth daily-style cycle with mean 1: starts at its trough at t = 0 (plus
    ``phase_s``), peaks at half a period. m(t) = trough + (peak - trough) * h(t)^p with
    h = (1 - cos(2 pi t / period)) / 2 and p chosen so the mean over a period is exactly 1,
    which lets peak and trough sit asymmetrically around the mean as in the Azure 2024 week
    (conv: peak/mean 1.9, trough/mean 0.37; code: 3.5, 0.09)."""

    period_s: float = 86400.0
    peak_over_mean: float = 1.9
    trough_over_mean: float = 0.37
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError(f"diurnal period must be > 0 seconds, got {self.period_s}")
        flat = self.peak_over_mean == 1 and self.trough_over_mean == 1
        if not flat and not (0 <= self.trough_over_mean < 1 < self.peak_over_mean):
            raise ValueError("diurnal needs 0 <= trough < 1 < peak (multiples of the mean rate)")

    @property
    def exponent(self) -> float:
        if self.peak_over_mean == self.trough_over_mean:
            return 1.0
        target = (1.0 - self.trough_over_mean) / (self.peak_over_mean - self.trough_over_mean)
        lo, hi = -12.0, 12.0  # bisection on ln p; mean of h^p = G(p+1/2)/(sqrt(pi) G(p+1))
        for _ in range(80):
            mid = (lo + hi) / 2
            p = math.exp(mid)
            mean = math.exp(math.lgamma(p + 0.5) - math.lgamma(p + 1.0)) / math.sqrt(math.pi)
            lo, hi = (mid, hi) if mean > target else (lo, mid)
        return math.exp((lo + hi) / 2)

    def values(self, t_s: np.ndarray) -> np.ndarray:
        h = 0.5 * (1.0 - np.cos(2.0 * np.pi * (np.asarray(t_s) + self.phase_s) / self.period_s))
        span = self.peak_over_mean - self.trough_over_mean
        return self.trough_over_mean + span * h**self.exponent

    def __call__(self, t_s: float) -> float:
        return float(self.values(np.array([t_s]))[0])


@dataclass(frozen=True, slots=True)
class PiecewiseLinear:
    """A multiplier through (t_s, multiplier) points, held flat outside them; with
    ``period_s`` the time is taken modulo the period. Not normalised: the mean rate is the
    base rate times the profile's mean."""

    points: tuple[tuple[float, float], ...]
    period_s: float | None = None

    def __post_init__(self) -> None:
        t = [p[0] for p in self.points]
        if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)):
            raise ValueError("piecewise profile needs points with strictly rising times")
        if any(p[1] < 0 for p in self.points):
            raise ValueError("piecewise profile multipliers must be >= 0")

    def values(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        if self.period_s:
            t = np.mod(t, self.period_s)
        xs, ys = zip(*self.points, strict=True)
        return np.interp(t, xs, ys)

    def __call__(self, t_s: float) -> float:
        return float(self.values(np.array([t_s]))[0])
