"""One run's report figures, gathered from the store into reports.model's plain data: the
run's row, its summary (benchbench.metrics, over the one measurement window) and its typed
results, shaped by the section modules beside this one (latency, series, server, marks).
Every reduction of a large run is written into the report's notes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from benchbench.calibrate_headroom import client_headroom
from benchbench.metrics import RunSummary, summarize
from benchbench.peers.show import peer_facts
from benchbench.pooling_report import pooling_latency_cdf, pooling_rates
from benchbench.reasoning import reasoning_facts
from benchbench.report_data.latency import MAX_POINTS, cdfs, distribution_rows, scatters
from benchbench.report_data.marks import energy_verdict, prompt_cache, run_marks
from benchbench.report_data.per_request import adjusted_rows, energy_rows
from benchbench.report_data.series import (
    MAX_BUCKETS,
    bucket_width_ns,
    errors_timeline,
    power_series,
    run_span_ns,
    timeline,
)
from benchbench.report_data.server import server_section
from benchbench.results import Cost, Energy, RunResults
from benchbench.store import StoreError
from benchbench.window import Window, load_window
from benchbench.workers.view import worker_facts
from reports.model import Headline, PromptCache, RunReport, Timeline
from reports.safety import mask_secrets

PRICE_KEYS = ("gpu_price", "instance_price", "gpu_count", "kwh_price", "pue", "input_price",
              "output_price")  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunRow:
    """The runs table's description of one run (config with secrets masked)."""

    run_id: int
    name: str | None
    status: str
    created: str | None
    endpoint: str | None
    api: str | None
    model: str | None
    load_mode: str | None
    rate: float | None
    concurrency: int | None
    config: dict[str, Any]
    versions: dict[str, Any]
    host: dict[str, Any]
    ended_ns: int | None
    sweep_id: str | None
    group_kind: str | None

    @property
    def title(self) -> str:
        return f"run {self.run_id}" + (f" ({self.name})" if self.name else "")


def run_row(con: duckdb.DuckDBPyConnection, run_id: int) -> RunRow:
    row = con.execute(
        """SELECT name, status, created_at::VARCHAR, endpoint, api, model, load_mode,
                  requested_rate, concurrency, config, versions, host, ended_ns, sweep_id,
                  group_kind
           FROM runs WHERE run_id = ?""",
        [run_id],
    ).fetchone()
    if row is None:
        raise StoreError(f"no run {run_id} in this store")
    name, status, created, endpoint, api, model, mode, rate, conc, config, versions, host = row[:12]
    return RunRow(
        run_id, name, status, created, endpoint, api, model, mode, rate, conc,
        mask_secrets(_loads(config)), _loads(versions), _loads(host), *row[12:],
    )  # fmt: skip


def gather_run(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    slos: dict[str, float] | None = None,
    *,
    summary: RunSummary | None = None,
    max_points: int = MAX_POINTS,
    max_buckets: int = MAX_BUCKETS,
) -> RunReport:
    """Everything the report shows about one run."""
    run = run_row(con, run_id)
    s = summary or summarize(con, run_id, slos)
    collectors = mask_secrets(s.results.collectors)
    energy, cost = _energy_and_cost(s.results)
    notes: list[str] = []
    span = run_span_ns(con, run_id, run.ended_ns)
    bucket_ns = bucket_width_ns(span, max_buckets)
    devices = power_series(con, run_id, span, max_buckets, notes)
    times = timeline(con, run_id, span, bucket_ns, notes)
    latency = cdfs(con, run_id, s, notes), scatters(con, run_id, max_points, notes)
    servers, server_note = server_section(con, run_id, s.results.server, bucket_ns)
    cache = prompt_cache(con, run_id, s.results.traffic, run.config)
    verdict = energy_verdict(energy)
    gpus = gpu_description(collectors, run.config, energy, len(devices))
    return RunReport(
        run_id=run_id,
        title=run.title,
        status=run.status,
        created=run.created,
        headline=headline(run, s, gpus, energy, cost),
        distributions=distribution_rows(s),
        cdfs=latency[0],
        scatters=latency[1],
        timeline=times,
        errors=errors_timeline(con, run_id, span, bucket_ns) if s.errored else None,
        error_kinds=_error_kinds(con, run_id),
        power=tuple(devices),
        activity=_in_flight(times),
        window_s=_seconds(load_window(con, run_id)),
        idle_window_s=_seconds(energy.idle_window_ns),
        idle_w_per_gpu=energy.idle_w_per_gpu,
        energy=asdict(energy),
        cost=asdict(cost),
        price_inputs={k: run.config[k] for k in PRICE_KEYS if run.config.get(k) is not None},
        config=run.config,
        facts={
            **facts(run, s, collectors, cache),
            **client_headroom(con, run_id, run.host, run.config, s),
            **worker_facts(s.results.workers),
            **peer_facts(con, run_id),  # the same run in vLLM's, AIPerf's, ... names
        },
        warnings=s.warnings,
        notes=tuple(notes),
        gpu_count=gpu_count(collectors, run.config, energy, len(devices)),
        load_mode=run.load_mode,
        requested_rate=run.rate,
        concurrency=run.concurrency,
        achieved_rate=s.achieved_rate,
        slo_met=bool(s.goodput["all_met"]) if s.goodput else None,
        servers=servers,
        server_note=server_note,
        cache=cache,
        energy_verdict=verdict,
        marks=run_marks(cache, verdict),
        adjusted=adjusted_rows(s),
        energy_per_request=energy_rows(s),
        pooling=s.pooling,
        pooling_latency=pooling_latency_cdf(con, run_id, s, notes),
        pooling_rates=pooling_rates(con, run_id, span, bucket_ns) if s.pooling else None,
    )


