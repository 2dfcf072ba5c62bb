"""A minimal HTTP/1.1 client on asyncio.Protocol, for the streaming hot path.

Why not only httpx: every streamed piece through httpx wakes a coroutine and climbs several
async-iterator layers; here a read costs one `data_received` call (loadgen.rawconn) and the
request's coroutine wakes once, when the response is complete.
benchmarks/client_overhead.py measures both side by side.

Scope: plain HTTP or TLS (no HTTP/2, no proxies, no compression: we never ask for it), any
framing llhttp accepts (chunked, Content-Length, read-until-close), 1xx interim responses
skipped, keep-alive pooling. Failures follow loadgen.errors: one retry on a fresh connection
when a pooled one turns out closed before any response byte, and a server seen closing
connections right after complete responses is no longer sent requests on reused ones."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

from loadgen import errors
from loadgen.httpcommon import (
    EARLY_CLOSES_TO_STOP_REUSE,
    HttpSettings,
    status_detail,
)
from loadgen.rawconn import Clock, Connection
from loadgen.spec import RequestRecord


class RawStreamClient:
    """StreamClient over `Connection`s, pooled per client (one target host)."""

    def __init__(self, settings: HttpSettings, clock: Clock) -> None:
        url = urlsplit(settings.base_url.rstrip("/"))
        if url.scheme not in ("http", "https"):
            raise ValueError(f"endpoint must be http:// or https://, got {settings.base_url!r}")
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._prefix = url.path.encode()
        host_header = url.netloc.rsplit("@", 1)[-1]
        # Header names and values were checked by HttpSettings (no CR/LF can reach the wire).
        extra = "".join(f"{k}: {v}\r\n" for k, v in settings.headers.items())
        self._head_rest = (
            " HTTP/1.1\r\nHost: " + host_header + "\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream, application/json\r\n"
            + extra
        ).encode()
        self._settings = settings
        self._clock = clock
        self._idle: deque[Connection] = deque()
        self._active: set[Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.retries = 0
        self._early_closes = 0
        self._reuse = True

    def _early_close(self) -> None:
        """A connection closed by the server soon after a complete keep-alive response. After
        EARLY_CLOSES_TO_STOP_REUSE of them the server is taken to close after every response
        (llama-server does), and each request gets a fresh connection and says
        `Connection: close`: reusing one would race the server's close."""
        self._early_closes += 1
        if self._early_closes >= EARLY_CLOSES_TO_STOP_REUSE:
            self._reuse = False

    async def _connect(self, timeout_s: float) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: Connection(self._clock, self._early_close),
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            ),
            timeout_s,
        )
        return conn

    def _pooled(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.keep_alive:
                return conn
            self._discard(conn)  # closed by the server while idle, or sent stray bytes
        return None

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        loop = asyncio.get_running_loop()
        total = self._settings.request_timeout_s
        deadline = loop.time() + total if total is not None else None
        for attempt in range(2):
            reuse = self._reuse
            conn = self._pooled() if reuse and attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = await self._fresh(record, deadline)
                if conn is None:
                    return
            done: asyncio.Future[None] = loop.create_future()
            conn.start(pieces, times, done)
            self._active.add(conn)
            timer = (
                loop.call_at(deadline, _expire, conn, done, total) if deadline is not None else None
            )
            record.sent_ns = self._clock()
            try:
                assert conn.transport is not None
                conn.transport.write(
                    b"POST "
                    + self._prefix
                    + path.encode()
                    + self._head_rest
                    + (b"" if reuse else b"Connection: close\r\n")
                    + b"Content-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                await done
            except asyncio.CancelledError:
                # Keep what arrived: the runner parses a cancelled stream's tokens too.
                record.http_status = conn.status or None
                self._discard(conn)
                raise
            finally:
                self._active.discard(conn)
                if timer is not None:
                    timer.cancel()
            if not self._settle(conn, record, pieces, times, reused, attempt):
                return
            self.retries += 1

    def _settle(
        self,
        conn: Connection,
        record: RequestRecord,
        pieces: list[bytes],
        times: list[int],
        reused: bool,
        attempt: int,
    ) -> bool:
        """Record a finished attempt and pool or close its connection; whether to send the
        request again on a fresh connection (errors.should_resend)."""
        if conn.error_kind is not None:
            self._discard(conn)
            if errors.should_resend(
                conn.error_kind, reused=reused, got_response=conn.got_bytes, attempt=attempt
            ):
                return True
            record.error_kind = conn.error_kind
            record.error_detail = conn.error
        else:
            kind = errors.classify_status(conn.status)
            if kind is not None:
                record.error_kind = kind
                record.error_detail = status_detail(
                    conn.status, _header(conn.headers, b"location"), b"".join(pieces)
                )
                pieces.clear()
                times.clear()
            if conn.keep_alive and self._reuse and not conn.closed:
                conn.idle()
                self._idle.append(conn)
            else:
                self._discard(conn, graceful=True)
        record.closed_ns = self._clock()
        record.http_status = conn.status or None
        return False

    async def _fresh(self, record: RequestRecord, deadline: float | None) -> Connection | None:
        """A new connection, or None with the record's error set."""
        timeout_s = self._settings.connect_timeout_s
        total_bound = False
        if deadline is not None:
            left = deadline - asyncio.get_running_loop().time()
            if left < timeout_s:
                timeout_s, total_bound = max(0.0, left), True
        try:
            return await self._connect(timeout_s)
        except Exception as exc:  # OSError, ssl errors, timeouts, a bad host name: all data
            record.error_kind = errors.classify_exception(exc, got_response=False)
            if record.error_kind == errors.TIMEOUT and total_bound:
                record.error_detail = (
                    f"timeout: total deadline of {self._settings.request_timeout_s:g} s "
                    f"exceeded while connecting to {self._host}:{self._port}"
                )
            else:
                record.error_detail = f"connect to {self._host}:{self._port}: {exc!r}"[:300]
            record.closed_ns = self._clock()
            return None

    def _discard(self, conn: Connection, graceful: bool = False) -> None:
        conn.keep_alive = False  # closed by us: not a close to count in connection_lost
        if conn.transport is not None and not conn.closed:
            if graceful:
                conn.transport.close()
            else:
                conn.transport.abort()
        conn.closed = True

    async def _sweep(self) -> None:
        """Stalled-stream watchdog: one timer for all connections instead of one per piece."""
        timeout_ns = int(self._settings.read_timeout_s * 1e9)
        while True:
            await asyncio.sleep(min(1.0, self._settings.read_timeout_s / 4))
            now = self._clock()
            for conn in list(self._active):
                if conn.last_ns == 0:
                    conn.last_ns = now  # starts counting once the request is out
                elif now - conn.last_ns > timeout_ns:
                    conn.fail(
                        errors.TIMEOUT, f"timeout: no data for {self._settings.read_timeout_s:g} s"
                    )

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self._idle) + list(self._active):
            self._discard(conn)
        self._idle.clear()


def _expire(conn: Connection, done: asyncio.Future[None], total_s: float) -> None:
    """The total deadline of the request `done` belongs to (the connection may serve another
    request by now)."""
    if conn.done is done:
        conn.fail(errors.TIMEOUT, f"timeout: total deadline of {total_s:g} s exceeded")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
