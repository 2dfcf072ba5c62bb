"""A minimal HTTP/1.1 client on asyncio.Protocol, for the streaming hot path.

Why not only httpx: every streamed piece through httpx wakes a coroutine and climbs several
async-iterator layers; here a read costs one `data_received` call that takes one timestamp,
hands the bytes to llhttp (httptools, the parser uvicorn uses) and appends the read's body
bytes and its time to two lists; the request's coroutine wakes once, when the response is
complete. benchmarks/client_overhead.py measures both side by side.

Scope: plain HTTP or TLS (no HTTP/2, no proxies, no compression: we never ask for it), any
framing llhttp accepts (chunked, Content-Length, read-until-close), 1xx interim responses
skipped, keep-alive pooling. Failures follow loadgen.errors: one retry on a fresh connection
when a pooled one turns out closed before any response byte, and a server seen closing
connections right after complete responses is no longer sent requests on reused ones."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

from loadgen import errors
from loadgen.httpcommon import (
    EARLY_CLOSE_NS,
    EARLY_CLOSES_TO_STOP_REUSE,
    HttpSettings,
    status_detail,
)
from loadgen.spec import RequestRecord

Clock = Callable[[], int]

# A response head (status line and headers, interim responses included) larger than this is
# refused: llhttp bounds neither, and httptools buffers a header until it is complete.
MAX_HEAD_BYTES = 65536


class _AfterResponse(Exception):
    """Raised inside a parser callback to stop parsing bytes that follow a complete response."""


class _Conn(asyncio.Protocol):
    """One connection; serves one request at a time. Between requests `pieces` is None and
    bytes that arrive are not parsed."""

    __slots__ = (
        "_clock",
        "_on_early_close",
        "_parser",
        "transport",
        "on_body",
        "pieces",
        "times",
        "done",
        "status",
        "headers",
        "keep_alive",
        "error_kind",
        "error",
        "got_bytes",
        "in_head",
        "head_bytes",
        "interim",
        "finished",
        "last_ns",
        "completed_ns",
        "closed",
    )

    def __init__(self, clock: Clock, on_early_close: Callable[[], None]) -> None:
        self._clock = clock
        self._on_early_close = on_early_close
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self.completed_ns = 0  # when the last complete response on this connection ended
        self._idle()

    def _idle(self) -> None:
        self.pieces: list[bytes] | None = None
        self.times: list[int] | None = None
        self.done: asyncio.Future[None] | None = None
        self.finished = True

    def start(self, pieces: list[bytes], times: list[int], done: asyncio.Future[None]) -> None:
        """Get ready for the response to a request about to be written."""
        self.pieces = pieces
        self.times = times
        self.done = done
        # llhttp calls on_body with each body slice: appending it straight to the request's
        # list costs no Python frame per chunk. The attribute is read when the parser is made.
        self.on_body = pieces.append
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.error_kind: str | None = None
        self.error: str | None = None
        self.got_bytes = False
        self.in_head = True
        self.head_bytes = 0
        self.interim = False
        self.finished = False
        self.last_ns = 0

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        now = self._clock()
        if self.finished:
            if self.keep_alive and self.completed_ns and now - self.completed_ns < EARLY_CLOSE_NS:
                self._on_early_close()
            return
        if not self.in_head and self._until_close():
            self._finish()  # the end of the connection is the end of this body
            return
        if not self.got_bytes and self.completed_ns and now - self.completed_ns < EARLY_CLOSE_NS:
            self._on_early_close()  # the race: reused just as the server closed it
        kind = errors.INCOMPLETE if self.got_bytes else errors.CONNECT
        self.fail(kind, f"connection closed by the server ({exc or 'EOF'})")

    def data_received(self, data: bytes) -> None:
        t = self._clock()
        if self.finished:
            if data.strip(b"\r\n"):
                # Bytes nobody asked for (a late CRLF of the last chunked body is harmless):
                # whatever the server is doing, a next response could not be parsed here.
                self.keep_alive = False
            return
        pieces: list[bytes] = self.pieces  # type: ignore[assignment]
        self.last_ns = t
        n = len(pieces)
        if self.in_head:
            self._feed_head(data, n)
        else:
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._parse_failed(exc, data, n, in_head=False)
        # Every body byte of this read gets the same arrival time, so the read's slices are
        # joined and stored as one piece with one time.
        added = len(pieces) - n
        if added:
            if added > 1:
                pieces[n:] = [b"".join(pieces[n:])]
            self.times.append(t)  # type: ignore[union-attr]

    def _feed_head(self, data: bytes, n: int) -> None:
        if not self.got_bytes:
            self.got_bytes = bool(data.strip(b"\r\n"))  # a late CRLF of the previous response
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parse_failed(exc, data, n, in_head=True)
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.fail(errors.INCOMPLETE, f"response head larger than {MAX_HEAD_BYTES} bytes")

    # llhttp callbacks (httptools looks them up by name when the parser is made) ----------
    def on_message_begin(self) -> None:
        if self.finished:
            raise _AfterResponse  # bytes after this request's response: stop parsing them

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self.interim = True  # 100 Continue, 103 Early Hints: the final response follows
            return
        self.status = status
        self.in_head = False

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            self.headers = []
            return
        self.keep_alive = self._parser.should_keep_alive()
        self.completed_ns = self._clock()
        self._finish()

    # -------------------------------------------------------------------------------------
    def _parse_failed(self, exc: Exception, data: bytes, n: int, in_head: bool) -> None:
        self.keep_alive = False
        if self.finished:
            return  # garbage after a complete response: the response stands, the socket goes
        if isinstance(exc, httptools.HttpParserUpgrade) or self._parser.get_status_code() == 101:
            reason = "the server switched protocols (101)"
        else:
            reason = str(exc) or type(exc).__name__
        spot = _where(data, self.pieces[n:] if self.pieces else [], in_head and not self.in_head)
        self.fail(errors.INCOMPLETE, f"malformed response: {reason} at {spot!r}")

    def _until_close(self) -> bool:
        """Whether this response's body ends when the connection does (no length, not chunked)."""
        if self.status in (204, 304):
            return False
        for name, _ in self.headers:
            if name.lower() in (b"content-length", b"transfer-encoding"):
                return False
        return True

    def fail(self, kind: str, detail: str) -> None:
        """End the current request as an error (the connection is not reused)."""
        if self.finished:
            return
        self.error_kind = kind
        self.error = detail
        self.keep_alive = False
        self._finish()

    def _finish(self) -> None:
        self.finished = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class RawStreamClient:
    """StreamClient over `_Conn`s, pooled per client (one target host)."""

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
        self._idle: deque[_Conn] = deque()
        self._active: set[_Conn] = set()
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

    async def _connect(self, timeout_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Conn(self._clock, self._early_close),
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            ),
            timeout_s,
        )
        return conn

    def _pooled(self) -> _Conn | None:
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
        clock = self._clock
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
            record.sent_ns = clock()
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
            if conn.error_kind is not None:
                self._discard(conn)
                if errors.should_resend(
                    conn.error_kind, reused=reused, got_response=conn.got_bytes, attempt=attempt
                ):
                    self.retries += 1
                    continue
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
                    conn._idle()
                    self._idle.append(conn)
                else:
                    self._discard(conn, graceful=True)
            record.closed_ns = clock()
            record.http_status = conn.status or None
            return

    async def _fresh(self, record: RequestRecord, deadline: float | None) -> _Conn | None:
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

    def _discard(self, conn: _Conn, graceful: bool = False) -> None:
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


def _expire(conn: _Conn, done: asyncio.Future[None], total_s: float) -> None:
    """The total deadline of the request `done` belongs to (the connection may serve another
    request by now)."""
    if conn.done is done:
        conn.fail(errors.TIMEOUT, f"timeout: total deadline of {total_s:g} s exceeded")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _where(data: bytes, body: list[bytes], head_ended: bool) -> bytes:
    """The line of a read where llhttp stopped (it does not say): after this read's last
    body slice, else after the head, else the read's start. For an error message only."""
    pos = data.find(b"\r\n\r\n") + 4 if head_ended else 0
    for piece in body:
        found = data.find(piece, pos)
        if found >= 0:
            pos = found + len(piece)
    return data[pos:].lstrip(b"\r\n").split(b"\r\n", 1)[0][:60]
