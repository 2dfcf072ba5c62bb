"""Typed results, one measurement window, one metric catalogue: the figures a user reads on
the console, in `--json` and in the report agree, and old stores are moved, not guessed at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from benchbench.catalogue import MetricNameError, parse_metric
from benchbench.console import summary_renderable
from benchbench.cost import CostInputs
from benchbench.metrics import parse_slos, summarize
from benchbench.report_data import gather_run
from benchbench.results import RunResults, load_results, write_results
from benchbench.settle import window_cost, window_energy
from benchbench.store import open_store
from benchbench.window import DEFINITION, load_window
from tests.benchbench.runs import record, write_run

PRICE = 3.6  # $/GPU-hour


def _records(n: int = 40, open_loop: bool = True) -> list:
    # 50 ms apart, each 30 ms to first token then 8 tokens 7 ms apart: a drain tail.
    return [
        record(i, i * 50_000_000 + 1_000, 30_000_000, 7_000_000, 8,
               intended_ns=i * 50_000_000 if open_loop else None, input_tokens=20)
        for i in range(n)
    ]  # fmt: skip


def _priced_run(tmp_path: Path, open_loop: bool = True) -> tuple[object, int]:
    store = open_store(tmp_path / "r.duckdb")
    run_id = write_run(store, _records(open_loop=open_loop), load_mode="open")
    window = load_window(store.con, run_id)
    energy = window_energy(store.con, run_id, window, None)
    inputs = CostInputs(gpu_price_usd_per_hour=PRICE, gpu_count=1)
    cost = window_cost(store.con, run_id, window, inputs, energy)
    write_results(store, run_id, RunResults(energy=energy, cost=cost))
    return store, run_id


def test_the_window_is_first_send_to_last_completion_and_names_itself(tmp_path: Path) -> None:
    store, run_id = _priced_run(tmp_path)
    s = summarize(store.con, run_id)
    first_send, last_done = 1_000, 39 * 50_000_000 + 1_000 + 30_000_000 + 7 * 7_000_000
    assert s.window_s == pytest.approx((last_done - first_send) / 1e9)
    assert s.window_definition == DEFINITION
    assert s.drain_s == pytest.approx((30_000_000 + 7 * 7_000_000) / 1e9)
    assert s.output_tok_s == pytest.approx(40 * 8 / s.window_s)


def test_usd_per_1m_agrees_with_tok_s_on_console_json_and_report(tmp_path: Path) -> None:
    store, run_id = _priced_run(tmp_path)
    s = summarize(store.con, run_id)
    implied = PRICE / 3600 / s.output_tok_s * 1e6
    assert s.results.cost.usd_per_1m_output_tokens == pytest.approx(implied, rel=1e-12)
    as_json = json.loads(json.dumps(s.to_dict(), default=str))
    json_cost = as_json["results"]["cost"]["usd_per_1m_output_tokens"]
    json_implied = PRICE / 3600 / as_json["output_tok_s"] * 1e6
    assert json_cost == pytest.approx(json_implied, rel=1e-12)
    report = gather_run(store.con, run_id)
    head = report.headline
    assert head.usd_per_1m_output_tokens == pytest.approx(
        PRICE / 3600 / head.output_tok_s * 1e6, rel=1e-12
    )
    console = Console(width=200, record=True)
    console.print(summary_renderable(s))
    text = console.export_text()
    assert f"{s.output_tok_s:,.1f} output tok/s" in text
    assert f"${implied:,.3f} per 1M output tokens" in text


def test_closed_loop_summaries_print_no_intended_rows(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.duckdb")
    closed = write_run(store, _records(10, open_loop=False), load_mode="closed")
    opened = write_run(store, _records(10), load_mode="open")

    def text(run_id: int) -> str:
        console = Console(width=200, record=True)
        console.print(summary_renderable(summarize(store.con, run_id)))
        return console.export_text()

    assert "intended" not in text(closed) and "schedule lag" not in text(closed)
    assert "TTFT (intended)" in text(opened) and "schedule lag" in text(opened)


def test_an_slo_on_the_mean_is_checked_as_the_mean(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.duckdb")
    # 99 fast requests and one slow: the mean is far below the p99.
    recs = [record(i, i * 10_000_000, 10_000_000 if i else 900_000_000) for i in range(100)]
    run_id = write_run(store, recs)
    s = summarize(store.con, run_id, parse_slos("ttft_mean_ms=20,ttft_ms.p99.9=1000"))
    mean = s.distributions["ttft_ms"].mean
    check = s.goodput["checks"]["ttft_mean_ms"]
    assert check["value"] == pytest.approx(mean) and check["met"]
    assert s.goodput["checks"]["ttft_ms.p99.9"]["value"] > s.distributions["ttft_ms"].p99


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ttft_p999_ms=5", "bad statistic 'p999'"),
        ("speed_p99_ms=5", "valid: METRIC.STAT"),
        ("output_tok_s=5", "per-request latency"),
        ("ttft_p99_ms=fast", "expected a number"),
    ],
)
def test_a_bad_slo_is_one_line_naming_what_is_valid(text: str, says: str) -> None:
    with pytest.raises(MetricNameError) as exc:
        parse_slos(text)
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_both_spellings_are_one_metric() -> None:
    assert parse_metric("ttft_p99_ms") == parse_metric("ttft_ms.p99")
    assert parse_metric("schedule_lag_p50_ms").key == "schedule_lag_ms.p50"
    assert parse_metric("e2e_ms.p99.9").quantile == 0.999
    assert parse_metric("output_tok_s").stat is None


def test_an_old_store_is_moved_into_the_typed_shape(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    store = open_store(path)
    run_id = write_run(
        store, _records(), config={"gpu_price": PRICE, "gpu_count": 1}, load_mode="open"
    )
    old_extra = {  # as runs stored it before typed results, window first send -> last send
        "collectors": {"nvml": {"gpus": [{"name": "H100"}], "degraded": None}},
        "warnings": ["old warning"],
        "replay_drift": {"n": 40},
        "books": {"sent": 40, "stored": 40, "missing": 0},
        "cost": {"price_source": "user", "usd_per_1m_output_tokens": 9.99, "window_s": 1.95},
        "energy": {"unavailable": "energy not measured: no NVML"},
    }
    store.con.execute(
        "UPDATE runs SET extra = ?, collectors = NULL, warnings = NULL, window_start_ns = 1000, "
        "window_end_ns = 1950001000 WHERE run_id = ?",
        [json.dumps(old_extra), run_id],
    )
    store.con.execute("DELETE FROM schema_migrations WHERE name = '006_typed_results'")
    store.close()

    store = open_store(path)  # applies migration 006 again, to this run
    res = load_results(store.con, run_id)
    s = summarize(store.con, run_id)
    assert res.version == 2 and res.books.sent == 40
    assert res.collectors["nvml"]["gpus"][0]["name"] == "H100"
    assert res.warnings == ("old warning",)
    stored = json.loads(
        store.con.execute("SELECT extra FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    )
    assert "warnings" not in stored and "collectors" not in stored
    assert "replay_drift" not in stored
    assert res.energy.unavailable == "energy not measured: no NVML"
    assert res.cost.usd_per_1m_output_tokens == pytest.approx(
        PRICE / 3600 / s.output_tok_s * 1e6, rel=1e-12
    )
