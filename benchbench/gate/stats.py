"""Confidence intervals for the change of a statistic between two samples.

Quantiles use the exact bootstrap distribution of an order statistic instead of resampling
whole arrays: when n values are resampled with replacement, the r-th smallest resampled index
is ceil(n * U_(r)) with U_(r) ~ Beta(r, n - r + 1) (the r-th of n uniform order statistics),
and the next one follows as U_(r+1) = U_(r) + (1 - U_(r)) * Beta(1, n - r). Drawing those two
Beta variates per resample reproduces the bootstrap of DuckDB's quantile_cont (linear
interpolation at h = (n-1)q) exactly, in O(resamples) after one sort: 100k requests cost the
same as 100. Means use the normal approximation (standard error sd/sqrt(n)). Each side is
resampled independently; the interval of the difference is the percentile interval of the
paired draws' differences.

Requests that overlap in time are not independent: a stall of the server or of the machine
delays every request in flight, and every chunk of each. So each side has an
effective size: requests / mean concurrency for per-request metrics, and the same number of
units for chunk gaps (however many gaps each request has). The bootstrap draws' spread
around the point estimate is widened by sqrt(design effect) = sqrt(n / effective size)
(resampling fewer values instead would bias a tail quantile: the p99 of 10 values is not a
p99). This is what keeps same-configuration pairs from failing on tail metrics on a busy
machine."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Change:
    """candidate - baseline, with a two-sided interval (None where none can be given)."""

    baseline: float
    candidate: float
    diff: float
    low: float | None
    high: float | None


def point(values: np.ndarray, q: float | None) -> float:
    """The statistic as benchbench.metrics computes it (quantile_cont or mean). +inf values
    (failed requests in an error-adjusted metric) make it infinite once it reaches them, as
    in DuckDB; numpy's own interpolation would give NaN between two infinities."""
    if q is None:
        return float(np.mean(values))
    if np.all(np.isfinite(values)):
        return float(np.quantile(values, q))
    s = np.sort(values)
    h = (len(s) - 1) * q
    k = int(np.floor(h))
    low, high = s[k], s[min(k + 1, len(s) - 1)]
    return float(low if h == k else _lerp(low, high, h - k))


def _lerp(low: Any, high: Any, frac: Any) -> Any:
    """low + frac * (high - low), infinite where high is (the values are sorted)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(high), high, low + frac * (high - low))


def bootstrap_draws(
    sorted_values: np.ndarray,
    q: float | None,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """`resamples` draws from the bootstrap distribution of the statistic of `sorted_values`."""
    n = len(sorted_values)
    if q is None:
        sd = float(np.std(sorted_values, ddof=1)) if n > 1 else 0.0
        return rng.normal(float(np.mean(sorted_values)), sd / np.sqrt(n), resamples)
    h = (n - 1) * q
    k = int(np.floor(h))  # 0-based lower order statistic; rank r = k + 1
    frac = h - k
    r = k + 1
    u_low = rng.beta(r, n - r + 1, resamples)
    low = sorted_values[_index(u_low, n)]
    if frac == 0.0 or r >= n:
        return low
    u_high = u_low + (1.0 - u_low) * rng.beta(1, n - r, resamples)
    high = sorted_values[_index(u_high, n)]
    return _lerp(low, high, frac)


def _inflate(draws: np.ndarray, center: float, n: int, effective: float | None) -> np.ndarray:
    """Widen the spread of the draws by sqrt(design effect) = sqrt(n / effective size)."""
    if effective is None or effective <= 0 or effective >= n:
        return draws
    return center + (draws - center) * np.sqrt(n / effective)


def _index(u: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)


def change_of_statistic(
    baseline: np.ndarray,
    candidate: np.ndarray,
    q: float | None,
    *,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
    effective: tuple[float | None, float | None] = (None, None),
) -> Change:
    """The change of a quantile (q) or the mean (q=None) with its bootstrap interval.
    `effective` gives each side's number of independent units, when fewer than its values."""
    a = np.sort(np.asarray(baseline, dtype=np.float64))
    b = np.sort(np.asarray(candidate, dtype=np.float64))
    pa, pb = point(a, q), point(b, q)
    draws_a = _inflate(bootstrap_draws(a, q, resamples, rng), pa, len(a), effective[0])
    draws_b = _inflate(bootstrap_draws(b, q, resamples, rng), pb, len(b), effective[1])
    draws = _difference(draws_b, draws_a)
    alpha = 1.0 - confidence
    if np.all(np.isfinite(draws)):
        low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    else:  # infinite draws (error-adjusted): order statistics, never inf - inf
        low = np.quantile(draws, alpha / 2, method="lower")
        high = np.quantile(draws, 1 - alpha / 2, method="higher")
    return Change(pa, pb, float(_difference(np.array(pb), np.array(pa))), float(low), float(high))


def _difference(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """b - a, where both infinite counts as no change (0), not NaN."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(a) & np.isinf(b) & (a == b), 0.0, b - a)


def change_of_runs(baseline: list[float], candidate: list[float], *, confidence: float) -> Change:
    """A run-level figure (throughput, error rate, J/token): the mean over each side's runs.
    With two or more runs on each side, a normal interval from the run-to-run spread;
    with a single run on either side, no interval (the point change alone decides)."""
    pa, pb = float(np.mean(baseline)), float(np.mean(candidate))
    if len(baseline) < 2 or len(candidate) < 2:
        return Change(pa, pb, pb - pa, None, None)
    se = np.sqrt(
        np.var(baseline, ddof=1) / len(baseline) + np.var(candidate, ddof=1) / len(candidate)
    )
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return Change(pa, pb, pb - pa, float(pb - pa - z * se), float(pb - pa + z * se))
