"""Sessions carry their history turn by turn, each concurrency slot drives its own session in
order, and a shared system prompt reaches the requested share of requests."""

from __future__ import annotations

import asyncio
import itertools

from loadgen.lengths import Fixed
from loadgen.prefix import ideal_prefix_hit_ratio_texts
from loadgen.sessions import SessionDriver, SessionWorkload, prompt_text, with_system_share
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


def test_driver_gives_each_task_the_next_turn_of_its_own_session() -> None:
    driver = SessionDriver(_workload())
    seen: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}

    async def slot(name: str) -> None:
        for _ in range(4):
            spec = next(driver)
            seen[name].append((spec.session_id, spec.turn))
            await asyncio.sleep(0)  # let the other slot pull in between

    async def main() -> None:
        await asyncio.gather(slot("a"), slot("b"))

    asyncio.run(main())
    assert seen["a"] == [("s0", 0), ("s0", 1), ("s0", 2), ("s2", 0)]
    assert seen["b"] == [("s1", 0), ("s1", 1), ("s1", 2), ("s3", 0)]


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
