"""How often this machine takes the CPU away from a process that wants it: a short spin on the
monotonic clock, every gap between two reads above STALL_NS counted as a stall.

On a shared VM (cloud instances, CI runners) the hypervisor and the neighbours take whole
milliseconds at a time from a process that never sleeps. No client can send on time while it
is not running, so these stalls bound the schedule lag any client can hold here: a send lands
in a stall with the probability of being inside one. `bench calibrate` measures them first,
so a ceiling bounded by the machine is not read as benchbench's."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

STALL_NS = 500_000  # a gap between two clock reads longer than this: the process was not running
LAG_BOUND_NS = 2_000_000  # the schedule lag a calibrated rate must hold at p99


@dataclass(frozen=True, slots=True)
class Stalls:
    """A spin of `seconds`: the share of the wall time spent in stalls, how many lasted over
    LAG_BOUND_NS (per second), the longest, and `beyond_lag_bound`: the share of time more
    than LAG_BOUND_NS into a stall, which is the share of sends at random times that any
    client on this machine would send more than LAG_BOUND_NS late."""

    seconds: float
    stalled_share: float
    over_lag_bound_per_s: float
    longest_ms: float
    beyond_lag_bound: float

    @property
    def bounds_lag_p99(self) -> bool:
        """Whether the machine alone puts a schedule lag p99 above LAG_BOUND_NS."""
        return self.beyond_lag_bound >= 0.01

    def describe(self) -> str:
        return (
            f"this machine took the CPU from a spinning process {self.stalled_share:.1%} of "
            f"{self.seconds:g} s ({self.over_lag_bound_per_s:.1f} stalls over "
            f"{LAG_BOUND_NS / 1e6:g} ms per second, longest {self.longest_ms:.1f} ms)"
        )


def measure_stalls(seconds: float = 1.0, now: Callable[[], int] = time.monotonic_ns) -> Stalls:
    """Spin for `seconds` (one core busy) and count the gaps."""
    start = last = now()
    end = start + int(seconds * 1e9)
    gaps: list[int] = []
    while (t := now()) < end:
        if t - last > STALL_NS:
            gaps.append(t - last)
        last = t
    wall = max(1, last - start)
    over = [g for g in gaps if g > LAG_BOUND_NS]
    return Stalls(
        seconds=seconds,
        stalled_share=sum(gaps) / wall,
        over_lag_bound_per_s=len(over) / (wall / 1e9),
        longest_ms=max(gaps, default=0) / 1e6,
        beyond_lag_bound=sum(g - LAG_BOUND_NS for g in over) / wall,
    )
