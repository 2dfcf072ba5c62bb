"""What a report shows, as plain data: the contract between whoever gathers the figures (the
spine, from the store) and the renderer here. Nothing in this package knows about the store.

Times on a timeline are seconds from the run's origin. Every figure is optional: None means
"not measured", which the page says in words rather than showing a zero."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Cdf:
    """An empirical CDF: values[i] is the probs[i] quantile. Exact (every value) for small
    populations, a fixed set of quantiles for large ones (`exact` says which)."""

    label: str  # "TTFT"
    unit: str  # "ms"
    values: tuple[float, ...]
    probs: tuple[float, ...]
    n: int
    exact: bool
    markers: dict[str, float | None] = field(default_factory=dict)  # "p50" -> value
    population: str = ""


@dataclass(frozen=True, slots=True)
class Scatter:
    """Per-request points (x, y); `total` is the population size before sampling."""

    x_label: str
    y_label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    total: int
    sampled: bool


@dataclass(frozen=True, slots=True)
class Timeline:
    """Bucketed series over run time. t_s: bucket starts; each series has len(t_s) values."""

    t_s: tuple[float, ...]
    bucket_s: float
    series: dict[str, tuple[float | None, ...]]


@dataclass(frozen=True, slots=True)
class DevicePower:
    """One GPU's power (W) and cumulative energy (J since its first sample) over time."""

    device: str
    source: str  # "nvml", "agent", "dcgm"
    power_metric: str | None
    power_t_s: tuple[float, ...]
    power_w: tuple[float, ...]
    energy_t_s: tuple[float, ...]
    energy_j: tuple[float, ...]
    samples: int  # power samples before bucketing


@dataclass(frozen=True, slots=True)
class ServerView:
    """One scraped inference server's own figures over the measurement window, beside the
    client's, and its queue over time (scrapes averaged per bucket; t_s: bucket mean times)."""

    url: str
    kind: str  # "vllm", "sglang", "tgi", "llamacpp", "sim", ...
    rows: tuple[tuple[str, Any, Any, Any], ...]  # (figure, server, client or workload, ratio)
    t_s: tuple[float, ...]
    series: dict[str, tuple[float | None, ...]]  # "running", "waiting", "KV cache usage %"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptCache:
    """The share of the run's prompt tokens the server served from its prompt cache (None:
    not reported) beside the share the workload itself implies. `warm`: served from a cache an
    earlier run left (more than the workload explains); `salted`: whether the run's prompts
    began with a per-run salt (None: not recorded)."""

    share: float | None
    source: str  # "requests", "prometheus: ...", "not reported"
    ideal: float  # the workload's ideal prefix hit; 0 when it implies no reuse
    salted: bool | None
    warm: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a figure can be trusted: "ok", "partial" (a usable estimate with a stated
    weakness) or "invalid" (do not compare it), and why."""

    status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headline:
    endpoint: str | None
    model: str | None
    gpus: str | None
    load: str | None
    duration_s: float | None
    sent: int
    ok: int
    errored: int
    cancelled: int
    output_tok_s: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None
    usd_per_1m_output_tokens: float | None
    j_per_output_token: float | None
    avg_w: float | None


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: int
    title: str
    status: str
    created: str | None
    headline: Headline
    distributions: tuple[tuple[str, dict[str, Any]], ...]  # (label, {n, mean, p50, ... unit})
    cdfs: tuple[Cdf, ...]
    scatters: tuple[Scatter, ...]
    timeline: Timeline | None  # output tok/s, in flight, latency percentiles, sends/s
    errors: Timeline | None  # one series per error kind (requests per bucket)
    error_kinds: tuple[tuple[str, int, str], ...]  # (kind, count, one example detail)
    power: tuple[DevicePower, ...]
    activity: Timeline | None  # in-flight requests, for the power chart's overlay
    window_s: tuple[float, float] | None  # measurement window on the run clock
    idle_window_s: tuple[float, float] | None
    idle_w_per_gpu: float | None
    energy: dict[str, Any]  # runs.extra["energy"] as stored (key names may change)
    cost: dict[str, Any]  # runs.extra["cost"] as stored
    price_inputs: dict[str, Any]  # the flags that priced it
    config: dict[str, Any]  # secrets already masked
    facts: dict[str, dict[str, Any]]  # "versions", "host", "collectors", "client", ...
    warnings: tuple[str, ...]
    notes: tuple[str, ...]  # what was downsampled, and how
    gpu_count: int | None = None
    load_mode: str | None = None  # "open" | "closed" | "replay"
    requested_rate: float | None = None
    concurrency: int | None = None
    achieved_rate: float | None = None
    slo_met: bool | None = None  # None: no SLO given
    servers: tuple[ServerView, ...] = ()  # the servers' own metrics, where scraped
    server_note: str | None = None  # why there are none
    cache: PromptCache | None = None
    energy_verdict: Verdict | None = None  # None: no energy measured
    marks: tuple[str, ...] = ()  # short flags beside the title: "warm cache", ...
    # Latency with each failed request as +inf (label, {n, failed, mean, p50, ..., unit}).
    adjusted: tuple[tuple[str, dict[str, Any]], ...] = ()
    energy_per_request: dict[str, Any] | None = None  # benchbench.energy_per_request, as data
    # Embeddings / rerank (benchbench.pooling_summary figures, pooling_report's CDF and rates).
    pooling: dict[str, Any] | None = None
    pooling_latency: Cdf | None = None
    pooling_rates: Timeline | None = None


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    run_id: int
    label: str  # "open 4 req/s", "closed c=8"
    load: float | None  # the x of "vs load" charts
    gpus: int | None
    ok: int
    errored: int
    output_tok_s: float | None
    output_tok_s_per_gpu: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p99_ms: float | None
    e2e_p99_ms: float | None
    usd_per_1m_output_tokens: float | None
    j_per_output_token: float | None
    meets_slo: bool | None  # None: no SLO given
    energy_status: str | None = None  # the energy verdict: "ok", "partial", "invalid"
    marks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Comparison:
    load_label: str  # "requested rate (req/s)", "concurrency", ...
    rows: tuple[ComparisonRow, ...]
    slos: dict[str, float]
    cheapest_meeting_slo: int | None  # run id
    pick_note: str  # why that run was picked, or why none was
    ttft_cdfs: tuple[tuple[str, Cdf], ...]  # (run label, cdf) overlays
    tpot_cdfs: tuple[tuple[str, Cdf], ...]
    throughput: tuple[tuple[str, Timeline], ...]  # (run label, timeline) overlays


@dataclass(frozen=True, slots=True)
class ReportData:
    title: str
    generated_at: str  # ISO time, UTC
    generator: str  # "benchbench 0.1.0"
    runs: tuple[RunReport, ...]
    comparison: Comparison | None  # several runs
    full_runs: int = 4  # per-run charts for at most this many runs; cards for the rest
