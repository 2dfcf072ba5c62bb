"""A minimal HTTP/1.1 client on asyncio.Protocol, for the streaming hot path.

Why not only httpx: every streamed piece through httpx wakes a coroutine and climbs several
async-iterator layers; here a piece costs one `data_received` call that timestamps it and
appends it to two lists, and the request's coroutine wakes once, when the response is
complete. benchmarks/client_overhead.py measures both side by side.

Scope: plain HTTP or TLS (no HTTP/2, no proxies, no compression: we never ask for it),
chunked or Content-Length bodies or read-until-close, keep-alive pooling with one retry on a
fresh connection when a pooled one turns out closed before any byte of the response arrived
(llama.cpp closes sockets after each stream while advertising keep-alive)."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from loadgen import errors
from loadgen.client import HttpSettings
from loadgen.spec import RequestRecord

Clock = Callable[[], int]

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _LENGTH, _UNTIL_CLOSE, _DONE = range(7)


class _Conn(asyncio.Protocol):
    __slots__ = (
        "_clock",
        "transport",
        "_state",
        "_buf",
        "_remaining",
        "pieces",
        "times",
        "status",
        "done",
        "keep_alive",
        "error",
        "got_bytes",
        "last_ns",
        "closed",
    )

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reset(None, None, None)

    def _reset(
        self,
        pieces: list[bytes] | None,
        times: list[int] | None,
        done: asyncio.Future[None] | None,
    ) -> None:
        self._state = _HEAD
        self._buf = b""
        self._remaining = 0
        self.pieces = pieces
        self.times = times
        self.done = done
        self.status = 0
        self.keep_alive = True
        self.error: str | None = None
        self.got_bytes = False
        self.last_ns = 0

    # asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == _UNTIL_CLOSE:
            self._finish()
        elif self.done is not None and not self.done.done():
            self.error = f"connection closed by the server ({exc or 'EOF'})"
            self._finish()

    def data_received(self, data: bytes) -> None:
        t = self._clock()
        if self.done is None:  # idle pooled connection: nothing is waiting for bytes
            return
        if not self.got_bytes:
            # The previous response's final CRLF can arrive late; it is not this response.
            data = data.lstrip(b"\r\n")
            if not data:
                return
        self.got_bytes = True
        self.last_ns = t
        state = self._state
        if state == _CHUNK_SIZE and not self._buf:
            # Hot path: a streaming server writes one event per chunk and the read holds
            # exactly that chunk ("<hex>\r\n<event>\r\n").
            i = data.find(b"\r\n", 0, 18)
            if i > 0:
                try:  # a chunk extension (";...") fails here and takes the general path
                    size = int(data[:i], 16)
                except ValueError:
                    size = 0
                if size and len(data) == i + size + 4:
                    self.pieces.append(data[i + 2 : i + 2 + size])  # type: ignore[union-attr]
                    self.times.append(t)  # type: ignore[union-attr]
                    return
        elif state == _CHUNK_DATA and len(data) < self._remaining:
            # A piece wholly inside the current chunk.
            self.pieces.append(data)  # type: ignore[union-attr]
            self.times.append(t)  # type: ignore[union-attr]
            self._remaining -= len(data)
            return
        self._feed(data, t)

    # parsing -----------------------------------------------------------------------------
    def _feed(self, data: bytes, t: int) -> None:
        """Parse one read. Every body byte of this read gets the same arrival time, so the
        payload slices are joined and stored as one piece (one append, not one per chunk)."""
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos, n = 0, len(data)
        out: list[bytes] = []
        try:
            while pos < n:
                state = self._state
                if state == _CHUNK_SIZE:
                    end = data.find(b"\r\n", pos)
                    if end < 0:
                        self._buf = data[pos:]
                        return
                    try:
                        size = int(data[pos:end].split(b";", 1)[0], 16)
                    except ValueError:
                        self.error = f"bad chunk size line {data[pos:end][:40]!r}"
                        self.keep_alive = False
                        self._finish()
                        return
                    pos = end + 2
                    if size == 0:
                        # Trailers (rare) and the final CRLF are dropped; a late CRLF is
                        # skipped by the next response's head parser.
                        self._finish()
                        return
                    if pos + size + 2 <= n:  # the whole chunk is here: the common case
                        out.append(data[pos : pos + size])
                        pos += size + 2
                    else:
                        self._state = _CHUNK_DATA
                        self._remaining = size
                elif state == _CHUNK_DATA:
                    take = min(self._remaining, n - pos)
                    out.append(data[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        self._state = _CHUNK_CRLF
                        self._remaining = 2
                elif state == _CHUNK_CRLF:
                    take = min(self._remaining, n - pos)
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        self._state = _CHUNK_SIZE
                elif state == _LENGTH:
                    take = min(self._remaining, n - pos)
                    out.append(data[pos : pos + take])
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        self._finish()
                        return
                elif state == _UNTIL_CLOSE:
                    out.append(data[pos:])
                    return
                elif state == _HEAD:
                    while data.startswith(b"\r\n", pos):
                        pos += 2
                    end = data.find(b"\r\n\r\n", pos)
                    if end < 0:
                        self._buf = data[pos:]
                        if len(self._buf) > 65536:
                            self.error = "response head larger than 64 KiB"
                            self._finish()
                        return
                    self._head(data[pos:end])
                    pos = end + 4
                    if self._state == _DONE:
                        return
                else:  # _DONE: bytes after a complete response on this connection; ignore
                    return
        finally:
            if out:
                self.pieces.append(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
                self.times.append(t)  # type: ignore[union-attr]

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.error = f"not an HTTP response: {lines[0][:60]!r}"
            self.keep_alive = False
            self._finish()
            return
        chunked = False
        length: int | None = None
        version_11 = parts[0] == b"HTTP/1.1"
        self.keep_alive = version_11
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"connection":
                self.keep_alive = value == b"keep-alive" or (version_11 and value != b"close")
        if chunked:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._state = _LENGTH
            self._remaining = length
            if length == 0:
                self._finish()
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False

    def _finish(self) -> None:
        self._state = _DONE
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
        self._prefix = url.path
        host_header = url.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in settings.headers.items())
        self._head_tmpl = (
            "POST {path} HTTP/1.1\r\nHost: " + host_header + "\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream, application/json\r\n"
            + extra
            + "Content-Length: {length}\r\n\r\n"
        )
        self._settings = settings
        self._clock = clock
        self._idle: deque[_Conn] = deque()
        self._active: set[_Conn] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Conn(self._clock),
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            ),
            self._settings.connect_timeout_s,
        )
        return conn

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        head = self._head_tmpl.format(path=self._prefix + path, length=len(body)).encode()
        clock = self._clock
        for attempt in range(2):
            while self._idle and self._idle[-1].closed:
                self._idle.pop()  # closed by the server while idle
            pooled = bool(self._idle)
            conn: _Conn | None = None
            try:
                conn = self._idle.pop() if pooled else await self._connect()
            except (TimeoutError, OSError) as exc:
                record.error_kind = (
                    errors.CONNECT if not isinstance(exc, asyncio.TimeoutError) else errors.TIMEOUT
                )
                record.error_detail = f"connect to {self._host}:{self._port}: {exc!r}"[:300]
                record.closed_ns = clock()
                return
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            conn._reset(pieces, times, done)
            self._active.add(conn)
            record.sent_ns = clock()
            try:
                assert conn.transport is not None
                conn.transport.write(head + body)
                await done
            except asyncio.CancelledError:
                # Keep what arrived: the runner parses a cancelled stream's tokens too.
                record.http_status = conn.status or None
                self._discard(conn)
                raise
            finally:
                self._active.discard(conn)
            if conn.error is not None and not conn.got_bytes and pooled and attempt == 0:
                self._discard(conn)  # a stale pooled socket: retry on a fresh one
                continue
            record.closed_ns = clock()
            record.http_status = conn.status or None
            if conn.error is not None:
                record.error_kind = (
                    errors.CONNECT
                    if not conn.got_bytes
                    else (errors.TIMEOUT if conn.error.startswith("timeout") else errors.INCOMPLETE)
                )
                record.error_detail = conn.error
                self._discard(conn)
                return
            kind = errors.kind_for_status(conn.status)
            if kind is not None:
                record.error_kind = kind
                detail = b"".join(pieces)[:200].decode("utf-8", "replace")
                record.error_detail = f"HTTP {conn.status}: {detail}"
                pieces.clear()
                times.clear()
            if conn.keep_alive and not conn.closed:
                conn._reset(None, None, None)
                self._idle.append(conn)
            else:
                self._discard(conn)
            return

    def _discard(self, conn: _Conn) -> None:
        if conn.transport is not None and not conn.closed:
            conn.transport.abort()
        conn.closed = True

    async def _sweep(self) -> None:
        """Stalled-stream watchdog: one timer for all connections instead of one per piece."""
        timeout_ns = int(self._settings.read_timeout_s * 1e9)
        while True:
            await asyncio.sleep(min(1.0, self._settings.read_timeout_s / 4))
            now = self._clock()
            for conn in list(self._active):
                last = conn.last_ns or now
                if conn.last_ns == 0:
                    conn.last_ns = now  # starts counting once the request is out
                elif now - last > timeout_ns:
                    conn.error = f"timeout: no data for {self._settings.read_timeout_s:g} s"
                    conn.got_bytes = True
                    conn._finish()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self._idle) + list(self._active):
            self._discard(conn)
        self._idle.clear()
