"""The drain timeout holds in every mode: once sending stops (the duration is reached or the
budget handed out), requests still in flight get at most drain_timeout_s, then are cancelled
and recorded as such; the silence timeout (far longer here) never gets a say.

The server is real loopback HTTP: it answers with headers and one token, then stalls until the
client hangs up. Times are real; only bounds that hold by construction (the run cannot end
before the drain timeout has passed) and a generous no-hang bound are asserted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from loadgen import errors
from loadgen.arrivals import Constant
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.lengths import Fixed
from loadgen.load import LoadPlan, RunOutcome
from loadgen.runner import Runner
from loadgen.sessions import SessionDriver, SessionWorkload
from loadgen.spec import RequestRecord, RequestSpec

clock = time.monotonic_ns
READ_TIMEOUT_S = 60.0  # the silence timeout: far beyond any bound asserted below
TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":" w"},"finish_reason":null}]}\n\n'


@contextlib.asynccontextmanager
async def stalling_server() -> AsyncIterator[str]:
    """Reads a request, sends a 200 head and one chunk, then says nothing more."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(TOKEN), TOKEN)
            )
            await writer.drain()
            await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()


def specs():
    return (RequestSpec(index=i, prompt="one two three", max_tokens=5) for i in range(1000))


def sessions() -> SessionDriver:
    wl = SessionWorkload(input_len=Fixed(6), output_len=Fixed(5), turns=Fixed(3), seed=4)
    return SessionDriver(wl)


def run(work, plan: LoadPlan, arrivals=None) -> tuple[RunOutcome, list[RequestRecord], float]:
    records: list[RequestRecord] = []

    async def main() -> tuple[RunOutcome, float]:
        async with stalling_server() as url:
            settings = HttpSettings(base_url=url, read_timeout_s=READ_TIMEOUT_S)
            client = make_client(settings, clock)
            runner = Runner(client, OpenAIEndpoint("chat", "m"), clock, records.append)
            t0 = time.monotonic()
            try:
                outcome = await asyncio.wait_for(runner.run(work, plan, arrivals), timeout=30)
            finally:
                await client.aclose()
            return outcome, time.monotonic() - t0

    outcome, elapsed_s = asyncio.run(main())
    return outcome, records, elapsed_s


def assert_drained(outcome: RunOutcome, records: list[RequestRecord], stop_s: float) -> None:
    """Every request was cancelled by the drain, no earlier than ``stop_s`` after the origin
    (sending stopped, plus the drain timeout), and the books balance."""
    assert outcome.sent >= 1 and outcome.cancelled == outcome.sent == len(records)
    assert outcome.sent == outcome.ok + outcome.errored + outcome.cancelled == outcome.emitted
    assert not outcome.errors and not outcome.interrupted
    for r in records:
        assert r.error_kind == errors.CANCELLED
        assert r.closed_ns - outcome.origin_ns >= stop_s * 1e9
        assert r.http_status == 200 and len(r.event_ns) == 1  # the token before the stall


@pytest.mark.parametrize("work", [specs, sessions], ids=["specs", "sessions"])
def test_closed_loop_cancels_what_is_in_flight_a_drain_timeout_after_the_duration(work) -> None:
    plan = LoadPlan(concurrency=2, duration_s=2, drain_timeout_s=1)
    outcome, records, elapsed_s = run(work(), plan)
    assert outcome.sent == 2  # each worker's first request stalls
    assert_drained(outcome, records, 2 + 1)
    assert elapsed_s < 15  # far below the 60 s silence timeout


@pytest.mark.parametrize("work", [specs, sessions], ids=["specs", "sessions"])
def test_open_loop_cancels_what_is_in_flight_a_drain_timeout_after_the_duration(work) -> None:
    arrivals = Constant(2).offsets_ns(None)  # sends at 0, 0.5, 1 and 1.5 s
    plan = LoadPlan(duration_s=2, drain_timeout_s=1)
    outcome, records, elapsed_s = run(work(), plan, arrivals)
    assert outcome.sent == 4
    assert_drained(outcome, records, 2 + 1)
    assert elapsed_s < 15


@pytest.mark.parametrize("work", [specs, sessions], ids=["specs", "sessions"])
def test_closed_loop_drains_from_the_last_send_when_the_budget_is_spent(work) -> None:
    plan = LoadPlan(concurrency=3, max_requests=3, drain_timeout_s=1)
    outcome, records, elapsed_s = run(work(), plan)
    assert outcome.sent == 3
    assert_drained(outcome, records, 1)
    assert elapsed_s < 15


def test_stop_cancels_at_once_whatever_the_drain_timeout() -> None:
    records: list[RequestRecord] = []

    async def main() -> tuple[RunOutcome, float]:
        async with stalling_server() as url:
            client = make_client(HttpSettings(base_url=url, read_timeout_s=READ_TIMEOUT_S), clock)
            runner = Runner(client, OpenAIEndpoint("chat", "m"), clock, records.append)
            plan = LoadPlan(concurrency=2, duration_s=60, drain_timeout_s=50)
            asyncio.get_running_loop().call_later(0.5, runner.stop)
            t0 = time.monotonic()
            outcome = await asyncio.wait_for(runner.run(specs(), plan), timeout=30)
            await client.aclose()
            return outcome, time.monotonic() - t0

    outcome, elapsed_s = asyncio.run(main())
    assert outcome.interrupted and outcome.sent == outcome.cancelled == 2 == len(records)
    assert elapsed_s < 15  # neither the duration nor the drain timeout
