"""The bytes of `bench sim --faults`: a valid OpenAI answer built piece by piece, so each fault
in faults.py can send some of it, slowly, twice, or bent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from benchbench.sim.tokenizer import VOCABULARY

HOLD_MAX_S = 600.0  # a stalled connection is released after this long at the latest


@dataclass(frozen=True, slots=True)
class FaultRequest:
    """What a fault needs to know about the generation request it spoils."""

    chat: bool
    stream: bool
    max_tokens: int
    include_usage: bool
    prompt_tokens: int


class Reply:
    """One generation request and the socket to answer it on, with the byte builders a fault
    needs: a valid answer is built here, and each fault sends some of it, or bends it."""

    def __init__(
        self,
        req: FaultRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        model: str,
        number: int,
    ) -> None:
        self.req = req
        self.reader = reader
        self.writer = writer
        self._model = model
        self._id = f"{'chatcmpl' if req.chat else 'cmpl'}-fault-{number}"
        self._created = int(time.time())

    # the valid answer -------------------------------------------------------------------
    @property
    def first_token(self) -> int:
        """Index of the first token event in `event_objects()` (chat opens with a role)."""
        return 1 if self.req.chat else 0

    def event_objects(
        self, tokens: int | None = None, finish: bool = True, usage: bool | None = None
    ) -> list[dict]:
        """The JSON objects of a valid stream: role (chat), tokens, finish, and usage when
        `usage` (default: when the request asked for it)."""
        req = self.req
        n = req.max_tokens if tokens is None else tokens
        kind = "chat.completion.chunk" if req.chat else "text_completion"

        def event(choice: dict[str, Any], **more: Any) -> dict:
            base = {"id": self._id, "object": kind, "created": self._created}
            return {**base, "model": self._model, "choices": [choice], **more}

        out = []
        if req.chat:
            out.append(event({"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}))
        for i in range(n):
            word = " " + VOCABULARY[i % len(VOCABULARY)]
            piece = {"delta": {"content": word}} if req.chat else {"text": word}
            out.append(event({"index": 0, **piece, "finish_reason": None}))
        if finish:
            end = {"delta": {}} if req.chat else {"text": ""}
            out.append(event({"index": 0, **end, "finish_reason": "length"}))
            if req.include_usage if usage is None else usage:
                last = event({"index": 0}, usage=self.usage(n))
                last["choices"] = []
                out.append(last)
        return out

    def usage(self, completion_tokens: int) -> dict[str, int]:
        p = self.req.prompt_tokens
        return {
            "prompt_tokens": p,
            "completion_tokens": completion_tokens,
            "total_tokens": p + completion_tokens,
        }

    def body_object(self) -> dict:
        """The one JSON object of a valid non-streamed answer."""
        req, n = self.req, self.req.max_tokens
        text = "".join(" " + VOCABULARY[i % len(VOCABULARY)] for i in range(n))
        if req.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        return {
            "id": self._id,
            "object": "chat.completion" if req.chat else "text_completion",
            "created": self._created,
            "model": self._model,
            "choices": [{**choice, "finish_reason": "length"}],
            "usage": self.usage(n),
        }

    def events(self, objects: list[dict], done: bool = True) -> list[bytes]:
        """Each SSE event as bytes ("data: {...}\\n\\n"), with [DONE] last when `done`."""
        out = [b"data: " + orjson.dumps(o) + b"\n\n" for o in objects]
        return out + [b"data: [DONE]\n\n"] if done else out

    def valid_body(self) -> bytes:
        """The unframed body of a valid answer (SSE for a stream, else one JSON object)."""
        if self.req.stream:
            return b"".join(self.events(self.event_objects()))
        return orjson.dumps(self.body_object())

    def head(
        self,
        headers: tuple[tuple[str, str], ...] = (),
        version: str = "HTTP/1.1",
        chunked: bool = True,
        length: int | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """A 200 head: chunked by default, the content type of a valid answer."""
        if content_type is None:
            content_type = "text/event-stream" if self.req.stream else "application/json"
        lines = [f"{version} 200 OK", f"Content-Type: {content_type}"]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def valid_parts(self, headers: tuple[tuple[str, str], ...] = ()) -> tuple[bytes, bytes]:
        """(head, framed body) of a valid answer: chunked, one event per chunk, for a
        stream; a sized JSON body otherwise."""
        if self.req.stream:
            pieces = self.events(self.event_objects())
            return self.head(headers), b"".join(map(chunk, pieces)) + b"0\r\n\r\n"
        body = self.valid_body()
        return self.head(headers, chunked=False, length=len(body)), body

    def valid_response(self, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
        return b"".join(self.valid_parts(headers))

    # writing ----------------------------------------------------------------------------
    @property
    def gone(self) -> bool:
        """The client closed or reset the connection."""
        return self.writer.is_closing() or self.reader.at_eof()

    async def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)
            await self.writer.drain()

    async def dribble(self, data: bytes, piece: int, gap_s: float) -> None:
        """Send `data` `piece` bytes at a time, `gap_s` apart."""
        for i in range(0, len(data), piece):
            if self.gone:
                return
            await self.send(data[i : i + piece])
            await asyncio.sleep(gap_s)

    async def hold(self) -> None:
        """Send nothing more until the client leaves (HOLD_MAX_S at most)."""
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(self.reader.read(), HOLD_MAX_S)

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0 via abort), not a FIN."""
        self.writer.transport.abort()


def chunk(data: bytes) -> bytes:
    """Frame `data` as one HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)
