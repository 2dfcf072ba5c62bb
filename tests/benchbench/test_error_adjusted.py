"""Error-adjusted latencies: every failed measured request counts as +inf, so a server that
looks fast by refusing requests looks bad; the ok-only figures stay beside them."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchbench.catalogue import parse_metric
from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.execute import run_benchmark
from benchbench.gate.compare import evaluate_rule, evaluate_slo
from benchbench.gate.data import load_side
from benchbench.gate.gate import run_gate
from benchbench.gate.output import to_json
from benchbench.gate.rules import GateConfig, Rule, Slo, load_gate_config
from benchbench.gate.stats import point
from benchbench.metrics import summarize
from benchbench.sim import SimConfig, SimProcess
from benchbench.slo import parse_slos, statistic
from benchbench.store import open_store
from tests.benchbench.runs import record, write_run

MS = 1_000_000
OK_TTFT_MS = (10, 20, 30, 40, 50, 60, 70, 80)


def _quantile_cont(values: list[float], q: float) -> float:
    """DuckDB's quantile_cont by hand: linear between the order statistics around (n-1)q,
    infinite once the upper one is."""
    s = sorted(values)
    h = (len(s) - 1) * q
    k = math.floor(h)
    low, high = s[k], s[min(k + 1, len(s) - 1)]
    return low if h == k else (math.inf if math.isinf(high) else low + (h - k) * (high - low))


@pytest.fixture()
def small_run(tmp_path: Path):
    """8 ok requests (TTFT 10..80 ms), 2 refused (http 503), 1 cancelled, 1 warm-up."""
    store = open_store(str(tmp_path / "adj.duckdb"))
    recs = [record(i, i * 100 * MS, t * MS) for i, t in enumerate(OK_TTFT_MS)]
    recs += [record(8, 900 * MS, 1 * MS, error_kind="http_5xx")]
    recs += [record(9, 1000 * MS, 1 * MS, error_kind="http_5xx")]
    recs += [record(10, 1100 * MS, 2 * MS, error_kind="cancelled")]
    recs += [record(11, 0, 500 * MS, warmup=True)]
    run_id = write_run(store, recs)
    yield store, run_id
    store.close()


def test_failed_requests_count_as_infinite_and_cancelled_ones_are_left_out(small_run) -> None:
    store, run_id = small_run
    s = summarize(store.con, run_id)
    ok, adj = s.distributions["ttft_ms"], s.distributions["ttft_adj_ms"]
    assert ok.n == 8 and adj.n == 10  # + 2 refused; the cancelled and the warm-up are out
    with_failures = [float(t) for t in OK_TTFT_MS] + [math.inf, math.inf]
    for stat, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        assert ok.get(stat) == pytest.approx(_quantile_cont([float(t) for t in OK_TTFT_MS], q))
        assert adj.get(stat) == pytest.approx(_quantile_cont(with_failures, q))
    # By hand: n = 10, h = 9 p. p50: h = 4.5 -> 50 + 0.5 x 10; p90: h = 8.1 reaches a failure.
    assert adj.p50 == pytest.approx(55.0)
    assert adj.p90 == math.inf and adj.max == math.inf and adj.mean == math.inf
    assert ok.p90 == pytest.approx(73.0)  # 8 values: h = 6.3 -> 70 + 0.3 x 10
    # Any statistic through the one parser: p75 (h = 6.75) is finite, p80 (h = 7.2) is not.
    assert statistic(store.con, run_id, parse_metric("ttft_adj_p75_ms")) == pytest.approx(77.5)
    assert statistic(store.con, run_id, parse_metric("ttft_adj_ms.p80")) == math.inf


def test_json_carries_infinity_as_null_named_in_a_list(small_run) -> None:
    store, run_id = small_run
    d = json.loads(json.dumps(summarize(store.con, run_id).to_dict(), allow_nan=False))
    adj = d["distributions"]["ttft_adj_ms"]
    assert adj["p90"] is None and adj["p50"] == pytest.approx(55.0)
    assert adj["infinite"] == ["mean", "p90", "p95", "p99", "max"]
    assert "infinite" not in d["distributions"]["ttft_ms"]


def test_the_console_prints_infinity_and_says_what_it_means(small_run) -> None:
    store, run_id = small_run
    buf = io.StringIO()
    print_summary(Console(file=buf, width=120), summarize(store.con, run_id))
    out = buf.getvalue()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    row = next(r for r in rows if r and r[0] == "TTFT (failed=∞)")
    assert row[1:] == ["10", "∞", "55.00", "∞", "∞", "∞", "∞"]
    assert "each failed request counted as +inf" in out


def test_both_spellings_parse_for_slos_and_gate_rules() -> None:
    assert parse_metric("ttft_adj_p99_ms").key == parse_metric("ttft_adj_ms.p99").key
    assert parse_slos("e2e_adj_p90_ms=800,tpot_adj_ms.p99=40") == {
        "e2e_adj_p90_ms": 800.0,
        "tpot_adj_ms.p99": 40.0,
    }


def test_the_gate_point_matches_duckdb_with_failures() -> None:
    values = np.array([10.0, 20.0, 30.0, np.inf, np.inf])
    assert point(values, 0.5) == 30.0
    assert point(values, 0.4) == pytest.approx(26.0)  # h = 1.6
    assert point(values, 0.6) == math.inf  # h = 2.4 reaches a failure


def _sim_run(db: Path, **sim: object) -> int:
    base = dict(prefill_base_ms=5.0, prefill_ms_per_token=0.0, decode_base_ms=5.0, seed=3)
    with SimProcess(SimConfig(**{**base, **sim})) as proc:
        cfg = make_config(
            endpoint=proc.base_url, db=str(db), input_len="50", output_len="8", requests=40,
            concurrency=4, seed=5, api="completions",
        )  # fmt: skip
        return run_benchmark(cfg).run_id


def test_a_server_that_refuses_fast_looks_bad_only_in_the_adjusted_figures(
    tmp_path: Path,
) -> None:
    db = tmp_path / "refuse.duckdb"
    honest = _sim_run(db)
    # Faster prefill, but 30% of requests refused at once with 503.
    refusing = _sim_run(db, prefill_base_ms=1.0, error_rate=0.3, error_status=503)
    store = open_store(str(db), read_only=True)
    try:
        s = summarize(store.con, refusing)
        assert s.errored > 40 * 0.1  # failures recorded as data
        assert (
            s.distributions["ttft_ms"].p99
            < summarize(store.con, honest).distributions["ttft_ms"].p99
        )
        assert s.distributions["ttft_adj_ms"].p99 == math.inf
        cfg = GateConfig(rules=(), max_error_rate=1.0, resamples=500)
        metrics = {"ttft_ms", "ttft_adj_ms"}
        base = load_side(store.con, [honest], "honest", metrics, set())
        cand = load_side(store.con, [refusing], "refusing", metrics, set())
    finally:
        store.close()
    ok_rule = evaluate_rule(Rule("ttft_ms", "p90", "lower", 0.1, 0.5), base, cand, cfg)
    adj_rule = evaluate_rule(Rule("ttft_adj_ms", "p90", "lower", 0.1, 0.5), base, cand, cfg)
    assert not ok_rule.failed
    assert adj_rule.verdict == "regression" and adj_rule.candidate == math.inf
    slo = evaluate_slo(Slo("ttft_adj_p99_ms", "ttft_adj_ms", "p99", "lower", 1000.0), cand)
    assert slo.verdict == "slo-fail"
    # The same through a gate TOML and `bench gate`'s library call.
    toml = tmp_path / "bench.toml"
    toml.write_text(
        "[gate]\nmax_error_rate = 1.0\nmin_requests = 10\ndefaults = false\n"
        '[gate.rules."ttft_adj_ms.p90"]\nrel = 0.1\n[gate.slo]\nttft_adj_p99_ms = 1000\n'
    )
    gated = run_gate(str(honest), str(refusing), str(db), load_gate_config(toml))
    verdicts = {r.key: r.verdict for r in gated.results}
    assert verdicts == {"ttft_adj_ms.p90": "regression", "slo:ttft_adj_p99_ms": "slo-fail"}
    assert gated.exit_code == 1
    # The gate's JSON stays strict JSON: the infinite candidate is null and named.
    from benchbench.gate.compare import GateResult

    result = GateResult("honest", "refusing", (honest,), (refusing,), (adj_rule,), 0.95, "test")
    row = json.loads(to_json(result))["results"][0]
    assert row["candidate"] is None and "candidate" in row["infinite"]


def test_the_report_shows_the_adjusted_table_with_infinity(small_run) -> None:
    from benchbench.report_data.run import gather_run
    from reports.html import Page
    from reports.run_page import run_section

    store, run_id = small_run
    run = gather_run(store.con, run_id)
    label, ttft = run.adjusted[0]
    assert label == "TTFT (failed=∞)" and ttft["failed"] == 2 and ttft["p99"] == math.inf
    html = run_section(Page(), run, full=True)
    assert "Latency with failures counted" in html and "∞" in html
