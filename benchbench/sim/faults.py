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
fault_handlers.py holds the handlers named here; fault_wire.py builds the bytes of a valid
answer; fault_server.py serves the mix.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from benchbench.sim.fault_handlers import (
    GIANT_EVENT_BYTES,
    OVERSIZED_HEAD_BYTES,
    STALLED_TOKENS,
    TRICKLE_GAP_S,
    Respond,
    bad_size_line,
    chunk_extensions_trailers,
    chunk_overrun,
    close_after_headers,
    close_before_response,
    conflicting_content_length,
    duplicate_content_length,
    error_mid_stream,
    garbage_status_line,
    giant_event,
    http10_close_delimited,
    interim,
    invalid_utf8,
    json_to_stream,
    keepalive_lie,
    length_and_chunked,
    missing_done,
    mutated,
    no_tokens,
    not_json,
    ok,
    one_byte_chunks,
    oversized_head,
    reset_before_response,
    reset_mid_stream,
    set_choices,
    set_completion_tokens,
    set_content,
    set_message,
    set_usage,
    short_content_length,
    slow_head,
    sse_crlf_comments,
    stall_after_headers,
    stall_before_response,
    stall_mid_stream,
    status_reply,
    trickle,
    trickle_head,
)

OK = "ok"
# A response that breaks HTTP framing: bytes came, so the server answered (never "connect");
# clients report it as a response cut short, or as one they could not parse.
PROTOCOL = ("incomplete", "malformed")


class FaultSpecError(ValueError):
    """A --faults spec names an unknown fault or a bad weight."""


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


_MALFORMED = ("malformed",)
_NOTE = "malformed_usage"
_N = STALLED_TOKENS

