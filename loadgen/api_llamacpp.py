"""llama.cpp's native completion API (POST {root}/completion, streamed): `--api llamacpp`.

Wire format: llama.cpp tools/server/README.md, "POST /completion": each SSE event is an
object with the piece of text in `content`; the last one has `"stop": true` with
`tokens_predicted` (output tokens), `tokens_evaluated` (prompt tokens) and `timings`
(prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n, ...), kept as the server's own
timings beside the client's. There is no `[DONE]`: `stop` ends the stream."""

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


class LlamaCppEndpoint(StreamedEndpoint):
    """`--api llamacpp`: one prompt string, `n_predict` output tokens at most."""

    path = "/completion"
    shape = "completions"
    at_root = True
    summary = "llama.cpp native, POST /completion (per-request timings)"
    ends_with = '"stop": true'

    def body(self, spec: RequestSpec) -> bytes:
        prompt = spec.prompt
        if prompt is None:
            prompt = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
        body: dict[str, Any] = {"prompt": prompt, "n_predict": spec.max_tokens, "stream": True}
        extra = dict(spec.extra_body or {})
        # llama.cpp has ignore_eos but no min_tokens: with ignore_eos it runs to n_predict.
        extra.pop("min_tokens", None)
        body.update(extra)
        return self.with_extra(body, None)

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        _read_event(record, tally, t, obj)


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
