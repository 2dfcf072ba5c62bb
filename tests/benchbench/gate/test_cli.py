"""`bench gate`, `bench baseline`, `bench export`/`import` through the CLI: exit codes 0/1/2,
Markdown (and $GITHUB_STEP_SUMMARY), JUnit XML and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from tests.benchbench.gate.conftest import Runs

runner = CliRunner()


def _gate(runs: Runs, base: object, cand: object, *extra: str):
    return runner.invoke(
        app, ["gate", "--baseline", str(base), "--candidate", str(cand), "--db", str(runs.db),
              *extra],
    )  # fmt: skip


def test_pass_is_exit_0_with_a_table(sim_runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.same[1])
    assert res.exit_code == 0, res.output
    assert "tpot_ms.p50" in res.output and "PASS" in res.output


def test_regression_is_exit_1_with_markdown_junit_and_step_summary(
    sim_runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md, xml = tmp_path / "gate.md", tmp_path / "gate.xml"
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.slow_decode, "--markdown", str(md),
                "--junit", str(xml))  # fmt: skip
    assert res.exit_code == 1, res.output
    text = md.read_text()
    assert "| tpot_ms.p50 |" in text and "❌ regression" in text
    assert summary.read_text().startswith("earlier step\n") and text in summary.read_text()
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert "ttft_ms.p99" in cases and cases["tpot_ms.p50"].find("failure") is not None
    assert cases["ttft_ms.p50"].find("failure") is None
    assert int(suite.get("failures", "0")) == sum(
        c.find("failure") is not None for c in cases.values()
    )


def test_json_output(sim_runs: Runs) -> None:
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.fast_prefill, "--json")
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["passed"] and data["valid"]
    assert {r["key"] for r in data["results"]} >= {"ttft_ms.p50", "output_tok_s"}


def test_incomparable_runs_exit_2_with_the_reason(sim_runs: Runs, tmp_path: Path) -> None:
    xml = tmp_path / "gate.xml"
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.other_model, "--junit", str(xml))
    assert res.exit_code == 2
    assert "different models" in res.output
    assert ET.parse(xml).getroot().find("testsuite/testcase/error") is not None


def test_usage_errors_exit_2_in_one_line(sim_runs: Runs, tmp_path: Path) -> None:
    res = _gate(sim_runs, 999, sim_runs.same[0])
    assert res.exit_code == 2 and "no run 999" in res.output
    bad = tmp_path / "bench.toml"
    bad.write_text('[gate.rules."ttft_ms.p99"]\nrell = 1\n')
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.same[1], "--config", str(bad))
    assert res.exit_code == 2 and "gate.rules.ttft_ms.p99.rell" in res.output
    assert "Traceback" not in res.output


def test_slo_fails_on_its_own(sim_runs: Runs, tmp_path: Path) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text("[gate]\ndefaults = false\n[gate.slo]\nttft_p99_ms = 1\ne2e_p99_ms = 5000\n")
    res = _gate(sim_runs, sim_runs.same[0], sim_runs.same[1], "--config", str(cfg), "--json")
    assert res.exit_code == 1
    verdicts = {r["key"]: r["verdict"] for r in json.loads(res.stdout)["results"]}
    assert verdicts == {"slo:ttft_p99_ms": "slo-fail", "slo:e2e_p99_ms": "pass"}


def test_export_import_baseline_commands(sim_runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "base.parquet"
    res = runner.invoke(app, ["export", str(sim_runs.same[0]), "-o", str(out), "--db",
                              str(sim_runs.db)])  # fmt: skip
    assert res.exit_code == 0 and out.is_file(), res.output
    db = str(tmp_path / "ci.duckdb")
    res = runner.invoke(app, ["import", str(out), "--db", db, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == {"run_ids": [1]}
    res = runner.invoke(app, ["baseline", "set", "main", str(out), "--db", db])
    assert res.exit_code == 0 and "run 2" in res.output
    res = runner.invoke(app, ["baseline", "list", "--db", db, "--json"])
    assert [b["name"] for b in json.loads(res.stdout)] == ["main"]
    res = runner.invoke(app, ["gate", "--baseline", "main", "--candidate", "1", "--db", db])
    assert res.exit_code == 0, res.output


def test_the_bench_entry_point_exits_1_on_a_regression_and_2_when_invalid(sim_runs: Runs) -> None:
    # Through cli.main, as CI runs it (CliRunner bypasses main's exit-code handling).
    def bench(*args: object) -> int:
        cmd = [sys.executable, "-m", "benchbench.cli", "gate", "--db", str(sim_runs.db), "--json"]
        return subprocess.run([*cmd, *map(str, args)], capture_output=True, timeout=60).returncode

    assert bench("--baseline", sim_runs.same[0], "--candidate", sim_runs.slow_decode) == 1
    assert bench("--baseline", sim_runs.same[0], "--candidate", sim_runs.other_model) == 2
