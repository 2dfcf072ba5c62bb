"""When to send: the open loop's wait for an arrival's intended time, and the closed loop's
optional cap on the send rate."""

from __future__ import annotations

import asyncio
from typing import Any

from loadgen.client import Clock, sleep_until

_YIELD_NS = 1_000_000  # behind schedule, the open loop still yields to the event loop this often


class Pacer:
    def __init__(self, clock: Clock, max_rate: float | None) -> None:
        self._clock = clock
        self._yielded_ns = 0
        self._throttler: Any = _throttler(max_rate)

    async def until(self, intended_ns: int) -> None:
        """Wait until an arrival is due. Behind schedule there is nothing to wait for, but the
        loop still yields now and then: without it no spawned request would start, no timer
        (the duration) fire and no signal (Ctrl-C) be served while the schedule runs ahead."""
        now = self._clock()
        if intended_ns > now:
            await sleep_until(self._clock, intended_ns)
            self._yielded_ns = intended_ns
        elif now - self._yielded_ns >= _YIELD_NS:
            await asyncio.sleep(0)
            self._yielded_ns = self._clock()

    async def throttle(self) -> None:
        """Wait until a closed-loop send is within the rate cap (at once when there is none)."""
        if self._throttler is not None:
            async with self._throttler:
                pass


def _throttler(max_rate: float | None) -> Any:
    """asyncio-throttle's Throttler capping sends at ``max_rate`` per second, or None."""
    if not max_rate:
        return None
    from asyncio_throttle import Throttler

    if max_rate < 1:
        return Throttler(rate_limit=1, period=1.0 / max_rate)
    return Throttler(rate_limit=max(1, int(max_rate)), period=1.0)
