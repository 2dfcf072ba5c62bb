"""What the gate checks: the metric catalogue, comparison rules, SLOs and validity limits,
from `bench.toml` ([gate]) or pyproject.toml ([tool.benchbench.gate]), or the defaults.

A rule fails only when the change exceeds BOTH its relative and its absolute tolerance (so a
3 ms change on a 5 ms TTFT is not a "60% regression") and the confidence interval of the
change lies wholly beyond that tolerance. An SLO is an absolute bound on the candidate alone."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchbench.catalogue import METRICS, parse_metric
from benchbench.errors import BenchError


class GateError(BenchError):
    """Usage or data problem: the gate cannot give a verdict (exit 2)."""


class GateConfigError(GateError):
    """A bad key or value in the gate's TOML; the message names the key."""


def stat_quantile(stat: str) -> float | None:
    """'p99' -> 0.99, 'p99.9' -> 0.999, 'max' -> 1.0, 'mean' -> None."""
    return 1.0 if stat == "max" else parse_metric(f"ttft_ms.{stat}").quantile


@dataclass(frozen=True, slots=True)
class Rule:
    """Compare one statistic of one metric between baseline and candidate."""

    metric: str
    stat: str | None  # p50/p99/mean for distributions; None for run-level metrics
    better: str  # "lower" | "higher"
    rel: float  # relative tolerance, a fraction of the baseline value
    abs: float  # absolute tolerance, in the metric's unit

    @property
    def key(self) -> str:
        return f"{self.metric}.{self.stat}" if self.stat else self.metric


@dataclass(frozen=True, slots=True)
class Slo:
    """An absolute bound on the candidate: <= limit when lower is better, else >= limit."""

    key: str
    metric: str
    stat: str | None
    better: str
    limit: float


# Served prompt-cache shares (0..1) further apart than this make the sides incomparable
# (gate.validity): 5 points, above the few tokens a chat template and the run's salt share in
# any run. `bench gate --cache-tolerance` takes points.
DEFAULT_CACHE_TOLERANCE = 0.05


@dataclass(frozen=True, slots=True)
class GateConfig:
    rules: tuple[Rule, ...]
    slos: tuple[Slo, ...] = ()
    min_requests: int = 30  # ok, measured requests per side (pooled)
    max_error_rate: float = 0.05  # errored / sent, per side
    max_token_mismatch: float = 0.05  # fraction of requests whose usage disagrees (token truth)
    max_loop_lag_ms: float = 20.0  # client event-loop lag p99: above it, client timestamps are late
    cache_tolerance: float = DEFAULT_CACHE_TOLERANCE
    confidence: float = 0.95  # two-sided interval of each change
    resamples: int = 2000
    seed: int = 0
    source: str = "built-in defaults"


def _r(metric: str, stat: str | None, rel: float, abs_: float, better: str = "lower") -> Rule:
    return Rule(metric, stat, better, rel, abs_)


# The defaults: the figures a serving change usually moves, with tolerances loose enough
# for a shared CI runner (tails get more room than medians).
DEFAULT_RULES: tuple[Rule, ...] = (
    _r("ttft_ms", "p50", 0.10, 5.0),
    _r("ttft_ms", "p99", 0.20, 20.0),
    _r("tpot_ms", "p50", 0.10, 1.0),
    _r("tpot_ms", "p99", 0.20, 2.0),
    _r("e2e_ms", "p99", 0.20, 50.0),
    _r("chunk_gap_ms", "p99", 0.25, 5.0),
    _r("output_tok_s", None, 0.10, 0.0, "higher"),
    _r("requests_s", None, 0.10, 0.0, "higher"),
    _r("error_rate", None, 0.0, 0.01),
    _r("j_per_output_token", None, 0.10, 0.0),
    _r("usd_per_1m_output_tokens", None, 0.10, 0.0),
)

DEFAULT_CONFIG = GateConfig(rules=DEFAULT_RULES)


def parse_metric_key(key: str) -> tuple[str, str | None]:
    """'ttft_ms.p99' | 'ttft_p99_ms' | 'output_tok_s' -> (metric, stat), through the metric
    catalogue; else GateConfigError listing the valid names."""
    try:
        metric = parse_metric(key)
    except BenchError as exc:
        raise GateConfigError(str(exc)) from None
    return metric.name, metric.stat


def default_direction(metric: str) -> str:
    return METRICS[metric].better


def find_config(cwd: Path) -> Path | None:
    """bench.toml with a [gate] table, else pyproject.toml with [tool.benchbench.gate]."""
    for name in ("bench.toml", "pyproject.toml"):
        p = cwd / name
        if p.is_file() and _gate_table(p, _read_toml(p)) is not None:
            return p
    return None


def load_gate_config(path: str | Path | None, cwd: Path | None = None) -> GateConfig:
    """The gate config from `path` (or the one found in `cwd`), over the defaults."""
    if path is None:
        found = find_config(cwd or Path.cwd())
        if found is None:
            return DEFAULT_CONFIG
        path = found
    p = Path(path)
    if not p.is_file():
        raise GateConfigError(f"--config {p}: no such file")
    table = _gate_table(p, _read_toml(p))
    if table is None:
        where = "[tool.benchbench.gate]" if p.name == "pyproject.toml" else "[gate]"
        raise GateConfigError(f"{p} has no {where} table")
    return parse_gate_table(table, prefix=_prefix(p), source=str(p))


