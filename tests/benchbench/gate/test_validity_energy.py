"""The gate refuses energy rules over a run whose energy verdict is invalid (a counter too
coarse for the window, samples missing, counter and power disagreeing), naming the verdict's
reasons; without energy rules the same runs compare. Hand-built sides for the verdict
arithmetic, then stored runs through `bench gate`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchbench.catalogue import ENERGY_METRICS
from benchbench.cli import app
from benchbench.gate.compare import InvalidComparison, compare
from benchbench.gate.data import RunInfo, SideData
from benchbench.gate.rules import DEFAULT_CONFIG, parse_gate_table
from benchbench.gate.validity import energy_problems, side_energy_status, validity_problems
from benchbench.results import Energy, load_results, write_results
from benchbench.store import open_store
from tests.benchbench.gate.conftest import Runs

COARSE = "the counter refreshed every 30 s, too coarse for a 12 s window (dcgm-exporter -c 1000)"
NO_ENERGY_RULES = {"rules": {"j_per_output_token": {"enabled": False}}}


def _run(run_id: int, status: str | None, *reasons: str) -> RunInfo:
    return RunInfo(
        run_id=run_id, status="complete", model="m", api="chat", load_mode="closed",
        concurrency=4, requested_rate=None, fingerprint="f" * 64, traffic={}, sent=100, ok=100,
        errored=0, token_requests=100, token_mismatch=0, loop_lag_p99_ms=1.0,
        energy_status=status, energy_reasons=reasons,
    )  # fmt: skip


def _side(run: RunInfo, j_per_token: float) -> SideData:
    return SideData(
        f"run {run.run_id}", (run,), {"ttft_ms": np.full(100, 10.0)},
        {"j_per_output_token": [j_per_token]}, {"ttft_ms": 100.0}, source="store",
    )  # fmt: skip


def test_the_catalogue_names_the_energy_metrics() -> None:
    assert ENERGY_METRICS == ("j_per_output_token",)


@pytest.mark.parametrize("invalid_side", ["baseline", "candidate"])
def test_an_invalid_energy_verdict_on_either_side_refuses_the_energy_rules(
    invalid_side: str,
) -> None:
    bad, good = _run(1, "invalid", COARSE, "samples cover only 40% of the window"), _run(2, "ok")
    base, cand = (bad, good) if invalid_side == "baseline" else (good, bad)
    with pytest.raises(InvalidComparison) as exc:
        compare(_side(base, 2.0), _side(cand, 0.1), DEFAULT_CONFIG)
    (problem,) = exc.value.problems
    assert problem.startswith(f"{invalid_side} run {bad.run_id}: its energy verdict is invalid")
    assert COARSE in problem and "samples cover only 40% of the window" in problem
    assert "j_per_output_token" in problem and "enabled = false" in problem


def test_without_energy_rules_the_comparison_goes_ahead() -> None:
    cfg = parse_gate_table(NO_ENERGY_RULES)
    base, cand = _side(_run(1, "invalid", COARSE), 2.0), _side(_run(2, "ok"), 0.1)
    assert energy_problems(base, cand, cfg) == []
    result = compare(base, cand, cfg)
    assert "j_per_output_token" not in {r.key for r in result.results}
    assert (result.baseline_energy, result.candidate_energy) == ("invalid", "ok")


def test_an_energy_slo_counts_as_an_energy_rule() -> None:
    cfg = parse_gate_table({**NO_ENERGY_RULES, "slo": {"j_per_output_token": 1.0}})
    problems = energy_problems(_side(_run(1, "ok"), 0.5), _side(_run(2, "invalid"), 0.5), cfg)
    assert len(problems) == 1 and "slo:j_per_output_token" in problems[0]


@pytest.mark.parametrize("status", ["ok", "partial", None])
def test_a_partial_or_missing_verdict_is_no_reason_to_refuse(status: str | None) -> None:
    base, cand = _side(_run(1, status), 0.5), _side(_run(2, "ok"), 0.5)
    assert validity_problems(base, cand, DEFAULT_CONFIG) == []


def test_a_pooled_side_shows_its_worst_verdict() -> None:
    side = SideData("runs 1, 2", (_run(1, "ok"), _run(2, "partial")), {})
    assert side_energy_status(side) == "partial"
    assert side_energy_status(SideData("run 3", (_run(3, None),), {})) is None


def _with_energy(db: Path, run_id: int, status: str, *reasons: str) -> None:
    """Give a stored run an energy result with this verdict, through the results writer."""
    store = open_store(db)
    try:
        res = load_results(store.con, run_id)
        energy = Energy(source="nvml_counter", gross_j=500.0, j_per_output_token=0.5,
                        verdict={"status": status, "reasons": list(reasons)})  # fmt: skip
        write_results(store, run_id, dataclasses.replace(res, energy=energy))
    finally:
        store.close()


def test_bench_gate_exits_2_naming_the_verdict_and_compares_without_energy_rules(
    sim_runs: Runs, tmp_path: Path
) -> None:
    db = tmp_path / "bench.duckdb"
    shutil.copy(sim_runs.db, db)
    base, cand = sim_runs.same[0], sim_runs.same[1]
    _with_energy(db, base, "ok")
    _with_energy(db, cand, "invalid", COARSE)
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), "--db", str(db), "--json"]

    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    out = json.loads(refused.stdout.splitlines()[0])
    assert out["valid"] is False and any(COARSE in p for p in out["problems"])

    (tmp_path / "bench.toml").write_text("[gate.rules.j_per_output_token]\nenabled = false\n")
    allowed = CliRunner().invoke(app, [*args, "--config", str(tmp_path / "bench.toml")])
    assert allowed.exit_code == 0, allowed.output
    verdict = json.loads(allowed.stdout)
    assert verdict["valid"] is True
    assert (verdict["baseline_energy"], verdict["candidate_energy"]) == ("ok", "invalid")
