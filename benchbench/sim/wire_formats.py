"""The simulator's streamed wire formats beyond OpenAI chat/completions: what it writes for a
stream's start, each token chunk and its end, per protocol, each event already framed.

Each class follows the published format its docstring names (the same documents the client
adapters in loadgen/api_*.py cite); tests/data/wire/ holds a recorded stream of each.
Every event carries `bb_send_ns` where the format allows extra fields (OpenAI-style JSON),
like the chat stream does."""

from __future__ import annotations

import time
from typing import Any

import orjson

from benchbench.sim.http import chunk


def sse(obj: dict[str, Any], event: str | None = None) -> bytes:
    head = b"event: %b\n" % event.encode() if event else b""
    return chunk(head + b"data: " + orjson.dumps(obj) + b"\n\n")


def ndjson(obj: dict[str, Any]) -> bytes:
    return chunk(orjson.dumps(obj) + b"\n")


class ResponsesFormat:
    """OpenAI Responses streaming events (platform.openai.com, "Responses streaming")."""

    content_type = "text/event-stream"

    def __init__(self, request_id: str, model: str) -> None:
        self._id, self._model, self._seq = request_id, model, 0

    def _event(self, kind: str, **fields: Any) -> bytes:
        self._seq += 1
        obj = {"type": kind, "sequence_number": self._seq, **fields}
        obj["bb_send_ns"] = time.monotonic_ns()
        return sse(obj, kind)

    def _response(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self._id, "object": "response", "model": self._model}
        out["status"] = status
        if usage is not None:
            out["usage"] = usage
        return out

    def start(self) -> bytes:
        item = {"id": f"msg_{self._id}", "type": "message", "role": "assistant", "content": []}
        return b"".join(
            (
                self._event("response.created", response=self._response("in_progress")),
                self._event("response.output_item.added", output_index=0, item=item),
                self._event(
                    "response.content_part.added",
                    output_index=0,
                    content_index=0,
                    part={"type": "output_text", "text": ""},
                ),
            )
        )

    def tokens(self, text: str) -> bytes:
        return self._event(
            "response.output_text.delta", output_index=0, content_index=0, delta=text
        )

    def end(self, prompt_tokens: int, length: int, finish_reason: str, cached: int = 0) -> bytes:
        usage = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": length,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + length,
        }
        # A generation cut at max_output_tokens ends "incomplete", as OpenAI's does.
        if finish_reason == "length":
            response = self._response("incomplete", usage)
            response["incomplete_details"] = {"reason": "max_output_tokens"}
            return self._event("response.incomplete", response=response)
        return self._event("response.completed", response=self._response("completed", usage))


