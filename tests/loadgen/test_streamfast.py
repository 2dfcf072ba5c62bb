"""The fast path of a streamed OpenAI response (loadgen/streamfast.py, sse.join_data_events)
gives the same record as the general path (sse.split_events, one event at a time) for every
stream: the fuzz corpus, the same mutations framed as the common `data: ` + LF stream that
the fast path takes, the recorded wire formats, and the simulator's own streams over
loopback. The general path is what every diagnostic test specifies; this pins the fast one
to it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from benchbench.sim import SimConfig, start_sim
from loadgen import endpoints
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.sse import join_data_events, split_events
from loadgen.streamfast import decode_array
from tests.loadgen.test_fuzz import _dumps, _events, _split, _structure, _wrong_types, cases

WIRE = Path(__file__).parent.parent / "data" / "wire"


def _count_words(text: str) -> int:
    return len(text.split())


STREAMED = [
    OpenAIEndpoint("chat", "m"),
    OpenAIEndpoint("completions", "m"),
    OpenAIEndpoint("chat", "m", count_output=_count_words),
    OpenAIEndpoint("completions", "m", count_output=_count_words),
]


@contextmanager
def _general_path_only() -> Iterator[None]:
    """The endpoint with its fast path switched off: every stream split and read per event."""
    join, decode = endpoints.join_data_events, endpoints.decode_chunks
    endpoints.join_data_events = lambda pieces, times: None  # type: ignore[assignment]
    endpoints.decode_chunks = lambda payloads: None  # type: ignore[assignment]
    try:
        yield
    finally:
        endpoints.join_data_events, endpoints.decode_chunks = join, decode


def _record(session: bool) -> RequestRecord:
    return RequestRecord(index=0, intended_ns=None, sent_ns=0, session_id=1 if session else None)


def _both(
    endpoint: OpenAIEndpoint, pieces: list[bytes], times: list[int], session: bool
) -> tuple[RequestRecord, RequestRecord]:
    fast, general = _record(session), _record(session)
    endpoint.finish(fast, pieces, times)
    with _general_path_only():
        endpoint.finish(general, pieces, times)
    return fast, general


def _takes_fast_path(pieces: list[bytes], times: list[int]) -> bool:
    joined = join_data_events(pieces, times)
    return joined is not None and decode_array(joined[1], len(joined[0])) is not None


def _lf_mutated(rng: random.Random, api: str) -> bytes:
    """The fuzz's mutations (wrong types at every field, error objects, shuffles, giant
    events), framed as the common stream so that the typed decode meets them."""
    events = _events(rng, api)
    how: list[str] = []
    if rng.random() < 0.6:
        _wrong_types(rng, events, how)
    _structure(rng, events, how)
    body = b"".join(b"data: " + _dumps(rng, e) + b"\n\n" for e in events)
    roll = rng.random()
    if roll < 0.7:
        body += b"data: [DONE]\n\n"
    elif roll < 0.8:
        body += b"data: [DONE]\n\ndata: [DONE]\n\n"
    elif roll < 0.9:
        body = body[: rng.randrange(len(body) + 1)]  # cut anywhere
    return body


def _check_same(endpoint: OpenAIEndpoint, body: bytes, rng: random.Random, note: str) -> bool:
    pieces = _split(rng, body)
    times = sorted(rng.sample(range(10**6), len(pieces)))
    session = rng.random() < 0.3
    fast, general = _both(endpoint, pieces, times, session)
    assert fast == general, f"{note}: {body[:300]!r}"
    return _takes_fast_path(pieces, times)


def test_fast_and_general_paths_give_identical_records_on_the_fuzz_corpus() -> None:
    rng = random.Random(12)
    fast_taken = 0
    for case in cases(1_500):
        endpoint = rng.choice(STREAMED)
        fast_taken += _check_same(endpoint, case.body, rng, f"seed {case.seed} {case.how}")
    for i in range(1_500):
        endpoint = STREAMED[i % len(STREAMED)]
        body = _lf_mutated(rng, endpoint.api)
        fast_taken += _check_same(endpoint, body, rng, f"lf-mutated {i}")
    # The comparison means something only if the fast path ran on a good share of them.
    assert fast_taken > 500


def test_fast_and_general_paths_agree_on_every_recorded_wire_format() -> None:
    rng = random.Random(3)
    files = sorted(WIRE.glob("*.sse")) + sorted(WIRE.glob("*.ndjson"))
    assert files
    for path in files:
        body = path.read_bytes()
        for endpoint in STREAMED:
            for _ in range(5):
                _check_same(endpoint, body, rng, path.name)


def test_reasoning_and_tool_call_fragments_take_the_fast_path_with_their_kinds() -> None:
    events: list[dict[str, Any]] = [
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"reasoning_content": "think"}}]},
        {"choices": [{"delta": {"content": "", "reasoning": "more"}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}}]},
        {"choices": [{"delta": {"content": "answer"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    body = b"".join(b"data: " + _dumps(random.Random(0), e) + b"\n\n" for e in events)
    pieces = [body + b"data: [DONE]\n\n"]
    assert _takes_fast_path(pieces, [7])
    fast, general = _both(OpenAIEndpoint("chat", "m"), pieces, [7], session=True)
    assert fast == general
    assert fast.event_kinds == ["reasoning", "reasoning", "tool_call", "answer"]
    assert fast.output_text == "answer"
    assert (fast.output_tokens, fast.error_kind) == (4, None)


@pytest.mark.parametrize(
    "unread",
    [
        b"1e400",  # beyond a double: orjson refuses the whole event
        b"-" + b"9" * 400,  # 400 digits
        b'"caf\xe9"',  # not UTF-8
    ],
)
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_a_field_nobody_reads_cannot_fail_the_stream(api: str, unread: bytes) -> None:
    """Both paths read what they model and skip the rest unchecked, so an odd value in a
    server's extension field leaves a good stream good, the same on either path."""
    text = b'{"delta":{"content":"hi"}}' if api == "chat" else b'{"text":"hi"}'
    event = b'data: {"x_ext":' + unread + b',"choices":[' + text + b"]}\n\n"
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n'
    pieces = [event + usage + b"data: [DONE]\n\n"]
    assert _takes_fast_path(pieces, [5])
    fast, general = _both(OpenAIEndpoint(api, "m"), pieces, [5], session=True)
    assert fast == general
    assert (fast.error_kind, fast.event_ns, fast.output_text) == (None, [5], "hi")
    assert fast.output_tokens == 1


