"""Reasoning-aware chat streams: reasoning (`delta.reasoning_content`, `delta.reasoning`) and
tool-call (`delta.tool_calls`) fragments are token-bearing events with a kind; the first
event of any kind (even role-only) is `first_event_ns`; the server's reasoning count is
read from usage.completion_tokens_details."""

from __future__ import annotations

import orjson

from loadgen import errors
from loadgen.endpoints import OpenAIEndpoint
from loadgen.spec import RequestRecord


def _delta(**delta: object) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _finish(reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def _usage(completion: int, **details: object) -> dict:
    usage = {"prompt_tokens": 3, "completion_tokens": completion}
    if details:
        usage["completion_tokens_details"] = details
    return {"choices": [], "usage": usage}


def _stream(*events: dict) -> RequestRecord:
    """One event per read, arriving at 10, 20, 30, ... ns."""
    pieces = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    record = RequestRecord(index=0, intended_ns=None, sent_ns=0)
    OpenAIEndpoint("chat", "m").finish(record, pieces, [10 * (i + 1) for i in range(len(pieces))])
    return record


def test_reasoning_fragments_come_first_and_keep_their_kind() -> None:
    r = _stream(
        _delta(role="assistant"),  # 10: role-only, not a token
        _delta(reasoning_content="Let"),  # 20
        _delta(content="", reasoning_content=" me"),  # 30: an empty content is no answer
        _delta(reasoning=" think"),  # 40: the other name servers use
        _delta(content="Hi"),  # 50
        _finish(),  # 60
        _usage(4, reasoning_tokens=3),  # 70
    )
    assert r.error_kind is None
    assert r.event_ns == [20, 30, 40, 50]
    assert r.event_kinds == ["reasoning", "reasoning", "reasoning", "answer"]
    assert (r.first_event_ns, r.first_token_ns, r.last_token_ns) == (10, 20, 50)
    assert (r.output_tokens, r.reasoning_tokens) == (4, 3)
    assert r.output_text_chars == len("Let me thinkHi")


def test_a_plain_answer_stream_allocates_no_kinds() -> None:
    r = _stream(_delta(role="assistant"), _delta(content="a"), _delta(content="b"), _finish())
    assert r.event_kinds is None
    assert (r.first_event_ns, r.first_token_ns, r.event_ns) == (10, 20, [20, 30])


def test_answer_events_before_a_reasoning_one_are_back_filled() -> None:
    r = _stream(_delta(content="a"), _delta(reasoning_content="b"), _delta(content="c"), _finish())
    assert r.event_kinds == ["answer", "reasoning", "answer"]


def test_tool_call_fragments_are_tokens_of_their_own_kind() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    more = {"index": 0, "function": {"arguments": '{"q": 1}'}}
    r = _stream(
        _delta(role="assistant", tool_calls=[call]),  # 10: the name is generated text
        _delta(tool_calls=[more]),  # 20
        _finish("tool_calls"),  # 30
    )
    assert r.error_kind is None
    assert r.event_kinds == ["tool_call", "tool_call"]
    assert r.event_ns == [10, 20] and r.first_event_ns == 10
    assert r.output_text_chars == len('f{"q": 1}')


def test_a_wrongly_typed_reasoning_field_is_named() -> None:
    r = _stream(_delta(content="a"), _delta(reasoning_content=5), _finish())
    assert r.error_kind == errors.MALFORMED
    assert r.error_detail == "choices[0].delta.reasoning_content is number, expected string"
    assert r.event_ns == [10]  # the token seen before stays


def test_a_wrongly_typed_tool_call_is_named() -> None:
    r = _stream(_delta(tool_calls={"index": 0}), _finish())
    assert r.error_kind == errors.MALFORMED
    assert "tool_calls is object, expected array" in (r.error_detail or "")


def test_a_reasoning_count_that_is_not_a_count_is_unknown_with_a_note() -> None:
    r = _stream(_delta(content="a"), _finish(), _usage(1, reasoning_tokens=-1))
    assert r.error_kind is None and r.reasoning_tokens is None
    assert r.notes == ["malformed_usage: completion_tokens_details.reasoning_tokens=-1"]
    r = _stream(_delta(content="a"), _finish(), {"choices": [], "usage": {
        "completion_tokens": 1, "completion_tokens_details": [1]}})  # fmt: skip
    assert r.reasoning_tokens is None
    assert r.notes == ["malformed_usage: completion_tokens_details=[1]"]
