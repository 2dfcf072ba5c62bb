"""`bench export --format mlperf-endpoints`: the MLPerf Endpoints v1.0 metrics of each point
(ttft_p90_ms, tpot_p90_ms, tps_per_user = 1000 / tpot_p90_ms, system_tps), the Pareto step
function over a concurrency sweep, the reference result_summary.json per point, and what could
not be filled said with a reason, never invented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimProcess
from benchbench.store import open_store
from tests.benchbench.runs import record, write_run

MS = 1_000_000


def _closed_run(store, concurrency: int, sends_ms: list[int], gap_ms: int) -> int:
    """Requests sent at `sends_ms`, TTFT 10 ms, 5 tokens `gap_ms` apart (TPOT = gap_ms each)."""
    recs = [
        record(i, t * MS, 10 * MS, gap_ns=gap_ms * MS, events=5) for i, t in enumerate(sends_ms)
    ]
    return write_run(
        store, recs, load_mode="closed", concurrency=concurrency, sweep_id="sweep-a",
        group_kind="sweep",
    )  # fmt: skip


@pytest.fixture()
def sweep_db(tmp_path: Path) -> Path:
    db = tmp_path / "sweep.duckdb"
    store = open_store(str(db))
    # c=1: 4 requests 100 ms apart, done 50 ms after each send: window 350 ms, 20 tokens.
    _closed_run(store, 1, [0, 100, 200, 300], 10)
    # c=4: 8 requests 10 ms apart, done 90 ms after send: window 160 ms, 40 tokens.
    _closed_run(store, 4, [i * 10 for i in range(8)], 20)
    # c=8: 8 requests 100 ms apart, done 110 ms after send: window 810 ms, 40 tokens; slower
    # per user and less throughput than c=1: dominated, not on the Pareto steps.
    _closed_run(store, 8, [i * 100 for i in range(8)], 25)
    store.close()
    return db


def _export(db: Path, ref: str, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["export", ref, "--format", "mlperf-endpoints", "--out", str(out), "--db", str(db)]
    )
    return result.exit_code, result.output


def test_a_sweep_gives_each_point_its_metrics_and_the_pareto_steps(
    sweep_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mlperf"
    code, text = _export(sweep_db, "1", out)  # run 1 names its sweep group
    assert code == 0, text
    summary = json.loads((out / "mlperf_endpoints.json").read_text())
    points = {p["concurrency"]: p for p in summary["points"]}
    assert sorted(points) == [1, 4, 8]
    for c, gap, tokens, window_s in ((1, 10, 20, 0.35), (4, 20, 40, 0.16), (8, 25, 40, 0.81)):
        p = points[c]
        assert p["tpot_p90_ms"] == pytest.approx(gap)
        assert p["tps_per_user"] == pytest.approx(1000 / gap)
        assert p["ttft_p90_ms"] == pytest.approx(10.0)
        assert p["system_tps"] == pytest.approx(tokens / window_s)
    steps = summary["pareto_steps"]
    assert [s["concurrency"] for s in steps] == [4, 1]  # ascending tps_per_user
    assert steps[0]["tps_per_user_from"] == 0 and steps[0]["tps_per_user_to"] == pytest.approx(50)
    assert steps[0]["system_tps"] == pytest.approx(250.0)
    assert steps[1]["tps_per_user_from"] == pytest.approx(50)
    assert steps[1]["system_tps"] == pytest.approx(20 / 0.35)
    assert {f["field"] for f in summary["not_filled"]} >= {"histogram", "steady_state"}
    assert "not filled: histogram" in text


def test_each_point_has_a_reference_result_summary_in_ns(sweep_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "mlperf"
    assert _export(sweep_db, "sweep-a", out)[0] == 0  # the group id itself
    rs = json.loads((out / "r4" / "performance" / "result_summary.json").read_text())
    assert rs["n_samples_completed"] == 8 and rs["n_samples_failed"] == 0
    assert rs["duration_ns"] == 160 * MS
    assert rs["tpot"]["percentiles"]["90.0"] == pytest.approx(20 * MS)
    assert rs["ttft"]["median"] == pytest.approx(10 * MS)
    assert rs["output_sequence_lengths"]["total"] == 40
    assert rs["tps"] == pytest.approx(250.0)
    assert rs["ttft"]["histogram"] is None  # not reproduced, said in mlperf_endpoints.json
    assert rs["n_samples_dropped"] is None and rs["finish_reason_counts"] is None


def test_an_open_loop_run_is_not_a_pareto_point_and_says_why(tmp_path: Path) -> None:
    with SimProcess(SimConfig(fast=True)) as sim:
        cfg = make_config(
            endpoint=sim.base_url, db=str(tmp_path / "o.duckdb"), rate=50.0, requests=10,
            input_len="20", output_len="6",
        )  # fmt: skip
        run_id = run_benchmark(cfg).run_id
    code, text = _export(tmp_path / "o.duckdb", str(run_id), tmp_path / "out")
    assert code == 0, text
    summary = json.loads((tmp_path / "out" / "mlperf_endpoints.json").read_text())
    (p,) = summary["points"]
    assert p["concurrency"] is None and summary["pareto_steps"] == []
    assert any("no fixed concurrency" in r for r in p["reasons"])
    assert "no fixed concurrency" in text
    assert (tmp_path / "out" / f"r-run{run_id}" / "performance" / "result_summary.json").exists()


def test_bad_format_and_unknown_group_are_one_line_errors(sweep_db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["export", "1", "--format", "csv", "--out", str(tmp_path),
                              "--db", str(sweep_db)])  # fmt: skip
    assert bad.exit_code == 2 and "--format 'csv'" in bad.output
    code, text = _export(sweep_db, "no-such-group", tmp_path / "x")
    assert code == 2 and "neither a run nor a sweep group" in text


def test_parquet_stays_the_default_format(sweep_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.parquet"
    result = CliRunner().invoke(app, ["export", "2", "-o", str(out), "--db", str(sweep_db)])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_a_real_concurrency_sweep_exports_one_folder_per_point(tmp_path: Path) -> None:
    from benchbench.sweep import run_sweep

    db = tmp_path / "s.duckdb"
    # Each running sequence slows the decode step: more concurrency, lower tps_per_user.
    sim = SimConfig(prefill_base_ms=2, decode_base_ms=3, decode_ms_per_seq=1.0, seed=1)
    with SimProcess(sim) as proc:
        cfg = make_config(
            endpoint=proc.base_url, db=str(db), requests=16, concurrency=1, input_len="20",
            output_len="12", seed=3,
        )  # fmt: skip
        group = run_sweep(cfg, concurrencies=[1, 4])
    first = group.points[0].run_id
    code, text = _export(db, str(first), tmp_path / "out")
    assert code == 0, text
    summary = json.loads((tmp_path / "out" / "mlperf_endpoints.json").read_text())
    points = {p["concurrency"]: p for p in summary["points"]}
    assert sorted(points) == [1, 4]
    for c, p in points.items():
        assert p["tps_per_user"] == pytest.approx(1000 / p["tpot_p90_ms"])
        assert (tmp_path / "out" / f"r{c}" / "performance" / "result_summary.json").exists()
    assert points[1]["tps_per_user"] > points[4]["tps_per_user"]
    on_curve = {s["concurrency"]: s["system_tps"] for s in summary["pareto_steps"]}
    assert on_curve and all(points[c]["system_tps"] == v for c, v in on_curve.items())
