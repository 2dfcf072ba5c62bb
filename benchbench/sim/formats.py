"""OpenAI wire formats, pre-formatted where they are hot.

A streamed token event costs one bytes-format: the JSON around the token text is
built once per request, and only the text and the send stamp change per event.
Every streamed event ends with `"bb_send_ns":<time.monotonic_ns()>` taken just
before the socket write.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from benchbench.sim.http import chunk
from benchbench.sim.tokenizer import VOCABULARY

WORD_BYTES: tuple[bytes, ...] = tuple((" " + word).encode() for word in VOCABULARY)
DONE_CHUNK = chunk(b"data: [DONE]\n\n")


def error_body(message: str, status: int, error_type: str = "invalid_request_error") -> bytes:
    """OpenAI-style error JSON."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    )


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI usage; `prompt_tokens_details.cached_tokens` = prompt tokens served from the
    prefix cache (always said, 0 included, as vLLM with prompt token details does)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


class StreamFormat:
    """The SSE events of one streamed request, each returned already chunk-framed."""

    __slots__ = ("_head", "_prefix", "_middle", "_fixed_len", "_chat", "_by_word")

    def __init__(self, request_id: str, created: int, model: str, chat: bool) -> None:
        self._chat = chat
        obj = "chat.completion.chunk" if chat else "text_completion"
        self._head = b'{"id":%b,"object":"%b","created":%d,"model":%b' % (
            orjson.dumps(request_id),
            obj.encode(),
            created,
            orjson.dumps(model),
        )
        if chat:
            self._prefix = b'data: %b,"choices":[{"index":0,"delta":{"content":"' % self._head
            self._middle = b'"},"logprobs":null,"finish_reason":null}],"bb_send_ns":'
        else:
            self._prefix = b'data: %b,"choices":[{"index":0,"text":"' % self._head
            self._middle = b'","logprobs":null,"finish_reason":null}],"bb_send_ns":'
        # "}\n\n" closes every event.
        self._fixed_len = len(self._prefix) + len(self._middle) + 3
        # Per vocabulary word, everything before the stamp, built on first use.
        self._by_word: list[tuple[int, bytes] | None] = [None] * len(WORD_BYTES)

    def word_event(self, word_id: int) -> bytes:
        """The event of one token (the hot path: one format per event)."""
        entry = self._by_word[word_id]
        if entry is None:
            text = WORD_BYTES[word_id]
            entry = (self._fixed_len + len(text), self._prefix + text + self._middle)
            self._by_word[word_id] = entry
        stamp = b"%d" % time.monotonic_ns()
        return b"%x\r\n%b%b}\n\n\r\n" % (entry[0] + len(stamp), entry[1], stamp)

    def token_event(self, text: bytes) -> bytes:
        """The event of a chunk holding several tokens' text."""
        stamp = b"%d" % time.monotonic_ns()
        return b"%x\r\n%b%b%b%b}\n\n\r\n" % (
            self._fixed_len + len(text) + len(stamp),
            self._prefix,
            text,
            self._middle,
            stamp,
        )

    def role_event(self) -> bytes:
        return self._event(
            b'"choices":[{"index":0,"delta":{"role":"assistant"},'
            b'"logprobs":null,"finish_reason":null}]'
        )

    def finish_event(self, finish_reason: str) -> bytes:
        empty = b'"delta":{}' if self._chat else b'"text":""'
        return self._event(
            b'"choices":[{"index":0,%b,"logprobs":null,"finish_reason":"%b"}]'
            % (empty, finish_reason.encode())
        )

    def usage_event(self, prompt_tokens: int, completion_tokens: int, cached: int = 0) -> bytes:
        fields = usage(prompt_tokens, completion_tokens, cached)
        return self._event(b'"choices":[],"usage":%b' % orjson.dumps(fields))

    def _event(self, fields: bytes) -> bytes:
        return chunk(
            b'data: %b,%b,"bb_send_ns":%d}\n\n' % (self._head, fields, time.monotonic_ns())
        )


