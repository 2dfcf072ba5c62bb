"""Ollama's native APIs (POST {root}/api/chat and /api/generate, NDJSON): `--api
ollama-chat` and `--api ollama-generate`.

Wire format: Ollama docs/api.md, "Generate a completion" and "Generate a chat completion":
the body is newline-delimited JSON, one object per line; chat lines carry
`message.content` (and `message.thinking` for thinking models, `message.tool_calls`),
generate lines `response` (and `thinking`); the last line has `"done": true` with
`eval_count` (output tokens), `prompt_eval_count` (prompt tokens), and the server's own
`total_duration`, `load_duration`, `prompt_eval_duration`, `eval_duration` (ns), kept beside
the client's timings. An error is a line `{"error": "..."}`."""

from __future__ import annotations

from typing import Any

import orjson

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
from loadgen.responsefields import take_error
from loadgen.spec import RequestRecord, RequestSpec

_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


class _OllamaEndpoint(StreamedEndpoint):
    chat = True
    at_root = True
    models = "ollama"
    ndjson = True
    ends_with = '"done": true'

    def body(self, spec: RequestSpec) -> bytes:
        body: dict[str, Any] = {"model": self.model, "stream": True}
        if self.chat:
            turns = spec.messages or ({"role": "user", "content": spec.prompt or ""},)
            body["messages"] = [{"role": m.get("role"), "content": m.get("content")} for m in turns]
        else:
            prompt = spec.prompt
            if prompt is None:
                prompt = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
            body["prompt"] = prompt
        # Ollama has no ignore_eos or min_tokens; num_predict caps the output.
        body["options"] = {"num_predict": spec.max_tokens}
        return self.with_extra(body, None)

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        error = obj.get("error")
        if error is not None:
            take_error(record, error)
            return
        holder: dict[str, Any] | None = obj
        if self.chat:
            holder = field_of(record, obj, "message", dict, "")
        if holder:
            _take_texts(record, tally, t, holder, "content" if self.chat else "response")
        if obj.get("done") is True:
            tally.done = True
            take_final(record, obj)


def _take_texts(
    record: RequestRecord, tally: StreamTally, t: int, holder: dict[str, Any], key: str
) -> None:
    """One line's text: thinking first (it precedes the answer), then the answer, then any
    tool call (Ollama sends a call whole, in one line)."""
    thinking = field_of(record, holder, "thinking", str, "")
    if thinking:
        tally.token(record, t, thinking, REASONING)
    text = field_of(record, holder, key, str, "")
    if text:
        tally.token(record, t, text, ANSWER)
    calls = field_of(record, holder, "tool_calls", list, "")
    if calls:
        tally.token(record, t, orjson.dumps(calls).decode(), TOOL_CALL)


def take_final(record: RequestRecord, obj: dict[str, Any]) -> None:
    """The counts and durations of Ollama's last line."""
    record.output_tokens = count(record, obj.get("eval_count"), "eval_count")
    prompt = obj.get("prompt_eval_count")
    if prompt is not None:
        record.input_tokens = count(record, prompt, "prompt_eval_count")
    keep_timings(record, {k: obj[k] for k in _DURATIONS if k in obj})


class OllamaChatEndpoint(_OllamaEndpoint):
    """`--api ollama-chat`: POST /api/chat with the workload's messages."""

    path = "/api/chat"
    shape = "chat"
    summary = "Ollama native chat, POST /api/chat (NDJSON)"


class OllamaGenerateEndpoint(_OllamaEndpoint):
    """`--api ollama-generate`: POST /api/generate with one prompt string."""

    path = "/api/generate"
    chat = False
    shape = "completions"
    summary = "Ollama native generate, POST /api/generate (NDJSON)"
