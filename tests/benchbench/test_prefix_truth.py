"""Prefix-cache truth: every workload with shared prefixes says, per request, how many prompt
tokens a perfect prefix cache would serve (a warm shared system prompt, a session's earlier
turns, a trace's repeated hash blocks); the run stores it beside what the server says it
served, and the summary flags a workload that did not get the reuse it claims."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import duckdb
import pytest

from benchbench.cache import expected_cache, served_cache
from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimProcess
from benchbench.store import open_store
from loadgen.lengths import parse_length
from loadgen.replay import ReplayOptions, plan_replay
from loadgen.sessions import Conversation, SessionWorkload
from loadgen.spec import RequestRecord
from loadgen.traces import TraceRecord
from loadgen.workload import SyntheticWorkload
from tests.benchbench.runs import record, write_run


def _words(spec_messages: tuple[dict, ...]) -> int:
    return sum(len(m["content"].split()) for m in spec_messages)


def test_a_shared_system_prompt_is_expected_cached_once_warm() -> None:
    wl = SyntheticWorkload(parse_length("50"), parse_length("4"), system_prompt_tokens=20)
    specs = list(islice(wl.specs(), 3))
    assert [s.cached_input_tokens_expected for s in specs] == [0, 20, 20]
    plain = SyntheticWorkload(parse_length("50"), parse_length("4"))
    assert next(plain.specs()).cached_input_tokens_expected is None  # no claim at all


def test_a_session_turn_expects_the_previous_prompt_and_the_servers_own_reply() -> None:
    wl = SessionWorkload(parse_length("10"), parse_length("5"), parse_length("3"),
                         system_prompt_tokens=8)  # fmt: skip
    first = Conversation(wl, 0, 0)
    t0 = first.advance()
    assert t0 is not None and t0.spec.cached_input_tokens_expected == 0  # cold
    # A stand-in reply differs from what the server generated: the cache ends before it.
    t1 = first.advance(5)
    assert t1 is not None and t1.spec.messages is not None
    assert t1.spec.cached_input_tokens_expected == _words(t0.spec.messages or ())
    # The server's own answer sent back as it came: its tokens are reusable too.
    t2 = first.advance(3, reply_text="the answer as the server wrote it")
    assert t2 is not None and t2.spec.messages is not None
    assert t2.spec.messages[-2] == {
        "role": "assistant",
        "content": "the answer as the server wrote it",
    }
    assert t2.spec.cached_input_tokens_expected == _words(t2.spec.messages[:-1])
    # A later session's first turn finds the shared system prompt warm.
    later = Conversation(wl, 1, 3).advance()
    assert later is not None and later.spec.cached_input_tokens_expected == 8


def test_a_trace_expects_its_already_seen_leading_blocks() -> None:
    records = [
        TraceRecord(0.0, 40, 2, block_size=16, hash_ids=(1, 2, 3)),
        TraceRecord(0.1, 40, 2, block_size=16, hash_ids=(1, 2, 9)),  # two blocks seen
        TraceRecord(0.2, 20, 2, block_size=16, hash_ids=(1, 2)),  # capped at its prompt
        TraceRecord(0.3, 40, 2, block_size=16, hash_ids=(7, 2, 3)),  # block 0 new: nothing
        TraceRecord(0.4, 40, 2),  # no hash ids: no claim
    ]
    specs, _ = plan_replay(records, ReplayOptions(), api="chat", seed=0)
    assert [s.cached_input_tokens_expected for s in specs] == [0, 32, 20, 0, None]


def _with(idx: int, prompt: int, expected: int | None, served: int | None) -> RequestRecord:
    return record(idx, idx * 10_000_000, 5_000_000, input_tokens=prompt,
                  cached_input_tokens_expected=expected, cached_input_tokens=served)  # fmt: skip


def test_served_close_to_expected_raises_no_warning(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.duckdb")
    run = write_run(store, [_with(0, 100, 0, 0), _with(1, 100, 60, 64), _with(2, 100, 60, 48)])
    got = expected_cache(store.con, run)
    assert got.expected_share == pytest.approx(120 / 300)
    assert got.served_share_same == pytest.approx(112 / 300)
    assert (got.expected_requests, got.compared_requests, got.reuse_warning) == (3, 3, None)


def test_claimed_reuse_that_was_not_served_is_flagged(tmp_path: Path) -> None:
    store = open_store(tmp_path / "b.duckdb")
    run = write_run(store, [_with(i, 100, 80, 5) for i in range(4)])
    pc = served_cache(store.con, run)
    assert pc["expected_share"] == pytest.approx(0.8) and pc["share"] == pytest.approx(0.05)
    assert "expects 80.0%" in pc["reuse_warning"] and "served 5.0%" in pc["reuse_warning"]


def test_no_server_report_compares_nothing_and_no_claim_is_none(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.duckdb")
    run = write_run(store, [_with(0, 100, 50, None), _with(1, 100, None, 30)])
    got = expected_cache(store.con, run)
    assert (got.expected_share, got.compared_requests, got.reuse_warning) == (0.5, 0, None)
    other = write_run(store, [_with(0, 100, None, 30)])
    assert expected_cache(store.con, other).expected_share is None


def test_bench_run_stores_each_turns_expectation(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with SimProcess(SimConfig(fast=True)) as sim:
        cfg = make_config(endpoint=sim.base_url, db=str(db), input_len="12", output_len="4",
                          session_turns="3", system_prompt_tokens=10, concurrency=2,
                          requests=6, salt=False)  # fmt: skip
        result = run_benchmark(cfg)
    rows = (
        duckdb.connect(str(db), read_only=True)
        .execute(
            """SELECT session_id, turn, cached_input_tokens_expected, input_tokens, output_tokens
           FROM requests
           WHERE run_id = ? ORDER BY session_id, turn""",
            [result.run_id],
        )
        .fetchall()
    )
    by_session: dict[str, list[tuple[int, int, int, int]]] = {}
    for sid, turn, expected, prompt, answer in rows:
        by_session.setdefault(sid, []).append((turn, expected, prompt, answer))
    for turns in by_session.values():
        for (_, _, prev_prompt, prev_answer), (turn, expected, _, _) in zip(
            turns, turns[1:], strict=False
        ):
            # The previous turn's whole prompt and the server's own answer, sent back as it
            # came (the simulator counts words as tokens).
            assert expected == prev_prompt + prev_answer, turn
    assert max(len(t) for t in by_session.values()) == 3  # later turns were compared
    assert result.summary.prompt_cache["expected_share"] > 0


# End to end on the built-in simulator, whose prefix cache (16-token blocks, LRU) serves a
# prompt's leading cached blocks and says so in usage.prompt_tokens_details.cached_tokens.
# Block granularity costs each request under one block of what a perfect cache would serve.
CLOSE = 0.1  # expected and served shares of the prompt tokens agree within this


def _cache_of(**fields: object) -> dict:
    base = dict(input_len="40", output_len="8", requests=12, concurrency=2, nvml=False)
    return run_benchmark(make_config(**{**base, **fields})).summary.prompt_cache


@pytest.mark.parametrize(
    "workload",
    [
        # 100-token prompts (the system prompt included) that share 64 of them.
        {"system_prompt_tokens": 64, "input_len": "100"},
        {"session_turns": "4", "system_prompt_tokens": 20, "output_len": "16"},
    ],
    ids=["system-prompt", "sessions"],
)
def test_the_simulator_serves_the_reuse_the_workload_expects(
    tmp_path: Path, workload: dict
) -> None:
    pc = _cache_of(db=str(tmp_path / "e.duckdb"), sim_fast=True, **workload)
    assert pc["source"] == "requests" and pc["compared_requests"] == pc["measured"] == 12
    assert pc["expected_share"] > 0.3
    assert pc["served_share_same"] == pytest.approx(pc["expected_share"], abs=CLOSE)
    assert pc["reuse_warning"] is None


def test_a_salted_rerun_is_cold_and_an_unsalted_one_is_served_warm(tmp_path: Path) -> None:
    db = str(tmp_path / "r.duckdb")
    with SimProcess(SimConfig(fast=True)) as sim:
        runs = {
            salt: [_cache_of(db=db, endpoint=sim.base_url, salt=salt, seed=7) for _ in range(2)]
            for salt in (True, False)
        }
    # Random prompts share nothing within a run: a salted rerun of the same seed is as cold
    # as the first run...
    assert [pc["share"] for pc in runs[True]] == [0.0, 0.0]
    # ...while --no-salt sends the same bytes, served from the first run's cache: every
    # full block of each 40-token prompt but the one holding its last token (32 / 40).
    first, rerun = runs[False]
    assert first["share"] == 0.0
    assert rerun["share"] == pytest.approx(32 / 40)


def test_claimed_reuse_on_a_server_without_a_prefix_cache_is_flagged(tmp_path: Path) -> None:
    with SimProcess(SimConfig(fast=True, prefix_cache_blocks=0)) as sim:
        pc = _cache_of(db=str(tmp_path / "n.duckdb"), endpoint=sim.base_url,
                       system_prompt_tokens=60)  # fmt: skip
    assert pc["expected_share"] > 0.3 and pc["share"] == 0.0
    assert "from the prefix cache but the server served 0.0%" in pc["reuse_warning"]


def test_a_salted_session_run_reusing_the_servers_answers_is_not_called_warm(
    tmp_path: Path,
) -> None:
    """Sessions send the server's own answers back, so the cache serves more than the ideal
    prefix hit of the planned text; that reuse is the workload's, not an earlier run's."""
    from benchbench.report_data.marks import prompt_cache
    from benchbench.results import load_results

    db = tmp_path / "warm.duckdb"
    with SimProcess(SimConfig(fast=True)) as sim:
        cfg = make_config(endpoint=sim.base_url, db=str(db), input_len="20", output_len="64",
                          session_turns="4", concurrency=2, requests=16)  # fmt: skip
        result = run_benchmark(cfg)
    store = open_store(db, read_only=True)
    try:
        traffic = load_results(store.con, result.run_id).traffic
        ideal = traffic["ideal_prefix_hit"]
        cache = prompt_cache(store.con, result.run_id, traffic, {})
    finally:
        store.close()
    assert cache.salted is True and cache.share is not None
    assert cache.share > ideal + 0.05  # more than the planned text alone would give
    assert not cache.warm and not any("prompt cache;" in n for n in cache.notes)
