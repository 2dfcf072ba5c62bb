"""Parsing a finished response into a record: every field read is type-checked, a wrong type
is a `malformed` request naming the field, and the tokens seen before it are kept."""

from __future__ import annotations

import orjson
import pytest

from loadgen import errors
from loadgen.endpoints import OpenAIEndpoint
from loadgen.responsefields import MAX_COUNT
from loadgen.spec import RequestRecord


def _record() -> RequestRecord:
    return RequestRecord(index=0, intended_ns=None, sent_ns=0)


def _sse(*events: object, done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def _chunk(api: str, text: object) -> dict:
    if api == "chat":
        return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return {"choices": [{"index": 0, "text": text, "finish_reason": None}]}


def _usage(prompt: object = 3, completion: object = 2) -> dict:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def _stream(api: str, body: bytes, pieces: int = 1) -> RequestRecord:
    """Finish a streamed response cut into `pieces` reads at times 10, 20, ..."""
    step = max(1, len(body) // pieces)
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    record = _record()
    OpenAIEndpoint(api, "m").finish(record, parts, [10 * (i + 1) for i in range(len(parts))])
    return record


def _json(api: str, doc: object, **endpoint: object) -> RequestRecord:
    record = _record()
    OpenAIEndpoint(api, "m", stream=False, **endpoint).finish(record, [orjson.dumps(doc)], [50])
    return record


APIS = ["chat", "completions"]


@pytest.mark.parametrize("api", APIS)
def test_a_good_stream_is_ok_with_its_tokens_and_usage(api: str) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), _chunk(api, "b"), _usage()), pieces=3)
    assert r.error_kind is None, r.error_detail
    assert len(r.event_ns) == len(r.event_tokens) == 2
    assert (r.input_tokens, r.output_tokens, r.output_tokens_source) == (3, 2, "usage")
    assert r.first_token_ns == r.event_ns[0] and r.last_token_ns == r.event_ns[-1]
    assert r.notes == []


# (event that follows one good token, field named in the detail)
WRONG_STREAM_EVENTS = [
    ({"usage": "x"}, "usage is string, expected object"),
    ({"choices": "x"}, "choices is string, expected array"),
    ({"choices": [1]}, "choices[0] is number, expected object"),
    ({"choices": {"a": 1}}, "choices is object, expected array"),
    ({"choices": [{"finish_reason": 5}]}, "choices[0].finish_reason is number, expected string"),
    ({"choices": [], "timings": [1]}, "timings is array, expected object"),
    ({"choices": [], "timings": {"prompt_n": "7"}}, "timings.prompt_n is string"),
    (5, "event 1 is number, expected object"),
    ([{"choices": []}], "event 1 is array, expected object"),
]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("event", "named"), WRONG_STREAM_EVENTS)
def test_a_field_of_the_wrong_type_is_malformed_and_named(
    api: str, event: object, named: str
) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), event, _chunk(api, "b"), _usage()))
    assert r.error_kind == errors.MALFORMED
    assert named in (r.error_detail or "")
    assert len(r.event_ns) == len(r.event_tokens) == 2  # tokens before and after are kept


@pytest.mark.parametrize(
    ("api", "chunk", "named"),
    [
        ("chat", {"choices": [{"delta": "x"}]}, "choices[0].delta is string, expected object"),
        ("chat", {"choices": [{"delta": {"content": 5}}]}, "choices[0].delta.content is number"),
        (
            "chat",
            {"choices": [{"delta": {"content": None, "reasoning_content": ["x"]}}]},
            "choices[0].delta.reasoning_content is array",
        ),
        ("completions", {"choices": [{"text": 5}]}, "choices[0].text is number, expected string"),
        ("completions", {"choices": [{"text": {"a": 1}}]}, "choices[0].text is object"),
    ],
)
def test_the_text_fields_are_type_checked(api: str, chunk: dict, named: str) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), chunk, _usage()))
    assert r.error_kind == errors.MALFORMED
    assert named in (r.error_detail or "")
    assert len(r.event_ns) == 1


