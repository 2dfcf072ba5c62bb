"""A deliberately misbehaving HTTP server on loopback, for what a good server never shows:
errors, garbage, broken and stalled streams, sockets closed behind keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

TOKEN = b'data: {"choices":[{"index":0,"text":" w","finish_reason":null}]}\n\n'


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _usage(n: int) -> bytes:
    return (
        b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (n, n + 3)
    )


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b"{}"
    return head, orjson.loads(body)


class FaultyServer:
    """Behaviour chosen per server: `mode` names one of the handlers below."""

    def __init__(self, mode: str, tokens: int = 5) -> None:
        self.mode = mode
        self.tokens = tokens
        self.requests = 0
        self.connections = 0
        self.heads: list[bytes] = []  # every request's head, as received
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head, _ = await _read_request(reader)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                self.requests += 1
                self.heads.append(head)
                keep = await getattr(self, "_" + self.mode)(writer)
                await writer.drain()
                if not keep:
                    return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _stream_head(self, extra: bytes = b"") -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n" + extra + b"\r\n"
        )

    async def _ok(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head())
        for _ in range(self.tokens):
            w.write(_chunk(TOKEN))
        w.write(_chunk(_usage(self.tokens) + b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return True

    async def _no_usage(self, w: asyncio.StreamWriter) -> bool:
        """A server that streams but never reports usage (TGI's chat route, some proxies)."""
        w.write(self._stream_head())
        for _ in range(self.tokens):
            w.write(_chunk(TOKEN))
        w.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return True

    async def _close_after_stream(self, w: asyncio.StreamWriter) -> bool:
        """llama.cpp: a complete stream, keep-alive advertised, then the socket is closed."""
        await self._ok(w)
        return False

    async def _late_crlf_then_close(self, w: asyncio.StreamWriter) -> bool:
        """The last CRLF of the chunked body arrives on its own, then the socket closes."""
        w.write(self._stream_head())
        for _ in range(self.tokens):
            w.write(_chunk(TOKEN))
        w.write(_chunk(_usage(self.tokens) + b"data: [DONE]\n\n") + b"0\r\n")
        await w.drain()
        await asyncio.sleep(0.002)
        w.write(b"\r\n")
        await w.drain()
        await asyncio.sleep(0.002)
        return False

    async def _split_events(self, w: asyncio.StreamWriter) -> bool:
        """Events split across chunks and several events in one chunk."""
        w.write(self._stream_head())
        body = TOKEN * self.tokens + _usage(self.tokens) + b"data: [DONE]\n\n"
        for i in range(0, len(body), 7):
            w.write(_chunk(body[i : i + 7]))
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    async def _status_500(self, w: asyncio.StreamWriter) -> bool:
        body = b'{"error":{"message":"boom"}}'
        w.write(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        return True

    async def _status_429(self, w: asyncio.StreamWriter) -> bool:
        body = b'{"error":{"message":"slow down"}}'
        w.write(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    async def _not_streaming(self, w: asyncio.StreamWriter) -> bool:
        body = b'{"choices":[{"text":"hello"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    async def _garbage(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head())
        w.write(_chunk(b"data: {not json\n\n") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return True

    async def _reset_mid_stream(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head())
        for _ in range(self.tokens):
            w.write(_chunk(TOKEN))
        await w.drain()
        w.transport.abort()
        return False

    async def _stall(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head() + _chunk(TOKEN))
        await w.drain()
        await asyncio.sleep(30)
        return False

    async def _error_event(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head())
        w.write(_chunk(TOKEN) + _chunk(b'data: {"error":{"message":"kv cache full"}}\n\n'))
        w.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return True

    # Hostile framing and statuses ---------------------------------------------------------
    async def _negative_chunk(self, w: asyncio.StreamWriter) -> bool:
        """A chunk size line of "-6" after one good chunk; the socket then stays open."""
        w.write(self._stream_head() + _chunk(TOKEN))
        await w.drain()
        w.write(b"-6\r\nhello!\r\n")
        await w.drain()
        await asyncio.sleep(30)
        return False

    async def _bad_hex_chunk(self, w: asyncio.StreamWriter) -> bool:
        w.write(self._stream_head() + _chunk(TOKEN))
        await w.drain()
        w.write(b"zz\r\n" + TOKEN + b"\r\n")
        await w.drain()
        await asyncio.sleep(30)
        return False

    async def _continue_then_ok(self, w: asyncio.StreamWriter) -> bool:
        """100 Continue and 103 Early Hints before a good stream."""
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await w.drain()
        w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        await w.drain()
        return await self._ok(w)

    async def _redirect(self, w: asyncio.StreamWriter) -> bool:
        body = b"moved"
        w.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://user:secret@elsewhere.test/v1/completions"
            b"?token=abc\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    async def _continue_then_redirect(self, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await w.drain()
        return await self._redirect(w)

    async def _http10_until_close(self, w: asyncio.StreamWriter) -> bool:
        """HTTP/1.0, no length: the body ends when the connection does."""
        w.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for _ in range(self.tokens):
            w.write(TOKEN)
            await w.drain()
        w.write(_usage(self.tokens) + b"data: [DONE]\n\n")
        return False

    async def _short_body(self, w: asyncio.StreamWriter) -> bool:
        """Content-Length promises more than is sent before the close."""
        body = TOKEN * self.tokens
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body) + 100, body)
        )
        return False

    async def _long_body(self, w: asyncio.StreamWriter) -> bool:
        """Content-Length covers only the tokens; the usage and [DONE] follow it, unframed."""
        body = TOKEN * self.tokens
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        w.write(_usage(self.tokens) + b"data: [DONE]\n\n")
        return True

    async def _not_http(self, w: asyncio.StreamWriter) -> bool:
        w.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await w.drain()
        await asyncio.sleep(30)
        return False

    async def _huge_head(self, w: asyncio.StreamWriter) -> bool:
        """Header lines without end: a client must refuse them, not buffer them forever."""
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(400):  # 400 x 1 KiB: more than any client's head limit
            w.write(b"X-Filler-%d: %s\r\n" % (i, b"f" * 1000))
            await w.drain()
        await asyncio.sleep(30)
        return False

    async def _trickle(self, w: asyncio.StreamWriter) -> bool:
        """One body byte every 0.5 s: never silent long enough for a silence timeout."""
        w.write(self._stream_head())
        for _ in range(120):
            w.write(_chunk(b":"))  # an SSE comment byte: data, but no event
            await w.drain()
            await asyncio.sleep(0.5)
        return False


@contextlib.asynccontextmanager
async def faulty_server(mode: str, tokens: int = 5) -> AsyncIterator[FaultyServer]:
    server = FaultyServer(mode, tokens)
    server._server = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server._server.wait_closed(), 1)