_KNOWN_KEYS = frozenset(
    {
        "min_requests",
        "max_error_rate",
        "max_token_mismatch",
        "max_loop_lag_ms",
        "cache_tolerance",
        "confidence",
        "resamples",
        "seed",
        "defaults",
        "rules",
        "slo",
    }
)


def parse_gate_table(table: dict[str, Any], prefix: str = "gate", source: str = "") -> GateConfig:
    for key in table:
        if key not in _KNOWN_KEYS:
            raise GateConfigError(
                f"{prefix}.{key}: unknown key (known: {', '.join(sorted(_KNOWN_KEYS))})"
            )
    rules = _rules(table, prefix)
    slos = _slos(table, prefix)
    confidence = _number(table, "confidence", 0.95, prefix, low=0.5)
    if confidence >= 1.0:
        raise GateConfigError(f"{prefix}.confidence: must be below 1 (e.g. 0.95)")
    max_err = _number(table, "max_error_rate", 0.05, prefix, low=0.0)
    max_tok = _number(table, "max_token_mismatch", 0.05, prefix, low=0.0)
    cache_tol = _number(table, "cache_tolerance", DEFAULT_CACHE_TOLERANCE, prefix, low=0.0)
    for name, v in (
        ("max_error_rate", max_err),
        ("max_token_mismatch", max_tok),
        ("cache_tolerance", cache_tol),
    ):
        if v > 1.0:
            raise GateConfigError(f"{prefix}.{name}: a fraction in [0, 1] (0.05 = 5%), got {v}")
    return GateConfig(
        rules=tuple(rules.values()),
        slos=tuple(slos),
        min_requests=int(_number(table, "min_requests", 30, prefix, low=1, integer=True)),
        max_error_rate=max_err,
        max_token_mismatch=max_tok,
        max_loop_lag_ms=_number(table, "max_loop_lag_ms", 20.0, prefix, low=0.0),
        cache_tolerance=cache_tol,
        confidence=confidence,
        resamples=int(_number(table, "resamples", 2000, prefix, low=100, integer=True)),
        seed=int(_number(table, "seed", 0, prefix, low=0, integer=True)),
        source=source or "config",
    )


def _rules(table: dict[str, Any], prefix: str) -> dict[str, Rule]:
    """The defaults (unless `defaults = false`) with each [rules] entry over them."""
    use_defaults = _get(table, "defaults", bool, True, prefix)
    rules = {r.key: r for r in DEFAULT_RULES} if use_defaults else {}
    for key, body in _get(table, "rules", dict, {}, prefix).items():
        where = f"{prefix}.rules.{key}"
        if not isinstance(body, dict):
            raise GateConfigError(f"{where}: expected a table like {{ rel = 0.1, abs = 5 }}")
        metric, stat = _metric_at(key, where)
        key = f"{metric}.{stat}" if stat else metric
        for k in body:
            if k not in ("better", "rel", "abs", "enabled"):
                raise GateConfigError(
                    f"{where}.{k}: unknown key (known: better, rel, abs, enabled)"
                )
        if not _get(body, "enabled", bool, True, where):
            rules.pop(key, None)
            continue
        base = rules.get(key) or Rule(metric, stat, default_direction(metric), 0.10, 0.0)
        better = _get(body, "better", str, base.better, where)
        if better not in ("lower", "higher"):
            raise GateConfigError(f"{where}.better: must be 'lower' or 'higher', got {better!r}")
        rel = _number(body, "rel", base.rel, where, low=0.0)
        abs_ = _number(body, "abs", base.abs, where, low=0.0)
        rules[key] = replace(base, better=better, rel=rel, abs=abs_)
    return rules


def _slos(table: dict[str, Any], prefix: str) -> list[Slo]:
    slos = []
    for key, limit in _get(table, "slo", dict, {}, prefix).items():
        where = f"{prefix}.slo.{key}"
        metric, stat = _metric_at(key, where)
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise GateConfigError(f"{where}: expected a number, got {limit!r}")
        slos.append(Slo(key, metric, stat, default_direction(metric), float(limit)))
    return slos


def _metric_at(key: str, where: str) -> tuple[str, str | None]:
    try:
        return parse_metric_key(key)
    except GateConfigError as exc:
        raise GateConfigError(f"{where}: {exc}") from None


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise GateConfigError(f"{p}: not valid TOML ({str(exc).splitlines()[0]})") from None


def _prefix(p: Path) -> str:
    return "tool.benchbench.gate" if p.name == "pyproject.toml" else "gate"


def _gate_table(p: Path, doc: dict[str, Any]) -> dict[str, Any] | None:
    table = (
        doc.get("tool", {}).get("benchbench", {}).get("gate")
        if p.name == "pyproject.toml"
        else doc.get("gate")
    )
    if table is not None and not isinstance(table, dict):
        raise GateConfigError(f"{p}: {_prefix(p)} must be a table")
    return table


def _get(table: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind):
        raise GateConfigError(f"{where}.{key}: expected a {kind.__name__}, got {value!r}")
    return value


def _number(
    table: dict[str, Any], key: str, default: float, where: str, low: float, integer: bool = False
) -> float:
    if key not in table:
        return default
    value = table[key]
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        kind = "an integer" if integer else "a number"
        raise GateConfigError(f"{where}.{key}: expected {kind}, got {value!r}")
    if value < low:
        raise GateConfigError(f"{where}.{key}: must be >= {low:g}, got {value}")
    return float(value)
