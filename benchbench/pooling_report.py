"""The report's data for an embeddings or rerank run (drawn by reports.pooling_charts): the
latency CDF (send to close; benchbench.request_metrics `latency_ms`) and inputs/s, requests/s
and latency p50/p99 per time bucket, each ok measured request counted when it closed.
None for a generation run. Large populations are reduced in DuckDB (a fixed set of quantiles),
and the reduction is written into the report's notes."""

from __future__ import annotations

import math

import duckdb

from benchbench.metrics import RunSummary
from benchbench.request_metrics import DISTRIBUTIONS, PERCENTILES, request_rows
from reports.model import Cdf, Timeline

__all__ = ["pooling_latency_cdf", "pooling_rates"]

EXACT_CDF_MAX = 2_000  # below this many values the CDF ships every value
CDF_POINTS = 500  # above it: this many evenly spaced quantiles

_OK = "inputs IS NOT NULL AND error_kind IS NULL AND NOT warmup AND closed_ns IS NOT NULL"


def pooling_latency_cdf(
    con: duckdb.DuckDBPyConnection, run_id: int, s: RunSummary, notes: list[str]
) -> Cdf | None:
    """The latency CDF of a pooling run; None for a generation run or no ok request."""
    dist = s.distributions.get("latency_ms")
    if s.pooling is None or dist is None or dist.n == 0:
        return None
    expr, where, label = DISTRIBUTIONS["latency_ms"]
    pop = f"(SELECT {expr} AS x FROM {request_rows(con, run_id)} WHERE {where}) WHERE x IS NOT NULL"
    if dist.n <= EXACT_CDF_MAX:
        values = tuple(
            float(r[0]) for r in con.execute(f"SELECT x FROM {pop} ORDER BY x").fetchall()
        )
        probs = tuple((i + 1) / len(values) for i in range(len(values)))
        exact = True
    else:
        probs = tuple((i + 1) / CDF_POINTS for i in range(CDF_POINTS))
        row = con.execute(f"SELECT quantile_cont(x, {list(probs)}) FROM {pop}").fetchone()
        values = tuple(float(v) for v in (row[0] if row else []))
        exact = False
        notes.append(f"latency CDF: {dist.n:,} values drawn as {CDF_POINTS} quantiles")
    markers = {f"p{round(p * 100)}": dist.get(f"p{round(p * 100)}") for p in PERCENTILES}
    markers["max"] = dist.max
    return Cdf("latency", "ms", values, probs, dist.n, exact, markers, label)


def pooling_rates(
    con: duckdb.DuckDBPyConnection, run_id: int, span_ns: int, bucket_ns: int
) -> Timeline | None:
    """inputs/s, requests/s and latency p50/p99 (ms) per bucket of close time."""
    b = max(1, int(bucket_ns))
    n = max(1, math.ceil(span_ns / b))
    rows = con.execute(
        f"""SELECT closed_ns // {b}, sum(inputs), count(*),
                   quantile_cont((closed_ns - sent_ns) / 1e6, 0.5),
                   quantile_cont((closed_ns - sent_ns) / 1e6, 0.99)
            FROM requests WHERE run_id = ? AND {_OK} GROUP BY 1""",
        [run_id],
    ).fetchall()
    if not rows:
        return None
    bs = b / 1e9
    series: dict[str, list[float | None]] = {
        "inputs/s": [0.0] * n, "requests/s": [0.0] * n,
        "latency p50 ms": [None] * n, "latency p99 ms": [None] * n,
    }  # fmt: skip
    for bucket, inputs, count, p50, p99 in rows:
        i = int(bucket)
        if 0 <= i < n:
            series["inputs/s"][i] = float(inputs) / bs
            series["requests/s"][i] = float(count) / bs
            series["latency p50 ms"][i], series["latency p99 ms"][i] = float(p50), float(p99)
    return Timeline(tuple(i * bs for i in range(n)), bs, {k: tuple(v) for k, v in series.items()})
