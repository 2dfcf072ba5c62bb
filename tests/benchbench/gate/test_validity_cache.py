"""The gate refuses to compare runs the server's prompt cache served differently: a rerun
with byte-identical prompts (`--no-salt`) is faster only because the server remembered the
first run. Hand-built sides, so every share and tolerance is hand arithmetic."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.gate.data import RunInfo, SideData
from benchbench.gate.rules import DEFAULT_CONFIG, GateConfigError, parse_gate_table
from benchbench.gate.validity import (
    DEFAULT_CACHE_TOLERANCE,
    cache_problems,
    side_cache_share,
    validity_problems,
)
from benchbench.store import open_store
from tests.benchbench.runs import record, write_run


def _run(run_id: int, share: float | None, **traffic: Any) -> RunInfo:
    return RunInfo(
        run_id=run_id, status="complete", model="m", api="chat", load_mode="closed",
        concurrency=4, requested_rate=None, fingerprint="f" * 64,
        traffic={"workload": "custom", **traffic}, sent=100, ok=100, errored=0,
        token_requests=100, token_mismatch=0, loop_lag_p99_ms=1.0, served_cache_share=share,
    )  # fmt: skip


def _side(*runs: RunInfo) -> SideData:
    label = f"run {runs[0].run_id}"
    return SideData(label, runs, {"ttft_ms": np.ones(100)}, source="store")


@pytest.mark.parametrize(
    ("base", "cand", "refused"),
    [
        (0.014, 0.992, True),  # the llama-server reruns: 1.4% then 99.2% from cache
        (0.992, 0.014, True),  # the warm side may be either
        (0.03, 0.05, False),  # 2 points: the template and salt shared within any run
        (0.10, 0.15, False),  # exactly at the tolerance
        (0.10, 0.1501, True),
        (None, 0.99, False),  # unknown on one side: no verdict on the cache
        (0.99, None, False),
    ],
)
def test_shares_further_apart_than_the_tolerance_are_refused(
    base: float | None, cand: float | None, refused: bool
) -> None:
    problems = cache_problems(_side(_run(1, base)), _side(_run(2, cand)), 0.05)
    assert bool(problems) is refused
    if refused:
        (p,) = problems
        assert "prompt cache" in p and "--cache-tolerance" in p
        assert f"{base:.1%}" in p and f"{cand:.1%}" in p
        assert ("baseline was served" if base > cand else "candidate was served") in p


def test_the_tolerance_is_configurable() -> None:
    base, cand = _side(_run(1, 0.0)), _side(_run(2, 0.2))
    assert cache_problems(base, cand, 0.25) == []
    assert cache_problems(base, cand, 0.1) != []
    assert DEFAULT_CACHE_TOLERANCE == 0.05


def test_the_config_takes_a_fraction_and_refuses_points() -> None:
    cfg = parse_gate_table({"cache_tolerance": 0.25})
    base, cand = _side(_run(1, 0.0)), _side(_run(2, 0.2))
    assert validity_problems(base, cand, cfg) == []
    assert validity_problems(base, cand, replace(cfg, cache_tolerance=0.1)) != []
    with pytest.raises(GateConfigError, match=r"gate.cache_tolerance: a fraction in \[0, 1\]"):
        parse_gate_table({"cache_tolerance": 5})


def test_validity_includes_the_cache_check_with_the_default_tolerance() -> None:
    problems = validity_problems(_side(_run(1, 0.01)), _side(_run(2, 0.99)), DEFAULT_CONFIG)
    assert len(problems) == 1 and "prompt cache" in problems[0]
    assert validity_problems(_side(_run(1, 0.01)), _side(_run(2, 0.03)), DEFAULT_CONFIG) == []


def test_a_pooled_side_is_the_mean_of_its_runs_and_unknown_if_any_is() -> None:
    assert side_cache_share(_side(_run(1, 0.1), _run(2, 0.3))) == pytest.approx(0.2)
    assert side_cache_share(_side(_run(1, 0.1), _run(2, None))) is None


def test_a_salted_run_against_an_unsalted_one_is_named() -> None:
    base, cand = _side(_run(1, None, salted=True)), _side(_run(2, None, salted=False))
    problems = validity_problems(base, cand, DEFAULT_CONFIG)
    assert any("salted" in p and "--no-salt" in p for p in problems)
    # Runs stored before salting existed say nothing about it: no problem from that.
    old = _side(replace(_run(3, None), traffic={"workload": "custom"}))
    assert validity_problems(base, old, DEFAULT_CONFIG) == []


def _stored_run(store: Any, cached_per_request: int) -> int:
    """40 ok requests of 100 prompt tokens, each served `cached_per_request` from cache."""
    records = [
        record(i, i * 20_000_000, 10_000_000, input_tokens=100,
               cached_input_tokens=cached_per_request)
        for i in range(40)
    ]  # fmt: skip
    return write_run(store, records, model="m", api="chat", load_mode="closed", concurrency=1)


def test_bench_gate_cache_tolerance_is_in_points_and_shows_both_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    db = tmp_path / "bench.duckdb"
    store = open_store(db)
    base, cand = _stored_run(store, 0), _stored_run(store, 4)  # 0% and 4% from cache
    store.close()
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), "--db", str(db)]

    ok = CliRunner().invoke(app, [*args, "--json"])  # 4 points apart: within the default 5
    assert ok.exit_code in (0, 1), ok.output
    verdict = json.loads(ok.stdout)
    assert verdict["valid"] is True
    assert verdict["baseline_served_cache"] == pytest.approx(0.0)
    assert verdict["candidate_served_cache"] == pytest.approx(0.04)
    md = tmp_path / "gate.md"
    CliRunner().invoke(app, [*args, "--markdown", str(md)])
    assert "served prompt cache: baseline 0.0%, candidate 4.0%" in md.read_text()

    refused = CliRunner().invoke(app, [*args, "--cache-tolerance", "3"])
    assert refused.exit_code == 2, refused.output
    assert "served prompt cache differs" in refused.output and "Traceback" not in refused.output
    assert "more than 3 points apart" in refused.output
