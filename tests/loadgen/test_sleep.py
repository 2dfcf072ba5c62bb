"""The open-loop scheduler never sends early: sleep_until returns at or after its deadline,
on asyncio's loop and on uvloop (whose timers have millisecond granularity)."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadgen.client import sleep_until


async def _lateness_ns() -> list[int]:
    out = []
    for k in range(40):
        deadline = time.monotonic_ns() + 200_000 + 97_000 * k % 3_000_000
        await sleep_until(time.monotonic_ns, deadline)
        out.append(time.monotonic_ns() - deadline)
    return out


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sleep_until_never_returns_early(loop: str) -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        lateness = uvloop.run(_lateness_ns())
    else:
        lateness = asyncio.run(_lateness_ns())
    assert min(lateness) >= 0
