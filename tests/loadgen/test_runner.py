"""The runner's session seam: a session's turn n+1 is sent only after turn n completed and was
parsed, carries turn n's actual reply in its history, waits the turn's seeded think time, and
every sent request is accounted for (sent = ok + errored + cancelled), closed and open loop.

The client and endpoint are twenty-line fakes of their one-method protocols (the HTTP side is
covered by test_client and the simulator runs); times are real but only lower bounds are
asserted, and those hold by construction."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import pytest

from loadgen import errors
from loadgen.lengths import Fixed
from loadgen.load import LoadPlan, RunOutcome
from loadgen.runner import Runner
from loadgen.sessions import (
    Conversation,
    SessionDriver,
    SessionWorkload,
    ThinkingUsers,
    ThinkTime,
)
from loadgen.spec import RequestRecord, RequestSpec

clock = time.monotonic_ns


class FakeEndpoint:
    """The body is the spec as JSON; the 'server' answers max_tokens - 1 tokens (it stopped
    early), so a turn built from the record differs from one built from the drawn length."""

    path = "/chat/completions"

    def body(self, spec: RequestSpec) -> bytes:
        messages = list(spec.messages or ())
        return json.dumps(
            {"index": spec.index, "messages": messages, "max": spec.max_tokens}
        ).encode()

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        record.output_tokens = max(1, json.loads(pieces[0])["max"] - 1)
        record.first_token_ns = record.last_token_ns = times_ns[-1]


class FakeClient:
    """Answers after ``service_s``; fails the indices in ``fail`` with a 500 and never answers
    those in ``hang`` (until cancelled). Keeps every body it was sent, by index."""

    def __init__(self, service_s: float = 0.004, fail: frozenset[int] = frozenset(), hang=()):
        self.service_s, self.fail, self.hang = service_s, fail, frozenset(hang)
        self.bodies: dict[int, dict] = {}
        self.hanging = asyncio.Event()

    async def post(self, path, body, record, pieces, times) -> None:
        self.bodies[record.index] = json.loads(body)
        if record.index in self.hang:
            self.hanging.set()
            await asyncio.Event().wait()
        await asyncio.sleep(self.service_s)
        record.http_status = 500 if record.index in self.fail else 200
        if record.index in self.fail:
            record.error_kind, record.error_detail = errors.HTTP_SERVER, "500"
        else:
            pieces.append(body)
            times.append(clock())
        record.closed_ns = clock()

    async def aclose(self) -> None:
        pass


def workload(**kw) -> SessionWorkload:
    args = dict(input_len=Fixed(6), output_len=Fixed(5), turns=Fixed(3), seed=4)
    args.update(kw)
    return SessionWorkload(**args)


def run(work, plan: LoadPlan, client: FakeClient, arrivals=None) -> tuple[RunOutcome, list]:
    records: list[RequestRecord] = []

    async def main() -> RunOutcome:
        runner = Runner(client, FakeEndpoint(), clock, records.append)
        return await asyncio.wait_for(runner.run(work, plan, arrivals), timeout=20)

    return asyncio.run(main()), records


def by_session(records: list[RequestRecord]) -> dict[str, list[RequestRecord]]:
    out: dict[str, list[RequestRecord]] = {}
    for r in sorted(records, key=lambda r: (r.session_id, r.turn)):
        out.setdefault(r.session_id, []).append(r)
    return out


def thinks_ns(wl: SessionWorkload, sid: str) -> list[int]:
    """The think time drawn before each turn of session ``sid`` (0 for the first)."""
    conversation, out = Conversation(wl, int(sid[1:]), 0), []
    while (turn := conversation.advance()) is not None:
        out.append(turn.think_ns)
    return out


def test_closed_loop_sessions_wait_for_the_previous_turn_and_its_think_time() -> None:
    wl = workload(think_time=ThinkTime("exp", mean_s=0.01))
    client = FakeClient()
    outcome, records = run(SessionDriver(wl), LoadPlan(concurrency=2, max_requests=12), client)
    assert (outcome.sent, outcome.ok, outcome.max_in_flight) == (12, 12, 2)
    sessions = by_session(records)  # 4 or 5: the last ones may be cut off by the count
    assert 4 <= len(sessions) <= 5
    assert any(t > 0 for sid in sessions for t in thinks_ns(wl, sid))
    for sid, turns in sessions.items():
        assert [r.turn for r in turns] == list(range(len(turns)))
        for prev, nxt, think_ns in zip(turns, turns[1:], thinks_ns(wl, sid)[1:], strict=False):
            assert nxt.sent_ns >= prev.closed_ns + think_ns


def test_each_turn_carries_the_reply_the_server_actually_gave() -> None:
    client = FakeClient()
    _, records = run(SessionDriver(workload()), LoadPlan(concurrency=1, max_requests=3), client)
    sent = [client.bodies[r.index]["messages"] for r in sorted(records, key=lambda r: r.turn)]
    for prev, nxt in zip(sent, sent[1:], strict=False):
        assert nxt[: len(prev)] == prev  # the whole history, in order
        reply, user = nxt[len(prev)], nxt[len(prev) + 1]
        assert reply["role"] == "assistant" and len(reply["content"].split()) == 5 - 1
        assert user["role"] == "user" and len(user["content"].split()) == 6
    # The plan's view (every reply as drawn) differs only in the reply lengths.
    assert [r.input_tokens_expected for r in sorted(records, key=lambda r: r.turn)] == [6, 16, 26]


def test_errors_and_warmup_are_accounted_and_a_failed_turn_does_not_end_its_session() -> None:
    client = FakeClient(fail=frozenset({1, 4}))
    plan = LoadPlan(concurrency=2, max_requests=7, warmup_requests=2)
    outcome, records = run(SessionDriver(workload()), plan, client)
    assert outcome.sent == len(records) == 9
    assert (outcome.ok, outcome.errored, outcome.cancelled) == (7, 2, 0)
    assert sum(r.warmup for r in records) == 2
    failed = next(r for r in records if r.index == 1)
    assert any(r.session_id == failed.session_id and r.turn == failed.turn + 1 for r in records)


def test_stop_cancels_what_is_in_flight_and_keeps_the_identity() -> None:
    client = FakeClient(hang={4})
    records: list[RequestRecord] = []

    async def main() -> RunOutcome:
        runner = Runner(client, FakeEndpoint(), clock, records.append)
        wl = workload(think_time=ThinkTime(mean_s=0.002))
        task = asyncio.create_task(
            runner.run(SessionDriver(wl), LoadPlan(concurrency=3, max_requests=50))
        )
        await asyncio.wait_for(client.hanging.wait(), timeout=10)
        runner.stop()
        return await asyncio.wait_for(task, timeout=10)

    outcome = asyncio.run(main())
    assert outcome.interrupted and outcome.cancelled >= 1
    assert outcome.sent == outcome.ok + outcome.errored + outcome.cancelled == len(records)
    assert any(r.error_kind == errors.CANCELLED and r.index == 4 for r in records)


def test_open_loop_starts_a_session_per_arrival_and_later_turns_follow_completion() -> None:
    wl = workload(turns=Fixed(2), think_time=ThinkTime(mean_s=0.05))
    arrivals = iter([0, 5_000_000, 10_000_000])
    outcome, records = run(SessionDriver(wl), LoadPlan(max_requests=6), FakeClient(), arrivals)
    assert outcome.sent == outcome.ok == 6
    sessions = by_session(records)
    firsts = sorted(turns[0].intended_ns for turns in sessions.values())
    assert [t - firsts[0] for t in firsts] == [0, 5_000_000, 10_000_000]
    for first, second in sessions.values():
        assert second.intended_ns == first.closed_ns + 50_000_000
        assert second.sent_ns >= second.intended_ns
    # Arrivals do not wait for sessions: the last one starts before the first one's turn 2.
    s0, last = sessions["s0"], max(sessions.values(), key=lambda t: t[0].intended_ns)
    assert last[0].sent_ns < s0[1].sent_ns


def test_thinking_users_pause_between_their_independent_requests() -> None:
    specs = iter(
        [RequestSpec(index=i, messages=({"role": "user", "content": "hi"},)) for i in range(4)]
    )
    users = ThinkingUsers(specs, ThinkTime(mean_s=0.02), seed=0)
    outcome, records = run(users, LoadPlan(concurrency=1, max_requests=10), FakeClient())
    assert outcome.sent == outcome.ok == 4  # the stream ran out first
    records.sort(key=lambda r: r.index)
    for prev, nxt in zip(records, records[1:], strict=False):
        assert nxt.sent_ns >= prev.closed_ns + 20_000_000


def test_a_constant_plan_pause_and_a_session_source_do_not_mix() -> None:
    with pytest.raises(ValueError, match="draws its own think times"):
        run(SessionDriver(workload()), LoadPlan(max_requests=1, think_time_s=1.0), FakeClient())
