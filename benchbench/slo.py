"""Service-level objectives: `--slo` thresholds on per-request latencies, parsed through the
metric catalogue, and goodput (the requests/s that met them all)."""

from __future__ import annotations

from typing import Any

import duckdb

from benchbench.catalogue import Metric, MetricNameError, parse_metric
from benchbench.request_metrics import DISTRIBUTIONS, request_rows

__all__ = ["SLO_METRICS", "goodput", "parse_slos", "statistic"]


def parse_slos(text: str) -> dict[str, float]:
    """`ttft_p99_ms=500,tpot_ms.p99=50` -> {"ttft_p99_ms": 500.0, ...}. Each name goes through
    the catalogue: a per-request metric with a statistic, else MetricNameError."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise MetricNameError(
                f"bad SLO {part!r}: use METRIC_STAT_ms=VALUE, e.g. ttft_p99_ms=500"
            )
        metric = parse_metric(key)
        if metric.name not in DISTRIBUTIONS or metric.name == "schedule_lag_ms":
            raise MetricNameError(
                f"bad SLO {part!r}: an SLO bounds a per-request latency, one of "
                f"{', '.join(m for m in SLO_METRICS)} (e.g. ttft_p99_ms=500)"
            )
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise MetricNameError(
                f"bad SLO value in {part!r}: expected a number of {metric.unit}"
            ) from None
    return out


SLO_METRICS = ("ttft_ms", "tpot_ms", "ntpot_ms", "e2e_ms", "ttft_intended_ms", "e2e_intended_ms")


def statistic(con: duckdb.DuckDBPyConnection, run_id: int, metric: Metric) -> float | None:
    """Any statistic of a distribution (p99.9 too) over its population."""
    expr, where, _ = DISTRIBUTIONS[metric.name]
    agg = {"mean": "avg(x)", "max": "max(x)"}.get(
        metric.stat or "", f"quantile_cont(x, {metric.quantile})"
    )
    row = con.execute(
        f"SELECT {agg} FROM (SELECT {expr} AS x FROM {request_rows(con, run_id)} WHERE {where})"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def goodput(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    slos: dict[str, float],
    window_s: float,
) -> dict[str, Any]:
    """Requests/s (over the measurement window) that met every per-request threshold; errors
    count in the denominator. Each SLO's statistic is also checked over the run."""
    conds = []
    checks: dict[str, dict[str, Any]] = {}
    for key, limit in slos.items():
        metric = parse_metric(key)
        conds.append(f"coalesce({DISTRIBUTIONS[metric.name][0]}, 0) <= {float(limit)}")
        value = statistic(con, run_id, metric)
        checks[key] = {
            "metric": metric.key, "limit": limit, "value": value,
            "met": value is not None and value <= limit,
        }  # fmt: skip
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE ok AND {" AND ".join(conds)}), count(*)
            FROM {request_rows(con, run_id)} WHERE NOT warmup"""
    ).fetchone()
    assert row is not None
    good, total = int(row[0]), int(row[1])
    return {
        "slos": slos,
        "good_requests": good,
        "requests": total,
        "fraction": good / total if total else None,
        "goodput_rps": good / window_s if window_s else None,
        "checks": checks,
        "all_met": all(c["met"] for c in checks.values()),
    }
