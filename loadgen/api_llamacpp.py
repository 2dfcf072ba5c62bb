"""llama.cpp's native completion API (POST {root}/completion, streamed): `--api llamacpp`.

Wire format: llama.cpp tools/server/README.md, "POST /completion": each SSE event is an
object with the piece of text in `content`; the last one has `"stop": true` with
`tokens_predicted` (output tokens), `tokens_evaluated` (prompt tokens) and `timings`
(prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n, ...), kept as the server's own
timings beside the client's. There is no `[DONE]`: `stop` ends the stream."""

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


class LlamaCppEndpoint:
    """`--api llamacpp`: one prompt string, `n_predict` output tokens at most."""

    path = "/completion"
    shape = "completions"
    at_root = True
    summary = "llama.cpp native, POST /completion (per-request timings)"

    def __init__(self, options: AdapterOptions) -> None:
        self.count_output = options.count_output
        self.extra_body = options.extra_body

    def body(self, spec: RequestSpec) -> bytes:
        prompt = spec.prompt
        if prompt is None:
            prompt = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
        body: dict[str, Any] = {"prompt": prompt, "n_predict": spec.max_tokens, "stream": True}
        extra = dict(spec.extra_body or {})
        # llama.cpp has ignore_eos but no min_tokens: with ignore_eos it runs to n_predict.
        extra.pop("min_tokens", None)
        body.update(extra)
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
        close_stream(record, tally, self.count_output, rest, '"stop": true')


def _read_event(record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]) -> None:
    error = obj.get("error")
    if error is not None:
        take_error(record, error)
        return
    text = field_of(record, obj, "content", str, "")
    if text:
        tally.token(record, t, text)
    if obj.get("stop") is not True:
        return
    tally.done = True
    take_final(record, obj)


def take_final(record: RequestRecord, obj: dict[str, Any]) -> None:
    """The counts and timings of llama.cpp's final object (the stream's last event)."""
    predicted = obj.get("tokens_predicted")
    if predicted is not None:
        record.output_tokens = count(record, predicted, "tokens_predicted")
    evaluated = obj.get("tokens_evaluated")
    if evaluated is not None:
        record.input_tokens = count(record, evaluated, "tokens_evaluated")
    timings = field_of(record, obj, "timings", dict, "")
    if timings:
        keep_timings(record, timings)
        cache_n = timings.get("cache_n")
        if cache_n is not None:
            record.cached_input_tokens = count(record, cache_n, "timings.cache_n")
