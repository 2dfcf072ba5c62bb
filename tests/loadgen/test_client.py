"""Both stream clients, against a misbehaving server: failures become data, never exceptions."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadgen import errors
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.runner import LoadPlan, Runner
from loadgen.spec import RequestRecord, RequestSpec
from tests.loadgen.faulty_server import faulty_server

TRANSPORTS = ["raw", "aiohttp", "httpx"]


def _specs(n: int = 10_000):
    return (RequestSpec(index=i, prompt="one two three", max_tokens=5) for i in range(n))


async def _run(mode: str, transport: str, n: int = 6, concurrency: int = 2, **settings):
    async with faulty_server(mode) as server:
        records: list[RequestRecord] = []
        client = make_client(
            HttpSettings(base_url=server.base_url, transport=transport, **settings),
            time.monotonic_ns,
        )
        runner = Runner(
            client, OpenAIEndpoint("completions", "m"), time.monotonic_ns, records.append
        )
        outcome = await runner.run(_specs(), LoadPlan(concurrency=concurrency, max_requests=n))
        await client.aclose()
        return outcome, records, server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_good_stream_yields_every_token_and_the_server_usage(transport: str) -> None:
    outcome, records, _ = asyncio.run(_run("ok", transport))
    assert (outcome.sent, outcome.ok, outcome.errored) == (6, 6, 0)
    for r in records:
        assert r.error_kind is None
        assert len(r.event_ns) == 5 and r.output_tokens == 5 and r.input_tokens == 3
        assert r.sent_ns <= r.first_token_ns <= r.last_token_ns <= r.closed_ns


@pytest.mark.parametrize("mode", ["close_after_stream", "late_crlf_then_close"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sockets_closed_behind_keep_alive_cause_no_errors(transport: str, mode: str) -> None:
    outcome, records, server = asyncio.run(_run(mode, transport, n=20))
    assert outcome.ok == 20, [r.error_detail for r in records if r.error_kind]


@pytest.mark.parametrize("transport", ["raw"])
def test_events_split_across_chunks_parse_whole(transport: str) -> None:
    outcome, records, _ = asyncio.run(_run("split_events", transport, n=3))
    assert outcome.ok == 3
    assert all(len(r.event_ns) == 5 and r.output_tokens == 5 for r in records)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("status_500", errors.HTTP_SERVER),
        ("status_429", errors.RATE_LIMITED),
        ("not_streaming", errors.NOT_STREAMING),
        ("garbage", errors.MALFORMED),
        ("reset_mid_stream", errors.INCOMPLETE),
        ("error_event", errors.STREAM_ERROR),
    ],
)
def test_each_failure_is_recorded_with_its_kind(transport: str, mode: str, kind: str) -> None:
    outcome, records, _ = asyncio.run(_run(mode, transport, n=2, concurrency=1))
    assert outcome.sent == outcome.ok + outcome.errored + outcome.cancelled == 2
    assert [r.error_kind for r in records] == [kind, kind]
    assert all(r.error_detail for r in records)


def test_tokens_that_arrived_before_a_reset_are_kept() -> None:
    _, records, _ = asyncio.run(_run("reset_mid_stream", "raw", n=1, concurrency=1))
    assert len(records[0].event_ns) == 5


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_a_stalled_stream_times_out(transport: str) -> None:
    outcome, records, _ = asyncio.run(
        _run("stall", transport, n=1, concurrency=1, read_timeout_s=0.4)
    )
    assert records[0].error_kind == errors.TIMEOUT
    assert len(records[0].event_ns) == 1  # the token before the stall is kept


def test_an_unreachable_endpoint_is_a_connect_error() -> None:
    async def go():
        records: list[RequestRecord] = []
        client = make_client(HttpSettings(base_url="http://127.0.0.1:9/v1"), time.monotonic_ns)
        runner = Runner(client, OpenAIEndpoint("chat", "m"), time.monotonic_ns, records.append)
        out = await runner.run(_specs(), LoadPlan(concurrency=1, max_requests=2))
        await client.aclose()
        return out, records

    outcome, records = asyncio.run(go())
    assert outcome.errored == 2
    assert {r.error_kind for r in records} == {errors.CONNECT}


def test_without_usage_output_tokens_stay_unknown_or_come_from_a_named_tokenizer() -> None:
    async def go(count_output):
        async with faulty_server("no_usage") as server:
            records: list[RequestRecord] = []
            client = make_client(HttpSettings(base_url=server.base_url), time.monotonic_ns)
            endpoint = OpenAIEndpoint("completions", "m", count_output=count_output)
            runner = Runner(client, endpoint, time.monotonic_ns, records.append)
            await runner.run(_specs(), LoadPlan(concurrency=1, max_requests=2))
            await client.aclose()
            return records

    unknown = asyncio.run(go(None))
    assert [(r.output_tokens, r.output_tokens_source) for r in unknown] == [(None, None)] * 2
    assert all(len(r.event_ns) == 5 for r in unknown)  # chunks are timed, never counted
    counted = asyncio.run(go(lambda text: len(text.split())))
    assert [(r.output_tokens, r.output_tokens_source) for r in counted] == [
        (5, "client_tokenizer")
    ] * 2
