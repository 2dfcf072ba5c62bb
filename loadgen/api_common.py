"""What the streaming adapters share: NDJSON framing, one JSON parse per event, and the
closing rules every stream follows (token truth, first/last token, incomplete, no tokens).

The rules are the chat parser's: the server's counts first, the client tokenizer as the
named fallback, never a count of chunks; an error object, a cut stream or a wrong type is
data on the record (an error kind), never an exception."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from loadgen import errors
from loadgen.responsefields import (
    MAX_COUNT,
    add_note,
    json_kind,
    malformed,
    parser_failed,
    snippet,
    take_client_count,
)
from loadgen.spec import RequestRecord
from loadgen.sse import split_events

if TYPE_CHECKING:
    from loadgen.apis import AdapterOptions

ANSWER, REASONING, TOOL_CALL = "answer", "reasoning", "tool_call"


@dataclass(slots=True)
class StreamTally:
    """What reading one stream's events collected, besides what went on the record."""

    count_text: bool  # keep the text for the client tokenizer
    # Keep the answer text (a session's request: the next turn sends it back).
    keep_answer: bool = False
    kinds: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    done: bool = False
    chars: int = 0

    def token(self, record: RequestRecord, t: int, text: str, kind: str = ANSWER) -> None:
        """One token-bearing event at time `t` (empty text is not a token)."""
        if not text:
            return
        record.event_ns.append(t)
        self.kinds.append(kind)
        if kind == ANSWER:
            self.chars += len(text)
            if self.keep_answer:
                self.answers.append(text)
        if self.count_text:
            self.texts.append(text)


def guarded(record: RequestRecord, read: Callable[[], None]) -> None:
    """Run a parser; a bug in it costs the request its success, never its record."""
    try:
        read()
    except Exception as exc:
        parser_failed(record, exc)


def split_lines(
    pieces: Sequence[bytes], times_ns: Sequence[int]
) -> tuple[list[int], list[bytes], bytes]:
    """NDJSON framing (Ollama): (line times, non-empty lines, unterminated rest). A line's
    time is the arrival of the piece holding its newline."""
    out_t: list[int] = []
    out_d: list[bytes] = []
    pending = b""
    for t, piece in zip(times_ns, pieces, strict=True):
        data = pending + piece if pending else piece
        lines = data.split(b"\n")
        pending = lines.pop()
        for line in lines:
            line = line.strip()
            if line:
                out_t.append(t)
                out_d.append(line)
    return out_t, out_d, pending


def parse_event(record: RequestRecord, i: int, payload: bytes) -> dict[str, Any] | None:
    """Event `i` as a JSON object; anything else marks the record malformed and gives None."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        malformed(record, f"event {i} is not JSON: {snippet(payload)}")
        return None
    if type(obj) is not dict:
        malformed(record, f"event {i} is {json_kind(obj)}, expected object")
        return None
    return obj


def field_of(record: RequestRecord, obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """obj[key] when it has the JSON type `kind` (or is absent: None); a wrong type is the
    request's `malformed` error, named with `where`."""
    value = obj.get(key)
    if value is None or type(value) is kind:
        return value
    if kind is float and type(value) is int:
        return value
    names = {str: "string", dict: "object", list: "array", int: "number", bool: "boolean"}
    malformed(record, f"{where}{key} is {json_kind(value)}, expected {names.get(kind, 'number')}")
    return None


def count(record: RequestRecord, value: object, name: str) -> int | None:
    """A server count: a non-negative integer the store can hold, else unknown with a note."""
    if value is None:
        return None
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    add_note(record, f"malformed_usage: {name}={snippet(orjson.dumps(value), 40)}")
    return None


def keep_timings(record: RequestRecord, timings: dict[str, Any]) -> None:
    """The server's own timings, numbers only, beside the client's (server_timings)."""
    kept = {k: v for k, v in timings.items() if type(v) in (int, float) and not isinstance(v, bool)}
    if kept:
        record.server_timings = {**(record.server_timings or {}), **kept}


