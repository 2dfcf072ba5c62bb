"""The common OpenAI stream read in one typed decode: every event of a finished stream is
decoded at once by msgspec into small Structs (choices[0] text, delta content / reasoning /
tool calls, finish_reason; usage and timings kept raw), then read by one short loop.

This is a fast path only. Anything it does not model (an `error` event, a field of the wrong
type, a mid-stream `[DONE]`, bytes that are not JSON) fails the decode before the record is
touched, and the caller reads the stream by the general per-event path, which names every
problem. The two give identical records on the fuzz corpus and the wire fixtures
(tests/loadgen/test_streamfast.py).

A field neither path reads cannot fail a stream: msgspec skips it unchecked (its number range,
its UTF-8), and the general path, when orjson refuses an event, reads it as this decode does
(`lenient_event`). Before, a 1e400 in an extension field made the stream malformed, and
keeping the two paths equal on that cost a scan of every byte, about 0.4 us per event."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from loadgen.responsefields import take_timings, take_usage
from loadgen.spec import RequestRecord


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct, gc=False):
    function: _Function | None = None


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct, gc=False):
    text: str | None = None
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    # Rare and validated by the general readers: kept as raw JSON, parsed when present.
    usage: msgspec.Raw = msgspec.Raw()
    timings: msgspec.Raw = msgspec.Raw()
    # Typed None: an error object fails the decode, so the general path records it.
    error: None = None


_DECODER = msgspec.json.Decoder(list[_Chunk])
_ONE = msgspec.json.Decoder(_Chunk)
_EMPTY: list[_Chunk] = []


def decode_chunks(payloads: list[bytes]) -> list[_Chunk] | None:
    """All payloads as chunks in one call, or None when any is not of the common shape."""
    if not payloads:
        return _EMPTY
    return decode_array(b"[" + b",".join(payloads) + b"]", len(payloads))


def decode_array(array: bytes, n: int) -> list[_Chunk] | None:
    """A JSON array of `n` event payloads as chunks, or None when any is not of the common
    shape. The count check guards the joined decode: one payload holding a top-level comma
    (`1,2`) and another cut inside a value could otherwise realign into the right number."""
    try:
        chunks = _DECODER.decode(array)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if len(chunks) != n:
        return None
    # The raw usage / timings are parsed by orjson later, as the general path parses them:
    # one it would refuse (a number out of range) sends the stream there now.
    try:
        for chunk in [c for c in chunks if c.usage or c.timings]:
            _json(chunk.usage)
            _json(chunk.timings)
    except orjson.JSONDecodeError:
        return None
    return chunks


def read_chunks(
    record: RequestRecord,
    ev_t: list[int],
    chunks: list[_Chunk],
    chat: bool,
    texts: list[str] | None,
    answers: list[str] | None,
) -> bool:
    """Read decoded chunks into `record` exactly as the general path reads their JSON;
    whether one said the generation finished."""
    done, chars, event_ns = False, 0, record.event_ns
    kinds: list[str] | None = None  # None (all answer) until another kind arrives
    for t, chunk in zip(ev_t, chunks, strict=True):
        choices = chunk.choices
        if choices:
            choice = choices[0]
            kind = None
            if not chat:
                text = choice.text
            elif (delta := choice.delta) is None:
                text = None
            else:
                text = delta.content
                if not text:
                    text, kind = _fragment(delta)
            if text:
                event_ns.append(t)
                if kind is not None or kinds is not None:
                    kinds = _add_kind(record, kinds, kind or "answer")
                chars += len(text)
                if texts is not None:
                    texts.append(text)
                if answers is not None and kind is None:
                    answers.append(text)
            if choice.finish_reason:
                done = True
        if chunk.usage or chunk.timings:
            _take_extras(record, chunk)
    record.output_text_chars = chars
    return done


def _fragment(delta: _Delta) -> tuple[str | None, str | None]:
    """(text, kind) of a delta with no answer text: reasoning, then tool-call fragments."""
    for text in (delta.reasoning_content, delta.reasoning):
        if text:
            return text, "reasoning"
    calls = delta.tool_calls
    if not calls:
        return None, None
    parts: list[str] = []
    for call in calls:
        function = call.function
        if function is not None:
            if function.name:
                parts.append(function.name)
            if function.arguments:
                parts.append(function.arguments)
    text = "".join(parts)
    return (text, "tool_call") if text else (None, None)


def _add_kind(record: RequestRecord, kinds: list[str] | None, kind: str) -> list[str]:
    if kinds is None:  # the first non-answer kind back-fills "answer" for the events before
        kinds = ["answer"] * (len(record.event_ns) - 1)
        record.event_kinds = kinds
    kinds.append(kind)
    return kinds


def _take_extras(record: RequestRecord, chunk: _Chunk) -> None:
    """usage then timings, in the general path's order, by its own validating readers."""
    usage = _json(chunk.usage)
    if usage is not None:
        take_usage(record, usage)
    timings = _json(chunk.timings)
    if timings is not None:
        take_timings(record, timings)


def _json(raw: msgspec.Raw) -> object:
    """A raw field as orjson parses it (None when absent or null)."""
    return orjson.loads(memoryview(raw)) if raw else None


def lenient_event(payload: bytes) -> dict[str, Any] | None:
    """An event orjson refused, as the typed decode reads it (what benchbench reads of it, as
    plain JSON values), or None when that decode refuses it too: then it is not JSON."""
    try:
        chunk = _ONE.decode(payload)
        usage, timings = _json(chunk.usage), _json(chunk.timings)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, orjson.JSONDecodeError):
        return None
    event: dict[str, Any] = {"choices": msgspec.to_builtins(chunk.choices)}
    if usage is not None:
        event["usage"] = usage
    if timings is not None:
        event["timings"] = timings
    return event
