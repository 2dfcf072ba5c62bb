"""A bug inside one of the run's tasks is a failed run, never a stray traceback or a lost
record: a parser, client or endpoint raising still yields the request's record (error kind
"internal"), a sink raising still counts the record as emitted, a session or a schedule
raising ends only what it drove; every traceback lands in RunOutcome.errors, the run goes on
and the books balance (sent = ok + errored + cancelled = emitted).

"Task exception was never retrieved" is caught by the loop's exception handler, so each test
also asserts the handler saw nothing once every task has been collected."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from loadgen import errors
from loadgen.errors import INTERNAL
from loadgen.load import LoadPlan, RunOutcome
from loadgen.runner import Runner
from loadgen.sessions import SessionDriver
from loadgen.spec import RequestRecord, RequestSpec
from tests.loadgen.test_runner import FakeClient, FakeEndpoint, workload

clock = time.monotonic_ns


class Boom(Exception):
    pass


def specs(n: int = 10_000, explode_at: int | None = None):
    for i in range(n):
        if i == explode_at:
            raise Boom("the spec source broke")
        yield RequestSpec(index=i, messages=({"role": "user", "content": "hi"},), max_tokens=4)


def run(work, plan: LoadPlan, *, client=None, endpoint=None, sink=None, arrivals=None):
    """Run; return the outcome, the records the sink got, and what the loop's exception
    handler saw (stray task exceptions)."""
    records: list[RequestRecord] = []
    stray: list[dict] = []

    async def main() -> RunOutcome:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: stray.append(ctx))
        runner = Runner(
            client or FakeClient(service_s=0.001),
            endpoint or FakeEndpoint(),
            clock,
            sink or records.append,
        )
        outcome = await asyncio.wait_for(runner.run(work, plan, arrivals), timeout=20)
        del runner
        gc.collect()  # a task whose exception nobody retrieved complains when collected
        await asyncio.sleep(0)
        return outcome

    return asyncio.run(main()), records, stray


def assert_balanced(outcome: RunOutcome) -> None:
    assert outcome.sent == outcome.ok + outcome.errored + outcome.cancelled == outcome.emitted


class FlakyEndpoint(FakeEndpoint):
    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def finish(self, record, pieces, times_ns) -> None:
        if record.index in self.bad:
            raise TypeError("the parser met a type it did not expect")
        super().finish(record, pieces, times_ns)


class BodyBugEndpoint(FakeEndpoint):
    def body(self, spec: RequestSpec) -> bytes:
        if spec.index == 2:
            raise KeyError("max_tokens")
        return super().body(spec)


class BuggyClient(FakeClient):
    async def post(self, path, body, record, pieces, times) -> None:
        await super().post(path, body, record, pieces, times)
        if record.index in (1, 5):
            raise RuntimeError("the transport tripped over its own state")


def arrivals_every_ms():
    return iter(range(0, 10**12, 1_000_000))


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_parser_bug_keeps_the_record_and_fails_the_run(mode: str) -> None:
    plan = LoadPlan(concurrency=2 if mode == "closed" else None, max_requests=8)
    arrivals = arrivals_every_ms() if mode == "open" else None
    outcome, records, stray = run(specs(), plan, endpoint=FlakyEndpoint({3, 6}), arrivals=arrivals)
    assert not stray
    assert_balanced(outcome)
    assert (outcome.sent, outcome.ok, outcome.errored) == (8, 6, 2) and len(records) == 8
    bad = sorted(r.index for r in records if r.error_kind == INTERNAL)
    assert bad == [3, 6]
    assert all("TypeError" in r.error_detail for r in records if r.error_kind == INTERNAL)
    assert len(outcome.errors) == 2 and all("Traceback" in e for e in outcome.errors)


def test_a_client_or_endpoint_bug_keeps_the_record() -> None:
    plan = LoadPlan(concurrency=2, max_requests=8)
    outcome, records, stray = run(
        specs(), plan, client=BuggyClient(service_s=0.001), endpoint=BodyBugEndpoint()
    )
    assert not stray
    assert_balanced(outcome)
    assert sorted(r.index for r in records if r.error_kind == INTERNAL) == [1, 2, 5]
    assert outcome.sent == len(records) == 8 and outcome.errored == 3
    assert len(outcome.errors) == 3
    assert any("RuntimeError" in e for e in outcome.errors)
    assert any("KeyError" in e for e in outcome.errors)


def test_a_sink_that_raises_loses_no_count_and_later_records_still_arrive() -> None:
    got: list[RequestRecord] = []

    def sink(record: RequestRecord) -> None:
        if record.index % 3 == 0:
            raise OSError("the store is full")
        got.append(record)

    outcome, _, stray = run(specs(), LoadPlan(concurrency=2, max_requests=9), sink=sink)
    assert not stray
    assert_balanced(outcome)
    assert outcome.emitted == 9 and len(got) == 6  # the spine sees 3 missing from the store
    assert len(outcome.errors) == 3 and all("OSError" in e for e in outcome.errors)


class ExplodingSession:
    def __init__(self, inner, explode_on_turn: int) -> None:
        self.inner, self.explode_on_turn = inner, explode_on_turn

    def next_turn(self, previous):
        turn = self.inner.next_turn(previous)
        if turn is not None and turn.spec.turn == self.explode_on_turn:
            raise ValueError("the session lost its history")
        return turn


class ExplodingSource:
    """Every other session raises when asked for its first turn."""

    def __init__(self) -> None:
        self.inner = SessionDriver(workload())
        self.started = 0

    def new_session(self):
        session = self.inner.new_session()
        self.started += 1
        if session is not None and self.started % 2 == 0:
            return ExplodingSession(session, explode_on_turn=0)
        return session


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_session_bug_ends_that_session_only(mode: str) -> None:
    plan = LoadPlan(concurrency=2 if mode == "closed" else None, max_requests=12)
    arrivals = arrivals_every_ms() if mode == "open" else None
    outcome, records, stray = run(ExplodingSource(), plan, arrivals=arrivals)
    assert not stray
    assert_balanced(outcome)
    assert outcome.ok == len(records) == outcome.sent >= 3  # what was sent was answered
    assert outcome.errors and all("lost its history" in e for e in outcome.errors)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_spec_source_that_raises_ends_the_sending_and_the_rest_is_drained(mode: str) -> None:
    plan = LoadPlan(concurrency=2 if mode == "closed" else None, max_requests=50)
    arrivals = arrivals_every_ms() if mode == "open" else None
    outcome, records, stray = run(specs(explode_at=5), plan, arrivals=arrivals)
    assert not stray
    assert_balanced(outcome)
    assert outcome.sent == outcome.ok == len(records) == 5
    assert len(outcome.errors) == 1 and "the spec source broke" in outcome.errors[0]


def test_a_clean_run_has_no_errors_and_balanced_books() -> None:
    outcome, records, stray = run(specs(), LoadPlan(concurrency=3, max_requests=10))
    assert not stray and not outcome.errors and outcome.balanced
    assert outcome.emitted == len(records) == 10
    assert not any(r.error_kind in (INTERNAL, errors.CANCELLED) for r in records)