@pytest.mark.parametrize("api", APIS)
def test_the_first_problem_names_the_request(api: str) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), {"choices": "x"}, {"usage": 1}))
    assert r.error_detail == "choices is string, expected array"


@pytest.mark.parametrize("api", APIS)
def test_an_event_that_is_not_json_is_malformed_with_a_snippet(api: str) -> None:
    body = _sse(_chunk(api, "a")) + b"data: {oops\n\n"
    r = _stream(api, body)
    assert r.error_kind == errors.MALFORMED
    assert "not JSON" in (r.error_detail or "") and "{oops" in (r.error_detail or "")


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        ({"message": "out of memory", "code": 500}, "out of memory"),
        ("model overloaded", "model overloaded"),
        ({"code": 7}, '{"code":7}'),
        (5, "5"),
    ],
)
@pytest.mark.parametrize("api", APIS)
def test_an_error_object_of_any_shape_is_a_stream_error(
    api: str, error: object, detail: str
) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), {"error": error}))
    assert r.error_kind == errors.STREAM_ERROR
    assert r.error_detail == detail
    assert len(r.event_ns) == 1


@pytest.mark.parametrize("api", APIS)
def test_a_null_error_field_is_no_error(api: str) -> None:
    event = {**_chunk(api, "a"), "error": None}
    r = _stream(api, _sse(event, _usage(completion=1)))
    assert r.error_kind is None


@pytest.mark.parametrize(
    "bad",
    [-5, 2**31, MAX_COUNT + 1, True, False, 1.5, 2.0, "7", [1], {"n": 1}, 1e300],
)
@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens"])
def test_a_count_that_is_not_a_count_is_unknown_with_a_note(field: str, bad: object) -> None:
    usage = _usage(**{"prompt" if field == "prompt_tokens" else "completion": bad})
    r = _stream("completions", _sse(_chunk("completions", "a"), usage))
    assert r.error_kind is None  # the tokens were served and timed: not an error
    stored = r.input_tokens if field == "prompt_tokens" else r.output_tokens
    assert stored is None
    assert r.notes == [f"malformed_usage: {field}={orjson.dumps(bad).decode()}"]
    if field == "completion_tokens":
        assert r.output_tokens_source is None
    else:
        assert (r.output_tokens, r.output_tokens_source) == (2, "usage")


def test_the_largest_count_the_store_holds_is_kept() -> None:
    r = _stream("chat", _sse(_chunk("chat", "a"), _usage(0, MAX_COUNT)))
    assert (r.input_tokens, r.output_tokens, r.notes) == (0, MAX_COUNT, [])


def test_a_usage_repeated_in_every_chunk_notes_its_problem_once() -> None:
    chunk = {**_chunk("chat", "a"), "usage": {"completion_tokens": -1}}
    r = _stream("chat", _sse(chunk, chunk, chunk))
    assert r.notes == ["malformed_usage: completion_tokens=-1"]


def test_a_malformed_count_falls_back_to_the_client_tokenizer() -> None:
    record = _record()
    endpoint = OpenAIEndpoint("chat", "m", count_output=lambda text: len(text))
    body = _sse(_chunk("chat", "ab"), _usage(completion=-3))
    endpoint.finish(record, [body], [1])
    assert (record.output_tokens, record.output_tokens_source) == (2, "client_tokenizer")


def test_a_failing_client_tokenizer_costs_the_count_not_the_request() -> None:
    def broken(text: str) -> int:
        raise RuntimeError("no vocab")

    record = _record()
    OpenAIEndpoint("chat", "m", count_output=broken).finish(
        record, [_sse(_chunk("chat", "a"), {"choices": []})], [1]
    )
    assert record.error_kind is None and record.output_tokens is None
    assert record.notes == ["client_tokenizer_failed: RuntimeError"]


