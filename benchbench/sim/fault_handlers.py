"""The fault handlers of `bench sim --faults`: each answers one request the way a real server
or proxy goes wrong on the wire (benchbench.sim.faults names them and says what a correct
client records)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from benchbench.sim.fault_wire import HOLD_MAX_S, FaultRequest, Reply, chunk

MAX_TOKENS = 1024  # a valid answer carries max_tokens tokens, at most this many
STALLED_TOKENS = 3  # tokens sent before a mid-stream fault strikes
TRICKLE_GAP_S = 0.5
GIANT_EVENT_BYTES = 4 * 1024 * 1024
OVERSIZED_HEAD_BYTES = 256 * 1024

Respond = Callable[[Reply], Awaitable[bool]]  # returns whether the connection may be reused


# connection-level faults ----------------------------------------------------------------


async def ok(r: Reply) -> bool:
    await r.send(r.valid_response())
    return True


async def reset_before_response(r: Reply) -> bool:
    r.reset()
    return False


async def close_before_response(r: Reply) -> bool:
    return False


async def close_after_headers(r: Reply) -> bool:
    await r.send(r.head())
    return False


async def reset_mid_stream(r: Reply) -> bool:
    objs = r.event_objects(STALLED_TOKENS, finish=False)
    await r.send(r.head() + b"".join(map(chunk, r.events(objs, done=False))))
    r.reset()
    return False


async def keepalive_lie(r: Reply) -> bool:
    # llama-server: keep-alive advertised, the socket closed right after every answer.
    await r.send(r.valid_response((("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"))))
    return False


# timing faults ---------------------------------------------------------------------------


async def stall_before_response(r: Reply) -> bool:
    await r.hold()
    return False


async def stall_after_headers(r: Reply) -> bool:
    await r.send(r.head())
    await r.hold()
    return False


async def stall_mid_stream(r: Reply) -> bool:
    objs = r.event_objects(STALLED_TOKENS, finish=False)
    await r.send(r.head() + b"".join(map(chunk, r.events(objs, done=False))))
    await r.hold()
    return False


async def trickle(r: Reply) -> bool:
    await r.send(r.head())
    # Chunk-framed token events repeated without end: every byte is valid, none is last.
    events = b"".join(map(chunk, r.events(r.event_objects(8, finish=False), done=False)))
    for i in range(int(HOLD_MAX_S / TRICKLE_GAP_S)):
        if r.gone:
            break
        at = i % len(events)
        await r.send(events[at : at + 1])
        await asyncio.sleep(TRICKLE_GAP_S)
    return False


async def slow_head(r: Reply) -> bool:
    head, body = r.valid_parts()
    await r.dribble(head, 8, 0.02)
    await r.send(body)
    return True


async def trickle_head(r: Reply) -> bool:
    line = b"HTTP/1.1 200 OK\r\nX-Slow: "
    await r.send(line)
    for _ in range(int(HOLD_MAX_S / TRICKLE_GAP_S)):
        if r.gone:
            break
        await r.send(b"a")
        await asyncio.sleep(TRICKLE_GAP_S)
    return False


# framing faults --------------------------------------------------------------------------


def bad_size_line(size_line: bytes) -> Respond:
    async def respond(r: Reply) -> bool:
        first = r.events(r.event_objects(1, finish=False), done=False)[0]
        await r.send(r.head() + size_line + b"\r\n" + first + b"\r\n")
        await r.hold()  # the client must see the error itself, not wait for a close
        return False

    return respond


async def chunk_overrun(r: Reply) -> bool:
    first = r.events(r.event_objects(1, finish=False), done=False)[0]
    await r.send(r.head() + b"%x\r\n" % (len(first) + 4096) + first)
    return False


async def short_content_length(r: Reply) -> bool:
    body = r.valid_body()
    await r.send(r.head(chunked=False, length=len(body) + 1000) + body)
    return False


async def conflicting_content_length(r: Reply) -> bool:
    body = r.valid_body()
    extra = (("Content-Length", str(len(body) + 10)),)
    await r.send(r.head(headers=extra, chunked=False, length=len(body)) + body)
    return False


async def duplicate_content_length(r: Reply) -> bool:
    body = r.valid_body()
    extra = (("Content-Length", str(len(body))),)
    await r.send(r.head(headers=extra, chunked=False, length=len(body)) + body)
    return False


async def length_and_chunked(r: Reply) -> bool:
    # A client that honours the (wrong) Content-Length gets a few bytes of chunk framing.
    framed = b"".join(map(chunk, r.events(r.event_objects())))
    await r.send(r.head(length=5) + framed + b"0\r\n\r\n")
    return False  # RFC 9112 6.3: the client must close after such a response


async def one_byte_chunks(r: Reply) -> bool:
    body = r.valid_body()
    await r.send(r.head() + b"".join(chunk(body[i : i + 1]) for i in range(len(body))))
    await r.send(b"0\r\n\r\n")
    return True


async def chunk_extensions_trailers(r: Reply) -> bool:
    out = [r.head(headers=(("Trailer", "X-Checksum"),))]
    for event in r.events(r.event_objects()):
        out.append(b"%x;name=value\r\n%b\r\n" % (len(event), event))
    out.append(b"0;last\r\nX-Checksum: 42\r\n\r\n")
    await r.send(b"".join(out))
    return True


async def http10_close_delimited(r: Reply) -> bool:
    await r.send(r.head(version="HTTP/1.0", chunked=False) + r.valid_body())
    return False


# status and head faults ------------------------------------------------------------------


async def garbage_status_line(r: Reply) -> bool:
    await r.send(b"HTTP/1.1 two-hundred OK\r\nContent-Type: text/event-stream\r\n\r\n")
    return False


async def oversized_head(r: Reply) -> bool:
    pad = tuple((f"X-Pad-{i}", "p" * 1000) for i in range(OVERSIZED_HEAD_BYTES // 1000))
    await r.send(b"".join(r.valid_parts(pad)))
    return True


def status_reply(status: int, reason: str, *headers: tuple[str, str]) -> Respond:
    async def respond(r: Reply) -> bool:
        body = orjson.dumps({"error": {"message": f"fault: {reason}", "code": status}})
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers]
        await r.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return True

    return respond


def interim(status: int, reason: str, *headers: tuple[str, str]) -> Respond:
    async def respond(r: Reply) -> bool:
        head = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        await r.send(("\r\n".join(head) + "\r\n\r\n").encode())
        await asyncio.sleep(0.01)  # the final response in a later read
        await r.send(r.valid_response())
        return True

    return respond


async def json_to_stream(r: Reply) -> bool:
    body = orjson.dumps(r.body_object())
    await r.send(r.head(chunked=False, length=len(body), content_type="application/json") + body)
    return True


# SSE and JSON faults ---------------------------------------------------------------------


async def giant_event(r: Reply) -> bool:
    objs = r.event_objects()
    set_content(" " + "x" * GIANT_EVENT_BYTES)(objs[r.first_token], r.req)
    await r.send(r.head())
    for event in r.events(objs):
        for i in range(0, len(event), 65536):
            await r.send(chunk(event[i : i + 65536]))
    await r.send(b"0\r\n\r\n")
    return True


async def invalid_utf8(r: Reply) -> bool:
    pieces = r.events(r.event_objects())
    token = r.first_token
    pieces[token] = pieces[token].replace(b'":" ', b'":" \xff\xfe\xfd', 1)
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def sse_crlf_comments(r: Reply) -> bool:
    out = [b": keep-alive comment\r\n\r\n"]
    for obj in r.event_objects():
        out.append(b"event: message\r\nid: 7\r\ndata:" + orjson.dumps(obj) + b"\r\n\r\n")
    out.append(b"data:[DONE]\r\n\r\n")
    await r.send(r.head() + chunk(b"".join(out)) + b"0\r\n\r\n")
    return True


async def no_tokens(r: Reply) -> bool:
    pieces = r.events(r.event_objects(0))
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def error_mid_stream(r: Reply) -> bool:
    pieces = r.events(r.event_objects(STALLED_TOKENS, finish=False), done=False)
    error = {"error": {"message": "fault: KV cache exhausted", "type": "server_error"}}
    pieces += r.events([error])
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def missing_done(r: Reply) -> bool:
    pieces = r.events(r.event_objects(STALLED_TOKENS, finish=False), done=False)
    await r.send(r.head(headers=(("Connection", "close"),)) + b"".join(map(chunk, pieces)))
    await r.send(b"0\r\n\r\n")
    return False


async def not_json(r: Reply) -> bool:
    pieces = r.events(r.event_objects())
    pieces.insert(1, b"data: {not json\n\n")
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


Mutation = Callable[[dict, FaultRequest], None]


def mutated(mutate: Mutation, usage: bool = False) -> Respond:
    """A valid answer with one JSON object bent: the first token event (or the usage event
    when `usage`) of a stream, or the body of a non-streamed answer."""

    async def respond(r: Reply) -> bool:
        if not r.req.stream:
            obj = r.body_object()
            mutate(obj, r.req)
            body = orjson.dumps(obj)
            await r.send(r.head(chunked=False, length=len(body)) + body)
            return True
        objs = r.event_objects(usage=True if usage else None)
        mutate(objs[-1] if usage else objs[r.first_token], r.req)
        await r.send(r.head() + b"".join(map(chunk, r.events(objs))) + b"0\r\n\r\n")
        return True

    return respond


def set_choices(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["choices"] = value

    return mutate


def set_message(chat_value: Any, text_value: Any) -> Mutation:
    """delta (streamed chat) / message (chat body) / text (completions) of the wrong type."""

    def mutate(obj: dict, req: FaultRequest) -> None:
        choice = obj["choices"][0]
        if req.chat:
            choice["delta" if req.stream else "message"] = chat_value
        else:
            choice["text"] = text_value

    return mutate


def set_content(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        choice = obj["choices"][0]
        if req.chat:
            choice["delta" if req.stream else "message"]["content"] = value
        else:
            choice["text"] = value

    return mutate


def set_usage(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["usage"] = value

    return mutate


def set_completion_tokens(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["usage"]["completion_tokens"] = value

    return mutate
