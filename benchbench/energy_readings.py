"""Reading one series over a window: a cumulative energy counter (resets, refresh period,
stale values, stalls) and integrated power. Pure arithmetic, no judgement: the verdict on what
is read is benchbench.energy_verdict's."""

from __future__ import annotations

import numpy as np

from benchbench.energy_samples import Series

__all__ = [
    "counter_energy_j",
    "counter_refresh_s",
    "longest_still_s",
    "power_integral_j",
    "reset_corrected",
]

RESET_FRACTION = 0.5  # a drop below half the previous value is a reset; smaller ones jitter


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


def longest_still_s(series: Series, t0_ns: int, t1_ns: int) -> float:
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
