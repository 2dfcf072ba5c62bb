"""A minimal HTTP/1.1 server protocol on raw asyncio, just enough for the simulator.

Why not aiohttp.web: the engine writes each SSE event straight to the socket
transport (one synchronous `transport.write` per event, no coroutine hop per token),
which the fast-mode benchmark needs so the server outruns the client it measures.

Supports: keep-alive and pipelining (requests handled one at a time per
connection), Content-Length bodies, `Expect: 100-continue`, chunked responses for
streams. Not supported (answered with an error): chunked request bodies.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


def reason(status: int) -> str:
    return _REASONS.get(status, "Error")


class HttpConnection(asyncio.Protocol):
    """One client connection. `handler(request, connection)` must eventually call
    `respond` once, or `start_stream` ... `end_stream`; the next pipelined request
    is parsed only after that."""

    def __init__(self, handler: Callable[[HttpRequest, HttpConnection], None]) -> None:
        self._handler = handler
        self._buffer = bytearray()
        self._busy = False
        self._keep_alive = True
        self._sent_continue = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        # Set by whoever owns the in-flight request; called on disconnect / writable again.
        self.on_lost: Callable[[], None] | None = None
        self.on_resume: Callable[[], None] | None = None
        self.on_close: Callable[[HttpConnection], None] | None = None

    # asyncio.Protocol callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Each event must leave now, not when Nagle decides.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._parse_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_lost is not None:
            self.on_lost()
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.on_resume is not None:
            self.on_resume()

    # responses ------------------------------------------------------------------

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Send one complete response and move on to the next request."""
        head = [f"HTTP/1.1 {status} {reason(status)}", f"Content-Type: {content_type}"]
        head.append(f"Content-Length: {len(body)}")
        head.extend(f"{name}: {value}" for name, value in extra_headers)
        if not self._keep_alive:
            head.append("Connection: close")
        self._write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self._finish()

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        """Send the head of a chunked 200 response; follow with `write_raw` of
        chunk-framed bytes (see `chunk`) and finally `end_stream`."""
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
        )
        if not self._keep_alive:
            head += "Connection: close\r\n"
        self._write((head + "\r\n").encode())

    def write_raw(self, data: bytes) -> None:
        """Write already-framed bytes (the hot path: one call per streamed event)."""
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")
        self._finish()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # internals ------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def _finish(self) -> None:
        self._busy = False
        self.on_lost = None
        self.on_resume = None
        if not self._keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if self._buffer and not self.closed:
            # Not recursively: a pipelining client must not grow our stack.
            asyncio.get_running_loop().call_soon(self._parse_next_if_idle)

    def _parse_next_if_idle(self) -> None:
        if not self._busy and not self.closed:
            self._parse_next()

    def _fail(self, status: int, message: str) -> None:
        self._busy = True
        self._keep_alive = False
        body = b'{"error":{"message":"%s","type":"invalid_request_error","code":%d}}' % (
            message.encode(),
            status,
        )
        self.respond(status, body)

    def _parse_next(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                self._fail(431, "request headers too large")
            return
        try:
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._fail(400, "malformed HTTP request")
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._fail(411, "chunked request bodies are not supported; send Content-Length")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self._fail(413, "request body too large")
            return
        body_start = end + 4
        if len(self._buffer) < body_start + length:
            if headers.get("expect", "").lower() == "100-continue" and not self._sent_continue:
                self._sent_continue = True
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        body = bytes(self._buffer[body_start : body_start + length])
        del self._buffer[: body_start + length]
        self._sent_continue = False
        connection = headers.get("connection", "").lower()
        self._keep_alive = connection != "close" and (
            version == "HTTP/1.1" or connection == "keep-alive"
        )
        self._busy = True
        self._handler(HttpRequest(method, target, headers, body), self)


def chunk(data: bytes) -> bytes:
    """Frame `data` as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)
