"""Hugging Face TGI's native streaming API (POST {root}/generate_stream): `--api tgi`.

Wire format: TGI's OpenAPI document (docs/openapi.json, "/generate_stream"; the router's
StreamResponse / StreamDetails in router/src/lib.rs): each SSE event is
`{"index", "token": {"id", "text", "logprob", "special"}, "generated_text", "details"}`;
the last carries `generated_text` and `details` (`finish_reason`, `generated_tokens`,
`input_length` in recent versions, `seed`). A special token (the end of sequence) is counted
by the server but carries no text. An error mid-stream is `{"error": ..., "error_type": ...}`.
"""

from __future__ import annotations

from typing import Any

from loadgen.api_common import (
    StreamedEndpoint,
    StreamTally,
    count,
    field_of,
    keep_timings,
)
from loadgen.responsefields import take_error
from loadgen.spec import RequestRecord, RequestSpec


class TgiEndpoint(StreamedEndpoint):
    """`--api tgi`: one prompt string as `inputs`, details asked for (the token counts)."""

    path = "/generate_stream"
    shape = "completions"
    at_root = True
    models = "tgi"
    summary = "Hugging Face TGI native, POST /generate_stream"
    ends_with = "details"

    def body(self, spec: RequestSpec) -> bytes:
        prompt = spec.prompt
        if prompt is None:
            prompt = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
        parameters: dict[str, Any] = {"max_new_tokens": spec.max_tokens, "details": True}
        # TGI has no ignore_eos: a workload's exact output length is not enforceable here.
        extra = {k: v for k, v in (spec.extra_body or {}).items() if k not in _NO_TGI}
        parameters.update(extra)
        body: dict[str, Any] = {"inputs": prompt, "parameters": parameters, "stream": True}
        return self.with_extra(body, None)

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        _read_event(record, tally, t, obj)


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
