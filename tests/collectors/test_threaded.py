"""The polling thread: cadence, drain, failure policy, stop."""

from __future__ import annotations

import itertools
import time

from collectors.base import Clock, Sample
from collectors.threaded import PollingCollector


class Counting(PollingCollector):
    name = "counting"

    def __init__(self, interval_s: float, fail_from: int | None = None, **kw: int) -> None:
        super().__init__(interval_s, **kw)
        self.n = 0
        self.fail_from = fail_from
        self.closed = 0

    def _read(self, clock: Clock, out: list[Sample]) -> None:
        self.n += 1
        out.append(Sample(self.name, "d", clock(), "first", float(self.n)))
        if self.fail_from is not None and self.n >= self.fail_from:
            raise OSError("scrape timed out\nsecond line is dropped")
        out.append(Sample(self.name, "d", clock(), "second", float(self.n)))

    def _close(self) -> None:
        self.closed += 1


def wait_until(cond, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_thread_polls_with_the_injected_clock_and_drain_hands_over_new_samples() -> None:
    ticks = itertools.count(1000)
    c = Counting(interval_s=0.01)
    c.start(lambda: next(ticks))
    assert wait_until(lambda: c.polls >= 5)
    c.stop()
    first = c.drain()
    assert c.drain() == []
    assert len(first) == 2 * c.polls
    assert all(s.t_ns >= 1000 for s in first)
    assert [s.t_ns for s in first] == sorted(s.t_ns for s in first)
    assert not c.running and c.closed == 1


def test_a_failure_degrades_with_a_one_line_reason_and_keeps_partial_samples() -> None:
    c = Counting(interval_s=1.0, fail_from=2, max_failures=5)
    assert c.poll_once()
    assert not c.poll_once()
    assert c.degraded == "OSError: scrape timed out"
    metrics = [s.metric for s in c.drain()]
    assert metrics == ["first", "second", "first"]


def test_consecutive_failures_stop_the_thread() -> None:
    c = Counting(interval_s=0.01, fail_from=1, max_failures=3)
    c.start(time.monotonic_ns)
    assert wait_until(lambda: not c.running)
    assert c.polls == 3
    assert c.degraded == "stopped after 3 consecutive failures: OSError: scrape timed out"
    c.stop()


def test_stop_wakes_a_long_interval_promptly() -> None:
    c = Counting(interval_s=3600.0)
    c.start(time.monotonic_ns)
    assert wait_until(lambda: c.polls == 1)
    t0 = time.monotonic()
    c.stop()
    assert time.monotonic() - t0 < 1.0
    assert c.cpu_s >= 0.0
