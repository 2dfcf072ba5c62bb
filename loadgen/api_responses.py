"""OpenAI Responses API (POST {base}/responses, streamed): `--api responses`.

Wire format: OpenAI API reference, "Streaming events" of the Responses API
(https://platform.openai.com/docs/api-reference/responses-streaming). Each SSE event's data
is an object with a `type`; the text comes in `response.output_text.delta`, reasoning in
`response.reasoning_text.delta` / `response.reasoning_summary_text.delta`, tool-call
arguments in `response.function_call_arguments.delta`; the usage is in the `response` of
`response.completed` (or `response.incomplete`, a generation cut at max_output_tokens).
There is no `[DONE]`: the stream is complete once one of those two has arrived."""

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
    keep_timings,
)
from loadgen.responsefields import malformed, take_error
from loadgen.spec import RequestRecord, RequestSpec

if TYPE_CHECKING:
    pass

# Delta events that carry generated text, and the kind of each.
_DELTAS = {
    "response.output_text.delta": ANSWER,
    "response.reasoning_text.delta": REASONING,
    "response.reasoning_summary_text.delta": REASONING,
    "response.function_call_arguments.delta": TOOL_CALL,
}
_FINISHED = ("response.completed", "response.incomplete")


class ResponsesEndpoint(StreamedEndpoint):
    """`--api responses`: chat-shaped requests sent as Responses `input` messages."""

    path = "/responses"
    shape = "chat"
    summary = "OpenAI Responses API, POST /responses"
    ends_with = "response.completed"

    def body(self, spec: RequestSpec) -> bytes:
        if spec.messages is not None:
            items: Any = [
                {"role": m.get("role"), "content": m.get("content")} for m in spec.messages
            ]
        else:
            items = [{"role": "user", "content": spec.prompt or ""}]
        body: dict[str, Any] = {
            "model": self.model,
            "input": items,
            "max_output_tokens": spec.max_tokens,
            "stream": True,
            "store": False,  # a benchmark's requests are not worth keeping server-side
        }
        return self.with_extra(body, spec.extra_body)

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        _read_event(record, tally, t, obj)


def _read_event(record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    delta_kind = _DELTAS.get(kind) if type(kind) is str else None
    if delta_kind is not None:
        delta = field_of(record, obj, "delta", str, f"{kind}.")
        if delta:
            tally.token(record, t, delta, delta_kind)
    elif kind in _FINISHED:
        response = field_of(record, obj, "response", dict, f"{kind}.")
        if response is not None:
            take_response_usage(record, response)
        timings = field_of(record, obj, "timings", dict, f"{kind}.")
        if timings:  # llama.cpp adds its own timings beside the response
            keep_timings(record, timings)
            if record.cached_input_tokens is None:
                cache_n = timings.get("cache_n")
                record.cached_input_tokens = count(record, cache_n, "timings.cache_n")
        tally.done = True
    elif kind == "response.failed":
        response = obj.get("response")
        error = response.get("error") if type(response) is dict else None
        take_error(record, error if error is not None else obj)
    elif kind == "error":
        take_error(record, obj.get("error", obj))


def take_response_usage(record: RequestRecord, response: dict[str, Any]) -> None:
    """A Responses `usage`: input/output tokens, cached input, reasoning tokens."""
    usage = field_of(record, response, "usage", dict, "response.")
    if usage is None:
        return
    record.input_tokens = count(record, usage.get("input_tokens"), "input_tokens")
    record.output_tokens = count(record, usage.get("output_tokens"), "output_tokens")
    details = usage.get("input_tokens_details")
    if type(details) is dict:
        cached = details.get("cached_tokens")
        record.cached_input_tokens = count(record, cached, "input_tokens_details.cached_tokens")
    details = usage.get("output_tokens_details")
    if type(details) is dict:
        reasoning = details.get("reasoning_tokens")
        record.reasoning_tokens = count(record, reasoning, "output_tokens_details.reasoning_tokens")
    elif details is not None:
        malformed(record, "usage.output_tokens_details is not an object")
