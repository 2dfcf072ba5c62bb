"""The machine's own stalls (benchbench/stalls.py): gaps in a spin on the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchbench.stalls import measure_stalls


def _clock(steps_ns: list[int]) -> Callable[[], int]:
    """A clock that advances by each step in turn, then by 10 us for ever."""
    ticks: Iterator[int] = iter(steps_ns)
    t = 0

    def now() -> int:
        nonlocal t
        t += next(ticks, 10_000)
        return t

    return now


def test_a_spin_without_gaps_has_no_stalls() -> None:
    stalls = measure_stalls(0.01, now=_clock([]))
    assert stalls.stalled_share == 0 and stalls.longest_ms == 0
    assert not stalls.bounds_lag_p99


def test_gaps_over_half_a_millisecond_are_stalls_and_time_past_2_ms_bounds_the_lag() -> None:
    # 0.1 s of 10 us reads with one 1 ms gap and one 7 ms gap in it.
    steps = [10_000] * 100 + [1_000_000] + [10_000] * 100 + [7_000_000]
    stalls = measure_stalls(0.1, now=_clock(steps))
    assert round(stalls.longest_ms, 3) == 7.0
    assert abs(stalls.stalled_share - 0.08) < 0.002  # 8 ms of 100 ms
    assert abs(stalls.beyond_lag_bound - 0.05) < 0.002  # 5 ms past the 2 ms bound
    assert round(stalls.over_lag_bound_per_s) == 10  # one stall over 2 ms in 0.1 s
    assert stalls.bounds_lag_p99
    assert "8.0% of 0.1 s" in stalls.describe()


def test_a_real_spin_is_bounded_in_time() -> None:
    stalls = measure_stalls(0.05)
    assert stalls.seconds == 0.05 and 0 <= stalls.stalled_share <= 1