class MessagesFormat:
    """Anthropic Messages streaming events (docs.anthropic.com, "Streaming Messages")."""

    content_type = "text/event-stream"

    def __init__(self, request_id: str, model: str, prompt_tokens: int) -> None:
        self._id, self._model, self._prompt_tokens = request_id, model, prompt_tokens

    def start(self) -> bytes:
        usage = {
            "input_tokens": self._prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        }
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "usage": usage,
        }
        block = {"type": "content_block_start", "index": 0}
        block["content_block"] = {"type": "text", "text": ""}
        return sse({"type": "message_start", "message": message}, "message_start") + sse(
            block, "content_block_start"
        )

    def tokens(self, text: str) -> bytes:
        delta = {"type": "text_delta", "text": text}
        return sse(
            {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
        )

    def end(self, prompt_tokens: int, length: int, finish_reason: str, cached: int = 0) -> bytes:
        stop_reason = "max_tokens" if finish_reason == "length" else "end_turn"
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        # message_delta's usage is cumulative: the prompt split known once admitted (the
        # simulator writes message_start before its engine looks the prompt up). Anthropic's
        # input_tokens leaves out the tokens read from the cache.
        usage = {
            "input_tokens": prompt_tokens - cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": length,
        }
        return b"".join(
            (
                sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"),
                sse({"type": "message_stop"}, "message_stop"),
            )
        )


class LlamaCppFormat:
    """llama.cpp POST /completion stream (tools/server/README.md, "POST /completion")."""

    content_type = "text/event-stream"

    def __init__(self, model: str, started_ns: int) -> None:
        self._model, self._started_ns = model, started_ns
        self._first_ns: int | None = None

    def start(self) -> bytes:
        return b""

    def tokens(self, text: str) -> bytes:
        if self._first_ns is None:
            self._first_ns = time.monotonic_ns()
        return sse({"index": 0, "content": text, "stop": False, "bb_send_ns": time.monotonic_ns()})

    def end(self, prompt_tokens: int, length: int, finish_reason: str, cached: int = 0) -> bytes:
        now = time.monotonic_ns()
        first = self._first_ns if self._first_ns is not None else now
        prompt_ms = (first - self._started_ns) / 1e6
        predicted_ms = (now - first) / 1e6
        # llama.cpp: cache_n tokens reused from the slot's cache, prompt_n the ones processed.
        timings = {
            "cache_n": cached,
            "prompt_n": prompt_tokens - cached,
            "prompt_ms": prompt_ms,
            "predicted_n": length,
            "predicted_ms": predicted_ms,
        }
        final = {
            "index": 0,
            "content": "",
            "stop": True,
            "model": self._model,
            "tokens_predicted": length,
            "tokens_evaluated": prompt_tokens,
            "stop_type": "limit" if finish_reason == "length" else "eos",
            "timings": timings,
            "bb_send_ns": now,
        }
        return sse(final)


class TgiFormat:
    """TGI POST /generate_stream (docs/openapi.json; router/src/lib.rs StreamResponse)."""

    content_type = "text/event-stream"

    def __init__(self) -> None:
        self._index, self._text = 0, []  # type: ignore[var-annotated]

    def start(self) -> bytes:
        return b""

    def _event(self, text: str, special: bool, details: dict[str, Any] | None) -> bytes:
        self._index += 1
        token = {"id": self._index, "text": text, "logprob": -0.5, "special": special}
        generated = "".join(self._text) if details is not None else None
        obj = {"index": self._index, "token": token, "generated_text": generated}
        obj["details"] = details
        return sse(obj)

    def tokens(self, text: str) -> bytes:
        self._text.append(text)
        return self._event(text, False, None)

    def end(self, prompt_tokens: int, length: int, finish_reason: str, cached: int = 0) -> bytes:
        details = {
            "finish_reason": "length" if finish_reason == "length" else "eos_token",
            "generated_tokens": length,
            "input_length": prompt_tokens,
            "seed": None,
        }
        # The end of sequence is a special token: counted by TGI, no text.
        if finish_reason != "length":
            return self._event("</s>", True, details)
        return self._event("", False, details)


class OllamaFormat:
    """Ollama /api/chat and /api/generate NDJSON (docs/api.md)."""

    content_type = "application/x-ndjson"

    def __init__(self, model: str, chat: bool, started_ns: int) -> None:
        self._model, self._chat, self._started_ns = model, chat, started_ns
        self._first_ns: int | None = None

    def start(self) -> bytes:
        return b""

    def _line(self, text: str, done: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": self._model, "created_at": _now_rfc3339()}
        if self._chat:
            obj["message"] = {"role": "assistant", "content": text}
        else:
            obj["response"] = text
        obj["done"] = done
        return obj

    def tokens(self, text: str) -> bytes:
        if self._first_ns is None:
            self._first_ns = time.monotonic_ns()
        return ndjson(self._line(text, False))

    def end(self, prompt_tokens: int, length: int, finish_reason: str, cached: int = 0) -> bytes:
        now = time.monotonic_ns()
        first = self._first_ns if self._first_ns is not None else now
        obj = self._line("", True)
        obj["done_reason"] = "length" if finish_reason == "length" else "stop"
        obj["total_duration"] = now - self._started_ns
        obj["load_duration"] = 0
        obj["prompt_eval_count"] = prompt_tokens
        obj["prompt_eval_duration"] = first - self._started_ns
        obj["eval_count"] = length
        obj["eval_duration"] = now - first
        return ndjson(obj)


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
