"""The gate against real simulator runs (see conftest): a planted decode slowdown fails on
TPOT and nothing else, a faster prefill passes, same-config runs pass (false-alarm rate
measured), and incomparable runs are refused with their reason."""

from __future__ import annotations

import numpy as np
import pytest

from benchbench.gate import DEFAULT_CONFIG, InvalidComparison, SideData, compare, run_gate
from benchbench.gate.compare import needed_metrics
from benchbench.gate.data import load_side
from benchbench.gate.rules import GateConfig
from benchbench.store import open_store
from tests.benchbench.gate.conftest import DECODE_METRICS, Runs


def _gate(runs: Runs, base: int, cand: int, cfg: GateConfig = DEFAULT_CONFIG):
    return run_gate(str(base), str(cand), str(runs.db), cfg)


def test_a_20_percent_slower_decode_fails_on_tpot_and_nothing_else(sim_runs: Runs) -> None:
    result = _gate(sim_runs, sim_runs.same[0], sim_runs.slow_decode)
    assert result.exit_code == 1
    failed = {r.key for r in result.failures}
    assert "tpot_ms.p50" in failed and all(k.startswith(DECODE_METRICS) for k in failed), failed
    tpot = next(r for r in result.results if r.key == "tpot_ms.p50")
    assert tpot.rel_change == pytest.approx(0.19, abs=0.05)
    assert tpot.low is not None and tpot.low > tpot.tolerance  # the interval excludes it


def test_a_20_percent_better_ttft_passes(sim_runs: Runs) -> None:
    result = _gate(sim_runs, sim_runs.same[0], sim_runs.fast_prefill)
    assert result.passed and result.exit_code == 0
    ttft = next(r for r in result.results if r.key == "ttft_ms.p50")
    assert ttft.diff is not None and ttft.diff < 0


def _draw(pool: SideData, n: int, rng: np.random.Generator, source: str) -> SideData:
    """A synthetic run of `n` requests drawn from the pooled requests of real runs."""
    total = sum(r.ok for r in pool.runs)
    values = {m: rng.choice(v, size=n * len(v) // total) for m, v in pool.values.items()}
    effective = {m: e * n / total for m, e in pool.effective.items()}
    run_values = {k: v[:1] for k, v in pool.run_values.items()}
    return SideData(source, pool.runs[:1], values, run_values, effective, source)


def test_false_alarm_rate_of_same_configuration_pairs_is_at_most_1_in_20(
    sim_runs: Runs,
) -> None:
    """20 seeded repeats without 40 real runs: the requests of the four real same-config runs
    (200) are pooled, and each repeat draws two synthetic 50-request runs from the pool (with
    their share of chunk gaps and of the effective sample size) and gates one against the
    other. Both sides come from the same distribution, which mixes in the real run-to-run
    differences, so every failure is a false alarm."""
    dists, run_metrics = needed_metrics(DEFAULT_CONFIG)
    store = open_store(sim_runs.db, read_only=True)
    try:
        pool = load_side(store.con, list(sim_runs.same), "pool", dists, run_metrics)
    finally:
        store.close()
    alarms = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        cfg = GateConfig(rules=DEFAULT_CONFIG.rules, seed=seed)
        result = compare(_draw(pool, 50, rng, "a"), _draw(pool, 50, rng, "b"), cfg)
        alarms += [r.key for r in result.failures]
    assert len(alarms) <= 1, alarms


def test_repeat_groups_are_pooled(sim_runs: Runs) -> None:
    result = _gate(sim_runs, sim_runs.same[0], sim_runs.repeat_group[1])
    assert result.candidate_runs == sim_runs.repeat_group
    assert result.passed


def test_different_model_is_refused_with_its_reason(sim_runs: Runs) -> None:
    with pytest.raises(InvalidComparison) as exc:
        _gate(sim_runs, sim_runs.same[0], sim_runs.other_model)
    assert any("different models ('sim-llm' vs 'other-llm')" in p for p in exc.value.problems)


def test_different_workload_is_refused_with_its_reason(sim_runs: Runs) -> None:
    with pytest.raises(InvalidComparison) as exc:
        _gate(sim_runs, sim_runs.same[0], sim_runs.other_workload)
    text = " ".join(exc.value.problems)
    assert "different workload fingerprints" in text
    assert "different output_len" in text


def test_a_short_run_is_invalid_not_a_pass(sim_runs: Runs) -> None:
    cfg = GateConfig(rules=DEFAULT_CONFIG.rules, min_requests=500)
    with pytest.raises(InvalidComparison, match="fewer than min_requests = 500"):
        _gate(sim_runs, sim_runs.same[0], sim_runs.same[1], cfg)


def test_a_run_compared_with_itself_is_refused(sim_runs: Runs) -> None:
    with pytest.raises(InvalidComparison, match="share run"):
        _gate(sim_runs, sim_runs.same[0], sim_runs.same[0])