@pytest.mark.parametrize("api", APIS)
def test_llama_cpp_timings_are_kept(api: str) -> None:
    timings = {"prompt_n": 7, "prompt_ms": 1.5, "cache_n": 0}
    r = _stream(api, _sse(_chunk(api, "a"), {**_usage(), "timings": timings}))
    assert r.error_kind is None and r.server_timings == timings


def _doc(api: str, text: object = "hello", **top: object) -> dict:
    choice = {"index": 0, "finish_reason": "stop"}
    choice.update({"message": {"role": "assistant", "content": text}} if api == "chat" else {})
    choice.update({"text": text} if api == "completions" else {})
    return {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}, **top}


@pytest.mark.parametrize("api", APIS)
def test_a_good_json_body_is_one_event_at_its_arrival(api: str) -> None:
    r = _json(api, _doc(api))
    assert r.error_kind is None
    assert (r.event_ns, r.event_tokens, r.output_tokens, r.output_text_chars) == ([50], [1], 1, 5)


@pytest.mark.parametrize(
    ("api", "doc", "named"),
    [
        ("chat", {"choices": "x"}, "choices is string, expected array"),
        ("chat", {"choices": {"a": 1}}, "choices is object, expected array"),
        ("completions", {"choices": [1]}, "choices[0] is number, expected object"),
        ("chat", {"choices": [{"message": "x"}]}, "choices[0].message is string"),
        ("chat", {"choices": [{"message": {"content": 5}}]}, "choices[0].message.content is"),
        ("completions", {"choices": [{"text": []}]}, "choices[0].text is array"),
        ("completions", [1, 2], "body is array, expected object"),
        ("chat", "hello", "body is string, expected object"),
        ("chat", {"id": "x"}, "body has no choices"),
    ],
)
def test_a_json_body_of_the_wrong_shape_is_malformed_and_named(
    api: str, doc: object, named: str
) -> None:
    r = _json(api, doc)
    assert r.error_kind == errors.MALFORMED
    assert named in (r.error_detail or "")


@pytest.mark.parametrize("api", APIS)
def test_a_json_body_keeps_its_text_when_only_usage_is_wrong(api: str) -> None:
    r = _json(api, {**_doc(api), "usage": "x"})
    assert r.error_kind == errors.MALFORMED and r.error_detail == "usage is string, expected object"
    assert r.event_ns == [50]  # the answer arrived: its time is kept


@pytest.mark.parametrize("api", APIS)
def test_a_json_body_with_a_malformed_count_is_ok_with_a_note(api: str) -> None:
    doc = _doc(api)
    doc["usage"] = {"prompt_tokens": True, "completion_tokens": 2**40}
    r = _json(api, doc)
    assert r.error_kind is None
    assert (r.input_tokens, r.output_tokens) == (None, None)
    assert r.notes == [
        "malformed_usage: prompt_tokens=true",
        f"malformed_usage: completion_tokens={2**40}",
    ]


@pytest.mark.parametrize("api", APIS)
def test_a_json_error_body_is_a_stream_error(api: str) -> None:
    r = _json(api, {"error": {"message": "bad model"}})
    assert (r.error_kind, r.error_detail) == (errors.STREAM_ERROR, "bad model")


def test_a_parser_bug_is_malformed_with_its_type_and_keeps_the_tokens() -> None:
    record = _record()
    record.event_ns = [5, 6]
    endpoint = OpenAIEndpoint("chat", "m")
    # Pieces and times that do not pair up break the SSE splitter: the net catches it.
    endpoint.finish(record, [b"data: x\r\n\r\n", b"data: y\r\n\r\n"], [1])
    assert record.error_kind == errors.MALFORMED
    assert "ValueError" in (record.error_detail or "")
    assert len(record.event_tokens) == len(record.event_ns) == 2
    assert (record.first_token_ns, record.last_token_ns) == (5, 6)
    assert record.notes == ["parser_error: ValueError"]


# The served prompt cache: prompt tokens the server did not prefill.


