"""Reasoning-aware streams end to end: the simulator reasons first (`--reasoning-tokens`) or
answers with a tool call (`--tool-calls`), `bench run` stores each fragment with its kind, and
the summary reports TTFT (first fragment of any kind), TTFA (first answer fragment), the
server's reasoning and answer token counts, and TPOT per phase."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.execute import run_benchmark
from benchbench.report_data.run import gather_run
from benchbench.sim import SimConfig, SimProcess

PREFILL_MS, STEP_MS, OUT, REASONING = 20.0, 10.0, 20, 6


def _sim(**knobs: object) -> SimConfig:
    return SimConfig(
        prefill_base_ms=PREFILL_MS, prefill_ms_per_token=0.0, decode_base_ms=STEP_MS,
        decode_ms_per_seq=0.0, **knobs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reasoning_sim() -> Iterator[str]:
    with SimProcess(_sim(reasoning_tokens=REASONING)) as sim:
        yield sim.base_url


def _run(base_url: str, db: Path, **kw: object):
    fields = dict(endpoint=base_url, db=str(db), input_len="50", output_len=str(OUT))
    fields.update(concurrency=1, requests=5, **kw)
    return run_benchmark(make_config(**fields))


def test_reasoning_then_answer_are_told_apart(reasoning_sim: str, tmp_path: Path) -> None:
    result = _run(reasoning_sim, tmp_path / "r.duckdb")
    r = result.summary.reasoning
    assert r is not None and r.requests == 5
    # The server's counts: 6 of each response's 20 tokens are reasoning.
    assert (r.reasoning_tokens, r.answer_tokens, r.reporting) == (5 * 6, 5 * 14, 5)
    assert (r.reasoning_events, r.answer_events, r.tool_call_events) == (5 * 6, 5 * 14, 0)
    d = r.distributions
    # TTFT: prefill + one step (the first reasoning token); TTFA: six steps later.
    assert d["ttft_ms"].p50 == pytest.approx(PREFILL_MS + STEP_MS, abs=8)
    assert d["ttfa_ms"].p50 - d["ttft_ms"].p50 == pytest.approx(REASONING * STEP_MS, abs=8)
    assert d["tpot_reasoning_ms"].p50 == pytest.approx(STEP_MS, abs=3)
    assert d["tpot_answer_ms"].p50 == pytest.approx(STEP_MS, abs=3)
    # The run's TTFT is the MLPerf Endpoints one: the reasoning fragment counts.
    assert result.summary.distributions["ttft_ms"].p50 == pytest.approx(d["ttft_ms"].p50)


def test_every_fragment_is_stored_with_its_kind(reasoning_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    result = _run(reasoning_sim, db)
    con = duckdb.connect(str(db), read_only=True)
    kinds = con.execute(
        """SELECT list(coalesce(kind, 'answer') ORDER BY seq) FROM token_events
           WHERE run_id = ? GROUP BY idx""",
        [result.run_id],
    ).fetchall()
    assert {tuple(k) for (k,) in kinds} == {("reasoning",) * 6 + ("answer",) * 14}
    first_event, first_token, reasoning = con.execute(
        """SELECT bool_and(first_event_ns < first_token_ns), count(first_token_ns),
                  sum(reasoning_tokens) FROM requests WHERE run_id = ? AND NOT warmup""",
        [result.run_id],
    ).fetchone()
    # The role-only opening chunk comes first: vLLM's TTFT starts there, ours does not.
    assert (first_event, first_token, reasoning) == (True, 5, 30)


def test_the_console_shows_the_phases(reasoning_sim: str, tmp_path: Path) -> None:
    result = _run(reasoning_sim, tmp_path / "c.duckdb")
    out = io.StringIO()
    print_summary(Console(file=out, width=120), result.summary)
    text = out.getvalue()
    assert "reasoning 30 + answer 70 tokens" in text
    assert "ttfa" in text and "tpot_reasoning" in text
    assert result.summary.to_dict()["reasoning"]["reasoning_tokens"] == 30


def test_the_report_has_a_reasoning_fact_table(reasoning_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    result = _run(reasoning_sim, db)
    con = duckdb.connect(str(db), read_only=True)
    facts = gather_run(con, result.run_id).facts["reasoning"]
    assert facts["reasoning tokens (server)"] == 30
    assert facts["answer tokens (output - reasoning)"] == 70
    assert facts["ttfa_ms p50"] > facts["ttft_ms p50"]


def test_a_tool_call_answer_is_its_own_kind(tmp_path: Path) -> None:
    with SimProcess(_sim(reasoning_ratio=0.25, tool_calls=True, fast=True)) as sim:
        result = _run(sim.base_url, tmp_path / "t.duckdb")
    r = result.summary.reasoning
    assert r is not None
    assert (r.reasoning_tokens, r.answer_tokens) == (5 * 5, 5 * 15)
    assert (r.reasoning_events, r.answer_events, r.tool_call_events) == (25, 0, 75)
    assert result.summary.ok == 5


def test_a_plain_stream_has_no_reasoning_section(tmp_path: Path) -> None:
    with SimProcess(_sim(fast=True)) as sim:
        result = _run(sim.base_url, tmp_path / "p.duckdb")
    assert result.summary.reasoning is None
    assert result.summary.ok == 5
