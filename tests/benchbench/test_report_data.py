"""The report's figures, checked against the store they were gathered from: CDF points are
exact fractions, samples are real requests, timelines add up to the run's totals, power and
energy match the samples, and secrets are masked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.metrics import chunk_gap_sql, chunk_gaps, distribution, summarize
from benchbench.report_data import EXACT_CDF_MAX, gather_report, gather_run
from benchbench.results import Cost, Energy, RunResults
from benchbench.store import open_store
from collectors.base import Sample
from loadgen.spec import RequestRecord
from tests.benchbench.runs import record, write_run


def _make_run(store, n: int, events: int, samples=(), results: RunResults | None = None) -> int:
    """n requests 10 ms apart; TTFT and lengths vary by index; every 50th errors; `events`
    token events per ok request, 5 ms apart, with no per-event token count (as stored)."""

    def one(i: int) -> RequestRecord:
        kind = "timeout" if i % 100 == 7 else "http_500" if i % 50 == 7 else None
        return record(
            i, i * 10_000_000 + 100_000, (20 + i % 37) * 1_000_000 - 100_000, 5_000_000, events,
            intended_ns=i * 10_000_000, error_kind=kind, input_tokens=100 + i % 300,
            output_tokens=events * 3, warmup=i < 2, error_detail="boom" if kind else None,
        )  # fmt: skip

    return write_run(
        store, (one(i) for i in range(n)), samples, results,
        endpoint="http://e", model="m", load_mode="open", requested_rate=100.0,
        config={"api_key": "sk-SECRET", "headers": {"Authorization": "Bearer SECRET"},
                "input_len": "100", "gpu_count": 2},
    )  # fmt: skip


@pytest.fixture(scope="module")
def store_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, int, int]]:
    path = tmp_path_factory.mktemp("store") / "r.duckdb"
    store = open_store(path)
    con = store.con
    small = _make_run(store, 60, 4)
    energy = Energy(
        avg_power_w=640.0, idle_w=140.0, j_per_output_token=0.5, gpus=("0", "1"),
        idle_window_ns=(0, 500_000_000), warnings=("w1",),
    )  # fmt: skip
    cost = Cost(usd_per_1m_output_tokens=1.25, energy_usd_per_1m_output_tokens=0.03)
    # GPU 0: instant power at 10 Hz and an energy counter that resets once; GPU 1 power only.
    samples = [
        *(Sample("nvml", "0", k * 100_000_000, "power_instant_w", 300 + k % 10)
          for k in range(320)),
        *(Sample("nvml", "0", k * 100_000_000, "energy_mj",
                 1e6 + k * 30000 if k < 200 else (k - 200) * 30000) for k in range(320)),
        *(Sample("nvml", "1", k * 100_000_000, "power_avg_w", 200) for k in range(320)),
        *(Sample("prometheus", "http://x/metrics", k * 100_000_000, "vllm:running", 1)
          for k in range(10)),
    ]  # fmt: skip
    large = _make_run(
        store, 3000, 6, samples, RunResults(energy=energy, cost=cost, warnings=("w1",))
    )
    yield con, small, large
    store.close()


def _fraction_at_or_below(con, sql: str, value: float) -> float:
    n, below = con.execute(
        f"SELECT count(x), count(x) FILTER (WHERE x <= ?) FROM ({sql})", [value]
    ).fetchone()
    return below / n


def test_small_cdfs_are_every_value_and_markers_are_the_metrics(store_runs) -> None:
    con, small, _ = store_runs
    r = gather_run(con, small)
    ttft = r.cdfs[0]
    rows = con.execute(
        "SELECT (first_token_ns - sent_ns) / 1e6 FROM requests "
        "WHERE run_id = ? AND error_kind IS NULL AND NOT warmup ORDER BY 1",
        [small],
    ).fetchall()
    expected = [row[0] for row in rows]
    assert ttft.exact and list(ttft.values) == expected
    assert ttft.probs[-1] == 1.0
    d = distribution(con, small, "ttft_ms")
    assert ttft.markers == {"p50": d.p50, "p90": d.p90, "p95": d.p95, "p99": d.p99, "max": d.max}


def test_large_cdfs_are_binned_and_each_point_is_the_exact_fraction(store_runs) -> None:
    con, _, large = store_runs
    r = gather_run(con, large)
    gap = r.cdfs[2]
    assert gap.label == "chunk gap" and not gap.exact
    assert gap.n == chunk_gaps(con, large).n > EXACT_CDF_MAX  # same population as metrics
    sql = chunk_gap_sql(large, column="e.gap_ns / 1e6")
    for v, p in zip(gap.values, gap.probs, strict=True):
        assert _fraction_at_or_below(con, sql, v) == pytest.approx(p)
    ttft = r.cdfs[0]
    assert not ttft.exact and len(ttft.values) < 200
    assert ttft.probs[-1] == pytest.approx(1.0)
    assert any("log-spaced bins" in n for n in r.notes)


def test_scatter_is_a_sample_of_real_requests(store_runs) -> None:
    con, _, large = store_runs
    r = gather_run(con, large, max_points=100)
    s = r.scatters[0]  # TTFT vs input tokens
    assert s.sampled and len(s.x) == 100 and s.total == summarize(con, large).ok
    pairs = set(con.execute(
        "SELECT input_tokens, (first_token_ns - sent_ns) / 1e6 FROM requests "
        "WHERE run_id = ? AND error_kind IS NULL", [large]).fetchall())  # fmt: skip
    assert all((x, y) in pairs for x, y in zip(s.x, s.y, strict=True))
    assert any("100 of" in n for n in r.notes)


def test_timelines_add_up_to_the_run(store_runs) -> None:
    con, _, large = store_runs
    r = gather_run(con, large, max_buckets=50)
    t = r.timeline
    assert t is not None and len(t.t_s) <= 50
    b = t.bucket_s
    ok_tokens = con.execute(
        "SELECT sum(output_tokens) FROM requests WHERE run_id = ? AND error_kind IS NULL", [large]
    ).fetchone()[0]
    assert sum(t.series["output tok/s"]) * b == pytest.approx(ok_tokens)
    assert sum(t.series["sends/s"]) * b == pytest.approx(3000)
    busy_s = con.execute(
        "SELECT sum(coalesce(closed_ns, last_token_ns, sent_ns) - sent_ns) / 1e9 FROM requests "
        "WHERE run_id = ?", [large]).fetchone()[0]  # fmt: skip
    assert sum(t.series["in flight"]) * b == pytest.approx(busy_s, rel=1e-9)
    errors = r.errors
    assert errors is not None
    totals = {k: sum(v) for k, v in errors.series.items()}
    assert totals == pytest.approx(summarize(con, large).errors_by_kind)
    assert {k for k, _, _ in r.error_kinds} == {"timeout", "http_500"}


def test_power_and_energy_per_gpu_match_the_samples(store_runs) -> None:
    con, _, large = store_runs
    r = gather_run(con, large, max_buckets=1000)
    gpu0, gpu1 = r.power
    assert (gpu0.device, gpu0.power_metric, gpu1.power_metric) == (
        "GPU 0", "power_instant_w", "power_avg_w")  # fmt: skip
    mean_w = con.execute(
        "SELECT avg(value) FROM samples WHERE run_id = ? AND device = '0' "
        "AND metric = 'power_instant_w'", [large]).fetchone()[0]  # fmt: skip
    n = len(gpu0.power_w)
    assert n <= 320 and sum(gpu0.power_w) / n == pytest.approx(mean_w, rel=0.02)
    # 319 steps of 30 J, the reset adding nothing: 199 + 119 = 318 steps before/after.
    assert gpu0.energy_j[-1] == pytest.approx(318 * 30.0)
    assert gpu1.energy_j == ()
    assert r.idle_w_per_gpu == pytest.approx(70.0)
    assert r.idle_window_s == (0.0, 0.5)


def test_headline_reads_energy_and_cost_and_says_none_when_absent(store_runs) -> None:
    con, small, large = store_runs
    h = gather_run(con, large).headline
    assert (h.avg_w, h.j_per_output_token, h.usd_per_1m_output_tokens) == (640.0, 0.5, 1.25)
    assert h.gpus == "2 GPU(s)"
    h = gather_run(con, small).headline
    assert (h.avg_w, h.j_per_output_token, h.usd_per_1m_output_tokens) == (None, None, None)
    s = summarize(con, small)
    assert (h.ok, h.errored, h.output_tok_s) == (s.ok, s.errored, s.output_tok_s)
    assert h.ttft_p99_ms == s.distributions["ttft_ms"].p99


def test_secrets_are_masked(store_runs) -> None:
    con, small, _ = store_runs
    text = json.dumps(gather_run(con, small).config)
    assert "SECRET" not in text
    assert gather_run(con, small).config["headers"] == {"Authorization": "***"}


def test_comparison_over_runs(store_runs) -> None:
    con, small, large = store_runs
    data = gather_report(con, [small, large], {"ttft_p99_ms": 1000.0})
    c = data.comparison
    assert c is not None and [r.run_id for r in c.rows] == [small, large]
    assert all(r.meets_slo for r in c.rows)
    assert c.cheapest_meeting_slo == large  # the only priced run
    assert c.rows[1].output_tok_s_per_gpu == pytest.approx(c.rows[1].output_tok_s / 2)


def test_a_real_run_on_the_simulator(tmp_path: Path) -> None:
    db = tmp_path / "sim.duckdb"
    cfg = make_config(db=str(db), requests=20, concurrency=4, sim_fast=True, input_len="50",
                      output_len="16", idle_seconds=0, nvml=False)  # fmt: skip
    result = run_benchmark(cfg)
    store = open_store(db, read_only=True)
    try:
        data = gather_report(store.con, [result.run_id])
    finally:
        store.close()
    r = data.runs[0]
    assert r.headline.ok == result.summary.ok == 20
    assert r.cdfs[0].n == 20 and r.cdfs[0].exact
    assert r.timeline is not None
    assert sum(r.timeline.series["output tok/s"]) * r.timeline.bucket_s == pytest.approx(
        result.summary.output_tokens
    )
