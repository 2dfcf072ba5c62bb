"""The figures of an embeddings or rerank run: inputs/s, input tok/s, req/s and the
latency (send to close) over ok measured requests in the run's window; input tokens counted
apart by source (server, client tokenizer, unknown); the gate and the console read the same
figures. Runs are written through the library's writer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from benchbench.catalogue import parse_metric
from benchbench.console import print_summary
from benchbench.gate.data import request_values, run_level
from benchbench.metrics import summarize
from benchbench.pooling_summary import CLIENT_NOTE, pooling_figures
from benchbench.report_data import gather_report
from benchbench.store import Store, open_store
from loadgen.spec import RequestRecord
from reports import render_html
from tests.benchbench.runs import record, write_run

MS = 1_000_000


def _pooled(idx: int, sent_ms: int, latency_ms: int, inputs: int, **fields) -> RequestRecord:
    fields.setdefault("http_status", 200)
    closed_ns = (sent_ms + latency_ms) * MS
    return RequestRecord(idx, None, sent_ms * MS, closed_ns=closed_ns, inputs=inputs, **fields)


def _store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "p.duckdb")


RECORDS = [
    _pooled(0, 0, 10, 4, input_tokens=40),
    _pooled(1, 100, 30, 4, input_tokens=44),
    _pooled(2, 200, 20, 2, input_tokens=12, notes=[CLIENT_NOTE]),
    _pooled(3, 300, 50, 4),  # no usage, no tokenizer: unknown
    _pooled(4, 400, 5, 4, error_kind="http_5xx", http_status=503),
    _pooled(5, 500, 40, 8, input_tokens=80, warmup=True),
]


def test_the_figures_count_ok_measured_requests_over_the_window(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run_id = write_run(store, RECORDS)
    s = summarize(store.con, run_id)
    p = pooling_figures(store.con, run_id, s.window_s)
    assert p is not None and s.window_s > 0
    assert (p.requests, p.inputs, p.input_tokens) == (4, 14, 96)
    assert p.inputs_per_request == pytest.approx(14 / 4)
    assert p.inputs_per_s == pytest.approx(14 / s.window_s)
    assert p.input_tok_s == pytest.approx(96 / s.window_s)
    assert p.requests_s == pytest.approx(4 / s.window_s)
    assert (p.tokens_from_server, p.tokens_from_client, p.tokens_unknown) == (2, 1, 1)
    lat = p.latency_ms
    assert lat["n"] == 4 and lat["max"] == pytest.approx(50.0)
    assert lat["p50"] == pytest.approx(25.0)  # median of 10, 20, 30, 50
    assert s.pooling == p.to_dict()


def test_a_generation_run_has_no_pooling_figures_and_no_latency_row(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run_id = write_run(store, [record(i, i * 50 * MS, 20 * MS) for i in range(4)])
    s = summarize(store.con, run_id)
    assert s.pooling is None
    assert s.distributions["latency_ms"].n == 0  # latency_ms is the pooling APIs' metric


def test_the_gate_reads_the_same_figures(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run_id = write_run(store, RECORDS)
    s = summarize(store.con, run_id)
    assert run_level(s, "inputs_per_s") == s.pooling["inputs_per_s"]
    assert run_level(s, "input_tok_s") == s.pooling["input_tok_s"]
    values = request_values(store.con, run_id, {"latency_ms"})["latency_ms"]
    assert sorted(values.tolist()) == pytest.approx([10.0, 20.0, 30.0, 50.0])
    assert parse_metric("latency_p99_ms").key == "latency_ms.p99"
    assert parse_metric("inputs_per_s").stat is None


def test_the_console_shows_pooling_rows_and_no_ttft(tmp_path: Path) -> None:
    store = _store(tmp_path)
    run_id = write_run(store, RECORDS)
    out = io.StringIO()
    print_summary(Console(file=out, width=120), summarize(store.con, run_id))
    text = out.getvalue()
    assert "inputs/s" in text and "input tok/s" in text
    assert "2/4 counted by the server, 1 by the client tokenizer, 1 unknown" in text
    assert "TTFT" not in text and "TPOT" not in text
    assert "latency" in text


def test_the_report_draws_the_latency_distribution_and_inputs_over_time(tmp_path: Path) -> None:
    store = _store(tmp_path)
    pooled = write_run(store, RECORDS)
    chat = write_run(store, [record(i, i * 50 * MS, 20 * MS) for i in range(4)])
    report = gather_report(store.con, [pooled, chat])
    run, other = report.runs
    assert run.pooling_latency is not None and run.pooling_latency.n == 4
    assert run.pooling_latency.values == pytest.approx((10.0, 20.0, 30.0, 50.0))
    assert run.pooling_rates is not None
    assert sum(run.pooling_rates.series["inputs/s"]) * run.pooling_rates.bucket_s == pytest.approx(
        14
    )
    assert other.pooling is None and other.pooling_latency is None
    page = render_html(report, plotly_js="/* plotly */")
    assert page.count("Embeddings / rerank") == 1
    assert "Latency CDF" in page and "Inputs/s over time" in page
