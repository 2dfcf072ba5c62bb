"""The metric catalogue: every metric name, its unit and direction, and the one parser of
"metric and statistic" that `--slo`, `bench gate` rules and SLOs, the console, the report and
`--json` share. Their SQL definitions are in benchbench.metrics (distributions) and the run
summary (run-level figures).

Spellings: `ttft_ms.p99` (the gate's) and `ttft_p99_ms` (the statistic before the unit) are
the same metric; a statistic is `mean`, `max` or a percentile `pNN` / `pNN.N` (p99.9). A
run-level figure (`output_tok_s`) takes no statistic. Anything else is an error that lists
the valid names, never a silent guess."""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchbench.errors import BenchError


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    label: str  # as tables show it
    help: str
    better: str = "lower"  # "lower" | "higher"
    per_request: bool = True  # a distribution over requests (False: one figure per run)
    # What else the figure rests on: "energy" (the run's energy measurement, whose verdict
    # benchbench.energy gives), or None for the client's own timings and counts.
    rests_on: str | None = None


_SPECS = (
    MetricSpec("ttft_ms", "ms", "TTFT", "time to first token"),
    MetricSpec("ttft_intended_ms", "ms", "TTFT (intended)", "TTFT from the planned send time"),
    MetricSpec("tpot_ms", "ms", "TPOT", "time per output token after the first"),
    MetricSpec("ntpot_ms", "ms", "NTPOT", "E2E latency / output tokens"),
    MetricSpec("chunk_gap_ms", "ms", "chunk gap", "gap between token-bearing events"),
    MetricSpec("e2e_ms", "ms", "E2E", "request sent -> last token"),
    MetricSpec("e2e_intended_ms", "ms", "E2E (intended)", "E2E from the planned send time"),
    MetricSpec("schedule_lag_ms", "ms", "schedule lag", "actual - planned send time"),
    # Error-adjusted (benchbench.request_metrics.ERROR_ADJUSTED): a failed request is +inf.
    MetricSpec("ttft_adj_ms", "ms", "TTFT (failed=∞)", "TTFT, each failed request +inf"),
    MetricSpec("tpot_adj_ms", "ms", "TPOT (failed=∞)", "TPOT, each failed request +inf"),
    MetricSpec("ntpot_adj_ms", "ms", "NTPOT (failed=∞)", "NTPOT, each failed request +inf"),
    MetricSpec("e2e_adj_ms", "ms", "E2E (failed=∞)", "E2E, each failed request +inf"),
    MetricSpec("input_tokens", "tokens", "input length", "prompt tokens per request"),
    MetricSpec("output_tokens", "tokens", "output length", "output tokens per request"),
    # Embeddings and rerank (benchbench.pooling_summary): latency, inputs/s, input tok/s.
    MetricSpec("latency_ms", "ms", "latency", "request sent -> response closed (embeddings, "
               "rerank)"),
    MetricSpec("inputs_per_s", "inputs/s", "inputs/s", "inputs (rerank: documents) / window",
               "higher", False),
    MetricSpec("input_tok_s", "tok/s", "input tok/s", "input tokens / window (embeddings, "
               "rerank)", "higher", False),
    MetricSpec("output_tok_s", "tok/s", "output tok/s", "output tokens / window", "higher", False),
    MetricSpec("total_tok_s", "tok/s", "total tok/s", "all tokens / window", "higher", False),
    MetricSpec("requests_s", "req/s", "req/s", "ok requests / window", "higher", False),
    MetricSpec("error_rate", "fraction", "error rate", "errored / sent", "lower", False),
    MetricSpec("j_per_output_token", "J", "J/output token", "GPU energy / output tokens",
               "lower", False, "energy"),
    MetricSpec("usd_per_1m_output_tokens", "$", "$/1M output", "window cost per 1M output tokens",
               "lower", False),
)  # fmt: skip
METRICS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}
DISTRIBUTION_METRICS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.per_request)
RUN_METRICS: tuple[str, ...] = tuple(s.name for s in _SPECS if not s.per_request)
# The figures of the run's energy measurement: not comparable on an invalid energy verdict.
ENERGY_METRICS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.rests_on == "energy")
# Open-loop only: a closed-loop run has no planned send times, so these are empty there.
INTENDED_METRICS = ("ttft_intended_ms", "e2e_intended_ms", "schedule_lag_ms")

_STAT = re.compile(r"mean|max|p\d{1,2}(?:\.\d+)?")
STAT_HELP = "mean, max, or a percentile pNN / pNN.N (p50, p90, p95, p99, p99.9)"


class MetricNameError(BenchError):
    """A metric or statistic the catalogue does not know; the message lists the valid ones."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric, with the statistic asked of it (None for a run-level figure)."""

    spec: MetricSpec
    stat: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def key(self) -> str:
        return f"{self.name}.{self.stat}" if self.stat else self.name

    @property
    def quantile(self) -> float | None:
        """'p99' -> 0.99, 'p99.9' -> 0.999; None for mean and max (and no statistic)."""
        if self.stat is None or not self.stat.startswith("p"):
            return None
        return round(float(self.stat[1:]) / 100.0, 12)


def parse_metric(text: str) -> Metric:
    """'ttft_p99_ms' | 'ttft_ms.p99' | 'output_tok_s' -> Metric, else MetricNameError."""
    key = text.strip()
    if key in METRICS:
        spec = METRICS[key]
        if spec.per_request:
            raise MetricNameError(
                f"{key!r} needs a statistic: {key}.p99 or {_infix(key, 'p99')} ({STAT_HELP})"
            )
        return Metric(spec, None)
    name, stat = _split(key)
    if name is None:
        raise MetricNameError(f"unknown metric {text!r}; {valid_metrics()}")
    if not _STAT.fullmatch(stat or ""):
        raise MetricNameError(f"bad statistic {stat!r} in {text!r}: use {STAT_HELP}")
    return Metric(METRICS[name], stat)


def _split(key: str) -> tuple[str | None, str | None]:
    """(metric, statistic) from either spelling; (None, None) when no metric fits."""
    metric, dot, stat = key.partition(".")
    if dot and metric in DISTRIBUTION_METRICS:
        return metric, stat
    for name in DISTRIBUTION_METRICS:
        base, _, unit = name.rpartition("_")
        if key.startswith(base + "_") and key.endswith("_" + unit):
            middle = key[len(base) + 1 : -len(unit) - 1]
            if middle and "_" not in middle:
                return name, middle
    return None, None


def _infix(name: str, stat: str) -> str:
    base, _, unit = name.rpartition("_")
    return f"{base}_{stat}_{unit}"


def valid_metrics() -> str:
    """The valid names, on one line (for error messages)."""
    dists = ", ".join(DISTRIBUTION_METRICS)
    return (
        f"valid: METRIC.STAT (or the statistic before the unit: ttft_p99_ms) with METRIC one of "
        f"{dists} and STAT {STAT_HELP}; or a run figure: {', '.join(RUN_METRICS)}"
    )
