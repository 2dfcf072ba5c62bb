"""Both stream clients, against a misbehaving server: failures become data, never exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import pytest

from loadgen import errors
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec
from tests.loadgen.faulty_server import faulty_server

TRANSPORTS = ["raw", "aiohttp", "httpx"]


def _specs(n: int = 10_000):
    return (RequestSpec(index=i, prompt="one two three", max_tokens=5) for i in range(n))


async def _run(mode: str, transport: str, n: int = 6, concurrency: int = 2, **settings):
    outcome, records, server, _ = await _run_client(mode, transport, n, concurrency, **settings)
    return outcome, records, server


async def _run_client(mode: str, transport: str, n: int = 6, concurrency: int = 2, **settings):
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
        return outcome, records, server, client


class _Hung(Exception):
    pass


@contextlib.contextmanager
def _hard_limit(seconds: float) -> Iterator[None]:
    """Fail instead of hanging, even if a busy loop never yields to asyncio's timers (the
    signal interrupts Python code wherever it runs). It repeats: asyncio swallows an
    exception raised inside a protocol callback, so only a later one may reach the test."""

    def hung(signum, frame):
        raise _Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield
    finally:
        for _ in range(100):  # the signal may fire again in here: stop it whatever happens
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except _Hung:
                continue
        signal.signal(signal.SIGALRM, previous)


def _bounded(mode: str, transport: str, limit_s: float = 10.0, **kwargs):
    """Run against a hostile server; return (outcome, records, server, client, seconds)."""
    t0 = time.monotonic()
    with _hard_limit(limit_s):
        result = asyncio.run(_run_client(mode, transport, **kwargs))
    return (*result, time.monotonic() - t0)


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


# Hostile servers: each fault ends every request with its kind, fast, and the books balance ----
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("mode", "kind", "detail"),
    [
        ("negative_chunk", errors.INCOMPLETE, "-6"),  # the detail names the bad size line
        ("bad_hex_chunk", errors.INCOMPLETE, "zz"),
        ("short_body", errors.INCOMPLETE, ""),
        ("not_http", errors.INCOMPLETE, "SSH-2.0"),
        ("huge_head", errors.INCOMPLETE, ""),
        ("redirect", errors.REDIRECT, "http://elsewhere.test/v1/completions"),
        ("continue_then_redirect", errors.REDIRECT, "302"),
    ],
)
def test_a_hostile_response_ends_as_its_kind_without_hanging(
    transport: str, mode: str, kind: str, detail: str
) -> None:
    outcome, records, _, _, seconds = _bounded(
        mode, transport, n=2, concurrency=1, read_timeout_s=20
    )
    assert outcome.sent == outcome.errored == len(records) == 2
    assert [r.error_kind for r in records] == [kind, kind], [r.error_detail for r in records]
    assert all(detail.lower() in (r.error_detail or "").lower() for r in records)
    assert seconds < 8  # long before the 20 s silence timeout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_detail_never_holds_the_target_credentials(transport: str) -> None:
    _, records, _, _, _ = _bounded("redirect", transport, n=1, concurrency=1)
    assert records[0].error_kind == errors.REDIRECT and records[0].http_status == 302
    assert "secret" not in records[0].error_detail and "token" not in records[0].error_detail


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["continue_then_ok", "http10_until_close"])
def test_interim_responses_and_close_delimited_bodies_are_read_whole(
    transport: str, mode: str
) -> None:
    outcome, records, _, _, seconds = _bounded(
        mode, transport, n=4, concurrency=2, read_timeout_s=20
    )
    assert outcome.ok == 4, [r.error_detail for r in records]
    assert all(r.http_status == 200 and r.output_tokens == 5 for r in records)
    assert all(len(r.event_ns) == 5 for r in records)
    assert seconds < 8


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_trickling_server_ends_at_the_total_deadline(transport: str) -> None:
    outcome, records, _, _, seconds = _bounded(
        "trickle", transport, n=1, concurrency=1, read_timeout_s=20, request_timeout_s=1.5
    )
    assert records[0].error_kind == errors.TIMEOUT
    assert "total" in records[0].error_detail
    assert 1.4 < (records[0].closed_ns - records[0].sent_ns) / 1e9 < 4
    assert seconds < 8


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stall_is_a_silence_timeout_also_under_a_total_deadline(transport: str) -> None:
    outcome, records, _, _, seconds = _bounded(
        "stall", transport, n=1, concurrency=1, read_timeout_s=0.5, request_timeout_s=30
    )
    assert records[0].error_kind == errors.TIMEOUT
    assert "total" not in records[0].error_detail
    assert len(records[0].event_ns) == 1
    assert seconds < 8


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_closing_after_every_response_costs_no_error(transport: str) -> None:
    """llama-server closes the socket after each stream while advertising keep-alive."""
    outcome, records, server, client, seconds = _bounded(
        "close_after_stream", transport, limit_s=60, n=200, concurrency=4
    )
    assert (outcome.ok, outcome.errored) == (200, 0), {r.error_detail for r in records}
    assert len(records) == 200
    # A retry is a request that met a socket closed under it; once the server is known to
    # close, requests stop meeting them. Every retry is counted, none is an error.
    assert 0 <= client.retries <= 8
    assert server.requests == 200 + client.retries


def test_a_server_closing_after_every_response_gets_fresh_connections() -> None:
    _, _, server, client, _ = _bounded("close_after_stream", "raw", n=50, concurrency=4)
    assert server.connections == server.requests  # never a request on a closing socket
    assert sum(b"connection: close" in h.lower() for h in server.heads) >= 40


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_keep_alive_server_keeps_its_connections(transport: str) -> None:
    outcome, _, server, client, _ = _bounded("ok", transport, n=40, concurrency=2)
    assert outcome.ok == 40
    assert server.connections <= 4 and client.retries == 0
    assert not any(b"connection: close" in h.lower() for h in server.heads)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nb"},
        {"X-Evil": "a\rb"},
        {"X Evil": "a"},
        {"X-Evil:": "a"},
        {"X-Evil\r\n": "a"},
        {"": "a"},
    ],
)
def test_a_header_that_would_break_the_request_is_refused(
    transport: str, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="header") as info:
        make_client(
            HttpSettings(base_url="http://127.0.0.1:9/v1", transport=transport, headers=headers),
            time.monotonic_ns,
        )
    assert "\n" not in str(info.value) and "Injected: 1" not in str(info.value)


def test_ordinary_headers_are_sent() -> None:
    async def go():
        async with faulty_server("ok") as server:
            settings = HttpSettings(
                base_url=server.base_url, headers={"X-Trace": "a b; c=d {e}", "Authorization": "k"}
            )
            client = make_client(settings, time.monotonic_ns)
            await client.post(
                "/completions", b"{}", RequestRecord(index=0, intended_ns=None, sent_ns=0), [], []
            )
            await client.aclose()
            return server.heads

    (head,) = asyncio.run(go())
    assert b"X-Trace: a b; c=d {e}\r\n" in head and b"Authorization: k\r\n" in head