def completion_body(
    request_id: str,
    created: int,
    model: str,
    chat: bool,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> bytes:
    """The one JSON object of a non-streamed response."""
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return orjson.dumps(
        {
            "id": request_id,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens, cached_tokens),
            "bb_send_ns": time.monotonic_ns(),
        }
    )


# The kinds of generated text a phased stream sends, and where each sits in the delta.
_ANSWER, _REASONING, _TOOL_CALL = "answer", "reasoning", "tool_call"
_TOOL_NAME = "lookup"


class PhasedStreamFormat(StreamFormat):
    """A chat stream whose first `reasoning` tokens are reasoning deltas
    (`delta.reasoning_content`, as vLLM and SGLang send them) and whose remaining tokens are
    answer text or, with `tool_calls`, the arguments of one streamed tool call
    (`delta.tool_calls`). The usage event says `completion_tokens_details.reasoning_tokens`.
    Slower than the plain format (one dumps per event); only a reasoning run pays for it."""

    __slots__ = ("_reasoning", "_tool_calls", "_position", "_call_open")

    def __init__(
        self, request_id: str, created: int, model: str, reasoning: int, tool_calls: bool
    ) -> None:
        super().__init__(request_id, created, model, chat=True)
        self._reasoning = reasoning
        self._tool_calls = tool_calls
        self._position = 0  # tokens sent so far
        self._call_open = False

    def word_event(self, word_id: int) -> bytes:
        return self.token_event(WORD_BYTES[word_id])

    def token_event(self, text: bytes) -> bytes:
        """One event per kind in the chunk (a chunk may straddle reasoning and answer)."""
        words = [b" " + w for w in text.split(b" ") if w]
        out = []
        while words:
            kind = self._kind(self._position)
            take = len(words)
            if kind == _REASONING:
                take = min(take, self._reasoning - self._position)
            out.append(self._fragment(kind, b"".join(words[:take]).decode()))
            self._position += take
            words = words[take:]
        return b"".join(out)

    def _kind(self, position: int) -> str:
        if position < self._reasoning:
            return _REASONING
        return _TOOL_CALL if self._tool_calls else _ANSWER

    def _fragment(self, kind: str, text: str) -> bytes:
        delta: dict[str, object]
        if kind == _REASONING:
            delta = {"reasoning_content": text}
        elif kind == _ANSWER:
            delta = {"content": text}
        elif self._call_open:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
        else:
            self._call_open = True
            call = {"name": _TOOL_NAME, "arguments": text}
            delta = {"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                                     "function": call}]}  # fmt: skip
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return self._event(b'"choices":%b' % orjson.dumps([choice]))

    def finish_event(self, finish_reason: str) -> bytes:
        # A model that ends its turn with a tool call says so.
        if self._tool_calls and finish_reason == "stop":
            finish_reason = "tool_calls"
        return super().finish_event(finish_reason)

    def usage_event(self, prompt_tokens: int, completion_tokens: int, cached: int = 0) -> bytes:
        fields = usage(prompt_tokens, completion_tokens, cached)
        details = {"reasoning_tokens": min(self._reasoning, completion_tokens)}
        return self._event(
            b'"choices":[],"usage":%b'
            % orjson.dumps({**fields, "completion_tokens_details": details})
        )


def stream_format(
    request_id: str,
    created: int,
    model: str,
    chat: bool,
    reasoning: int = 0,
    tool_calls: bool = False,
) -> StreamFormat:
    """The format of one streamed response: the plain (fast) one unless the chat response
    reasons (`reasoning` tokens first) or answers with a tool call."""
    if chat and (reasoning > 0 or tool_calls):
        return PhasedStreamFormat(request_id, created, model, reasoning, tool_calls)
    return StreamFormat(request_id, created, model, chat)
