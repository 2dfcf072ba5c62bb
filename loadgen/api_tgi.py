"""Hugging Face TGI's native streaming API (POST {root}/generate_stream): `--api tgi`.

Wire format: TGI's OpenAPI document (docs/openapi.json, "/generate_stream"; the router's
StreamResponse / StreamDetails in router/src/lib.rs): each SSE event is
`{"index", "token": {"id", "text", "logprob", "special"}, "generated_text", "details"}`;
the last carries `generated_text` and `details` (`finish_reason`, `generated_tokens`,
`input_length` in recent versions, `seed`). A special token (the end of sequence) is counted
by the server but carries no text. An error mid-stream is `{"error": ..., "error_type": ...}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from loadgen.api_common import (
    StreamTally,
    close_stream,
    count,
    field_of,
    guarded,
    keep_timings,
    not_a_stream,
    parse_event,
)
from loadgen.responsefields import take_error
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.sse import split_events

if TYPE_CHECKING:
    from loadgen.apis import AdapterOptions


class TgiEndpoint:
    """`--api tgi`: one prompt string as `inputs`, details asked for (the token counts)."""

    path = "/generate_stream"
    shape = "completions"
    at_root = True
    models = "tgi"
    summary = "Hugging Face TGI native, POST /generate_stream"

    def __init__(self, options: AdapterOptions) -> None:
        self.count_output = options.count_output
        self.extra_body = options.extra_body

    def body(self, spec: RequestSpec) -> bytes:
        prompt = spec.prompt
        if prompt is None:
            prompt = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
        parameters: dict[str, Any] = {"max_new_tokens": spec.max_tokens, "details": True}
        # TGI has no ignore_eos: a workload's exact output length is not enforceable here.
        extra = {k: v for k, v in (spec.extra_body or {}).items() if k not in _NO_TGI}
        parameters.update(extra)
        body: dict[str, Any] = {"inputs": prompt, "parameters": parameters, "stream": True}
        if self.extra_body:
            body.update(self.extra_body)
        return orjson.dumps(body)

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        guarded(record, lambda: self._read(record, pieces, times_ns))

    def _read(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        ev_t, ev_d, rest = split_events(pieces, times_ns)
        if not ev_d:
            if pieces:
                not_a_stream(record, pieces)
            return
        record.first_event_ns = ev_t[0]
        tally = StreamTally(
            count_text=self.count_output is not None, keep_answer=record.session_id is not None
        )
        for i, (t, payload) in enumerate(zip(ev_t, ev_d, strict=True)):
            obj = parse_event(record, i, payload)
            if obj is not None:
                _read_event(record, tally, t, obj)
        close_stream(record, tally, self.count_output, rest, "details")


_NO_TGI = ("ignore_eos", "min_tokens")


def _read_event(record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]) -> None:
    error = obj.get("error")
    if error is not None:
        take_error(record, error)
        return
    token = field_of(record, obj, "token", dict, "")
    if token and token.get("special") is not True:
        text = field_of(record, token, "text", str, "token.")
        if text:
            tally.token(record, t, text)
    details = field_of(record, obj, "details", dict, "")
    if details is None:
        return
    tally.done = True
    record.output_tokens = count(record, details.get("generated_tokens"), "generated_tokens")
    input_length = details.get("input_length")
    if input_length is not None:
        record.input_tokens = count(record, input_length, "input_length")
    keep_timings(record, details)  # generated_tokens, input_length, seed: numbers only