def headline(run: RunRow, s: RunSummary, gpus: str | None, energy: Energy, cost: Cost) -> Headline:
    """The tiles at the top of a run: every rate over the run's one measurement window."""
    d = s.distributions
    return Headline(
        endpoint=run.endpoint,
        model=run.model,
        gpus=gpus,
        load=load_label(run.load_mode, run.rate, run.concurrency),
        duration_s=s.window_s or None,
        sent=s.sent,
        ok=s.ok,
        errored=s.errored,
        cancelled=s.cancelled,
        output_tok_s=s.output_tok_s,
        ttft_p50_ms=d["ttft_ms"].p50,
        ttft_p99_ms=d["ttft_ms"].p99,
        tpot_p50_ms=d["tpot_ms"].p50,
        tpot_p99_ms=d["tpot_ms"].p99,
        usd_per_1m_output_tokens=cost.usd_per_1m_output_tokens,
        j_per_output_token=energy.j_per_output_token,
        avg_w=energy.avg_power_w,
    )


def facts(
    run: RunRow, s: RunSummary, collectors: dict[str, Any], cache: PromptCache
) -> dict[str, dict[str, Any]]:
    """The fact tables under a run: its window and counts, token truth, prompt cache,
    versions, host, collectors, client health and traffic plan."""
    res = s.results
    out: dict[str, dict[str, Any]] = {
        "run": {
            "run id": run.run_id,
            "name": run.name,
            "status": run.status,
            "created": run.created,
            "api": run.api,
            "group": f"{run.group_kind} {run.sweep_id}" if run.sweep_id else None,
            "window (s)": s.window_s,
            "window": s.window_definition,
            "drain after the last send (s)": s.drain_s,
            "achieved send rate (req/s)": s.achieved_rate,
            "requested rate (req/s)": s.requested_rate,
            "mean concurrency": s.mean_concurrency,
            "output tokens": s.output_tokens,
            "input tokens": s.input_tokens,
            "warm-up requests": s.warmup,
        },
        "token truth": dict(s.token_truth),
        "prompt cache": {
            "served from the server's cache": cache.share,
            "source": cache.source,
            "workload's ideal prefix hit": cache.ideal,
            "salted": cache.salted,
            "expected by the workload (prefix-cache truth)": s.prompt_cache.get("expected_share"),
            "reuse warning": s.prompt_cache.get("reuse_warning"),
        },
        "versions": run.versions,
        "host": run.host,
        "collectors": collectors,
        "client": asdict(res.client) if res.client else {},
        "traffic": dict(res.traffic),
    }
    if s.goodput:
        out["goodput"] = {k: v for k, v in s.goodput.items() if k != "checks"}
    if s.reasoning is not None:
        out["reasoning"] = reasoning_facts(s.reasoning)
    return out


# --- shaping helpers -------------------------------------------------------------------------


def load_label(load_mode: str | None, rate: float | None, concurrency: int | None) -> str | None:
    if load_mode == "open" and rate is not None:
        return f"open loop {rate:g} req/s"
    if load_mode == "closed":
        return f"closed loop, concurrency {concurrency or 1}"
    return load_mode


def _gpu_names(collectors: dict[str, Any]) -> list[str]:
    for facts in collectors.values():
        gpus = facts.get("gpus") if isinstance(facts, dict) else None
        if gpus:
            return [str(g.get("name", "GPU")) if isinstance(g, dict) else str(g) for g in gpus]
    return []


def gpu_count(
    collectors: dict[str, Any], config: dict[str, Any], energy: Energy, n_power: int
) -> int | None:
    """GPUs serving the run: as the collectors saw them, else as priced (--gpu-count), else
    as many as reported energy or power."""
    count = (
        len(_gpu_names(collectors)) or _num(config.get("gpu_count")) or len(energy.gpus) or n_power
    )
    return int(count) if count else None


def gpu_description(
    collectors: dict[str, Any], config: dict[str, Any], energy: Energy, n_power: int
) -> str | None:
    """'2 x NVIDIA H100 80GB HBM3' from collector facts, else a count, else None."""
    names = _gpu_names(collectors)
    if names:
        return ", ".join(f"{names.count(k)} x {k}" for k in sorted(set(names)))
    count = gpu_count(collectors, config, energy, n_power)
    return f"{count} GPU(s)" if count else None


def _energy_and_cost(results: RunResults) -> tuple[Energy, Cost]:
    """The stored energy and cost, or records that say none were stored."""
    return (
        results.energy or Energy(unavailable="this run stored no energy figures"),
        results.cost or Cost(unavailable="this run stored no cost figures"),
    )


def _in_flight(times: Timeline | None) -> Timeline | None:
    """The requests in flight alone: the power chart's overlay."""
    if times is None:
        return None
    return Timeline(times.t_s, times.bucket_s, {"in flight": times.series["in flight"]})


def _seconds(span: Window | tuple[int, int] | None) -> tuple[float, float] | None:
    """A span on the run clock in seconds, for chart shading."""
    if isinstance(span, Window):
        span = (span.start_ns, span.end_ns)
    return (span[0] / 1e9, span[1] / 1e9) if span else None


def _error_kinds(con: duckdb.DuckDBPyConnection, run_id: int) -> tuple[tuple[str, int, str], ...]:
    rows = con.execute(
        """SELECT error_kind, count(*), min(left(error_detail, 300)) FROM requests
           WHERE run_id = ? AND error_kind IS NOT NULL AND NOT warmup
           GROUP BY 1 ORDER BY 2 DESC, 1""",
        [run_id],
    ).fetchall()
    return tuple((str(k), int(c), str(d or "")) for k, c, d in rows)


def _loads(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
