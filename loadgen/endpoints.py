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
        try:
            if self.stream:
                self._finish_stream(record, pieces, times_ns)
            else:
                t_end = times_ns[-1] if times_ns else None
                _finish_json(record, b"".join(pieces), t_end, self.api, self.count_output)
        except Exception as exc:
            # The type checks below are the mechanism; this is the net under them, so that a
            # parser bug costs one request its success, never its record.
            _parser_failed(record, exc)

    def _finish_stream(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        ev_t, ev_d, rest = split_events(pieces, times_ns)
        if not ev_d and pieces:
            # A 200 that is not an event stream: a server ignoring "stream", or garbage.
            if record.error_kind is None:
                record.error_kind = errors.NOT_STREAMING
                record.error_detail = _snippet(b"".join(pieces)) or "empty body"
            return
        done = False
        chat = self.api == "chat"
        event_ns = record.event_ns
        chars = 0
        texts: list[str] | None = [] if self.count_output is not None else None
        if ev_d and ev_d[-1] == b"[DONE]":
            done = True
            ev_t, ev_d = ev_t[:-1], ev_d[:-1]
        for i, (t, obj) in enumerate(zip(ev_t, _parse_all(ev_d), strict=True)):
            if type(obj) is not dict:
                if obj is _DONE:
                    done = True
                elif type(obj) is bytes:
                    _malformed(record, f"event {i} is not JSON: {_snippet(obj)}")
                else:
                    _malformed(record, f"event {i} is {_kind(obj)}, expected object")
                continue
            error = obj.get("error")
            if error is not None:
                if record.error_kind is None:
                    record.error_kind = errors.STREAM_ERROR
                    record.error_detail = _error_detail(error)
                continue
            choices = obj.get("choices")
            if choices is not None:
                if type(choices) is not list:
                    _malformed(record, f"choices is {_kind(choices)}, expected array")
                elif choices:
                    choice = choices[0]
                    if type(choice) is not dict:
                        _malformed(record, f"choices[0] is {_kind(choice)}, expected object")
                    else:
                        # The common shape inline (this runs once per token); anything else,
                        # and every type check, in _choice_text.
                        if chat:
                            delta = choice.get("delta")
                            text = delta.get("content") if type(delta) is dict else None
                        else:
                            text = choice.get("text")
                        if type(text) is not str or not text:
                            text, problem = _choice_text(choice, "delta" if chat else None)
                            if problem is not None:
                                _malformed(record, problem)
                        if text:
                            # A role-only opening chunk carries no text: it is not a token.
                            event_ns.append(t)
                            chars += len(text)
                            if texts is not None:
                                texts.append(text)
                        if choice.get("finish_reason") is not None and _finish_reason(
                            record, choice
                        ):
                            done = True
            usage = obj.get("usage")
            if usage is not None:
                _take_usage(record, usage)
            timings = obj.get("timings")
            if timings is not None:
                _take_timings(record, timings)
        record.event_tokens = [None] * len(event_ns)
        record.output_text_chars = chars
        if record.output_tokens is not None:
            record.output_tokens_source = "usage"
        elif texts and self.count_output is not None:
            _count_output(record, self.count_output, "".join(texts))
        if event_ns:
            record.first_token_ns = event_ns[0]
            record.last_token_ns = event_ns[-1]
        if record.error_kind is None:
            if not done:
                record.error_kind = errors.INCOMPLETE
                record.error_detail = _snippet(rest) if rest else "stream ended without [DONE]"
            elif not event_ns:
                record.error_kind = errors.NO_TOKENS
                record.error_detail = "the stream finished without any output text"


_DONE = object()

# The largest count the store holds (INTEGER); a server reporting more is reporting garbage.
MAX_COUNT = 2**31 - 1

# Where the text of a chat choice may be: reasoning models stream their thinking first.
_CHAT_TEXT = ("content", "reasoning_content", "reasoning")


def _parse_all(payloads: list[bytes]) -> list[Any]:
    """All event payloads in one orjson call (one JSON array); per event only if one is bad.
    A bad payload is returned as its bytes, `[DONE]` as _DONE.

    The joined parse can only be misaligned if one payload holds a top-level comma (more
    values than payloads) and another is cut inside a value (fewer): the length check
    catches either alone."""
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


def _kind(value: object) -> str:
    """The JSON name of a parsed value's type, for details like "usage is string"."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


_JSON_KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


def _malformed(record: RequestRecord, detail: str) -> None:
    """The first problem names the request's error; tokens already seen stay."""
    if record.error_kind is None:
        record.error_kind = errors.MALFORMED
        record.error_detail = detail


def _note(record: RequestRecord, note: str) -> None:
    if note not in record.notes:  # usage may come in every chunk: one note per problem
        record.notes.append(note)


def _choice_text(choice: dict[str, Any], holder_key: str | None) -> tuple[str | None, str | None]:
    """(text, problem) of choices[0]: chat reads choice[holder_key] ("delta" or "message"),
    completions read choice["text"]. A field of the wrong type is the problem, named."""
    if holder_key is None:
        text = choice.get("text")
        if text is None or type(text) is str:
            return text, None
        return None, f"choices[0].text is {_kind(text)}, expected string"
    holder = choice.get(holder_key)
    if holder is None:
        return None, None
    if type(holder) is not dict:
        return None, f"choices[0].{holder_key} is {_kind(holder)}, expected object"
    for key in _CHAT_TEXT:
        text = holder.get(key)
        if text is None:
            continue
        if type(text) is not str:
            return None, f"choices[0].{holder_key}.{key} is {_kind(text)}, expected string"
        if text:
            return text, None
    return None, None


def _finish_reason(record: RequestRecord, choice: dict[str, Any]) -> bool:
    """Whether choices[0] says the generation finished."""
    reason = choice.get("finish_reason")
    if reason is None or type(reason) is str:
        return bool(reason)
    _malformed(record, f"choices[0].finish_reason is {_kind(reason)}, expected string")
    return False


def _take_usage(record: RequestRecord, usage: object) -> None:
    """Server token counts, validated: a count that is not a non-negative integer the store
    can hold is kept as unknown (None) with a `malformed_usage` note, not as an error: the
    tokens were still served and timed."""
    if type(usage) is not dict:
        _malformed(record, f"usage is {_kind(usage)}, expected object")
        return
    pt = usage.get("prompt_tokens")
    if pt is not None:
        record.input_tokens = _valid_count(record, "prompt_tokens", pt)
    ct = usage.get("completion_tokens")
    if ct is not None:
        record.output_tokens = _valid_count(record, "completion_tokens", ct)
        record.output_tokens_source = None if record.output_tokens is None else "usage"
    _take_cached(record, usage)


def _take_cached(record: RequestRecord, usage: dict[str, Any]) -> None:
    """Prompt tokens served from the server's prompt cache: OpenAI/vLLM/SGLang
    ``prompt_tokens_details.cached_tokens``, else Anthropic-style ``cache_read_input_tokens``
    (also passed through by gateways). The same validation as the other counts."""
    details = usage.get("prompt_tokens_details")
    if details is not None and type(details) is not dict:
        _note(record, f"malformed_usage: prompt_tokens_details={_short(details)}")
        details = None
    cached = details.get("cached_tokens") if details else None
    name = "prompt_tokens_details.cached_tokens"
    if cached is None:
        cached, name = usage.get("cache_read_input_tokens"), "cache_read_input_tokens"
    if cached is not None:
        record.cached_input_tokens = _valid_count(record, name, cached)


def _valid_count(record: RequestRecord, name: str, value: object) -> int | None:
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    _note(record, f"malformed_usage: {name}={_short(value)}")
    return None


def _take_timings(record: RequestRecord, timings: object) -> None:
    """llama.cpp's per-request `timings`: an object of numbers, stored as reported."""
    if type(timings) is not dict:
        _malformed(record, f"timings is {_kind(timings)}, expected object")
        return
    for key, value in timings.items():
        if value is not None and type(value) not in (int, float):
            _malformed(record, f"timings.{_clip(key, 40)} is {_kind(value)}, expected number")
            return
    if timings:
        record.server_timings = timings
    # llama.cpp's prompt tokens reused from the slot's cache. Usage's own figure, when the
    # server gives one too, is the same count: it overwrites this one whichever comes first.
    cache_n = timings.get("cache_n")
    if cache_n is not None and record.cached_input_tokens is None:
        record.cached_input_tokens = _valid_count(record, "timings.cache_n", cache_n)


def _count_output(record: RequestRecord, count: Callable[[str], int], text: str) -> None:
    """The client tokenizer's count of the streamed text (the server gave no usage)."""
    try:
        n = count(text)
    except Exception as exc:  # a user's tokenizer failing costs the count, not the request
        _note(record, f"client_tokenizer_failed: {type(exc).__name__}")
        return
    if type(n) is int and 0 <= n <= MAX_COUNT:
        record.output_tokens = n
        record.output_tokens_source = "client_tokenizer"


def _finish_json(
    record: RequestRecord,
    body: bytes,
    t_end: int | None,
    api: Api,
    count_output: Callable[[str], int] | None = None,
) -> None:
    """Non-streaming response: one JSON document; first and last token are the arrival time."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        _malformed(record, f"body is not JSON: {_snippet(body) or 'empty body'}")
        return
    if type(obj) is not dict:
        _malformed(record, f"body is {_kind(obj)}, expected object")
        return
    error = obj.get("error")
    if error is not None:
        if record.error_kind is None:
            record.error_kind = errors.STREAM_ERROR
            record.error_detail = _error_detail(error)
        return
    choices = obj.get("choices")
    if choices is None:
        _malformed(record, f"body has no choices: {_snippet(body)}")
        return
    if type(choices) is not list:
        _malformed(record, f"choices is {_kind(choices)}, expected array")
        return
    usage = obj.get("usage")
    if usage is not None:
        _take_usage(record, usage)
    timings = obj.get("timings")
    if timings is not None:
        _take_timings(record, timings)
    text: str | None = None
    if choices:
        choice = choices[0]
        if type(choice) is not dict:
            _malformed(record, f"choices[0] is {_kind(choice)}, expected object")
        else:
            text, problem = _choice_text(choice, "message" if api == "chat" else None)
            if problem is not None:
                _malformed(record, problem)
            _finish_reason(record, choice)
    if record.output_tokens is None and text and count_output is not None:
        _count_output(record, count_output, text)
    if text and t_end is not None:
        record.event_ns = [t_end]
        record.event_tokens = [record.output_tokens]
        record.first_token_ns = record.last_token_ns = t_end
        record.output_text_chars = len(text)
    elif record.error_kind is None:
        record.error_kind = errors.NO_TOKENS
        record.error_detail = "the response has no output text"


def _error_detail(error: object) -> str:
    """One line from an error object: its message when it has one, else the object."""
    if type(error) is str:
        return _clip(error) or "empty error"
    if type(error) is dict:
        message = error.get("message")
        if type(message) is str and message:
            return _clip(message)
    return _clip(_json_text(error))


def _parser_failed(record: RequestRecord, exc: Exception) -> None:
    """A parser bug: the record keeps every token event seen so far, consistently."""
    n = len(record.event_ns)
    if len(record.event_tokens) != n:
        record.event_tokens = [None] * n
    if n:
        record.first_token_ns, record.last_token_ns = record.event_ns[0], record.event_ns[-1]
    if record.output_tokens is not None and record.output_tokens_source is None:
        record.output_tokens_source = "usage"
    if record.error_kind is None:
        record.error_kind = errors.MALFORMED
        record.error_detail = _clip(f"parser error ({type(exc).__name__}): {exc}")
    _note(record, f"parser_error: {type(exc).__name__}")


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _short(value: object) -> str:
    return _clip(_json_text(value), 40)


def _clip(text: str, limit: int = 200) -> str:
    return text[:limit].replace("\r", "\\r").replace("\n", "\\n")


def _snippet(data: bytes, limit: int = 200) -> str:
    return _clip(data[:limit].decode("utf-8", "replace"), limit)