def close_stream(
    record: RequestRecord,
    tally: StreamTally,
    count_output: Callable[[str], int] | None,
    rest: bytes,
    unfinished: str,
) -> None:
    """The closing rules of every stream: per-event kinds, the output count's source,
    first/last token, and `incomplete` / `no_tokens` when nothing else went wrong.
    `unfinished` says what a complete stream ends with."""
    event_ns = record.event_ns
    record.event_tokens = [None] * len(event_ns)
    if any(kind != ANSWER for kind in tally.kinds):
        record.event_kinds = tally.kinds
    record.output_text_chars = tally.chars
    if tally.keep_answer:
        record.output_text = "".join(tally.answers)
    if record.output_tokens is not None:
        record.output_tokens_source = "usage"
    elif tally.texts and count_output is not None:
        take_client_count(record, count_output, "".join(tally.texts))
    if event_ns:
        record.first_token_ns = event_ns[0]
        record.last_token_ns = event_ns[-1]
    if record.error_kind is not None:
        return
    if not tally.done:
        record.error_kind = errors.INCOMPLETE
        record.error_detail = snippet(rest) if rest else f"stream ended without {unfinished}"
    elif not event_ns:
        record.error_kind = errors.NO_TOKENS
        record.error_detail = "the stream finished without any output text"


def not_a_stream(record: RequestRecord, pieces: Sequence[bytes]) -> None:
    """A 200 that is not an event stream: a server ignoring "stream", or garbage."""
    if record.error_kind is None:
        record.error_kind = errors.NOT_STREAMING
        record.error_detail = snippet(b"".join(pieces)) or "empty body"


def encode_body(
    body: dict[str, Any], spec_extra: dict[str, Any] | None, user_extra: dict[str, Any] | None
) -> bytes:
    """A request body with the workload's extra fields, then the user's (--extra-body),
    merged last: what the user says wins."""
    if spec_extra:
        body.update(spec_extra)
    if user_extra:
        body.update(user_extra)
    return orjson.dumps(body)


class StreamedEndpoint:
    """What every streamed adapter's finish() shares: frame the body into events (SSE, or
    NDJSON lines), parse each once, hand each to the adapter's `read_event`, then apply the
    closing rules. An adapter sets its path and `ends_with`, and writes body() and
    read_event()."""

    # What a complete stream ends with: the `incomplete` detail names it.
    ends_with = "its final event"
    ndjson = False  # one JSON object per line (Ollama) instead of server-sent events

    def __init__(self, options: AdapterOptions) -> None:
        self.model = options.model
        self.count_output = options.count_output
        self.extra_body = options.extra_body

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        guarded(record, lambda: self._read(record, pieces, times_ns))

    def read_event(
        self, record: RequestRecord, tally: StreamTally, t: int, obj: dict[str, Any]
    ) -> None:
        """One parsed event at receive time `t`: tokens into `tally`, counts onto `record`."""
        raise NotImplementedError

    def with_extra(self, body: dict[str, Any], spec_extra: dict[str, Any] | None) -> bytes:
        return encode_body(body, spec_extra, self.extra_body)

    def _read(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        split = split_lines if self.ndjson else split_events
        ev_t, ev_d, rest = split(pieces, times_ns)
        if not ev_d:
            if not pieces:
                return
            if not self.ndjson:
                not_a_stream(record, pieces)
            elif record.error_kind is None:  # not one whole line: cut before it ended
                record.error_kind = errors.INCOMPLETE
                record.error_detail = snippet(rest) or "empty body"
            return
        record.first_event_ns = ev_t[0]  # any event, even one without text
        tally = StreamTally(
            count_text=self.count_output is not None, keep_answer=record.session_id is not None
        )
        for i, (t, payload) in enumerate(zip(ev_t, ev_d, strict=True)):
            obj = parse_event(record, i, payload)
            if obj is not None:
                self.read_event(record, tally, t, obj)
        close_stream(record, tally, self.count_output, rest, self.ends_with)
