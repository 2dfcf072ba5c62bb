"""HTTP for the load generator: one method that sends a request and timestamps every body
piece on arrival. httpx is the API; its transport is chosen by measurement
(benchmarks/client_overhead.py): plain httpcore, or aiohttp underneath via httpx-aiohttp.

No hidden limits: the pool is sized to the load (httpx's default of 100 connections would
silently queue requests: coordinated omission), and the read timeout suits long generations
(httpx's default 5 s kills them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from loadgen import errors
from loadgen.spec import RequestRecord

Clock = Callable[[], int]
TransportName = Literal["raw", "aiohttp", "httpx"]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 256
    connect_timeout_s: float = 10.0
    # Between two body pieces: a stalled stream is an error, a long generation is not.
    read_timeout_s: float = 300.0
    transport: TransportName = "raw"


class StreamClient(Protocol):
    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        """Send; set record.sent_ns/http_status/closed_ns and transport errors; append pieces."""
        ...

    async def aclose(self) -> None: ...


class HttpxStreamClient:
    def __init__(self, settings: HttpSettings, clock: Clock) -> None:
        self._clock = clock
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.connect_timeout_s,
            pool=None,  # waiting for a pooled connection is the client's fault, never a timeout
        )
        headers = {"content-type": "application/json", **settings.headers}
        transport: httpx.AsyncBaseTransport
        if settings.transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, retries=0)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        clock = self._clock
        # Real servers (llama.cpp) close kept-alive sockets after a stream; a request that never
        # reached the server is retried once on a fresh connection rather than counted as an error.
        for attempt in range(2):
            record.sent_ns = clock()
            try:
                async with self._client.stream("POST", path, content=body) as resp:
                    record.http_status = resp.status_code
                    kind = errors.kind_for_status(resp.status_code)
                    if kind is not None:
                        detail = await resp.aread()
                        record.error_kind = kind
                        record.error_detail = f"HTTP {resp.status_code}: " + detail[:200].decode(
                            "utf-8", "replace"
                        )
                    else:
                        append_p = pieces.append
                        append_t = times.append
                        async for piece in resp.aiter_raw():
                            append_t(clock())
                            append_p(piece)
                record.closed_ns = clock()
                return
            except (
                httpx.RemoteProtocolError,
                httpx.ConnectError,
                httpx.WriteError,
                httpx.ConnectTimeout,  # httpx-aiohttp's name for a write to a closed socket
                httpx.ReadError,
            ) as exc:
                if attempt == 0 and record.http_status is None and not pieces:
                    continue
                kind = errors.CONNECT if record.http_status is None else errors.INCOMPLETE
                _transport_error(record, kind, exc, clock)
                return
            except httpx.TimeoutException as exc:
                _transport_error(record, errors.TIMEOUT, exc, clock)
                return
            except httpx.HTTPError as exc:
                kind = errors.CONNECT if record.http_status is None else errors.INCOMPLETE
                _transport_error(record, kind, exc, clock)
                return

    async def aclose(self) -> None:
        await self._client.aclose()


def _transport_error(record: RequestRecord, kind: str, exc: BaseException, clock: Clock) -> None:
    record.error_kind = kind
    record.error_detail = f"{type(exc).__name__}: {exc}"[:300]
    record.closed_ns = clock()


async def sleep_until(clock: Clock, deadline_ns: int) -> None:
    """Sleep until the clock reaches deadline_ns (absolute: lateness never accumulates)."""
    # A loop: uvloop's timers can fire ~50 us early, and a request must never be sent before
    # its intended time (schedule lag would turn negative).
    while (delay := deadline_ns - clock()) > 0:
        await asyncio.sleep(delay / 1e9)


def make_client(settings: HttpSettings, clock: Clock) -> StreamClient:
    """The streaming client for a transport name ("raw" is the measured default)."""
    if settings.transport == "raw":
        from loadgen.rawhttp import RawStreamClient

        return RawStreamClient(settings, clock)
    return HttpxStreamClient(settings, clock)
