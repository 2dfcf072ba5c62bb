"""One run's report figures, gathered from the store in SQL into reports.model's plain data.

Every distribution, percentile and rate comes from benchbench.metrics; this module only shapes
them for charts. Large runs are reduced inside DuckDB, never shipped row by row: CDFs from a
fixed set of quantiles, scatters from a reservoir sample, timelines from buckets. Each
reduction is written into the report's notes so the page says what was downsampled."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import duckdb

from benchbench.metrics import (
    DISTRIBUTIONS,
    PERCENTILES,
    RunSummary,
    chunk_gap_sql,
    request_rows,
    summarize,
)
from benchbench.report_data.series import (
    MAX_BUCKETS,
    bucket_width_ns,
    errors_timeline,
    power_series,
    run_span_ns,
    timeline,
)
from benchbench.report_data.server import server_section
from benchbench.results import Cost, Energy
from benchbench.window import load_window
from reports.model import Cdf, Headline, RunReport, Scatter, Timeline
from reports.safety import mask_secrets

MAX_POINTS = 5_000  # scatter points per chart
EXACT_CDF_MAX = 2_000  # below this many values a CDF ships every value
SAMPLE_SEED = 7

CDF_BIN_RATIO = 1.01  # large populations: log-spaced bins 1 % wide

_CDF_METRICS = (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("chunk gap", "chunk_gap_ms"),
                ("E2E", "e2e_ms"))  # fmt: skip
_TABLE_METRICS = (
    ("TTFT", "ttft_ms", "ms"),
    ("TTFT (intended)", "ttft_intended_ms", "ms"),
    ("TPOT", "tpot_ms", "ms"),
    ("NTPOT", "ntpot_ms", "ms"),
    ("chunk gap", "chunk_gap_ms", "ms"),
    ("E2E", "e2e_ms", "ms"),
    ("E2E (intended)", "e2e_intended_ms", "ms"),
    ("schedule lag", "schedule_lag_ms", "ms"),
    ("input length", "input_tokens", "tokens"),
    ("output length", "output_tokens", "tokens"),
)
PRICE_KEYS = ("gpu_price", "instance_price", "gpu_count", "kwh_price", "pue", "input_price",
              "output_price")  # fmt: skip


def _population_sql(con: duckdb.DuckDBPyConnection, run_id: int, name: str) -> str:
    if name == "chunk_gap_ms":
        return chunk_gap_sql(run_id, column="e.gap_ns / 1e6")
    expr, where, _ = DISTRIBUTIONS[name]
    return f"SELECT {expr} AS x FROM {request_rows(con, run_id)} WHERE {where}"


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
    cols = (
        "name, status, created_at::VARCHAR, endpoint, api, model, load_mode, requested_rate, "
        "concurrency, config, versions, host, ended_ns, sweep_id, group_kind"
    )
    row = con.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise ValueError(f"no run {run_id} in this store")
    (name, status, created, endpoint, api, model, load_mode, rate, conc, config_j, versions_j,
     host_j, ended_ns, sweep_id, group_kind) = row  # fmt: skip
    config = mask_secrets(_loads(config_j))
    s = summary or summarize(con, run_id, slos)
    res = s.results
    collectors = mask_secrets(res.collectors)
    energy = res.energy or Energy(unavailable="this run stored no energy figures")
    cost = res.cost or Cost(unavailable="this run stored no cost figures")
    notes: list[str] = []

    span = run_span_ns(con, run_id, ended_ns)
    bucket_ns = bucket_width_ns(span, max_buckets)
    devices = power_series(con, run_id, span, max_buckets, notes)
    gpus = gpu_description(collectors, config, energy, len(devices))
    load = load_label(load_mode, rate, conc)
    window = load_window(con, run_id)
    idle = energy.idle_window_ns

    times = timeline(con, run_id, span, bucket_ns, notes)
    servers, server_note = server_section(con, run_id, res.server, bucket_ns)
    activity = (
        Timeline(times.t_s, times.bucket_s, {"in flight": times.series["in flight"]})
        if times
        else None
    )
    d = s.distributions
    headline = Headline(
        endpoint=endpoint,
        model=model,
        gpus=gpus,
        load=load,
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
    facts: dict[str, dict[str, Any]] = {
        "run": {
            "run id": run_id,
            "name": name,
            "status": status,
            "created": created,
            "api": api,
            "group": f"{group_kind} {sweep_id}" if sweep_id else None,
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
        "versions": _loads(versions_j),
        "host": _loads(host_j),
        "collectors": collectors,
        "client": asdict(res.client) if res.client else {},
        "traffic": dict(res.traffic),
    }
    if s.goodput:
        facts["goodput"] = {k: v for k, v in s.goodput.items() if k != "checks"}
    warnings = s.warnings
    return RunReport(
        run_id=run_id,
        title=f"run {run_id}" + (f" ({name})" if name else ""),
        status=status,
        created=created,
        headline=headline,
        distributions=tuple(
            (label, {**_dist_dict(d[key]), "unit": unit}) for label, key, unit in _TABLE_METRICS
        ),
        cdfs=tuple(_cdf(con, run_id, label, key, s, notes) for label, key in _CDF_METRICS),
        scatters=(
            _scatter(
                con,
                run_id,
                "input_tokens",
                "ttft_ms",
                "input tokens",
                "TTFT (ms)",
                max_points,
                notes,
            ),
            _scatter(
                con,
                run_id,
                "output_tokens",
                "e2e_ms",
                "output tokens",
                "E2E (ms)",
                max_points,
                notes,
            ),
        ),  # fmt: skip
        timeline=times,
        errors=errors_timeline(con, run_id, span, bucket_ns) if s.errored else None,
        error_kinds=_error_kinds(con, run_id),
        power=tuple(devices),
        activity=activity,
        window_s=(window.start_ns / 1e9, window.end_ns / 1e9) if window else None,
        idle_window_s=(idle[0] / 1e9, idle[1] / 1e9) if idle else None,
        idle_w_per_gpu=energy.idle_w_per_gpu,
        energy=asdict(energy),
        cost=asdict(cost),
        price_inputs={k: config.get(k) for k in PRICE_KEYS if config.get(k) is not None},
        config=config,
        facts=facts,
        warnings=warnings,
        notes=tuple(notes),
        gpu_count=gpu_count(collectors, config, energy, len(devices)),
        load_mode=load_mode,
        requested_rate=rate,
        concurrency=conc,
        achieved_rate=s.achieved_rate,
        slo_met=bool(s.goodput["all_met"]) if s.goodput else None,
        servers=servers,
        server_note=server_note,
    )


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


def _dist_dict(dist: Any) -> dict[str, Any]:
    return {k: getattr(dist, k) for k in ("n", "mean", "p50", "p90", "p95", "p99", "max")}


def _cdf(
    con: duckdb.DuckDBPyConnection, run_id: int, label: str, key: str, s: RunSummary,
    notes: list[str],
) -> Cdf:  # fmt: skip
    dist = s.distributions[key]
    pop = f"({_population_sql(con, run_id, key)}) WHERE x IS NOT NULL"
    if dist.n <= EXACT_CDF_MAX:
        rows = con.execute(f"SELECT x FROM {pop} ORDER BY x").fetchall()
        values = tuple(float(r[0]) for r in rows)
        probs = tuple((i + 1) / len(values) for i in range(len(values)))
        exact = True
    else:
        # One aggregation pass, no sort: values binned on a log scale; each point is a bin's
        # largest value and the exact fraction of the population at or below it.
        rows = con.execute(
            f"""SELECT max(x), count(*) FROM {pop}
                GROUP BY CASE WHEN x > 0 THEN floor(ln(x) / ln({CDF_BIN_RATIO})) ELSE -1e18 END
                ORDER BY 1"""
        ).fetchall()
        total = sum(int(r[1]) for r in rows)
        cum = 0
        values_l, probs_l = [], []
        for mx, count in rows:
            cum += int(count)
            values_l.append(float(mx))
            probs_l.append(cum / total)
        values, probs, exact = tuple(values_l), tuple(probs_l), False
        notes.append(
            f"{label} CDF: {dist.n:,} values aggregated into {len(rows):,} log-spaced bins "
            f"({CDF_BIN_RATIO - 1:.0%} wide); each point is exact at its value"
        )
    markers = {f"p{round(p * 100)}": dist.get(f"p{round(p * 100)}") for p in PERCENTILES}
    markers["max"] = dist.max
    unit = "ms" if key.endswith("_ms") else "tokens"
    return Cdf(label, unit, values, probs, dist.n, exact, markers, dist.population)


def _scatter(
    con: duckdb.DuckDBPyConnection, run_id: int, x: str, y: str, x_label: str, y_label: str,
    max_points: int, notes: list[str],
) -> Scatter:  # fmt: skip
    _, where, _ = DISTRIBUTIONS[y]
    pop = (
        f"SELECT {x} AS x, {y} AS y FROM {request_rows(con, run_id)} "
        f"WHERE {where} AND {x} IS NOT NULL AND {y} IS NOT NULL"
    )
    total_row = con.execute(f"SELECT count(*) FROM ({pop})").fetchone()
    total = int(total_row[0]) if total_row else 0
    sampled = total > max_points
    sql = f"SELECT x, y FROM ({pop})"
    if sampled:
        sql += f" USING SAMPLE reservoir({int(max_points)} ROWS) REPEATABLE ({SAMPLE_SEED})"
        notes.append(f"{y_label} vs {x_label}: {max_points:,} of {total:,} requests (reservoir)")
    rows = con.execute(sql).fetchall()
    return Scatter(
        x_label, y_label, tuple(float(r[0]) for r in rows), tuple(float(r[1]) for r in rows),
        total, sampled,
    )  # fmt: skip


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
