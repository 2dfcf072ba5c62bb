"""Endpoint adapters: how a RequestSpec becomes an HTTP request, and how a finished response
becomes the fields of a RequestRecord.

One narrow protocol (`Endpoint`) so other APIs (TGI native, Ollama native, plugins) slot in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from loadgen import errors
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.sse import split_events

Api = Literal["chat", "completions"]


class Endpoint(Protocol):
    path: str  # appended to the base URL, e.g. "/chat/completions"

    def body(self, spec: RequestSpec) -> bytes: ...

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        """Fill token times, usage and error fields of `record` from the raw body pieces."""
        ...


@dataclass(frozen=True, slots=True)
class OpenAIEndpoint:
    """OpenAI-compatible completions or chat: vLLM, SGLang, llama.cpp, TGI, Ollama, hosted APIs."""

    api: Api
    model: str
    stream: bool = True
    extra_body: dict[str, Any] | None = None  # user-supplied fields merged into every request
    # Counts output tokens from the streamed text when the server reports no usage
    # (a client tokenizer, `--tokenizer`); None leaves such counts unknown.
    count_output: Callable[[str], int] | None = None

    @property
    def path(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"

    def body(self, spec: RequestSpec) -> bytes:
        body: dict[str, Any] = {"model": self.model, "max_tokens": spec.max_tokens}
        if self.api == "chat":
            if spec.messages is not None:
                body["messages"] = list(spec.messages)
            else:
                body["messages"] = [{"role": "user", "content": spec.prompt or ""}]
            # Newer servers read max_completion_tokens; old ones ignore it.
            body["max_completion_tokens"] = spec.max_tokens
        else:
            if spec.prompt is not None:
                body["prompt"] = spec.prompt
            else:
                body["prompt"] = "\n".join(str(m.get("content", "")) for m in spec.messages or ())
        if self.stream:
            body["stream"] = True
            # Token truth: always ask for the server's own usage report.
            body["stream_options"] = {"include_usage": True}
        if spec.extra_body:
            body.update(spec.extra_body)
        if self.extra_body:
            body.update(self.extra_body)
        return orjson.dumps(body)

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        if not self.stream:
            _finish_json(record, b"".join(pieces), times_ns[-1] if times_ns else None, self.api)
            return
        ev_t, ev_d, rest = split_events(pieces, times_ns)
        if not ev_d and pieces:
            # A 200 that is not an event stream: a server ignoring "stream", or garbage.
            if record.error_kind is None:
                record.error_kind = errors.NOT_STREAMING
                record.error_detail = _snippet(b"".join(pieces))
            return
        done = False
        chat = self.api == "chat"
        event_ns = record.event_ns
        chars = 0
        texts: list[str] | None = [] if self.count_output is not None else None
        if ev_d and ev_d[-1] == b"[DONE]":
            done = True
            ev_t, ev_d = ev_t[:-1], ev_d[:-1]
        for t, obj in zip(ev_t, _parse_all(ev_d), strict=True):
            if type(obj) is not dict:
                if obj is _DONE:
                    done = True
                    continue
                record.error_kind = record.error_kind or errors.MALFORMED
                record.error_detail = record.error_detail or _snippet(
                    obj if isinstance(obj, bytes) else repr(obj).encode()
                )
                continue
            if "error" in obj:
                record.error_kind = record.error_kind or errors.STREAM_ERROR
                record.error_detail = record.error_detail or _snippet(repr(obj).encode())
                continue
            choices = obj.get("choices")
            if choices:
                choice = choices[0]
                if chat:
                    delta = choice.get("delta") or {}
                    text = (
                        delta.get("content")
                        or delta.get("reasoning_content")
                        or delta.get("reasoning")
                    )
                else:
                    text = choice.get("text")
                if text:
                    # A role-only opening chunk carries no text: it does not count as a token.
                    event_ns.append(t)
                    chars += len(text)
                    if texts is not None:
                        texts.append(text)
                if choice.get("finish_reason"):
                    done = True
            usage = obj.get("usage")
            if usage:
                _take_usage(record, usage)
            timings = obj.get("timings")
            if timings:
                record.server_timings = timings
        record.event_tokens = [None] * len(event_ns)
        record.output_text_chars = chars
        if record.output_tokens is not None:
            record.output_tokens_source = "usage"
        elif texts and self.count_output is not None:
            record.output_tokens = self.count_output("".join(texts))
            record.output_tokens_source = "client_tokenizer"
        if event_ns:
            record.first_token_ns = event_ns[0]
            record.last_token_ns = event_ns[-1]
        if record.error_kind is None:
            if not done:
                record.error_kind = errors.INCOMPLETE
                record.error_detail = _snippet(rest) if rest else "stream ended without [DONE]"
            elif not event_ns:
                record.error_kind = errors.NO_TOKENS


_DONE = object()


def _parse_all(payloads: list[bytes]) -> list[Any]:
    """All event payloads in one orjson call (one JSON array); per event only if one is bad.
    A bad payload is returned as its bytes, `[DONE]` as _DONE."""
    if not payloads:
        return []
    try:
        parsed = orjson.loads(b"[" + b",".join(payloads) + b"]")
        if len(parsed) == len(payloads):  # a payload like `1,2` would shift the rest
            return parsed
    except orjson.JSONDecodeError:
        pass
    out: list[Any] = []
    for p in payloads:
        if p == b"[DONE]":
            out.append(_DONE)
            continue
        try:
            out.append(orjson.loads(p))
        except orjson.JSONDecodeError:
            out.append(p)
    return out


def _take_usage(record: RequestRecord, usage: dict[str, Any]) -> None:
    pt = usage.get("prompt_tokens")
    ct = usage.get("completion_tokens")
    if isinstance(pt, int):
        record.input_tokens = pt
    if isinstance(ct, int):
        record.output_tokens = ct
        record.output_tokens_source = "usage"


def _finish_json(record: RequestRecord, body: bytes, t_end: int | None, api: Api) -> None:
    """Non-streaming response: one JSON document; first and last token are the arrival time."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        record.error_kind = record.error_kind or errors.MALFORMED
        record.error_detail = _snippet(body)
        return
    if not isinstance(obj, dict) or "choices" not in obj:
        record.error_kind = record.error_kind or (
            errors.STREAM_ERROR if isinstance(obj, dict) and "error" in obj else errors.MALFORMED
        )
        record.error_detail = _snippet(body)
        return
    if obj.get("usage"):
        _take_usage(record, obj["usage"])
    choice = (obj.get("choices") or [{}])[0]
    text = (
        choice.get("text") if api == "completions" else (choice.get("message") or {}).get("content")
    )
    if text and t_end is not None:
        record.event_ns = [t_end]
        record.event_tokens = [record.output_tokens]
        record.first_token_ns = record.last_token_ns = t_end
        record.output_text_chars = len(text)
    elif record.error_kind is None:
        record.error_kind = errors.NO_TOKENS


def _snippet(data: bytes, limit: int = 200) -> str:
    return data[:limit].decode("utf-8", "replace").replace("\n", "\\n")
