"""Sessions carry their history turn by turn (the reply the server gave, else as drawn), the
driver hands out sessions in order with unique indices, think times are seeded draws from a
one-line spec, and a shared system prompt reaches the requested share of requests.
How the runner paces turns is specified in test_runner."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from loadgen.lengths import Fixed
from loadgen.prefix import ideal_prefix_hit_ratio_texts
from loadgen.sessions import (
    Conversation,
    SessionDriver,
    SessionWorkload,
    ThinkingUsers,
    ThinkTime,
    parse_think_time,
    prompt_text,
    with_system_share,
)
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.workload import SyntheticWorkload


def _workload(**kw) -> SessionWorkload:
    args = dict(input_len=Fixed(20), output_len=Fixed(5), turns=Fixed(3), seed=7)
    args.update(kw)
    return SessionWorkload(**args)


def test_each_turn_carries_the_whole_history_and_counts_it() -> None:
    turns = _workload(system_prompt_tokens=10).session(0, first_index=100)
    assert [t.turn for t in turns] == [0, 1, 2]
    assert [t.index for t in turns] == [100, 101, 102]
    for prev, nxt in zip(turns, turns[1:], strict=False):
        assert nxt.messages[: len(prev.messages)] == prev.messages  # history is a prefix
        assert nxt.messages[len(prev.messages)]["role"] == "assistant"
    # system 10 + 3 user turns of 20 + 2 replies of 5 words
    assert [t.input_tokens_expected for t in turns] == [30, 55, 80]
    assert {t.session_id for t in turns} == {"s0"}


def test_same_seed_same_sessions_and_unique_indices() -> None:
    assert next(_workload().sessions()) == next(_workload().sessions())
    gen = _workload(turns=Fixed(2)).specs()
    indices = [next(gen).index for _ in range(10)]
    assert indices == list(range(10))


def test_completions_sessions_are_one_growing_prompt() -> None:
    t0, t1, _ = _workload(api="completions").session(3, 0)
    assert t1.prompt.startswith(t0.prompt + " ")
    assert t0.messages is None


def test_driver_starts_sessions_in_order_with_unique_indices() -> None:
    driver = SessionDriver(_workload(turns=Fixed(2)))
    first, second = driver.new_session(), driver.new_session()
    a0, b0 = first.next_turn(None), second.next_turn(None)
    assert [(t.spec.session_id, t.spec.index) for t in (a0, b0)] == [("s0", 0), ("s1", 2)]
    assert first.next_turn(_answered(a0.spec.index, 5)).spec.index == 1
    assert first.next_turn(_answered(1, 5)) is None  # two turns, then over
    # Driven one session at a time with drawn replies, the driver sends what specs() plans.
    driven = []
    for _ in range(3):
        conversation, previous = driver.new_session(), None
        while (turn := conversation.next_turn(previous)) is not None:
            driven.append(turn.spec)
            previous = _answered(turn.spec.index, None)
    planned = list(itertools.islice(_workload(turns=Fixed(2)).specs(), 4, 10))
    assert driven == planned


def _answered(index: int, output_tokens: int | None) -> RequestRecord:
    return RequestRecord(index=index, intended_ns=None, sent_ns=0, output_tokens=output_tokens)


def test_the_next_turn_carries_the_reply_length_the_server_gave() -> None:
    conversation = Conversation(_workload(), 0, 0)
    first = conversation.next_turn(None).spec
    second = conversation.next_turn(_answered(first.index, 2)).spec
    reply = second.messages[-2]
    assert reply["role"] == "assistant" and len(reply["content"].split()) == 2
    assert second.input_tokens_expected == 20 + 2 + 20
    drawn = _workload().session(0, 0)
    assert drawn[0] == first
    assert [m["content"] for m in drawn[1].messages if m["role"] == "user"] == [
        m["content"] for m in second.messages if m["role"] == "user"
    ]  # a short reply does not change the user text that follows


def test_think_times_are_seeded_per_session_and_follow_the_distribution() -> None:
    def thinks(seed: int) -> list[int]:
        wl = _workload(turns=Fixed(4), seed=seed, think_time=ThinkTime("exp", mean_s=2.0))
        conversation = Conversation(wl, 5, 0)
        return [t.think_ns for t in iter(conversation.advance, None)]

    assert thinks(1) == thinks(1) != thinks(2)
    assert thinks(1)[0] == 0 and all(t > 0 for t in thinks(1)[1:])  # none before turn 0
    rng = np.random.default_rng(0)
    exp = np.array([parse_think_time("exp:mean=2").sample_ns(rng) for _ in range(20_000)]) / 1e9
    assert abs(exp.mean() - 2.0) < 0.1
    uni = np.array([parse_think_time("uniform:min=1,max=3").sample_ns(rng) for _ in range(2000)])
    assert uni.min() >= 1e9 and uni.max() <= 3e9 and abs(uni.mean() / 1e9 - 2) < 0.1
    assert parse_think_time("2.5").sample_ns(rng) == 2_500_000_000
    assert parse_think_time(0).is_zero and parse_think_time(" EXP:mean=0.5 ").describe() == (
        "exp:mean=0.5"
    )


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("-1", "seconds must be finite and >= 0"),
        ("soon", "not a number"),
        ("exp:avg=2", "exp needs mean="),
        ("uniform:min=3,max=1", "uniform needs min <= max"),
        ("gamma:cv=2", "unknown kind 'gamma'"),
        ("exp:mean=1,cv=2", "unknown option(s) cv"),
    ],
)
def test_bad_think_times_are_one_line_naming_the_accepted_forms(spec: str, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_think_time(spec)
    message = str(err.value)
    assert reason in message and "accepted: SECONDS | exp:mean=S" in message
    assert "\n" not in message


def test_thinking_users_share_one_stream_and_end_with_it() -> None:
    specs = iter([RequestSpec(index=i) for i in range(3)])
    users = ThinkingUsers(specs, ThinkTime(mean_s=1.0), seed=0)
    a, b = users.new_session(), users.new_session()
    assert [a.next_turn(None).spec.index, b.next_turn(None).spec.index] == [0, 1]
    turn = a.next_turn(_answered(0, 3))
    assert (turn.spec.index, turn.think_ns) == (2, 1_000_000_000)
    assert b.next_turn(_answered(1, 3)) is None
    assert users.new_session() is None


def test_system_share_keeps_lengths_and_scales_prefix_hits() -> None:
    def specs(share: float) -> list:
        wl = SyntheticWorkload(Fixed(64), Fixed(4), system_prompt_tokens=48, seed=1)
        return list(itertools.islice(with_system_share(wl.specs(), 48, share, seed=1), 200))

    full, half, none = specs(1.0), specs(0.5), specs(0.0)
    shared = full[0].messages[0]["content"]
    n_shared = sum(s.messages[0]["content"] == shared for s in half)
    assert 70 < n_shared < 130
    assert all(len(prompt_text(s).split()) == 64 for s in half + none)
    hits = [ideal_prefix_hit_ratio_texts(map(prompt_text, x)) for x in (full, half, none)]
    assert hits[0] > hits[1] > hits[2] == 0.0
    assert abs(hits[0] - 48 / 64) < 0.02


def test_salted_sessions_share_the_salt_and_their_history_within_the_run() -> None:
    for system in (0, 12):
        plain = list(itertools.islice(_workload(system_prompt_tokens=system).specs(), 9))
        salted = list(
            itertools.islice(
                _workload(system_prompt_tokens=system, salt="river moon stone ship").specs(), 9
            )
        )
        for p, s in zip(plain, salted, strict=True):
            assert s.messages[0]["content"].startswith("river moon stone ship ")
            assert s.salt_words == 4
            # Lengths as drawn: the salt took its words off the first user text.
            assert s.input_tokens_expected == p.input_tokens_expected
            assert len(s.messages) == len(p.messages)
        # Turn k+1 still starts with the whole of turn k's prompt.
        for a, b in zip(salted, salted[1:], strict=False):
            if a.session_id == b.session_id:
                assert b.messages[: len(a.messages)] == a.messages


def test_the_next_turn_sends_back_the_answer_the_server_streamed_not_its_reasoning() -> None:
    from loadgen.endpoints import OpenAIEndpoint

    conversation = Conversation(_workload(), 0, 0)
    first = conversation.next_turn(None).spec
    chunks = [
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n',
        b'data: {"choices":[{"delta":{"reasoning_content":"let me think"}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":"Paris is"}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":" the capital."},"finish_reason":"stop"}]}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":6}}\n\n',
        b"data: [DONE]\n\n",
    ]
    record = RequestRecord(index=first.index, intended_ns=None, sent_ns=0, session_id="s0")
    OpenAIEndpoint(api="chat", model="m").finish(record, chunks, list(range(1, 7)))
    assert record.error_kind is None and record.output_text == "Paris is the capital."
    second = conversation.next_turn(record).spec
    assert second.messages[-2] == {"role": "assistant", "content": "Paris is the capital."}


def test_a_request_outside_a_session_keeps_no_answer_text() -> None:
    from loadgen.endpoints import OpenAIEndpoint

    record = RequestRecord(index=0, intended_ns=None, sent_ns=0)
    body = (
        b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    OpenAIEndpoint(api="chat", model="m").finish(record, [body], [1])
    assert record.error_kind is None and record.output_text is None
