"""Anthropic Messages API (POST {base}/messages, streamed): `--api messages`.

Wire format: Anthropic API reference, "Streaming Messages"
(https://docs.anthropic.com/en/api/messages-streaming): `message_start` carries the input
usage (input_tokens, cache_read_input_tokens, cache_creation_input_tokens), each
`content_block_delta` a `text_delta`, `thinking_delta` or `input_json_delta` (a tool call's
arguments), `message_delta` the cumulative output_tokens, and `message_stop` ends the
stream. `--api-key` goes in the `x-api-key` header, with `anthropic-version` (the registry
declares both)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadgen.api_common import (
    ANSWER,
    REASONING,
    TOOL_CALL,
    StreamedEndpoint,
    StreamTally,
    count,
    field_of,
)
from loadgen.responsefields import take_error
from loadgen.spec import RequestRecord, RequestSpec

if TYPE_CHECKING:
    pass

# delta.type -> (the field holding its text, the event kind)
_DELTAS = {
    "text_delta": ("text", ANSWER),
    "thinking_delta": ("thinking", REASONING),
    "input_json_delta": ("partial_json", TOOL_CALL),
}


class MessagesEndpoint(StreamedEndpoint):
    """`--api messages`: system messages go in `system`, the rest in `messages`."""

    path = "/messages"
    shape = "chat"
    auth = "x-api-key"
    headers = {"anthropic-version": "2023-06-01"}
    summary = "Anthropic Messages API, POST /messages"
    ends_with = "message_stop"

    def body(self, spec: RequestSpec) -> bytes:
        turns = spec.messages or ({"role": "user", "content": spec.prompt or ""},)
        system = [str(m.get("content", "")) for m in turns if m.get("role") == "system"]
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": spec.max_tokens,
            "messages": [
                {"role": m.get("role"), "content": m.get("content")}
                for m in turns
                if m.get("role") != "system"
            ],
            "stream": True,
        }
        if system:
            body["system"] = "\n\n".join(system)
        return self.with_extra(body, spec.extra_body)

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        _read_event(record, tally, t, obj)


def _read_event(record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    if kind == "content_block_delta":
        delta = field_of(record, obj, "delta", dict, "content_block_delta.")
        known = _DELTAS.get(delta.get("type")) if delta else None  # type: ignore[arg-type]
        if delta and known is not None:
            text = field_of(record, delta, known[0], str, "content_block_delta.delta.")
            if text:
                tally.token(record, t, text, known[1])
    elif kind == "message_start":
        message = field_of(record, obj, "message", dict, "message_start.")
        usage = field_of(record, message, "usage", dict, "message.") if message else None
        if usage:
            take_message_usage(record, usage)
    elif kind == "message_delta":
        usage = field_of(record, obj, "usage", dict, "message_delta.")
        if usage:
            take_message_usage(record, usage)
    elif kind == "message_stop":
        tally.done = True
    elif kind == "error":
        take_error(record, obj.get("error", obj))


def take_message_usage(record: RequestRecord, usage: dict[str, Any]) -> None:
    """Anthropic usage. Its input_tokens leaves out the prompt tokens read from or written to
    the cache, so the prompt's size is the sum of the three; output_tokens is cumulative."""
    output = usage.get("output_tokens")
    if output is not None:
        record.output_tokens = count(record, output, "output_tokens")
    parts = [usage.get(k) for k in _INPUT_PARTS]
    if parts[0] is not None:
        counted = [count(record, v, k) for k, v in zip(_INPUT_PARTS, parts, strict=True)]
        known = [c for c, v in zip(counted, parts, strict=True) if v is not None]
        record.input_tokens = None if None in known else sum(c or 0 for c in counted)
    cached = usage.get("cache_read_input_tokens")
    if cached is not None:
        record.cached_input_tokens = count(record, cached, "cache_read_input_tokens")


_INPUT_PARTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
