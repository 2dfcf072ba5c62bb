"""The server's own view of a run: a real run on the built-in simulator (scraped automatically)
whose counters must agree with the client's token totals, and hand-built vLLM-, SGLang- and
TGI-style samples whose ratios, resets and aggregation are hand arithmetic."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.execute import RunResult, run_benchmark
from benchbench.report_data import gather_run
from benchbench.results import RunResults, write_results
from benchbench.server_view import counter_delta, group_rows, server_figures, server_view
from benchbench.store import Store, open_store
from benchbench.window import Window
from collectors.base import Sample
from reports import chart_count, render_html
from reports.model import ReportData
from tests.benchbench.runs import record, write_run

S = 1_000_000_000
CONCURRENCY = 8
FAKE_PLOTLY = "window.Plotly = {newPlot: function () { return Promise.resolve(); }};"


# --- a real run on the simulator -----------------------------------------------------------


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, RunResult]]:
    """48 requests, 8 at a time, 64 prompt and 32 output tokens each, on the simulator's
    default timings (~8 ms per decode step: about 2 s of load), scraped every 50 ms."""
    db = tmp_path_factory.mktemp("sv") / "sim.duckdb"
    cfg = make_config(db=str(db), requests=48, concurrency=CONCURRENCY, input_len="64",
                      output_len="32", idle_seconds=0, nvml=False,
                      scrape_interval_s=0.05)  # fmt: skip
    result = run_benchmark(cfg)
    store = open_store(db)
    yield store, result
    store.close()


def test_the_simulators_counters_agree_with_the_clients_tokens_in_the_window(sim_run) -> None:
    store, result = sim_run
    view = result.summary.results.server
    assert view.window_s == pytest.approx(result.summary.window_s)
    (srv,) = view.servers
    assert srv["server"] == "sim" and srv["url"].endswith("/metrics")
    assert srv["coverage"] > 0.9
    # Generation: interpolated between 50-ms scrapes, close to the client's count, and the
    # client's count lies inside what the scrapes allow.
    assert srv["generation_tokens_ratio"] == pytest.approx(1.0, abs=0.03)
    low, high = srv["generation_tokens_bounds"]
    assert low * 0.98 <= srv["client_output_tokens"] <= high * 1.02
    assert srv["generation_tok_s"] == pytest.approx(srv["client_output_tok_s"], rel=0.03)
    # Prompt: the sim counts a prompt on admission, before its first token; at the window's
    # start edge the two may fall either side of a scrape, and nothing is warned.
    in_low, in_high = _prompt_range(store, result.run_id, srv)
    low, high = srv["prompt_tokens_bounds"]
    assert in_low <= high * 1.02 and low * 0.98 <= in_high
    assert srv["prompt_tokens_consistent"] and srv["generation_tokens_consistent"]
    assert view.warnings == ()


def _prompt_range(store: Store, run_id: int, srv: dict) -> tuple[int, int]:
    """Input tokens of requests sent and first answered inside the span (low), and of those
    overlapping it (high)."""
    lo, hi = srv["span_start_ns"], srv["span_end_ns"]
    row = store.con.execute(
        """SELECT sum(input_tokens) FILTER (WHERE sent_ns >= $2 AND first_token_ns <= $3),
                  sum(input_tokens) FILTER (WHERE sent_ns <= $3 AND first_token_ns >= $2)
           FROM requests WHERE run_id = $1""",
        [run_id, lo, hi],
    ).fetchone()
    return int(row[0] or 0), int(row[1] or 0)


def test_over_the_whole_sampled_run_the_counts_are_the_clients(sim_run) -> None:
    store, result = sim_run
    last = store.con.execute(
        "SELECT max(t_ns) FROM samples WHERE run_id = ?", [result.run_id]
    ).fetchone()[0]
    view = server_view(store, result.run_id, Window(0, last + 1, last))
    (srv,) = view.servers
    # The sim counts exactly what it served and the client what it received: over the span
    # the scrapes cover, generation tokens agree to the token events in flight at its edges,
    # and prompt tokens to the prompts admitted but not yet answered at the first scrape.
    assert srv["generation_tokens"] == pytest.approx(srv["client_output_tokens"], rel=0.01)
    in_low, in_high = _prompt_range(store, result.run_id, srv)
    assert in_low <= srv["prompt_tokens"] <= in_high
    assert in_high - in_low <= CONCURRENCY * 64
    assert srv["client_output_tokens"] > 0.9 * 48 * 32


def test_queue_figures_are_those_of_the_closed_loop(sim_run) -> None:
    _, result = sim_run
    (srv,) = result.summary.results.server.servers
    assert srv["running_max"] <= CONCURRENCY
    assert srv["running_mean"] > CONCURRENCY / 2
    assert 0 <= srv["waiting_mean"] <= srv["waiting_max"] <= CONCURRENCY
    assert srv["scrapes"] >= 20
    # The simulator's prefix cache counts hit and queried tokens; a salted run without shared
    # prefixes hits nothing.
    assert srv["prefix_hit"] == 0.0
    assert srv["prefix_hit_source"] == "Δprefix_cache_hits / Δprefix_cache_queries"
    assert srv["kv_cache_usage_mean"] is None


def test_the_console_summary_has_server_lines(sim_run) -> None:
    _, result = sim_run
    out = io.StringIO()
    print_summary(Console(file=out, width=200), result.summary, result.header)
    text = out.getvalue()
    assert "gen tok/s; tokens vs client: prompt x" in text
    assert "running" in text and "prefix hit 0.0%" in text


def test_the_report_has_a_server_section_with_its_queue_chart(sim_run) -> None:
    store, result = sim_run
    run = gather_run(store.con, result.run_id)
    (view,) = run.servers
    rows = {r[0]: r for r in view.rows}
    assert (
        rows["generation tokens"][2]
        == result.summary.results.server.servers[0]["client_output_tokens"]
    )
    assert set(view.series) == {"running", "waiting"}
    assert max(v for v in view.series["running"] if v is not None) <= CONCURRENCY
    assert len(view.t_s) == len(view.series["running"]) > 5
    html = render_html(ReportData("t", "now", "test", (run,), None), plotly_js=FAKE_PLOTLY)
    assert "Server metrics" in html and "Requests running and waiting (server)" in html
    assert chart_count(html) >= 1


# --- hand-built samples ----------------------------------------------------------------------


def test_counter_delta_interpolates_at_the_edges_and_bounds_the_truth() -> None:
    d = counter_delta([(0, 0.0), (S, 100.0)], S // 4, 3 * S // 4)
    assert d is not None
    assert d.delta == pytest.approx(50.0)
    assert (d.low, d.high, d.resets) == (0.0, 100.0, 0)


def test_a_counter_that_goes_backwards_restarted_from_zero() -> None:
    series = [(0, 100.0), (S, 200.0), (2 * S, 50.0), (3 * S, 150.0)]
    d = counter_delta(series, 0, 3 * S)
    assert d is not None
    assert d.delta == pytest.approx(100 + 50 + 100)
    assert d.resets == 1


def _vllm_rows() -> list[tuple[str, int, str, float]]:
    """Two vLLM engines scraped each second for 10 s. Engine 0 also exposes the old
    gpu_prefix_cache_* spelling, which must not be added to the new one."""
    url = "http://gpu:8000/metrics"
    rows = []
    for t in range(11):
        for e, scale in ((0, 1.0), (1, 3.0)):
            dev = f"{url}#engine={e}"
            rows += [
                (dev, t * S, "vllm:prompt_tokens_total", 100.0 * t * scale),
                (dev, t * S, "vllm:generation_tokens_total", 20.0 * t * scale),
                (dev, t * S, "vllm:prefix_cache_queries_total", 100.0 * t * scale),
                (dev, t * S, "vllm:prefix_cache_hits_total", (40.0 if e == 0 else 80.0) * t),
                (dev, t * S, "vllm:num_requests_running", 4.0 + e),
                (dev, t * S, "vllm:num_requests_waiting", float(t % 3)),
                (dev, t * S, "vllm:kv_cache_usage_perc", 0.2 if e == 0 else 0.6),
            ]
        rows.append((f"{url}#engine=0", t * S, "vllm:gpu_prefix_cache_hits_total", 999.0 * t))
        rows.append((f"{url}#engine=0", t * S, "vllm:gpu_prefix_cache_queries_total", 1e6 * t))
    return rows


def test_vllm_prefix_hits_are_token_counter_deltas_summed_over_engines() -> None:
    (s,) = group_rows(_vllm_rows())
    assert (s.kind, s.instances) == ("vllm", 2)
    fig = server_figures(s, 2 * S, 7 * S)
    # Over 5 s: queries 500 + 1500 tokens, hits 200 + 400.
    assert fig["prefix_hit"] == pytest.approx(600 / 2000)
    assert fig["prefix_hit_source"] == "Δprefix_cache_hits / Δprefix_cache_queries"
    assert fig["prompt_tokens"] == pytest.approx(2000)
    assert fig["generation_tokens"] == pytest.approx(400)
    assert fig["generation_tok_s"] == pytest.approx(80)
    assert fig["running_mean"] == fig["running_max"] == 9  # 4 + 5, summed over engines
    assert fig["kv_cache_usage_mean"] == pytest.approx(0.4)  # averaged over engines
    assert fig["waiting_max"] == 2 * 2  # t % 3 on both engines
    assert fig["coverage"] == 1.0 and fig["counter_resets"] == 0


def test_a_vllm_restart_mid_run_is_a_reset_not_negative_tokens() -> None:
    url = "http://gpu:8000/metrics"
    values = [0, 100, 200, 300, 50, 150, 250]  # restarted between 3 s and 4 s
    rows = [(url, t * S, "vllm:generation_tokens_total", float(v)) for t, v in enumerate(values)]
    rows += [(url, t * S, "vllm:prompt_tokens_total", 10.0 * t) for t in range(7)]
    (s,) = group_rows(rows)
    fig = server_figures(s, 0, 6 * S)
    assert fig["generation_tokens"] == pytest.approx(300 + 50 + 200)
    assert fig["counter_resets"] == 1
    assert any("backwards" in n for n in fig["notes"])


def test_sglang_prefix_hit_is_the_mean_of_its_cache_hit_rate_gauge() -> None:
    url = "http://gpu:30000/metrics"
    rows = []
    for t in range(6):
        rows += [
            (url, t * S, "sglang:cache_hit_rate", [0.1, 0.2, 0.3, 0.5, 0.7, 0.9][t]),
            (url, t * S, "sglang:num_queue_reqs", float(t)),
            (url, t * S, "sglang:num_running_reqs", 16.0),
            (url, t * S, "sglang:prompt_tokens_total", 1000.0 * t),
            (url, t * S, "sglang:generation_tokens_total", 300.0 * t),
        ]
    (s,) = group_rows(rows)
    fig = server_figures(s, 1 * S, 4 * S)  # scrapes at 1, 2, 3, 4 s
    assert s.kind == "sglang"
    assert fig["prefix_hit"] == pytest.approx((0.2 + 0.3 + 0.5 + 0.7) / 4)
    assert fig["prefix_hit_source"] == "cache_hit_rate gauge, mean of scrapes"
    assert (fig["waiting_mean"], fig["waiting_max"]) == (2.5, 4.0)
    assert fig["generation_tokens"] == pytest.approx(900)


def test_a_server_without_prefix_metrics_says_so_and_dcgm_is_not_a_server() -> None:
    tgi = "http://tgi:80/metrics"
    dcgm = "http://gpu:9400/metrics"
    rows = [(tgi, t * S, "tgi_queue_size", 2.0) for t in range(3)]
    rows += [(tgi, t * S, "tgi_request_generated_tokens_sum", 50.0 * t) for t in range(3)]
    rows += [(f"{dcgm}#gpu=0", t * S, "DCGM_FI_DEV_POWER_USAGE", 300.0) for t in range(3)]
    (s,) = group_rows(rows)
    fig = server_figures(s, 0, 2 * S)
    assert (s.url, s.kind) == (tgi, "tgi")
    assert fig["prefix_hit"] is None and fig["prefix_hit_source"] == "not exposed by tgi"
    assert fig["generation_tokens"] == pytest.approx(100)
    assert fig["prompt_tokens"] is None and fig["running_mean"] is None


# --- server_view over a hand-built store ------------------------------------------------------


def _synthetic_store(path: Path, gen_per_s: float) -> tuple[Store, int]:
    """10 ok requests sent 0.8 s apart from 1 s, each 100 prompt and 10 output tokens (10
    token events 50 ms apart) and its stream closed 0.8 s after its send: window [1 s, 9 s];
    a vLLM server scraped every second that prefills 125 tokens/s (the client's 1,000 over
    8 s) and generates `gen_per_s`."""
    store = open_store(path)
    requests = [
        record(i, S + i * 8 * S // 10, 10_000_000, 50_000_000, 10, input_tokens=100,
               closed_ns=S + (i + 1) * 8 * S // 10)
        for i in range(10)
    ]  # fmt: skip
    url = "http://gpu:8000/metrics"
    samples = [
        Sample("prometheus", url, t * S, metric, value)
        for t in range(11)
        for metric, value in (
            ("vllm:prompt_tokens_total", 125.0 * t),
            ("vllm:generation_tokens_total", gen_per_s * t),
            ("vllm:prefix_cache_queries_total", 125.0 * t),
            ("vllm:prefix_cache_hits_total", 50.0 * t),
            ("vllm:num_requests_running", 3.0),
            ("vllm:num_requests_waiting", 1.0),
            ("vllm:kv_cache_usage_perc", 0.5),
        )
    ]
    traffic = RunResults(traffic={"ideal_prefix_hit": 0.6})
    return store, write_run(store, requests, samples, traffic)


def test_server_view_puts_the_ideal_prefix_hit_beside_the_servers(tmp_path: Path) -> None:
    store, run_id = _synthetic_store(tmp_path / "a.duckdb", gen_per_s=12.5)
    try:
        view = server_view(store, run_id)
    finally:
        store.close()
    assert view.ideal_prefix_hit == 0.6
    assert view.window_s == 8.0
    (srv,) = view.servers
    assert srv["prefix_hit"] == pytest.approx(0.4)
    assert (srv["client_input_tokens"], srv["client_output_tokens"]) == (1000, 100)
    assert srv["prompt_tokens_ratio"] == pytest.approx(1.0)
    assert srv["generation_tokens_ratio"] == pytest.approx(1.0)
    assert srv["prompt_tokens_consistent"] is srv["generation_tokens_consistent"] is True
    assert view.warnings == ()


def test_a_server_counting_twice_the_clients_tokens_is_a_warning(tmp_path: Path) -> None:
    store, run_id = _synthetic_store(tmp_path / "b.duckdb", gen_per_s=25.0)
    try:
        view = server_view(store, run_id)
        write_results(store, run_id, RunResults(server=view))
        run = gather_run(store.con, run_id)
    finally:
        store.close()
    (warning,) = view.warnings
    assert "200 generation tokens" in warning and "x2.000" in warning
    (srv_view,) = run.servers
    assert set(srv_view.series) == {"running", "waiting", "KV cache usage %"}
    assert set(srv_view.series["KV cache usage %"]) == {50.0}
    rows = {r[0]: r for r in srv_view.rows}
    assert rows["prefix-cache hit % (client column: workload ideal)"][1:3] == (40.0, 60.0)
    assert rows["client's counts within the server's (prompt / generation)"][1] == "yes / NO"


def test_no_scrapes_means_not_measured_with_a_hint(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.duckdb")
    try:
        run_id = store.create_run(wall_anchor_s=0.0)
        view = server_view(store, run_id)
    finally:
        store.close()
    assert "--scrape" in view.unavailable
