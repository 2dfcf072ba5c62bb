"""HTTP for the load generator: one method that sends a request and timestamps every body
piece on arrival. httpx is the API; its transport is chosen by measurement
(benchmarks/client_overhead.py): plain httpcore, or aiohttp underneath via httpx-aiohttp.

No hidden limits: the pool is sized to the load (httpx's default of 100 connections would
silently queue requests: coordinated omission), and the read timeout suits long generations
(httpx's default 5 s kills them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx

from loadgen import errors
from loadgen.httpcommon import (  # re-exported: the clients' settings live there
    EARLY_CLOSES_TO_STOP_REUSE,
    HttpSettings,
    status_detail,
)
from loadgen.spec import RequestRecord

Clock = Callable[[], int]


class StreamClient(Protocol):
    retries: int  # requests sent again on a fresh connection (errors.should_resend)

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        """Send; set record.sent_ns/http_status/closed_ns and transport errors; append pieces."""
        ...

    async def aclose(self) -> None: ...


class HttpxStreamClient:
    def __init__(self, settings: HttpSettings, clock: Clock) -> None:
        self._clock = clock
        self._settings = settings
        self.retries = 0
        # Pooled until the server is seen closing connections under requests; then, and for
        # every resend, a client that never reuses a connection (see should_resend).
        self._reuse = True
        self._client = self._build(pooled=True)
        self._fresh_client: httpx.AsyncClient | None = None
        # httpx, unlike aiohttp, reports each new connection to a request's trace callback.
        self._traced = settings.transport != "aiohttp"

    def _build(self, pooled: bool) -> httpx.AsyncClient:
        settings = self._settings
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections if pooled else 0,
        )
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.connect_timeout_s,
            pool=None,  # waiting for a pooled connection is the client's fault, never a timeout
        )
        headers = {"content-type": "application/json", **settings.headers}
        if not pooled:
            headers["connection"] = "close"
        transport: httpx.AsyncBaseTransport
        if settings.transport == "aiohttp":
            import aiohttp
            from httpx_aiohttp import AiohttpTransport

            if pooled:
                transport = AiohttpTransport(limits=limits)
            else:
                transport = AiohttpTransport(
                    client=lambda: aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(
                            force_close=True, limit=settings.max_connections
                        )
                    )
                )
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, retries=0)
        return httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def _fresh(self) -> httpx.AsyncClient:
        if self._fresh_client is None:
            self._fresh_client = self._build(pooled=False)
        return self._fresh_client

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        total = self._settings.request_timeout_s
        try:
            async with asyncio.timeout(total):
                await self._post(path, body, record, pieces, times)
        except TimeoutError:  # only the total deadline's: _post turns every other error to data
            record.error_kind = errors.TIMEOUT
            record.error_detail = f"timeout: total deadline of {total:g} s exceeded"
            record.closed_ns = self._clock()

    async def _post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        clock = self._clock
        for attempt in range(2):
            pooled = self._reuse and attempt == 0
            client = self._client if pooled else self._fresh()
            fresh = False

            async def trace(name: str, info: Mapping[str, object]) -> None:
                nonlocal fresh
                if name == "connection.connect_tcp.started":
                    fresh = True

            extensions = {"trace": trace} if self._traced and pooled else None
            record.sent_ns = clock()
            try:
                async with client.stream("POST", path, content=body, extensions=extensions) as resp:
                    record.http_status = resp.status_code
                    kind = errors.classify_status(resp.status_code)
                    if kind is not None:
                        record.error_kind = kind
                        record.error_detail = status_detail(
                            resp.status_code, resp.headers.get("location"), await _head(resp)
                        )
                    else:
                        append_p = pieces.append
                        append_t = times.append
                        async for piece in resp.aiter_raw():
                            append_t(clock())
                            append_p(piece)
                record.closed_ns = clock()
                return
            except Exception as exc:  # any transport's error becomes data, never escapes
                got_response = record.http_status is not None or bool(pieces)
                kind = errors.classify_exception(exc, got_response=got_response)
                # aiohttp traces nothing, but its one failure on a new connection is the
                # connect itself, the only one httpx-aiohttp maps to ConnectError.
                reused = pooled and not fresh and not isinstance(exc, httpx.ConnectError)
                if errors.should_resend(
                    kind, reused=reused, got_response=got_response, attempt=attempt
                ):
                    self.retries += 1
                    if self.retries >= EARLY_CLOSES_TO_STOP_REUSE:
                        # httpx cannot see a server close a socket between requests: a reused
                        # one dying under a request is the sign the raw client also counts.
                        self._reuse = False
                    continue
                record.error_kind = kind
                record.error_detail = f"{type(exc).__name__}: {exc}"[:300]
                record.closed_ns = clock()
                return

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._fresh_client is not None:
            await self._fresh_client.aclose()


_ERROR_BODY_BYTES = 4096  # of an error response, kept for its detail; the rest is not read


async def _head(resp: httpx.Response) -> bytes:
    """The start of an error response's body: an endless one must not hold the request."""
    out = b""
    async for piece in resp.aiter_raw():
        out += piece
        if len(out) >= _ERROR_BODY_BYTES:
            break
    return out


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
