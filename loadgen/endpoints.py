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
from loadgen.responsefields import (
    choice_finished,
    choice_text,
    delta_fragment,
    json_kind,
    malformed,
    parser_failed,
    snippet,
    take_client_count,
    take_error,
    take_timings,
    take_usage,
)
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.sse import join_data_events, split_events
from loadgen.streamfast import decode_array, decode_chunks, lenient_event, read_chunks

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
            parser_failed(record, exc)

    def _finish_stream(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        texts: list[str] | None = [] if self.count_output is not None else None
        # A session's answer goes back as the next turn's history: keep it.
        answers: list[str] | None = [] if record.session_id is not None else None
        read = self._read_stream(record, pieces, times_ns, texts, answers)
        if read is None:
            return
        ev_t, done, rest = read
        if answers is not None:
            record.output_text = "".join(answers)
        event_ns = record.event_ns
        record.event_tokens = [None] * len(event_ns)
        if record.output_tokens is not None:
            record.output_tokens_source = "usage"
        elif texts and self.count_output is not None:
            take_client_count(record, self.count_output, "".join(texts))
        if ev_t:
            # Any event, even a role-only chunk or one with an empty text (vLLM's TTFT).
            record.first_event_ns = ev_t[0]
        if event_ns:
            # The first non-empty fragment of any kind: answer, reasoning or tool call (the
            # MLPerf Endpoints TTFT). The first answer token is read from the kinds.
            record.first_token_ns = event_ns[0]
            record.last_token_ns = event_ns[-1]
        if record.error_kind is None:
            if not done:
                record.error_kind = errors.INCOMPLETE
                record.error_detail = snippet(rest) if rest else "stream ended without [DONE]"
            elif not event_ns:
                record.error_kind = errors.NO_TOKENS
                record.error_detail = "the stream finished without any output text"

    def _read_stream(
        self,
        record: RequestRecord,
        pieces: Sequence[bytes],
        times_ns: Sequence[int],
        texts: list[str] | None,
        answers: list[str] | None,
    ) -> tuple[list[int], bool, bytes] | None:
        """Read the stream's events into `record`: (event times, whether it said it finished,
        the unterminated rest), or None when the body is not an event stream (recorded).
        The common stream takes two C passes and one typed decode; any other, or one that
        fails them, is split and read event by event, every problem named."""
        chat = self.api == "chat"
        joined = join_data_events(pieces, times_ns)
        if joined is not None:
            ev_t, array, done = joined
            chunks = decode_array(array, len(ev_t))
            if chunks is not None:
                done = read_chunks(record, ev_t, chunks, chat, texts, answers) or done
                return ev_t, done, b""
        ev_t, ev_d, rest = split_events(pieces, times_ns)
        if not ev_d and pieces:
            # A 200 that is not an event stream: a server ignoring "stream", or garbage.
            if record.error_kind is None:
                record.error_kind = errors.NOT_STREAMING
                record.error_detail = snippet(b"".join(pieces)) or "empty body"
            return None
        done = False
        if ev_d and ev_d[-1] == b"[DONE]":
            done = True
            ev_t, ev_d = ev_t[:-1], ev_d[:-1]
        chunks = decode_chunks(ev_d)
        if chunks is not None:
            done = read_chunks(record, ev_t, chunks, chat, texts, answers) or done
        else:
            done = _read_events(record, ev_t, ev_d, chat, texts, answers) or done
        return ev_t, done, rest


def _read_events(
    record: RequestRecord,
    ev_t: list[int],
    ev_d: list[bytes],
    chat: bool,
    texts: list[str] | None,
    answers: list[str] | None = None,
) -> bool:
    """Read a stream's events into `record`; whether one said the generation finished. This
    runs once per token: the common shape is read inline, any other case in a helper."""
    done, chars, event_ns = False, 0, record.event_ns
    # Kinds stay None (all answer) until a reasoning or tool-call fragment arrives, so a plain
    # answer stream allocates nothing for them.
    kinds: list[str] | None = None
    for i, (t, obj) in enumerate(zip(ev_t, _parse_all(ev_d), strict=True)):
        if type(obj) is not dict:
            if obj is _DONE:
                done = True
            elif type(obj) is bytes:
                malformed(record, f"event {i} is not JSON: {snippet(obj)}")
            else:
                malformed(record, f"event {i} is {json_kind(obj)}, expected object")
            continue
        error = obj.get("error")
        if error is not None:
            take_error(record, error)
            continue
        choices = obj.get("choices")
        if choices is not None:
            if type(choices) is not list:
                malformed(record, f"choices is {json_kind(choices)}, expected array")
            elif choices:
                choice = choices[0]
                if type(choice) is not dict:
                    malformed(record, f"choices[0] is {json_kind(choice)}, expected object")
                else:
                    kind = None  # an answer fragment
                    if chat:
                        delta = choice.get("delta")
                        text = delta.get("content") if type(delta) is dict else None
                    else:
                        text = choice.get("text")
                    if type(text) is not str or not text:
                        if chat:
                            text, kind, problem = delta_fragment(choice)
                        else:
                            text, problem = choice_text(choice, None)
                        if problem is not None:
                            malformed(record, problem)
                    if text:
                        # A role-only opening chunk carries no text: it is not a token.
                        event_ns.append(t)
                        if kind is not None or kinds is not None:
                            kinds = _add_kind(record, kinds, kind or "answer")
                        chars += len(text)
                        if texts is not None:
                            texts.append(text)
                        if answers is not None and kind is None:
                            answers.append(text)
                    if choice.get("finish_reason") is not None and choice_finished(record, choice):
                        done = True
        usage = obj.get("usage")
        if usage is not None:
            take_usage(record, usage)
        timings = obj.get("timings")
        if timings is not None:
            take_timings(record, timings)
    record.output_text_chars = chars
    return done


def _add_kind(record: RequestRecord, kinds: list[str] | None, kind: str) -> list[str]:
    """Append the kind of the event just appended to event_ns; the first non-answer kind
    back-fills "answer" for the events before it."""
    if kinds is None:
        kinds = ["answer"] * (len(record.event_ns) - 1)
        record.event_kinds = kinds
    kinds.append(kind)
    return kinds


_DONE = object()


def _parse_all(payloads: list[bytes]) -> list[Any]:
    """All event payloads in one orjson call (one JSON array); per event only if one is bad.
    A payload orjson refuses is read leniently (streamfast.lenient_event), else returned as
    its bytes; `[DONE]` as _DONE.

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
            # A number beyond a double or bad UTF-8 in a field nobody reads: read it as the
            # fast path does. What that decode refuses too is not JSON (kept as its bytes).
            event = lenient_event(p)
            out.append(p if event is None else event)
    return out


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
        malformed(record, f"body is not JSON: {snippet(body) or 'empty body'}")
        return
    if type(obj) is not dict:
        malformed(record, f"body is {json_kind(obj)}, expected object")
        return
    error = obj.get("error")
    if error is not None:
        take_error(record, error)
        return
    choices = obj.get("choices")
    if choices is None:
        malformed(record, f"body has no choices: {snippet(body)}")
        return
    if type(choices) is not list:
        malformed(record, f"choices is {json_kind(choices)}, expected array")
        return
    usage = obj.get("usage")
    if usage is not None:
        take_usage(record, usage)
    timings = obj.get("timings")
    if timings is not None:
        take_timings(record, timings)
    text: str | None = None
    if choices:
        choice = choices[0]
        if type(choice) is not dict:
            malformed(record, f"choices[0] is {json_kind(choice)}, expected object")
        else:
            text, problem = choice_text(choice, "message" if api == "chat" else None)
            if problem is not None:
                malformed(record, problem)
            choice_finished(record, choice)
    if record.output_tokens is None and text and count_output is not None:
        take_client_count(record, count_output, text)
    if text and t_end is not None:
        record.event_ns = [t_end]
        record.event_tokens = [record.output_tokens]
        record.first_token_ns = record.last_token_ns = record.first_event_ns = t_end
        record.output_text_chars = len(text)
        if record.session_id is not None:
            record.output_text = text
    elif record.error_kind is None:
        record.error_kind = errors.NO_TOKENS
        record.error_detail = "the response has no output text"
