"""Reading the fields of an OpenAI-style response, each checked for its type: the first
problem found names the request's error (`malformed`), tokens already seen stay, and a server
count that is not a count the store can hold is kept as unknown with a note, not an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from loadgen import errors
from loadgen.spec import RequestRecord

# The largest count the store holds (INTEGER); a server reporting more is reporting garbage.
MAX_COUNT = 2**31 - 1


# Where the text of a chat choice may be: reasoning models stream their thinking first.
_CHAT_TEXT = ("content", "reasoning_content", "reasoning")


def json_kind(value: object) -> str:
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


def malformed(record: RequestRecord, detail: str) -> None:
    """The first problem names the request's error; tokens already seen stay."""
    if record.error_kind is None:
        record.error_kind = errors.MALFORMED
        record.error_detail = detail


def add_note(record: RequestRecord, note: str) -> None:
    if note not in record.notes:  # usage may come in every chunk: one note per problem
        record.notes.append(note)


def choice_text(choice: dict[str, Any], holder_key: str | None) -> tuple[str | None, str | None]:
    """(text, problem) of choices[0]: chat reads choice[holder_key] ("delta" or "message"),
    completions read choice["text"]. A field of the wrong type is the problem, named."""
    if holder_key is None:
        text = choice.get("text")
        if text is None or type(text) is str:
            return text, None
        return None, f"choices[0].text is {json_kind(text)}, expected string"
    holder = choice.get(holder_key)
    if holder is None:
        return None, None
    if type(holder) is not dict:
        return None, f"choices[0].{holder_key} is {json_kind(holder)}, expected object"
    for key in _CHAT_TEXT:
        text = holder.get(key)
        if text is None:
            continue
        if type(text) is not str:
            return None, f"choices[0].{holder_key}.{key} is {json_kind(text)}, expected string"
        if text:
            return text, None
    return None, None


_REASONING_KEYS = ("reasoning_content", "reasoning")


