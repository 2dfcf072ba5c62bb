"""A run's latency and length figures for the report: the distributions table, the CDFs and
the scatters. Every population and percentile is benchbench.metrics'; large populations are
reduced inside DuckDB, never shipped row by row (CDFs from log-spaced bins, scatters from a
reservoir sample), and each reduction is written into the report's notes."""

from __future__ import annotations

from typing import Any

import duckdb

from benchbench.metrics import RunSummary
from benchbench.request_metrics import DISTRIBUTIONS, PERCENTILES, chunk_gap_sql, request_rows
from reports.model import Cdf, Scatter

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
_SCATTERS = (("input_tokens", "ttft_ms", "input tokens", "TTFT (ms)"),
             ("output_tokens", "e2e_ms", "output tokens", "E2E (ms)"))  # fmt: skip


def distribution_rows(s: RunSummary) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(label, {n, mean, p50, p90, p95, p99, max, unit}) for the latency and lengths table."""
    keys = ("n", "mean", "p50", "p90", "p95", "p99", "max")
    return tuple(
        (label, {**{k: getattr(s.distributions[key], k) for k in keys}, "unit": unit})
        for label, key, unit in _TABLE_METRICS
    )


def cdfs(
    con: duckdb.DuckDBPyConnection, run_id: int, s: RunSummary, notes: list[str]
) -> tuple[Cdf, ...]:
    """TTFT, TPOT, chunk gap and E2E CDFs, in that order."""
    return tuple(_cdf(con, run_id, label, key, s, notes) for label, key in _CDF_METRICS)


def scatters(
    con: duckdb.DuckDBPyConnection, run_id: int, max_points: int, notes: list[str]
) -> tuple[Scatter, ...]:
    """TTFT against input length and E2E against output length, per request."""
    return tuple(_scatter(con, run_id, *axes, max_points, notes) for axes in _SCATTERS)


def _population_sql(con: duckdb.DuckDBPyConnection, run_id: int, name: str) -> str:
    if name == "chunk_gap_ms":
        return chunk_gap_sql(run_id, column="e.gap_ns / 1e6")
    expr, where, _ = DISTRIBUTIONS[name]
    return f"SELECT {expr} AS x FROM {request_rows(con, run_id)} WHERE {where}"


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
        values, probs, bins = _binned_cdf(con, pop)
        exact = False
        notes.append(
            f"{label} CDF: {dist.n:,} values aggregated into {bins:,} log-spaced bins "
            f"({CDF_BIN_RATIO - 1:.0%} wide); each point is exact at its value"
        )
    markers = {f"p{round(p * 100)}": dist.get(f"p{round(p * 100)}") for p in PERCENTILES}
    markers["max"] = dist.max
    unit = "ms" if key.endswith("_ms") else "tokens"
    return Cdf(label, unit, values, probs, dist.n, exact, markers, dist.population)


def _binned_cdf(
    con: duckdb.DuckDBPyConnection, pop: str
) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(values, probs, bins) in one aggregation pass, no sort: values binned on a log scale;
    each point is a bin's largest value and the exact fraction of the population at or below
    it."""
    rows = con.execute(
        f"""SELECT max(x), count(*) FROM {pop}
            GROUP BY CASE WHEN x > 0 THEN floor(ln(x) / ln({CDF_BIN_RATIO})) ELSE -1e18 END
            ORDER BY 1"""
    ).fetchall()
    total = sum(int(r[1]) for r in rows)
    cum = 0
    values, probs = [], []
    for mx, count in rows:
        cum += int(count)
        values.append(float(mx))
        probs.append(cum / total)
    return tuple(values), tuple(probs), len(rows)


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
