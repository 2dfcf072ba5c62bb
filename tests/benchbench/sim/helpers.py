"""Shared test helpers: run a coroutine against an in-loop simulator, read SSE."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson

from benchbench.sim import SimConfig, SimServer, start_sim

T = TypeVar("T")

FAST = SimConfig(fast=True)


def with_sim(config: SimConfig, body: Callable[[SimServer, httpx.AsyncClient], Awaitable[T]]) -> T:
    """Start the sim in a fresh loop, run `body(sim, client)`, stop everything."""

    async def go() -> T:
        sim = await start_sim(config)
        try:
            limits = httpx.Limits(max_connections=1000)
            async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
                return await asyncio.wait_for(body(sim, client), timeout=20.0)
        finally:
            await sim.stop()

    return asyncio.run(go())


async def stream_events(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> list[tuple[int, Any]]:
    """POST a streamed request; returns [(client receive monotonic ns, parsed event)].
    The [DONE] sentinel is returned as the string "[DONE]"."""
    events: list[tuple[int, Any]] = []
    async with client.stream("POST", url, json=payload, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = b""
        async for data in response.aiter_raw():
            now = time.monotonic_ns()
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                assert event.startswith(b"data: "), event
                payload_bytes = event[len(b"data: ") :]
                parsed = "[DONE]" if payload_bytes == b"[DONE]" else orjson.loads(payload_bytes)
                events.append((now, parsed))
    return events


def text_of(event: dict[str, Any]) -> str:
    choice = event["choices"][0]
    return choice["delta"].get("content", "") if "delta" in choice else choice["text"]
