"""The traffic side of the CLI: `bench workloads`, sweeps from list options, and one-line
errors for bad lists, unknown presets and missing traces (through the real `bench` entry
point, so the one place that turns errors into lines is exercised)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from benchbench.cli import app

BENCH = [sys.executable, "-c", "from benchbench.cli import main; main()"]


def test_workloads_lists_every_preset_with_percentiles_and_source() -> None:
    result = CliRunner().invoke(app, ["workloads"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("azure-conv", "azure-code", "longctx-chat", "reasoning", "agent"):
        assert name in result.output
    assert "in p99" in result.output and "Splitwise" in result.output
    rows = json.loads(CliRunner().invoke(app, ["workloads", "--json"]).output)
    conv = next(r for r in rows if r["name"] == "azure-conv")
    assert (conv["input_p50"], conv["output_p50"]) == (1020, 129)
    assert all(r["input_p50"] <= r["input_p90"] <= r["input_p99"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "1,x"], "--rate must be numbers > 0, one or a list like 1,2,4,8"),
        (["--workload", "nope"], "unknown workload preset 'nope'"),
        (["--trace", "/nonexistent/t.csv"], "no such trace file"),
        (["--trace", "t.csv", "--session-turns", "3"], "--session-turns builds synthetic"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*BENCH, "run", "--db", str(tmp_path / "e.duckdb"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_rate_list_runs_a_sweep_and_prints_one_row_per_point(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    args = ["run", "--db", str(db), "--rate", "20,40", "--requests", "6", "--sim-fast"]
    args += ["--input-len", "8", "--output-len", "4", "--slo", "ttft_p99_ms=1000", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["kind"] == "sweep" and [p["rate"] for p in out["points"]] == [20.0, 40.0]
    assert all(p["slo_met"] for p in out["points"])
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(DISTINCT sweep_id), count(*) FROM runs").fetchone() == (1, 2)


def test_report_is_written_or_says_why_not(tmp_path: Path) -> None:
    args = ["run", "--db", str(tmp_path / "r.duckdb"), "--requests", "3", "--sim-fast", "-q"]
    args += ["--input-len", "8", "--output-len", "4", "--report", str(tmp_path / "r.html")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "report" in result.output