# One fault per entry: name, description (one line), outcomes, respond.
# fmt: off
_CATALOGUE = [
    Fault("ok", "no fault: a valid answer (to mix in, e.g. ok:9,trickle:1)", (OK,), ok),
    # connection
    Fault("reset-before-response", "reads the request, then resets (RST) without a byte",
          ("connect",), reset_before_response),
    Fault("close-before-response", "reads the request, then closes (FIN) without a byte",
          ("connect",), close_before_response),
    Fault("close-after-headers", "sends a 200 chunked head, then closes",
          ("incomplete",), close_after_headers),
    Fault("reset-mid-stream", f"sends {_N} tokens, then resets the connection",
          ("incomplete",), reset_mid_stream),
    Fault("keepalive-lie", "a valid answer advertising keep-alive, then closes (llama-server)",
          (OK,), keepalive_lie),
    # timing
    Fault("stall-before-response", "reads the request, then sends nothing ever",
          ("timeout",), stall_before_response),
    Fault("stall-after-headers", "sends the 200 head, then nothing ever again",
          ("timeout",), stall_after_headers),
    Fault("stall-mid-stream", f"sends {_N} tokens, then nothing ever again",
          ("timeout",), stall_mid_stream),
    Fault("trickle", f"a valid endless stream, one byte every {TRICKLE_GAP_S:g} s "
          "(only a total deadline ends it)", ("timeout",), trickle),
    Fault("slow-head", "the head dribbled 8 bytes per 20 ms, then a valid answer",
          (OK,), slow_head),
    Fault("trickle-head", f"an endless head, one byte every {TRICKLE_GAP_S:g} s",
          ("timeout",), trickle_head),
    # framing
    Fault("negative-chunk-size", "a chunk size line of -6, then silence",
          PROTOCOL, bad_size_line(b"-6")),
    Fault("non-hex-chunk-size", "a chunk size line of 'zz', then silence",
          PROTOCOL, bad_size_line(b"zz")),
    Fault("chunk-overrun", "a chunk size 4 KiB larger than the data sent, then closes",
          ("incomplete",), chunk_overrun),
    Fault("short-content-length", "Content-Length 1000 bytes more than the body, then closes",
          ("incomplete",), short_content_length),
    Fault("conflicting-content-length", "two Content-Length headers with different values",
          PROTOCOL, conflicting_content_length),
    Fault("duplicate-content-length", "the same Content-Length twice (RFC 9110: may be one)",
          (OK, *PROTOCOL), duplicate_content_length),
    Fault("content-length-and-chunked", "Content-Length: 5 and Transfer-Encoding: chunked",
          (OK, *PROTOCOL), length_and_chunked),
    Fault("one-byte-chunks", "a valid stream framed one body byte per chunk",
          (OK,), one_byte_chunks),
    Fault("chunk-extensions-trailers", "a valid stream with chunk extensions and a trailer",
          (OK,), chunk_extensions_trailers),
    Fault("http10-close-delimited", "an HTTP/1.0 answer with no length, ended by closing",
          (OK,), http10_close_delimited),
    # status and head
    Fault("garbage-status-line", "the status line 'HTTP/1.1 two-hundred OK'",
          PROTOCOL, garbage_status_line),
    Fault("oversized-head", f"a {OVERSIZED_HEAD_BYTES // 1024} KiB head, then a valid answer",
          (OK, *PROTOCOL), oversized_head),
    Fault("http-500", "HTTP 500 with a JSON error",
          ("http_5xx",), status_reply(500, "Internal Server Error")),
    Fault("http-429", "HTTP 429 with Retry-After: 1",
          ("rate_limited",), status_reply(429, "Too Many Requests", ("Retry-After", "1"))),
    Fault("http-401", "HTTP 401 Unauthorized",
          ("auth",), status_reply(401, "Unauthorized")),
    Fault("status-999", "a final status outside 100..599 (HTTP 999)",
          ("http_5xx",), status_reply(999, "Whatever")),
    Fault("redirect-302", "HTTP 302 to another path",
          ("redirect",), status_reply(302, "Found", ("Location", "/elsewhere/v1/completions"))),
    Fault("continue-100", "an interim 100 Continue, then a valid answer",
          (OK,), interim(100, "Continue")),
    Fault("early-hints-103", "an interim 103 Early Hints, then a valid answer",
          (OK,), interim(103, "Early Hints", ("Link", "</style.css>; rel=preload"))),
    Fault("json-to-stream", "a 200 JSON body (not SSE) to a streaming request",
          ("not_streaming",), json_to_stream),
    # SSE and JSON
    Fault("giant-event", f"one valid token event of {GIANT_EVENT_BYTES // 2**20} MiB",
          (OK, "malformed"), giant_event),
    Fault("invalid-utf8", "bytes FF FE FD inside a token's text", _MALFORMED, invalid_utf8),
    Fault("sse-crlf-comments", "valid SSE with CRLF line ends, comments, event: and id:",
          (OK,), sse_crlf_comments),
    Fault("no-tokens", "a complete stream with no token", ("no_tokens",), no_tokens),
    Fault("error-mid-stream", f"{_N} tokens, then an error object",
          ("stream_error",), error_mid_stream),
    Fault("missing-done", f"{_N} tokens, no finish_reason, no [DONE], then closes",
          ("incomplete",), missing_done),
    Fault("not-json", "an event whose data is '{not json'", _MALFORMED, not_json),
    # wrong JSON types: in a stream's first token event (usage: its usage event), or the body
    Fault("usage-string", '"usage": "x"', _MALFORMED, mutated(set_usage("x"), usage=True),
          body_fault=True, detail_names=("usage",)),
    Fault("choices-string", '"choices": "x"', _MALFORMED, mutated(set_choices("x")),
          body_fault=True, detail_names=("choices",)),
    Fault("choices-ints", '"choices": [1]', _MALFORMED, mutated(set_choices([1])),
          body_fault=True, detail_names=("choices",)),
    Fault("choices-object", '"choices": {"a": 1}', _MALFORMED, mutated(set_choices({"a": 1})),
          body_fault=True, detail_names=("choices",)),
    Fault("delta-string", '"delta" (body: "message") = "x"; completions: "text": ["x"]',
          _MALFORMED, mutated(set_message("x", ["x"])),
          body_fault=True, detail_names=("delta", "message", "text")),
    Fault("content-number", '"content": 5; completions: "text": 5',
          _MALFORMED, mutated(set_content(5)),
          body_fault=True, detail_names=("content", "text")),
    # token counts out of range or of the wrong type: stored as NULL with a note, not errors
    Fault("usage-huge", "usage.completion_tokens = 2**40",
          (OK,), mutated(set_completion_tokens(2**40), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-negative", "usage.completion_tokens = -5",
          (OK,), mutated(set_completion_tokens(-5), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-bool", "usage.completion_tokens = true",
          (OK,), mutated(set_completion_tokens(True), usage=True), body_fault=True, note=_NOTE),
    Fault("usage-float", "usage.completion_tokens = 3.5",
          (OK,), mutated(set_completion_tokens(3.5), usage=True), body_fault=True, note=_NOTE),
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
