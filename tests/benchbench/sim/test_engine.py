"""The timing model, measured over loopback with the server's own send stamps.

Tolerance: asyncio sleeps wake up to ~1 ms late (epoll's millisecond timeout), the
schedule is absolute so that lateness never accumulates. Client and simulator share
one event loop here, so a busy 2-core CI machine delays both: we allow 25 ms on top of
the model, still well under the 100 ms that separates the phases the tests tell apart.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from benchbench.sim import SimConfig, SimServer
from tests.benchbench.sim.helpers import stream_events, text_of, with_sim

MS = 1_000_000
SLACK_NS = 25 * MS
TIMED = SimConfig(
    prefill_base_ms=10.0,
    prefill_ms_per_token=0.0,
    decode_base_ms=20.0,
    decode_ms_per_seq=0.0,
    max_batch=2,
)


async def _timed_stream(
    client: httpx.AsyncClient, url: str, max_tokens: int, origin_ns: int | None = None
) -> list[int]:
    """Send-stamp offsets (ns after our request, or after origin_ns) of each token event."""
    sent_ns = time.monotonic_ns() if origin_ns is None else origin_ns
    payload = {"prompt": "a b c", "max_tokens": max_tokens, "stream": True}
    events = await stream_events(client, url, payload)
    return [e["bb_send_ns"] - sent_ns for _, e in events if e != "[DONE]" and text_of(e)]


def test_a_lone_stream_takes_prefill_plus_one_step_per_token() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        return await _timed_stream(client, f"{sim.base_url}/completions", 10)

    offsets = with_sim(TIMED, body)
    assert len(offsets) == 10
    first, last = offsets[0], offsets[-1]
    assert 30 * MS <= first <= 30 * MS + SLACK_NS  # prefill 10 + one 20 ms step
    assert 210 * MS <= last <= 210 * MS + SLACK_NS  # prefill 10 + ten 20 ms steps
    # No drift: the n-th token is due at 10 + 20 n ms, whatever the sleep jitter.
    for n, offset in enumerate(offsets, start=1):
        assert abs(offset - (10 + 20 * n) * MS) <= SLACK_NS


def test_requests_beyond_max_batch_wait_in_fifo_for_a_free_slot() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        # Open the four connections first: connection setup in the same loop
        # as the simulator would otherwise land inside the timed window.
        await asyncio.gather(*(_timed_stream(client, url, 1) for _ in range(4)))
        # One origin for all four: comparing streams needs one time axis.
        origin = time.monotonic_ns()
        return await asyncio.gather(*(_timed_stream(client, url, 5, origin) for _ in range(4)))

    streams = sorted(with_sim(TIMED, body), key=lambda offsets: offsets[0])
    early, late = streams[:2], streams[2:]
    # A step admits whatever is waiting when it starts, so the first request is alone
    # in step one (TTFT = 10 + 20 ms) and the second joins it by step two at the latest
    # (its prefill lengthens that step: TTFT <= 30 + 10 + 20 ms).
    assert early[0][0] <= 30 * MS + SLACK_NS
    assert early[1][0] <= 60 * MS + SLACK_NS
    # The other two start only when a slot frees (the first early stream to finish
    # frees one): first token ~ 110 + 10 + 20 ms.
    assert all(s[0] > min(e[-1] for e in early) for s in late)
    assert all(s[0] >= 130 * MS for s in late)


def test_decode_steps_slow_down_as_the_batch_grows() -> None:
    config = SimConfig(
        prefill_base_ms=0.0,
        prefill_ms_per_token=0.0,
        decode_base_ms=2.0,
        decode_ms_per_seq=1.0,
        max_batch=64,
    )

    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        streams = await asyncio.gather(*(_timed_stream(client, url, 20) for _ in range(16)))
        return streams

    streams = with_sim(config, body)
    # 16 running sequences: each step takes 2 + 16 * 1 = 18 ms (admission may be split
    # across the first steps, so look at the steady part of one stream).
    gaps = [b - a for a, b in zip(streams[0][5:], streams[0][6:], strict=False)]
    assert abs(sum(gaps) / len(gaps) - 18 * MS) <= 2 * MS
