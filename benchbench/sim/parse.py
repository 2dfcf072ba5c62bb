"""Validation of completion and chat request bodies (bad input -> 400 with a reason)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from benchbench.sim.config import SimConfig
from benchbench.sim.tokenizer import count_tokens


class RequestError(Exception):
    """A request the simulator answers with `status` and an OpenAI-style error."""

    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    chat: bool
    prompt_tokens: int
    prompt_key: str  # what the output RNG is seeded from
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "request body must be a JSON object")
    return data


def parse_generation(body: bytes, chat: bool, config: SimConfig) -> GenerationRequest:
    data = parse_json_object(body)
    model = data.get("model")
    if model is not None and model != config.model:
        raise RequestError(
            404, f"model {model!r} does not exist; use {config.model!r}", "NotFoundError"
        )
    if chat:
        prompt_tokens, prompt_key = _messages(data.get("messages"))
        max_tokens = data.get("max_completion_tokens")
        field = "max_completion_tokens"
        if max_tokens is None:
            max_tokens, field = data.get("max_tokens"), "max_tokens"
    else:
        prompt_tokens, prompt_key = _prompt(data.get("prompt"))
        max_tokens, field = data.get("max_tokens"), "max_tokens"
    if max_tokens is None:
        max_tokens = config.default_max_tokens
    _int_at_least(max_tokens, 1, field)
    min_tokens = data.get("min_tokens")
    if min_tokens is None:
        min_tokens = 0
    _int_at_least(min_tokens, 0, "min_tokens")
    if min_tokens > max_tokens:
        raise RequestError(400, f"min_tokens ({min_tokens}) must be <= {field} ({max_tokens})")
    n = data.get("n", 1)
    if n != 1:
        raise RequestError(400, "only n=1 is supported")
    stream = _bool(data.get("stream", False), "stream")
    ignore_eos = _bool(data.get("ignore_eos", False), "ignore_eos")
    options = data.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise RequestError(400, "stream_options must be an object")
        include_usage = _bool(options.get("include_usage", False), "stream_options.include_usage")
    return GenerationRequest(
        chat=chat,
        prompt_tokens=prompt_tokens,
        prompt_key=prompt_key,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=ignore_eos,
        stream=stream,
        include_usage=include_usage,
    )


def _prompt(prompt: object) -> tuple[int, str]:
    if isinstance(prompt, str):
        return count_tokens(prompt), prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return count_tokens(prompt[0]), prompt[0]
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return len(prompt), ",".join(map(str, prompt))
    raise RequestError(400, "prompt must be a string or a non-empty list of token ids")


def _messages(messages: object) -> tuple[int, str]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list of {role, content} objects")
    texts = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(400, f"messages[{i}] must be an object with a string 'role'")
        content = message.get("content")
        if content is None:
            continue
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    raise RequestError(400, f"messages[{i}].content parts must be objects")
                if part.get("type") == "text":
                    if not isinstance(part.get("text"), str):
                        raise RequestError(400, f"messages[{i}] has a text part without 'text'")
                    texts.append(part["text"])
        else:
            raise RequestError(400, f"messages[{i}].content must be a string or a list of parts")
    return sum(count_tokens(t) for t in texts), "\n".join(texts)


def _int_at_least(value: object, least: int, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise RequestError(400, f"{field} must be an integer >= {least} (got {value!r})")


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(400, f"{field} must be true or false (got {value!r})")
    return value