def delta_fragment(choice: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(text, kind, problem) of a streamed chat delta whose `content` is empty: a reasoning
    fragment (`reasoning_content`, vLLM/DeepSeek/SGLang; `reasoning`, OpenRouter/Ollama/newer
    vLLM) or a tool-call fragment (`tool_calls[].function` name and arguments). kind is None
    for an answer (or no text); a field of the wrong type is the problem, named."""
    delta = choice.get("delta")
    if delta is None:
        return None, None, None
    if type(delta) is not dict:
        return None, None, f"choices[0].delta is {json_kind(delta)}, expected object"
    content = delta.get("content")
    if content is not None and type(content) is not str:
        return None, None, f"choices[0].delta.content is {json_kind(content)}, expected string"
    for key in _REASONING_KEYS:
        text = delta.get(key)
        if text is None:
            continue
        if type(text) is not str:
            return None, None, f"choices[0].delta.{key} is {json_kind(text)}, expected string"
        if text:
            return text, "reasoning", None
    calls = delta.get("tool_calls")
    if calls is None:
        return None, None, None
    text, problem = _tool_call_text(calls)
    return text, ("tool_call" if text else None), problem


def _tool_call_text(calls: object) -> tuple[str | None, str | None]:
    """The generated text of streamed tool-call fragments: each function's name (first
    fragment) and its arguments, joined."""
    if type(calls) is not list:
        return None, f"choices[0].delta.tool_calls is {json_kind(calls)}, expected array"
    parts: list[str] = []
    for call in calls:
        function = call.get("function") if type(call) is dict else None
        if function is None:
            continue
        if type(function) is not dict:
            return None, f"tool_calls[].function is {json_kind(function)}, expected object"
        for key in ("name", "arguments"):
            value = function.get(key)
            if value is not None and type(value) is not str:
                return None, f"tool_calls[].function.{key} is {json_kind(value)}, expected string"
            if value:
                parts.append(value)
    return "".join(parts) or None, None


def choice_finished(record: RequestRecord, choice: dict[str, Any]) -> bool:
    """Whether choices[0] says the generation finished."""
    reason = choice.get("finish_reason")
    if reason is None or type(reason) is str:
        return bool(reason)
    malformed(record, f"choices[0].finish_reason is {json_kind(reason)}, expected string")
    return False


def take_usage(record: RequestRecord, usage: object) -> None:
    """Server token counts, validated: a count that is not a non-negative integer the store
    can hold is kept as unknown (None) with a `malformed_usage` note, not as an error: the
    tokens were still served and timed."""
    if type(usage) is not dict:
        malformed(record, f"usage is {json_kind(usage)}, expected object")
        return
    pt = usage.get("prompt_tokens")
    if pt is not None:
        record.input_tokens = _valid_count(record, "prompt_tokens", pt)
    ct = usage.get("completion_tokens")
    if ct is not None:
        record.output_tokens = _valid_count(record, "completion_tokens", ct)
        record.output_tokens_source = None if record.output_tokens is None else "usage"
    _take_cached(record, usage)
    _take_reasoning(record, usage)


def _take_reasoning(record: RequestRecord, usage: dict[str, Any]) -> None:
    """Reasoning tokens the server counted inside completion_tokens (OpenAI, vLLM, SGLang:
    ``completion_tokens_details.reasoning_tokens``). The same validation as the other counts."""
    details = usage.get("completion_tokens_details")
    if details is None:
        return
    if type(details) is not dict:
        add_note(record, f"malformed_usage: completion_tokens_details={_short(details)}")
        return
    reasoning = details.get("reasoning_tokens")
    if reasoning is not None:
        name = "completion_tokens_details.reasoning_tokens"
        record.reasoning_tokens = _valid_count(record, name, reasoning)


def _take_cached(record: RequestRecord, usage: dict[str, Any]) -> None:
    """Prompt tokens served from the server's prompt cache: OpenAI/vLLM/SGLang
    ``prompt_tokens_details.cached_tokens``, else Anthropic-style ``cache_read_input_tokens``
    (also passed through by gateways). The same validation as the other counts."""
    details = usage.get("prompt_tokens_details")
    if details is not None and type(details) is not dict:
        add_note(record, f"malformed_usage: prompt_tokens_details={_short(details)}")
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
    add_note(record, f"malformed_usage: {name}={_short(value)}")
    return None


def take_timings(record: RequestRecord, timings: object) -> None:
    """llama.cpp's per-request `timings`: an object of numbers, stored as reported."""
    if type(timings) is not dict:
        malformed(record, f"timings is {json_kind(timings)}, expected object")
        return
    for key, value in timings.items():
        if value is not None and type(value) not in (int, float):
            malformed(record, f"timings.{clip(key, 40)} is {json_kind(value)}, expected number")
            return
    if timings:
        record.server_timings = timings
    # llama.cpp's prompt tokens reused from the slot's cache. Usage's own figure, when the
    # server gives one too, is the same count: it overwrites this one whichever comes first.
    cache_n = timings.get("cache_n")
    if cache_n is not None and record.cached_input_tokens is None:
        record.cached_input_tokens = _valid_count(record, "timings.cache_n", cache_n)


def take_client_count(record: RequestRecord, count: Callable[[str], int], text: str) -> None:
    """The client tokenizer's count of the streamed text (the server gave no usage)."""
    try:
        n = count(text)
    except Exception as exc:  # a user's tokenizer failing costs the count, not the request
        add_note(record, f"client_tokenizer_failed: {type(exc).__name__}")
        return
    if type(n) is int and 0 <= n <= MAX_COUNT:
        record.output_tokens = n
        record.output_tokens_source = "client_tokenizer"


def take_error(record: RequestRecord, error: object) -> None:
    """An error object the server sent (in the stream or as the body): the request's first
    error, as `stream_error`."""
    if record.error_kind is None:
        record.error_kind = errors.STREAM_ERROR
        record.error_detail = error_detail(error)


def error_detail(error: object) -> str:
    """One line from an error object: its message when it has one, else the object."""
    if type(error) is str:
        return clip(error) or "empty error"
    if type(error) is dict:
        message = error.get("message")
        if type(message) is str and message:
            return clip(message)
    return clip(_json_text(error))


def parser_failed(record: RequestRecord, exc: Exception) -> None:
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
        record.error_detail = clip(f"parser error ({type(exc).__name__}): {exc}")
    add_note(record, f"parser_error: {type(exc).__name__}")


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _short(value: object) -> str:
    return clip(_json_text(value), 40)


def clip(text: str, limit: int = 200) -> str:
    return text[:limit].replace("\r", "\\r").replace("\n", "\\n")


def snippet(data: bytes, limit: int = 200) -> str:
    return clip(data[:limit].decode("utf-8", "replace"), limit)
