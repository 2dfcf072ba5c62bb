"""A rate the client cannot reach: the open loop still yields, so requests go out, the
duration ends the run and stop() is obeyed at once; no more than the plan's in-flight limit
is ever open, so memory stays bounded; and how far behind the schedule the client fell is
recorded, so it can be said plainly that the rate was not reached.

The client is a fake whose post() answers at once (the fastest server there is) or, in one
test, real HTTP against a loopback server. Only no-hang bounds and bounds that hold by
construction are asserted."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Sequence

from loadgen.arrivals import Constant
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.load import LoadPlan, RunOutcome
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec
from tests.loadgen.faulty_server import faulty_server

clock = time.monotonic_ns
ABSURD = Constant(1e9)  # a request every nanosecond


class InstantEndpoint:
    path = "/completions"

    def body(self, spec: RequestSpec) -> bytes:
        return b"{}"

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        record.output_tokens = 1


class InstantClient:
    """Answers every request at once; remembers the most requests it ever had open."""

    def __init__(self) -> None:
        self.open = 0
        self.most_open = 0

    async def post(self, path, body, record, pieces, times) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        await asyncio.sleep(0)  # one loop turn "on the wire"
        record.http_status = 200
        pieces.append(b"x")
        times.append(clock())
        record.closed_ns = clock()
        self.open -= 1

    async def aclose(self) -> None:
        pass


class SilentClient(InstantClient):
    """Never answers: every request stays open until it is cancelled."""

    async def post(self, path, body, record, pieces, times) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await asyncio.Event().wait()
        finally:
            self.open -= 1


def specs():
    i = 0
    while True:
        yield RequestSpec(index=i, prompt="one two three", max_tokens=5)
        i += 1


def run(plan: LoadPlan, arrivals=ABSURD, stop_after_s: float | None = None, client=None):
    client = client or InstantClient()
    stored: list[RequestRecord] = []

    async def main() -> tuple[RunOutcome, float]:
        runner = Runner(client, InstantEndpoint(), clock, stored.append)
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, runner.stop)
        t0 = time.monotonic()
        outcome = await asyncio.wait_for(
            runner.run(specs(), plan, arrivals.offsets_ns(None)), timeout=30
        )
        return outcome, time.monotonic() - t0

    outcome, elapsed_s = bounded(main())
    return outcome, stored, client, elapsed_s


def bounded(coro, limit_s: float = 60):
    """asyncio.run(coro) in a thread, failing after ``limit_s``: a loop that never yields
    (the bug this file guards against) ignores asyncio's own timeouts."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coro)), daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"the run did not end within {limit_s} s"
    assert result, "the run raised (see the thread's traceback above)"
    return result[0]


def assert_balanced(outcome: RunOutcome, stored: list[RequestRecord]) -> None:
    assert outcome.sent == outcome.ok + outcome.errored + outcome.cancelled == outcome.emitted
    assert outcome.emitted == len(stored)
    assert not outcome.errors


def test_an_unreachable_rate_still_sends_ends_on_time_and_says_how_far_behind_it_fell() -> None:
    outcome, stored, client, elapsed_s = run(LoadPlan(duration_s=2, in_flight_limit=500))
    assert_balanced(outcome, stored)
    assert outcome.sent > 0 and outcome.ok > 0
    assert elapsed_s < 10
    assert client.most_open <= outcome.max_in_flight <= 500
    # The schedule wanted 2e9 requests within 2 s: at the end, sends due since about the
    # origin were still waiting, so the client was over a second behind.
    assert outcome.behind_schedule_max_ns > 1e9
    for r in stored:  # intended times stay the schedule's; the send is when it really went
        assert r.intended_ns is not None and r.sent_ns >= r.intended_ns


def test_stop_is_obeyed_at_once_however_far_behind_the_schedule_is() -> None:
    outcome, stored, _, elapsed_s = run(LoadPlan(duration_s=600), stop_after_s=0.5)
    assert outcome.interrupted
    assert_balanced(outcome, stored)
    assert elapsed_s < 10


def test_stop_is_obeyed_at_once_while_the_next_arrival_is_far_away() -> None:
    # One request every 1000 s: the loop sleeps towards the second one when stop() comes.
    outcome, stored, _, elapsed_s = run(
        LoadPlan(duration_s=6000), arrivals=Constant(0.001), stop_after_s=0.3
    )
    assert outcome.interrupted and outcome.sent == 1
    assert_balanced(outcome, stored)
    assert elapsed_s < 10
    assert outcome.behind_schedule_max_ns < 1e9  # on schedule: the next send was not due


def test_what_is_open_and_the_memory_held_are_bounded_by_the_in_flight_limit() -> None:
    def most_open_and_peak_bytes(limit: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            plan = LoadPlan(duration_s=1, drain_timeout_s=0.1, in_flight_limit=limit)
            outcome, stored, client, elapsed_s = run(plan, client=SilentClient())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert elapsed_s < 20
        assert_balanced(outcome, stored)
        assert outcome.cancelled == outcome.sent  # nothing ever answered
        return client.most_open, peak

    most_open, peak = most_open_and_peak_bytes(200)
    assert most_open == 200  # the schedule wanted far more: the limit is what held it
    unbounded_open, unbounded_peak = most_open_and_peak_bytes(10**9)
    assert unbounded_open > 5 * most_open and unbounded_peak > 2 * peak
    assert peak < 16 * 2**20


def test_a_real_server_at_an_unreachable_rate_balances_and_ends() -> None:
    records: list[RequestRecord] = []

    async def main() -> tuple[RunOutcome, float]:
        async with faulty_server("ok") as server:
            client = make_client(HttpSettings(base_url=server.base_url), clock)
            runner = Runner(client, OpenAIEndpoint("completions", "m"), clock, records.append)
            plan = LoadPlan(duration_s=2, drain_timeout_s=5, in_flight_limit=64)
            t0 = time.monotonic()
            try:
                outcome = await asyncio.wait_for(
                    runner.run(specs(), plan, ABSURD.offsets_ns(None)), timeout=30
                )
            finally:
                await client.aclose()
            return outcome, time.monotonic() - t0

    outcome, elapsed_s = bounded(main())
    assert_balanced(outcome, records)
    assert outcome.ok > 0 and outcome.max_in_flight <= 64
    assert outcome.behind_schedule_max_ns > 1e9
    assert elapsed_s < 15
