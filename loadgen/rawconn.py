"""One HTTP/1.1 connection of the raw client, as an asyncio.Protocol: a read costs one
`data_received` call that takes one timestamp, hands the bytes to llhttp (httptools) and
appends the read's body bytes and its time to the request's two lists; the request's future
is resolved once, when the response is complete or has failed (loadgen.errors kinds)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

from loadgen import errors
from loadgen.httpcommon import EARLY_CLOSE_NS

Clock = Callable[[], int]

# A response head (status line and headers, interim responses included) larger than this is
# refused: llhttp bounds neither, and httptools buffers a header until it is complete.
MAX_HEAD_BYTES = 65536


class _AfterResponse(Exception):
    """Raised inside a parser callback to stop parsing bytes that follow a complete response."""


class Connection(asyncio.Protocol):
    """One connection; serves one request at a time. Between requests `pieces` is None and
    bytes that arrive are not parsed."""

    __slots__ = (
        "_clock",
        "_on_early_close",
        "_parser",
        "_body",
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
        # One llhttp parser for the connection's life: it reads the keep-alive responses one
        # after another (making one per request cost ~0.6 us each). A connection whose parser
        # failed, or that was cut mid-response, is never reused.
        # llhttp calls on_body with each body slice: appending it to this list costs no Python
        # frame per chunk (the attribute is read when the parser is made); each read's slices
        # then go to the request's list as one piece.
        self._body: list[bytes] = []
        self.on_body = self._body.append
        self._parser = httptools.HttpResponseParser(self)
        self.idle()

    def idle(self) -> None:
        """Between requests: bytes that arrive are not parsed."""
        self.pieces: list[bytes] | None = None
        self.times: list[int] | None = None
        self.done: asyncio.Future[None] | None = None
        self.finished = True

    def start(self, pieces: list[bytes], times: list[int], done: asyncio.Future[None]) -> None:
        """Get ready for the response to a request about to be written."""
        self.pieces = pieces
        self.times = times
        self.done = done
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
        self.last_ns = t
        if self.in_head:
            self._feed_head(data)
        else:
            try:
                self._parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._parse_failed(exc, data, in_head=False)
        # Every body byte of this read gets the same arrival time, so the read's slices are
        # joined and stored as one piece with one time.
        body = self._body
        if body:
            piece = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
            self.pieces.append(piece)  # type: ignore[union-attr]
            self.times.append(t)  # type: ignore[union-attr]

    def _feed_head(self, data: bytes) -> None:
        if not self.got_bytes:
            self.got_bytes = bool(data.strip(b"\r\n"))  # a late CRLF of the previous response
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parse_failed(exc, data, in_head=True)
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
    def _parse_failed(self, exc: Exception, data: bytes, in_head: bool) -> None:
        self.keep_alive = False
        if self.finished:
            return  # garbage after a complete response: the response stands, the socket goes
        if isinstance(exc, httptools.HttpParserUpgrade) or self._parser.get_status_code() == 101:
            reason = "the server switched protocols (101)"
        else:
            reason = str(exc) or type(exc).__name__
        spot = _where(data, list(self._body), in_head and not self.in_head)
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


def _where(data: bytes, body: list[bytes], head_ended: bool) -> bytes:
    """The line of a read where llhttp stopped (it does not say): after this read's last
    body slice, else after the head, else the read's start. For an error message only."""
    pos = data.find(b"\r\n\r\n") + 4 if head_ended else 0
    for piece in body:
        found = data.find(piece, pos)
        if found >= 0:
            pos = found + len(piece)
    return data[pos:].lstrip(b"\r\n").split(b"\r\n", 1)[0][:60]