def test_an_odd_value_in_a_field_that_is_read_still_fails_both_paths() -> None:
    # The usage object is read: a count beyond a double there is no count at all.
    pieces = [
        b'data: {"choices":[{"text":"hi"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1e400}}\n\n'
        b"data: [DONE]\n\n"
    ]
    assert not _takes_fast_path(pieces, [5])
    fast, general = _both(OpenAIEndpoint("completions", "m"), pieces, [5], session=False)
    assert fast == general
    assert fast.error_kind == "malformed" and "not JSON" in (fast.error_detail or "")


def test_an_event_is_timed_by_the_read_holding_its_last_newline() -> None:
    pieces = [b'data: {"choices":[{"text":"a"}]}\n', b'\ndata: {"choices":[{"text":"b"}]}\n\n']
    pieces.append(b"data: [DONE]\n\n")
    joined = join_data_events(pieces, [1, 2, 3])
    assert joined is not None
    assert joined[0] == split_events(pieces, [1, 2, 3])[0][:2] == [2, 2]
    assert joined[2] is True


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_simulator_streams_read_the_same_both_ways(api: str) -> None:
    captured: list[tuple[list[bytes], list[int]]] = []

    class Capturing:
        def __init__(self, inner: OpenAIEndpoint) -> None:
            self.inner, self.path = inner, inner.path

        def body(self, spec: RequestSpec) -> bytes:
            return self.inner.body(spec)

        def finish(self, record: RequestRecord, pieces: list[bytes], times: list[int]) -> None:
            captured.append((list(pieces), list(times)))
            self.inner.finish(record, pieces, times)

    async def main() -> None:
        async with await start_sim(SimConfig(fast=True)) as sim:
            client = make_client(HttpSettings(base_url=sim.base_url), time.monotonic_ns)
            endpoint = Capturing(OpenAIEndpoint(api, "sim-llm"))
            runner = Runner(client, endpoint, time.monotonic_ns, lambda record: None)
            specs = (RequestSpec(index=i, prompt="a b", max_tokens=1 + 7 * i) for i in range(8))
            await asyncio.wait_for(runner.run(specs, LoadPlan(concurrency=4, max_requests=8)), 30)
            await client.aclose()

    asyncio.run(main())
    assert len(captured) == 8
    for pieces, times in captured:
        assert _takes_fast_path(pieces, times)
        fast, general = _both(OpenAIEndpoint(api, "m"), pieces, times, session=False)
        assert fast == general
        assert fast.error_kind is None and fast.event_ns
