"""The streaming adapters read each API's recorded wire format (tests/data/wire/) by the same
rules as chat: the server's counts first, the client tokenizer as the named fallback, never a
count of chunks; reasoning and tool-call text kept apart from the answer; the server's own
timings kept; an error event, a cut stream or a wrong type recorded as an error kind, never
raised."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadgen import errors
from loadgen.apis import AdapterOptions, make_endpoint
from loadgen.spec import RequestRecord, RequestSpec

WIRE = Path(__file__).parents[1] / "data" / "wire"

# api -> (fixture, output tokens, input tokens, token events, answer characters)
FIXTURES = {
    "responses": ("responses_reasoning.sse", 90, 37, 5, len("Hello there!")),
    "messages": ("messages_thinking_tool.sse", 89, 2025, 5, len("Okay, let's check the weather.")),
    "llamacpp": ("llamacpp_completion.sse", 4, 6, 4, len("Once upon a time")),
    "tgi": ("tgi_generate_stream.sse", 4, 7, 3, len("Deep learning is")),
    "ollama-chat": ("ollama_chat.ndjson", 282, 26, 3, len("The sky is blue")),
    "ollama-generate": ("ollama_generate.ndjson", 259, 26, 2, len("The sky")),
}


def finish(api: str, body: bytes, pieces: int = 1, **options: object) -> RequestRecord:
    """The record of `body` received in `pieces` reads at times 10, 20, ..."""
    step = max(1, -(-len(body) // pieces))
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    record = RequestRecord(index=0, intended_ns=None, sent_ns=0)
    endpoint = make_endpoint(api, AdapterOptions(model="m", **options))  # type: ignore[arg-type]
    endpoint.finish(record, parts, [10 * (i + 1) for i in range(len(parts))])
    return record


def fixture(api: str) -> bytes:
    return (WIRE / FIXTURES[api][0]).read_bytes()


@pytest.mark.parametrize("api", FIXTURES)
@pytest.mark.parametrize("pieces", [1, 3, 97])
def test_a_recorded_stream_gives_the_servers_counts_however_it_was_cut(
    api: str, pieces: int
) -> None:
    _, output, prompt, events, chars = FIXTURES[api]
    r = finish(api, fixture(api), pieces)
    assert r.error_kind is None, r.error_detail
    assert (r.output_tokens, r.output_tokens_source, r.input_tokens) == (output, "usage", prompt)
    assert len(r.event_ns) == len(r.event_tokens) == events
    assert r.event_tokens == [None] * events  # never a count guessed from chunks
    assert r.output_text_chars == chars
    assert r.first_token_ns == r.event_ns[0] and r.last_token_ns == r.event_ns[-1]
    assert r.first_event_ns is not None and r.first_event_ns <= r.first_token_ns


def test_responses_reasoning_is_counted_apart_from_the_answer() -> None:
    r = finish("responses", fixture("responses"))
    assert r.event_kinds == ["reasoning", "reasoning", "answer", "answer", "answer"]
    assert (r.reasoning_tokens, r.cached_input_tokens) == (64, 32)


def test_messages_thinking_and_tool_call_deltas_have_their_kinds() -> None:
    r = finish("messages", fixture("messages"))
    # The empty partial_json and the signature delta carry no text: not events.
    assert r.event_kinds == ["reasoning", "answer", "answer", "tool_call", "tool_call"]
    assert r.cached_input_tokens == 2000
    # Anthropic's input_tokens leaves out cached prompt tokens: the prompt is their sum.
    assert r.input_tokens == 25 + 2000


def test_the_native_apis_keep_the_servers_own_timings() -> None:
    llama = finish("llamacpp", fixture("llamacpp"))
    assert llama.server_timings is not None
    assert (llama.server_timings["prompt_ms"], llama.server_timings["predicted_n"]) == (12.5, 4)
    assert llama.cached_input_tokens == 2
    ollama = finish("ollama-chat", fixture("ollama-chat"))
    assert ollama.server_timings == {
        "total_duration": 4883583458,
        "load_duration": 1334875,
        "prompt_eval_duration": 342546000,
        "eval_duration": 4535599000,
    }
    tgi = finish("tgi", fixture("tgi"))
    assert tgi.server_timings == {"generated_tokens": 4, "input_length": 7}


@pytest.mark.parametrize("api", FIXTURES)
def test_a_stream_cut_before_its_end_is_incomplete_and_keeps_its_tokens(api: str) -> None:
    body = fixture(api)
    cut = body[: body.rindex(b"\n", 0, len(body) - 2) + 1]  # the closing event is lost
    r = finish(api, cut, 4)
    assert r.error_kind == errors.INCOMPLETE
    assert len(r.event_ns) >= 2 and r.output_tokens_source in (None, "usage")


@pytest.mark.parametrize("api", FIXTURES)
def test_without_server_counts_the_named_client_tokenizer_counts(api: str) -> None:
    lines = fixture(api).split(b"\n")
    # Strip every count the server gave: what is left is text, timed.
    keys = (b"usage", b"tokens_predicted", b"generated_tokens", b"eval_count", b"output_tokens")
    stripped = b"\n".join(_drop_counts(line, keys) for line in lines)
    unknown = finish(api, stripped)
    assert unknown.error_kind is None, unknown.error_detail
    assert (unknown.output_tokens, unknown.output_tokens_source) == (None, None)
    counted = finish(api, stripped, count_output=lambda text: len(text.split()))
    assert counted.output_tokens_source == "client_tokenizer"
    assert counted.output_tokens is not None and counted.output_tokens > 0


def _drop_counts(line: bytes, keys: tuple[bytes, ...]) -> bytes:
    """The line with the named count fields removed (in any nested object)."""
    prefix = b"data:" if line.startswith(b"data:") else b""
    text = line[len(prefix) :].strip()
    if not text.startswith(b"{"):
        return line
    obj = _without(orjson.loads(text), {k.decode() for k in keys})
    return prefix + orjson.dumps(obj)


def _without(value: object, keys: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    return value


SSE_ERRORS = {
    "responses": b'data: {"type":"error","code":"server_error","message":"overloaded"}\n\n',
    "messages": b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"overloaded"}}\n\n',
    "llamacpp": b'data: {"error":{"code":500,"message":"overloaded","type":"server_error"}}\n\n',
    "tgi": b'data:{"error":"overloaded","error_type":"overloaded"}\n\n',
    "ollama-chat": b'{"error":"overloaded"}\n',
    "ollama-generate": b'{"error":"overloaded"}\n',
}


@pytest.mark.parametrize("api", FIXTURES)
def test_an_error_event_mid_stream_is_a_stream_error_after_the_tokens_seen(api: str) -> None:
    first_two = b"".join(_events(fixture(api))[:4])
    r = finish(api, first_two + SSE_ERRORS[api], 2)
    assert (r.error_kind, r.error_detail) == (errors.STREAM_ERROR, "overloaded")
    assert r.event_ns, "the tokens before the error are kept"


def _events(body: bytes) -> list[bytes]:
    sep = b"\n" if not body.lstrip().startswith((b"data", b"event")) else b"\n\n"
    return [e + sep for e in body.split(sep) if e.strip()]


WRONG_TYPES = {
    "responses": b'data: {"type":"response.output_text.delta","delta":7}\n\n',
    "messages": b'data: {"type":"content_block_delta","index":0,"delta":"text"}\n\n',
    "llamacpp": b'data: {"content":["a"],"stop":false}\n\n',
    "tgi": b'data:{"token":"a","generated_text":null,"details":null}\n\n',
    "ollama-chat": b'{"message":{"role":"assistant","content":5},"done":false}\n',
    "ollama-generate": b'{"response":{"a":1},"done":false}\n',
}


@pytest.mark.parametrize("api", FIXTURES)
def test_a_field_of_the_wrong_type_is_malformed_and_named(api: str) -> None:
    r = finish(api, WRONG_TYPES[api] + fixture(api))
    assert r.error_kind == errors.MALFORMED
    assert "expected" in (r.error_detail or "")
    assert r.output_tokens is not None, "the server's counts still count"


@pytest.mark.parametrize("api", FIXTURES)
@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'"text"', b"{"])
def test_garbage_is_never_an_exception(api: str, garbage: bytes) -> None:
    framed = garbage + b"\n" if api.startswith("ollama") else b"data: " + garbage + b"\n\n"
    r = finish(api, framed + fixture(api))
    assert r.error_kind == errors.MALFORMED


@pytest.mark.parametrize("api", ["responses", "messages", "llamacpp", "tgi"])
def test_a_body_that_is_not_an_event_stream_is_not_streaming(api: str) -> None:
    r = finish(api, b'{"id": "x", "output": []}')
    assert r.error_kind == errors.NOT_STREAMING


@pytest.mark.parametrize("api", FIXTURES)
def test_an_empty_complete_stream_has_no_tokens(api: str) -> None:
    closing = _events(fixture(api))[-1 if api != "messages" else -2 :]
    r = finish(api, b"".join(closing))
    assert r.error_kind == errors.NO_TOKENS


def _spec(**kw: object) -> RequestSpec:
    messages = ({"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"})
    return RequestSpec(0, messages=messages, max_tokens=7, **kw)  # type: ignore[arg-type]


def test_each_body_asks_for_a_stream_and_caps_the_output_in_its_own_field() -> None:
    bodies = {
        api: orjson.loads(make_endpoint(api, AdapterOptions(model="m")).body(_spec()))
        for api in FIXTURES
    }
    assert bodies["responses"]["max_output_tokens"] == 7 and bodies["responses"]["stream"]
    assert bodies["messages"]["max_tokens"] == 7 and bodies["messages"]["system"] == "be terse"
    assert [m["role"] for m in bodies["messages"]["messages"]] == ["user"]
    assert bodies["llamacpp"]["n_predict"] == 7 and bodies["llamacpp"]["stream"]
    assert bodies["tgi"]["parameters"] == {"max_new_tokens": 7, "details": True}
    assert bodies["ollama-chat"]["options"] == {"num_predict": 7}
    assert bodies["ollama-generate"]["prompt"] == "be terse\nhi"


def test_ignore_eos_goes_only_where_the_server_has_it() -> None:
    spec = _spec(extra_body={"ignore_eos": True, "min_tokens": 7})
    llama = orjson.loads(make_endpoint("llamacpp", AdapterOptions(model="m")).body(spec))
    assert llama["ignore_eos"] is True and "min_tokens" not in llama
    tgi = orjson.loads(make_endpoint("tgi", AdapterOptions(model="m")).body(spec))
    assert "ignore_eos" not in tgi["parameters"]
