"""`bench sim --faults`: a hostile OpenAI-compatible server, chosen byte by byte.

Each fault is one way a real server or proxy goes wrong on the wire: a reset, a stall, a
broken chunk size, a lying header, a wrong JSON type. The server is raw asyncio
(StreamReader/StreamWriter) so no HTTP library tidies the bytes up. Everything else is a
valid endpoint: GET /health, GET /v1/models, POST /tokenize (one token per word, like the
simulator) and streamed or plain answers on /v1/chat/completions and /v1/completions, so
`bench run --endpoint http://127.0.0.1:PORT/v1` (or any client) runs against it unchanged.

Every fault names what a correct client records for each request it spoils: "ok" or one of
loadgen.errors' kinds (a few protocol violations allow more than one reading; the first is
the usual one). `bench sim --faults list` prints the catalogue; a spec is a comma list of
names served round-robin ("stall-after-headers,negative-chunk-size"), names with weights
drawn at random from the seed ("ok:9,trickle:1"), or "all".

Faults speak to streamed requests; those marked `body_fault` (wrong JSON types, token counts)
bend non-streamed bodies too, and framing faults frame whichever body was asked for.
fault_wire.py builds the bytes of a valid answer; fault_server.py serves the mix.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from benchbench.sim.fault_wire import HOLD_MAX_S, FaultRequest, Reply, chunk

OK = "ok"
# A response that breaks HTTP framing: bytes came, so the server answered (never "connect");
# clients report it as a response cut short, or as one they could not parse.
PROTOCOL = ("incomplete", "malformed")

MAX_TOKENS = 1024  # a valid answer carries max_tokens tokens, at most this many
STALLED_TOKENS = 3  # tokens sent before a mid-stream fault strikes
TRICKLE_GAP_S = 0.5
GIANT_EVENT_BYTES = 4 * 1024 * 1024
OVERSIZED_HEAD_BYTES = 256 * 1024


class FaultSpecError(ValueError):
    """A --faults spec names an unknown fault or a bad weight."""


Respond = Callable[[Reply], Awaitable[bool]]  # returns whether the connection may be reused


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    description: str  # one line
    # What a correct client records for a request this fault answers: "ok" or an error kind.
    # The first is the usual reading; others are readings the HTTP or SSE specs also allow.
    outcomes: tuple[str, ...]
    respond: Respond = field(repr=False)
    # Also applied to non-streamed (JSON body) answers, with the same outcomes.
    body_fault: bool = False
    # A note a correct client stores with the request (e.g. "malformed_usage").
    note: str | None = None
    # A correct client's error detail names at least one of these (the bad field).
    detail_names: tuple[str, ...] = ()


# connection-level faults ----------------------------------------------------------------


async def _ok(r: Reply) -> bool:
    await r.send(r.valid_response())
    return True


async def _reset_before_response(r: Reply) -> bool:
    r.reset()
    return False


async def _close_before_response(r: Reply) -> bool:
    return False


async def _close_after_headers(r: Reply) -> bool:
    await r.send(r.head())
    return False


async def _reset_mid_stream(r: Reply) -> bool:
    objs = r.event_objects(STALLED_TOKENS, finish=False)
    await r.send(r.head() + b"".join(map(chunk, r.events(objs, done=False))))
    r.reset()
    return False


async def _keepalive_lie(r: Reply) -> bool:
    # llama-server: keep-alive advertised, the socket closed right after every answer.
    await r.send(r.valid_response((("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"))))
    return False


# timing faults ---------------------------------------------------------------------------


async def _stall_before_response(r: Reply) -> bool:
    await r.hold()
    return False


async def _stall_after_headers(r: Reply) -> bool:
    await r.send(r.head())
    await r.hold()
    return False


async def _stall_mid_stream(r: Reply) -> bool:
    objs = r.event_objects(STALLED_TOKENS, finish=False)
    await r.send(r.head() + b"".join(map(chunk, r.events(objs, done=False))))
    await r.hold()
    return False


async def _trickle(r: Reply) -> bool:
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


async def _slow_head(r: Reply) -> bool:
    head, body = r.valid_parts()
    await r.dribble(head, 8, 0.02)
    await r.send(body)
    return True


async def _trickle_head(r: Reply) -> bool:
    line = b"HTTP/1.1 200 OK\r\nX-Slow: "
    await r.send(line)
    for _ in range(int(HOLD_MAX_S / TRICKLE_GAP_S)):
        if r.gone:
            break
        await r.send(b"a")
        await asyncio.sleep(TRICKLE_GAP_S)
    return False


# framing faults --------------------------------------------------------------------------


def _bad_size_line(size_line: bytes) -> Respond:
    async def respond(r: Reply) -> bool:
        first = r.events(r.event_objects(1, finish=False), done=False)[0]
        await r.send(r.head() + size_line + b"\r\n" + first + b"\r\n")
        await r.hold()  # the client must see the error itself, not wait for a close
        return False

    return respond


async def _chunk_overrun(r: Reply) -> bool:
    first = r.events(r.event_objects(1, finish=False), done=False)[0]
    await r.send(r.head() + b"%x\r\n" % (len(first) + 4096) + first)
    return False


async def _short_content_length(r: Reply) -> bool:
    body = r.valid_body()
    await r.send(r.head(chunked=False, length=len(body) + 1000) + body)
    return False


async def _conflicting_content_length(r: Reply) -> bool:
    body = r.valid_body()
    extra = (("Content-Length", str(len(body) + 10)),)
    await r.send(r.head(headers=extra, chunked=False, length=len(body)) + body)
    return False


async def _duplicate_content_length(r: Reply) -> bool:
    body = r.valid_body()
    extra = (("Content-Length", str(len(body))),)
    await r.send(r.head(headers=extra, chunked=False, length=len(body)) + body)
    return False


async def _length_and_chunked(r: Reply) -> bool:
    # A client that honours the (wrong) Content-Length gets a few bytes of chunk framing.
    framed = b"".join(map(chunk, r.events(r.event_objects())))
    await r.send(r.head(length=5) + framed + b"0\r\n\r\n")
    return False  # RFC 9112 6.3: the client must close after such a response


async def _one_byte_chunks(r: Reply) -> bool:
    body = r.valid_body()
    await r.send(r.head() + b"".join(chunk(body[i : i + 1]) for i in range(len(body))))
    await r.send(b"0\r\n\r\n")
    return True


async def _chunk_extensions_trailers(r: Reply) -> bool:
    out = [r.head(headers=(("Trailer", "X-Checksum"),))]
    for event in r.events(r.event_objects()):
        out.append(b"%x;name=value\r\n%b\r\n" % (len(event), event))
    out.append(b"0;last\r\nX-Checksum: 42\r\n\r\n")
    await r.send(b"".join(out))
    return True


async def _http10_close_delimited(r: Reply) -> bool:
    await r.send(r.head(version="HTTP/1.0", chunked=False) + r.valid_body())
    return False


# status and head faults ------------------------------------------------------------------


async def _garbage_status_line(r: Reply) -> bool:
    await r.send(b"HTTP/1.1 two-hundred OK\r\nContent-Type: text/event-stream\r\n\r\n")
    return False


async def _oversized_head(r: Reply) -> bool:
    pad = tuple((f"X-Pad-{i}", "p" * 1000) for i in range(OVERSIZED_HEAD_BYTES // 1000))
    await r.send(b"".join(r.valid_parts(pad)))
    return True


def _status(status: int, reason: str, *headers: tuple[str, str]) -> Respond:
    async def respond(r: Reply) -> bool:
        body = orjson.dumps({"error": {"message": f"fault: {reason}", "code": status}})
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
        head += [f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers]
        await r.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return True

    return respond


def _interim(status: int, reason: str, *headers: tuple[str, str]) -> Respond:
    async def respond(r: Reply) -> bool:
        head = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        await r.send(("\r\n".join(head) + "\r\n\r\n").encode())
        await asyncio.sleep(0.01)  # the final response in a later read
        await r.send(r.valid_response())
        return True

    return respond


async def _json_to_stream(r: Reply) -> bool:
    body = orjson.dumps(r.body_object())
    await r.send(r.head(chunked=False, length=len(body), content_type="application/json") + body)
    return True


# SSE and JSON faults ---------------------------------------------------------------------


async def _giant_event(r: Reply) -> bool:
    objs = r.event_objects()
    _set_content(" " + "x" * GIANT_EVENT_BYTES)(objs[r.first_token], r.req)
    await r.send(r.head())
    for event in r.events(objs):
        for i in range(0, len(event), 65536):
            await r.send(chunk(event[i : i + 65536]))
    await r.send(b"0\r\n\r\n")
    return True


async def _invalid_utf8(r: Reply) -> bool:
    pieces = r.events(r.event_objects())
    token = r.first_token
    pieces[token] = pieces[token].replace(b'":" ', b'":" \xff\xfe\xfd', 1)
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def _sse_crlf_comments(r: Reply) -> bool:
    out = [b": keep-alive comment\r\n\r\n"]
    for obj in r.event_objects():
        out.append(b"event: message\r\nid: 7\r\ndata:" + orjson.dumps(obj) + b"\r\n\r\n")
    out.append(b"data:[DONE]\r\n\r\n")
    await r.send(r.head() + chunk(b"".join(out)) + b"0\r\n\r\n")
    return True


async def _no_tokens(r: Reply) -> bool:
    pieces = r.events(r.event_objects(0))
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def _error_mid_stream(r: Reply) -> bool:
    pieces = r.events(r.event_objects(STALLED_TOKENS, finish=False), done=False)
    error = {"error": {"message": "fault: KV cache exhausted", "type": "server_error"}}
    pieces += r.events([error])
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


async def _missing_done(r: Reply) -> bool:
    pieces = r.events(r.event_objects(STALLED_TOKENS, finish=False), done=False)
    await r.send(r.head(headers=(("Connection", "close"),)) + b"".join(map(chunk, pieces)))
    await r.send(b"0\r\n\r\n")
    return False


async def _not_json(r: Reply) -> bool:
    pieces = r.events(r.event_objects())
    pieces.insert(1, b"data: {not json\n\n")
    await r.send(r.head() + b"".join(map(chunk, pieces)) + b"0\r\n\r\n")
    return True


Mutation = Callable[[dict, FaultRequest], None]


def _mutated(mutate: Mutation, usage: bool = False) -> Respond:
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


def _set_choices(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["choices"] = value

    return mutate


def _set_message(chat_value: Any, text_value: Any) -> Mutation:
    """delta (streamed chat) / message (chat body) / text (completions) of the wrong type."""

    def mutate(obj: dict, req: FaultRequest) -> None:
        choice = obj["choices"][0]
        if req.chat:
            choice["delta" if req.stream else "message"] = chat_value
        else:
            choice["text"] = text_value

    return mutate


def _set_content(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        choice = obj["choices"][0]
        if req.chat:
            choice["delta" if req.stream else "message"]["content"] = value
        else:
            choice["text"] = value

    return mutate


def _set_usage(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["usage"] = value

    return mutate


def _set_completion_tokens(value: Any) -> Mutation:
    def mutate(obj: dict, req: FaultRequest) -> None:
        obj["usage"]["completion_tokens"] = value

    return mutate


_MALFORMED = ("malformed",)
_NOTE = "malformed_usage"
_N = STALLED_TOKENS

# One fault per entry: name, description (one line), outcomes, respond.
# fmt: off
_CATALOGUE = [
    Fault("ok", "no fault: a valid answer (to mix in, e.g. ok:9,trickle:1)", (OK,), _ok),
    # connection
    Fault("reset-before-response", "reads the request, then resets (RST) without a byte",
          ("connect",), _reset_before_response),
    Fault("close-before-response", "reads the request, then closes (FIN) without a byte",
          ("connect",), _close_before_response),
    Fault("close-after-headers", "sends a 200 chunked head, then closes",
          ("incomplete",), _close_after_headers),
    Fault("reset-mid-stream", f"sends {_N} tokens, then resets the connection",
          ("incomplete",), _reset_mid_stream),
    Fault("keepalive-lie", "a valid answer advertising keep-alive, then closes (llama-server)",
          (OK,), _keepalive_lie),
    # timing
    Fault("stall-before-response", "reads the request, then sends nothing ever",
          ("timeout",), _stall_before_response),
    Fault("stall-after-headers", "sends the 200 head, then nothing ever again",
          ("timeout",), _stall_after_headers),
    Fault("stall-mid-stream", f"sends {_N} tokens, then nothing ever again",
          ("timeout",), _stall_mid_stream),
    Fault("trickle", f"a valid endless stream, one byte every {TRICKLE_GAP_S:g} s "
          "(only a total deadline ends it)", ("timeout",), _trickle),
    Fault("slow-head", "the head dribbled 8 bytes per 20 ms, then a valid answer",
          (OK,), _slow_head),
    Fault("trickle-head", f"an endless head, one byte every {TRICKLE_GAP_S:g} s",
          ("timeout",), _trickle_head),
    # framing
    Fault("negative-chunk-size", "a chunk size line of -6, then silence",
          PROTOCOL, _bad_size_line(b"-6")),
    Fault("non-hex-chunk-size", "a chunk size line of 'zz', then silence",
          PROTOCOL, _bad_size_line(b"zz")),
    Fault("chunk-overrun", "a chunk size 4 KiB larger than the data sent, then closes",
          ("incomplete",), _chunk_overrun),
    Fault("short-content-length", "Content-Length 1000 bytes more than the body, then closes",
          ("incomplete",), _short_content_length),
    Fault("conflicting-content-length", "two Content-Length headers with different values",
          PROTOCOL, _conflicting_content_length),
    Fault("duplicate-content-length", "the same Content-Length twice (RFC 9110: may be one)",
          (OK, *PROTOCOL), _duplicate_content_length),
    Fault("content-length-and-chunked", "Content-Length: 5 and Transfer-Encoding: chunked",
          (OK, *PROTOCOL), _length_and_chunked),
    Fault("one-byte-chunks", "a valid stream framed one body byte per chunk",
          (OK,), _one_byte_chunks),
    Fault("chunk-extensions-trailers", "a valid stream with chunk extensions and a trailer",
          (OK,), _chunk_extensions_trailers),
    Fault("http10-close-delimited", "an HTTP/1.0 answer with no length, ended by closing",
          (OK,), _http10_close_delimited),
    # status and head
    Fault("garbage-status-line", "the status line 'HTTP/1.1 two-hundred OK'",
          PROTOCOL, _garbage_status_line),
    Fault("oversized-head", f"a {OVERSIZED_HEAD_BYTES // 1024} KiB head, then a valid answer",
          (OK, *PROTOCOL), _oversized_head),
    Fault("http-500", "HTTP 500 with a JSON error",
          ("http_5xx",), _status(500, "Internal Server Error")),
    Fault("http-429", "HTTP 429 with Retry-After: 1",
          ("rate_limited",), _status(429, "Too Many Requests", ("Retry-After", "1"))),
    Fault("http-401", "HTTP 401 Unauthorized",
          ("auth",), _status(401, "Unauthorized")),
    Fault("status-999", "a final status outside 100..599 (HTTP 999)",
          ("http_5xx",), _status(999, "Whatever")),
    Fault("redirect-302", "HTTP 302 to another path",
          ("redirect",), _status(302, "Found", ("Location", "/elsewhere/v1/completions"))),
    Fault("continue-100", "an interim 100 Continue, then a valid answer",
          (OK,), _interim(100, "Continue")),
    Fault("early-hints-103", "an interim 103 Early Hints, then a valid answer",
          (OK,), _interim(103, "Early Hints", ("Link", "</style.css>; rel=preload"))),
    Fault("json-to-stream", "a 200 JSON body (not SSE) to a streaming request",
          ("not_streaming",), _json_to_stream),
    # SSE and JSON
    Fault("giant-event", f"one valid token event of {GIANT_EVENT_BYTES // 2**20} MiB",
          (OK, "malformed"), _giant_event),
    Fault("invalid-utf8", "bytes FF FE FD inside a token's text", _MALFORMED, _invalid_utf8),
    Fault("sse-crlf-comments", "valid SSE with CRLF line ends, comments, event: and id:",
          (OK,), _sse_crlf_comments),
    Fault("no-tokens", "a complete stream with no token", ("no_tokens",), _no_tokens),
    Fault("error-mid-stream", f"{_N} tokens, then an error object",
          ("stream_error",), _error_mid_stream),
    Fault("missing-done", f"{_N} tokens, no finish_reason, no [DONE], then closes",
          ("incomplete",), _missing_done),
    Fault("not-json", "an event whose data is '{not json'", _MALFORMED, _not_json),
    # wrong JSON types: in a stream's first token event (usage: its usage event), or the body
    Fault("usage-string", '"usage": "x"', _MALFORMED, _mutated(_set_usage("x"), usage=True),
          body_fault=True, detail_names=("usage",)),
    Fault("choices-string", '"choices": "x"', _MALFORMED, _mutated(_set_choices("x")),
          body_fault=True, detail_names=("choices",)),
    Fault("choices-ints", '"choices": [1]', _MALFORMED, _mutated(_set_choices([1])),
          body_fault=True, detail_names=("choices",)),
    Fault("choices-object", '"choices": {"a": 1}', _MALFORMED, _mutated(_set_choices({"a": 1})),
          body_fault=True, detail_names=("choices",)),
    Fault("delta-string", '"delta" (body: "message") = "x"; completions: "text": ["x"]',
          _MALFORMED, _mutated(_set_message("x", ["x"])),
          body_fault=True, detail_names=("delta", "message", "text")),
    Fault("content-number", '"content": 5; completions: "text": 5',
          _MALFORMED, _mutated(_set_content(5)),
          body_fault=True, detail_names=("content", "text")),
    # token counts out of range or of the wrong type: stored as NULL with a note, not errors
    Fault("usage-huge", "usage.completion_tokens = 2**40",
          (OK,), _mutated(_set_completion_tokens(2**40), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-negative", "usage.completion_tokens = -5",
          (OK,), _mutated(_set_completion_tokens(-5), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-bool", "usage.completion_tokens = true",
          (OK,), _mutated(_set_completion_tokens(True), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-float", "usage.completion_tokens = 3.5",
          (OK,), _mutated(_set_completion_tokens(3.5), usage=True), body_fault=True, note=_NOTE),
]
# fmt: on

FAULTS: dict[str, Fault] = {f.name: f for f in _CATALOGUE}


# the mix -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultMix:
    """Which fault answers each generation request: round-robin, or weighted at random."""

    faults: tuple[Fault, ...]
    weights: tuple[float, ...] | None = None  # None: round-robin

    def picker(self, seed: int = 0) -> Callable[[], Fault]:
        if self.weights is None:
            cycle = itertools.cycle(self.faults)
            return lambda: next(cycle)
        rng = random.Random(seed)
        faults, weights = list(self.faults), list(self.weights)
        return lambda: rng.choices(faults, weights)[0]


def parse_faults(spec: str) -> FaultMix:
    """'a,b' (round-robin), 'a:3,b:1' (weighted, seeded) or 'all'."""
    spec = spec.strip()
    if spec == "all":
        return FaultMix(tuple(FAULTS.values()))
    faults: list[Fault] = []
    weights: list[float] = []
    weighted = False
    for item in spec.split(","):
        name, sep, weight = item.strip().partition(":")
        fault = FAULTS.get(name)
        if fault is None:
            raise FaultSpecError(
                f"unknown fault {name!r} in --faults; `bench sim --faults list` shows them all"
            )
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            w = -1.0
        if not w > 0 or w == float("inf"):
            raise FaultSpecError(f"fault weight must be a positive number, got {item.strip()!r}")
        weighted = weighted or bool(sep)
        faults.append(fault)
        weights.append(w)
    return FaultMix(tuple(faults), tuple(weights) if weighted else None)


def describe_faults() -> str:
    """The catalogue, one line per fault: name, what a correct client records, description."""
    width = max(map(len, FAULTS))
    lines = []
    for f in FAULTS.values():
        expect = f.outcomes[0] + (
            " (or " + "/".join(f.outcomes[1:]) + ")" if f.outcomes[1:] else ""
        )
        if f.note:
            expect += f", note {f.note}"
        lines.append(f"{f.name:<{width}}  {f.description}  -> {expect}")
    return "\n".join(lines)
