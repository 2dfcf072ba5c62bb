"""The CI regression gate: compare a candidate run with a baseline, noise-aware, after a
validity verdict; rules and SLOs from TOML; export/import of runs to Parquet."""

from benchbench.gate.compare import (
    EXIT_INVALID,
    EXIT_PASS,
    EXIT_REGRESSION,
    GateResult,
    InvalidComparison,
    RuleResult,
    compare,
)
from benchbench.gate.data import SideData, load_side
from benchbench.gate.gate import run_gate
from benchbench.gate.rules import (
    DEFAULT_CONFIG,
    DEFAULT_RULES,
    GateConfig,
    GateConfigError,
    GateError,
    Rule,
    Slo,
    load_gate_config,
    parse_gate_table,
)
from benchbench.gate.transfer import export_runs, import_runs, list_baselines, set_baseline

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_RULES",
    "EXIT_INVALID",
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "GateConfig",
    "GateConfigError",
    "GateError",
    "GateResult",
    "InvalidComparison",
    "Rule",
    "RuleResult",
    "SideData",
    "Slo",
    "compare",
    "export_runs",
    "import_runs",
    "list_baselines",
    "load_gate_config",
    "load_side",
    "parse_gate_table",
    "run_gate",
    "set_baseline",
]
