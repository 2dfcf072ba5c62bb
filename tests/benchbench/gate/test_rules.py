"""Gate rules from TOML: defaults, overrides, SLOs, and one-line errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.gate import DEFAULT_CONFIG, GateConfigError, load_gate_config, parse_gate_table
from benchbench.gate.rules import parse_metric_key


def _keys(cfg) -> set[str]:
    return {r.key for r in cfg.rules}


def test_no_config_file_means_the_documented_defaults(tmp_path: Path) -> None:
    cfg = load_gate_config(None, cwd=tmp_path)
    assert cfg == DEFAULT_CONFIG
    want = {"ttft_ms.p50", "ttft_ms.p99", "tpot_ms.p50", "tpot_ms.p99", "e2e_ms.p99",
            "chunk_gap_ms.p99", "output_tok_s", "requests_s", "error_rate"}  # fmt: skip
    assert want <= _keys(cfg)
    ttft = next(r for r in cfg.rules if r.key == "ttft_ms.p50")
    assert (ttft.better, ttft.rel, ttft.abs) == ("lower", 0.10, 5.0)
    assert next(r for r in cfg.rules if r.key == "output_tok_s").better == "higher"


def test_bench_toml_overrides_adds_and_disables_rules(tmp_path: Path) -> None:
    (tmp_path / "bench.toml").write_text(
        """
[gate]
min_requests = 100
confidence = 0.9
[gate.rules."ttft_ms.p99"]
rel = 0.3
abs = 50
[gate.rules."schedule_lag_ms.p99"]
abs = 2
[gate.rules.requests_s]
enabled = false
[gate.slo]
ttft_p99_ms = 500
"tpot_ms.p50" = 40
output_tok_s = 1000
"""
    )
    cfg = load_gate_config(None, cwd=tmp_path)
    assert cfg.min_requests == 100 and cfg.confidence == 0.9
    rules = {r.key: r for r in cfg.rules}
    assert (rules["ttft_ms.p99"].rel, rules["ttft_ms.p99"].abs) == (0.3, 50.0)
    assert rules["schedule_lag_ms.p99"].abs == 2.0 and rules["schedule_lag_ms.p99"].rel == 0.10
    assert "requests_s" not in rules
    slos = {s.key: s for s in cfg.slos}
    assert (slos["ttft_p99_ms"].metric, slos["ttft_p99_ms"].stat) == ("ttft_ms", "p99")
    assert slos["ttft_p99_ms"].better == "lower" and slos["output_tok_s"].better == "higher"


def test_pyproject_tool_table_is_found_and_defaults_can_be_dropped(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.benchbench.gate]\ndefaults = false\n'
        '[tool.benchbench.gate.rules."tpot_ms.p50"]\nrel = 0.05\n'
    )
    cfg = load_gate_config(None, cwd=tmp_path)
    assert _keys(cfg) == {"tpot_ms.p50"}
    assert cfg.source.endswith("pyproject.toml")


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[gate]\nmin_request = 5\n", "gate.min_request"),
        ('[gate.rules."ttft_ms.p99"]\nrell = 0.1\n', "gate.rules.ttft_ms.p99.rell"),
        ('[gate.rules."ttft_ms.p99"]\nrel = -1\n', "gate.rules.ttft_ms.p99.rel"),
        ('[gate.rules."ttft_ms.p99"]\nbetter = "up"\n', "gate.rules.ttft_ms.p99.better"),
        ('[gate.rules."latency.p99"]\nrel = 0.1\n', "gate.rules.latency.p99"),
        ('[gate.slo]\nttft_p99_ms = "fast"\n', "gate.slo.ttft_p99_ms"),
        ("[gate]\nconfidence = 1.5\n", "gate.confidence"),
        ("[gate\n", "not valid TOML"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(tmp_path: Path, toml: str, names: str) -> None:
    p = tmp_path / "bench.toml"
    p.write_text(toml)
    with pytest.raises(GateConfigError) as exc:
        load_gate_config(p)
    assert names in str(exc.value) and "\n" not in str(exc.value)


def test_metric_keys_accept_the_slo_spelling_and_reject_unknown_stats() -> None:
    assert parse_metric_key("ttft_p99_ms") == ("ttft_ms", "p99")
    assert parse_metric_key("e2e_ms.p99.9") == ("e2e_ms", "p99.9")
    assert parse_metric_key("error_rate") == ("error_rate", None)
    with pytest.raises(GateConfigError):
        parse_metric_key("ttft_ms.median")


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GateConfigError, match="no such file"):
        load_gate_config(tmp_path / "nope.toml")
    with pytest.raises(GateConfigError, match="no \\[gate\\] table"):
        (tmp_path / "bench.toml").write_text("[run]\nrate = 1\n")
        load_gate_config(tmp_path / "bench.toml")
    assert parse_gate_table({}).rules == DEFAULT_CONFIG.rules