def _cached_usage(**usage: object) -> dict:
    return {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, **usage}}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("extra", "cached"),
    [
        ({"prompt_tokens_details": {"cached_tokens": 7}}, 7),  # OpenAI, vLLM, SGLang
        ({"cache_read_input_tokens": 4}, 4),  # Anthropic-style, through gateways
        ({"prompt_tokens_details": {"cached_tokens": 0}}, 0),  # reported, nothing cached
        ({}, None),  # not reported: unknown, never 0
        ({"prompt_tokens_details": {"audio_tokens": 3}}, None),
    ],
)
def test_cached_prompt_tokens_are_read_from_usage(
    api: str, extra: dict, cached: int | None
) -> None:
    r = _stream(api, _sse(_chunk(api, "a"), _cached_usage(**extra)))
    assert r.error_kind is None
    assert r.cached_input_tokens == cached
    assert r.notes == []


def test_usage_details_win_over_the_anthropic_field() -> None:
    usage = _cached_usage(prompt_tokens_details={"cached_tokens": 6}, cache_read_input_tokens=1)
    r = _stream("chat", _sse(_chunk("chat", "a"), usage))
    assert r.cached_input_tokens == 6


@pytest.mark.parametrize("timings_first", [True, False])
def test_llama_cpp_cache_n_is_the_cached_count_unless_usage_gives_one(timings_first: bool) -> None:
    timings = {"choices": [], "timings": {"cache_n": 9, "prompt_n": 3, "prompt_ms": 1.5}}
    only = _stream("chat", _sse(_chunk("chat", "a"), timings, _usage()))
    assert only.cached_input_tokens == 9
    assert only.server_timings == timings["timings"]
    usage = _cached_usage(prompt_tokens_details={"cached_tokens": 8})
    events = (timings, usage) if timings_first else (usage, timings)
    both = _stream("chat", _sse(_chunk("chat", "a"), *events))
    assert both.cached_input_tokens == 8


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7", [1], MAX_COUNT + 1])
@pytest.mark.parametrize("where", ["details", "anthropic", "timings"])
def test_a_cached_count_that_is_not_a_count_is_unknown_with_a_note(where: str, bad: object) -> None:
    if where == "details":
        event, name = (
            _cached_usage(prompt_tokens_details={"cached_tokens": bad}),
            ("prompt_tokens_details.cached_tokens"),
        )
    elif where == "anthropic":
        event, name = _cached_usage(cache_read_input_tokens=bad), "cache_read_input_tokens"
    else:
        event, name = {"choices": [], "timings": {"cache_n": bad}}, "timings.cache_n"
    r = _stream("completions", _sse(_chunk("completions", "a"), event))
    if where == "timings" and type(bad) not in (int, float):
        # A timings value that is not a number is the timings object's problem (malformed).
        assert r.error_kind == errors.MALFORMED
        assert r.cached_input_tokens is None
        return
    assert r.error_kind is None  # the request was served and timed: not an error
    assert r.cached_input_tokens is None
    assert r.notes == [f"malformed_usage: {name}={orjson.dumps(bad).decode()}"]


def test_prompt_token_details_that_are_not_an_object_are_noted() -> None:
    r = _stream("chat", _sse(_chunk("chat", "a"), _cached_usage(prompt_tokens_details=[3])))
    assert (r.error_kind, r.cached_input_tokens, r.input_tokens) == (None, None, 10)
    assert r.notes == ["malformed_usage: prompt_tokens_details=[3]"]


@pytest.mark.parametrize("api", APIS)
def test_a_json_body_reports_its_cached_tokens(api: str) -> None:
    choice = {"message": {"content": "ab"}} if api == "chat" else {"text": "ab"}
    doc = {
        "choices": [{**choice, "finish_reason": "length"}],
        **_cached_usage(prompt_tokens_details={"cached_tokens": 5}),
    }
    doc["choices"] = [{**choice, "finish_reason": "length"}]
    assert _json(api, doc).cached_input_tokens == 5
