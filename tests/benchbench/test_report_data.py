"""The report's figures, checked against the store they were gathered from: CDF points are
exact fractions, samples are real requests, timelines add up to the run's totals, power and
energy match the samples, secrets are masked, runs served from a warm prompt cache and energy
that must not be compared are marked, and $ per 1M agrees with tok/s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.metrics import summarize
from benchbench.report_data import EXACT_CDF_MAX, gather_report, gather_run
from benchbench.request_metrics import chunk_gap_sql, chunk_gaps, distribution
from benchbench.results import Cost, Energy, RunResults
from benchbench.store import open_store
from collectors.base import Sample
from loadgen.spec import RequestRecord
from reports import render_html
from reports.model import Verdict
from tests.benchbench.runs import record, write_run

FAKE_PLOTLY = "window.Plotly = {newPlot: function () { return Promise.resolve(); }};"


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


# --- marks: the served prompt cache and the energy verdict ------------------------------------


def _cache_run(
    store, cached: int | None, traffic: dict | None = None, config: dict | None = None,
    energy: Energy | None = None,
) -> int:  # fmt: skip
    """20 ok requests of 100 prompt tokens, `cached` of each served from the server's cache
    (None: not reported), with the traffic description and config given."""
    records = (
        record(i, i * 10_000_000, 20_000_000, input_tokens=100, cached_input_tokens=cached)
        for i in range(20)
    )
    results = RunResults(traffic=traffic or {}, energy=energy)
    return write_run(store, records, (), results, config=config or {})


@pytest.fixture
def store(tmp_path: Path) -> Iterator:
    s = open_store(tmp_path / "marks.duckdb")
    yield s
    s.close()


def test_a_run_served_from_cache_beyond_its_workload_is_marked_warm(store) -> None:
    rid = _cache_run(store, 90, {"ideal_prefix_hit": 0.2, "salted": True})
    r = gather_run(store.con, rid)
    assert r.cache is not None
    assert (r.cache.share, r.cache.source, r.cache.ideal) == (0.9, "requests", 0.2)
    assert r.cache.warm and r.cache.salted is True
    assert r.marks == ("warm cache",)
    assert r.cache.notes == (
        "served 90.0% of prompt tokens from the server's prompt cache; the workload implies 20.0%",
    )
    assert r.facts["prompt cache"]["served from the server's cache"] == 0.9


@pytest.mark.parametrize(
    ("cached", "ideal", "warm"),
    [
        (54, 0.5, False),
        (55, 0.5, False),
        (56, 0.5, True),
        (4, None, False),
        (6, None, True),
        (None, None, False),
    ],
)
def test_warm_means_more_than_five_points_above_the_workloads_own_reuse(
    store, cached: int | None, ideal: float | None, warm: bool
) -> None:
    traffic = {"salted": True} | ({"ideal_prefix_hit": ideal} if ideal is not None else {})
    r = gather_run(store.con, _cache_run(store, cached, traffic))
    assert r.cache is not None
    assert r.cache.warm is warm and ("warm cache" in r.marks) is warm
    assert r.cache.ideal == (ideal or 0.0)
    if cached is None:  # unknown is not 0: nothing to judge
        assert (r.cache.share, r.cache.source) == (None, "not reported")


def test_an_unsalted_run_is_marked_from_its_traffic_or_else_its_config(store) -> None:
    by_traffic = gather_run(store.con, _cache_run(store, 0, {"salted": False}, {"salt": True}))
    by_config = gather_run(store.con, _cache_run(store, None, {}, {"salt": False}))
    unknown = gather_run(store.con, _cache_run(store, None))
    for r in (by_traffic, by_config):
        assert r.cache is not None and r.cache.salted is False
        assert r.marks == ("not salted",)
        assert any("--no-salt" in n for n in r.cache.notes)
    assert unknown.cache is not None and unknown.cache.salted is None and unknown.marks == ()


def test_the_servers_counters_are_the_fallback_source_of_the_cache_share(store) -> None:
    url = "http://gpu:8000/metrics"
    samples = [
        Sample("prometheus", url, t * 1_000_000_000, metric, value * t)
        for t in range(3)
        for metric, value in (("vllm:prefix_cache_queries_total", 1000.0),
                              ("vllm:prefix_cache_hits_total", 700.0))
    ]  # fmt: skip
    records = [record(i, i * 10_000_000, 20_000_000, input_tokens=100) for i in range(5)]
    rid = write_run(store, records, samples, RunResults(traffic={"ideal_prefix_hit": 0.6}))
    r = gather_run(store.con, rid)
    assert r.cache is not None and r.cache.share == pytest.approx(0.7)
    assert r.cache.source.startswith("prometheus") and r.cache.warm


def _energy(status: str | None, reasons: tuple[str, ...] = ()) -> Energy:
    verdict = None if status is None else {"status": status, "reasons": list(reasons)}
    return Energy(gross_j=900.0, j_per_output_token=0.5, avg_power_w=300.0, verdict=verdict)


def test_the_energy_verdict_is_shown_beside_j_per_token(store) -> None:
    why = "the energy counter never moved while power read 300 W"
    invalid = gather_run(store.con, _cache_run(store, None, energy=_energy("invalid", (why,))))
    partial = gather_run(store.con, _cache_run(store, None, energy=_energy("partial", ("x",))))
    ok = gather_run(store.con, _cache_run(store, None, energy=_energy("ok")))
    none = gather_run(store.con, _cache_run(store, None))
    assert invalid.energy_verdict == Verdict("invalid", (why,))
    assert invalid.marks == ("energy invalid",) and partial.marks == ("energy partial",)
    assert ok.energy_verdict == Verdict("ok") and ok.marks == ()
    assert none.energy_verdict is None  # no energy measured: nothing to judge
    html = render_html(gather_report(store.con, [ok.run_id, invalid.run_id]), plotly_js=FAKE_PLOTLY)
    # The invalid run's J/token tile is struck through with the reason, its verdict is
    # stated beside the energy figures, and the comparison flags its J/token.
    assert '<div class="tile invalid"><span class="k">J per output token</span>' in html
    assert f"energy verdict invalid: {why}" in html
    assert "Energy verdict: invalid</strong> (do not compare these figures)" in html
    assert "<td>0.500 (invalid)</td>" in html
    assert '<span class="badge mark">energy invalid</span>' in html


def test_a_warm_cache_mark_and_its_note_reach_the_page(store) -> None:
    rid = _cache_run(store, 90, {"ideal_prefix_hit": 0.0, "salted": False})
    html = render_html(gather_report(store.con, [rid]), plotly_js=FAKE_PLOTLY)
    assert '<span class="badge mark">warm cache</span>' in html
    assert "served 90.0% of prompt tokens from the server&#x27;s prompt cache" in html
    assert "the workload implies 0.0%" in html and "not salted (--no-salt)" in html


# --- one window: $ per 1M and tok/s agree ------------------------------------------------------


def test_dollars_per_1m_output_tokens_is_the_price_over_output_tok_s(tmp_path: Path) -> None:
    """$ per 1M output tokens = price per hour / 3600 / output tok/s x 1e6, both over the run's
    one measurement window, to float precision."""
    db = tmp_path / "priced.duckdb"
    cfg = make_config(db=str(db), requests=20, concurrency=4, sim_fast=True, input_len="50",
                      output_len="16", idle_seconds=0, nvml=False, gpu_price=3.6,
                      gpu_count=2)  # fmt: skip
    result = run_benchmark(cfg)
    store = open_store(db, read_only=True)
    try:
        r = gather_run(store.con, result.run_id)
    finally:
        store.close()
    h = r.headline
    assert h.output_tok_s and h.usd_per_1m_output_tokens
    assert h.usd_per_1m_output_tokens == pytest.approx(
        2 * 3.6 / 3600 / h.output_tok_s * 1e6, rel=1e-12
    )
    assert r.cost["window_s"] == pytest.approx(h.duration_s, rel=1e-12)
    assert h.output_tok_s == result.summary.output_tok_s
