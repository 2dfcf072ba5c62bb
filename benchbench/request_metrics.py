"""What each request's metrics are, in SQL over the store, and their distributions over a
population: the definitions every summary, report and gate reads (the README glossary
documents the same formulas).

Populations are explicit: latency distributions cover successful, non-warm-up requests;
schedule lag covers every measured request that was sent.

Error-adjusted latencies (`ttft_adj_ms`, ...) add every failed measured request as +inf: a
server that answers fast by refusing requests looks bad there. A percentile over them is
quantile_cont's, so it turns infinite as soon as its interpolation reaches a failed request
(about when the error rate exceeds 1 - p). Cancelled requests (stopped by the client: the
run's end, Ctrl-C) are left out: the server did not fail them and their latency is unknown."""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

__all__ = [
    "DISTRIBUTIONS",
    "PERCENTILES",
    "REQUEST_METRICS_SQL",
    "ERROR_ADJUSTED",
    "Distribution",
    "chunk_gap_sql",
    "chunk_gaps",
    "distribution",
    "json_safe",
    "request_rows",
]

PERCENTILES = (0.5, 0.9, 0.95, 0.99)

# One row per request with its derived latencies (ms). ok = no error kind.
REQUEST_METRICS_SQL = """
SELECT
    run_id, idx, warmup, error_kind, error_kind IS NULL AS ok,
    intended_ns, sent_ns, first_token_ns, last_token_ns, closed_ns,
    input_tokens, output_tokens, input_tokens_expected, output_tokens_expected, n_events,
    -- Stores from before migration 004 have no source; a count there came from usage.
    coalesce(output_tokens_source,
             CASE WHEN output_tokens IS NOT NULL THEN 'usage' END) AS output_tokens_source,
    (first_token_ns - sent_ns) / 1e6 AS ttft_ms,
    (first_token_ns - intended_ns) / 1e6 AS ttft_intended_ms,
    (last_token_ns - sent_ns) / 1e6 AS e2e_ms,
    (last_token_ns - intended_ns) / 1e6 AS e2e_intended_ms,
    (sent_ns - intended_ns) / 1e6 AS schedule_lag_ms,
    CASE WHEN output_tokens > 1
         THEN (last_token_ns - first_token_ns) / 1e6 / (output_tokens - 1) END AS tpot_ms,
    CASE WHEN output_tokens > 0
         THEN (last_token_ns - sent_ns) / 1e6 / output_tokens END AS ntpot_ms
FROM requests
"""

# name -> (SQL expression over request_metrics, population filter, population label)
_OK = "ok AND NOT warmup"
DISTRIBUTIONS: dict[str, tuple[str, str, str]] = {
    "ttft_ms": ("ttft_ms", _OK, "ok requests"),
    "tpot_ms": ("tpot_ms", _OK + " AND output_tokens > 1", "ok requests with >1 output token"),
    "ntpot_ms": ("ntpot_ms", _OK + " AND output_tokens > 0", "ok requests"),
    "e2e_ms": ("e2e_ms", _OK, "ok requests"),
    "ttft_intended_ms": (
        "ttft_intended_ms",
        _OK + " AND intended_ns IS NOT NULL",
        "ok requests, from intended send (open loop)",
    ),
    "e2e_intended_ms": (
        "e2e_intended_ms",
        _OK + " AND intended_ns IS NOT NULL",
        "ok requests, from intended send (open loop)",
    ),
    "schedule_lag_ms": (
        "schedule_lag_ms",
        "NOT warmup AND intended_ns IS NOT NULL",
        "all sent requests (open loop)",
    ),
    "input_tokens": ("input_tokens", _OK, "ok requests, server usage"),
    "output_tokens": ("output_tokens", _OK, "ok requests, server usage"),
    # Embeddings / rerank (benchbench.pooling_summary): no token events, so send to close.
    "latency_ms": (
        "(closed_ns - sent_ns) / 1e6",
        _OK + " AND n_events = 0",
        "ok requests without token events (embeddings, rerank)",
    ),
}

# Failed (errored, not cancelled) measured requests, each counted as +inf.
_FAILED = "NOT ok AND NOT warmup AND error_kind <> 'cancelled'"
_ADJ_LABEL = "ok and failed requests, a failure counted as +inf"
# error-adjusted name -> the ok-only distribution it extends
ERROR_ADJUSTED: dict[str, str] = {
    "ttft_adj_ms": "ttft_ms",
    "tpot_adj_ms": "tpot_ms",
    "ntpot_adj_ms": "ntpot_ms",
    "e2e_adj_ms": "e2e_ms",
}


def _adjusted(base: str) -> tuple[str, str, str]:
    """The ok-only distribution `base` with the failed requests added as +inf."""
    expr, where, _ = DISTRIBUTIONS[base]
    return (
        f"CASE WHEN ok THEN {expr} ELSE 'infinity'::DOUBLE END",
        f"({where}) OR ({_FAILED})",
        _ADJ_LABEL,
    )


DISTRIBUTIONS.update({adj: _adjusted(base) for adj, base in ERROR_ADJUSTED.items()})


@dataclass(frozen=True, slots=True)
class Distribution:
    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    population: str = ""

    def get(self, stat: str) -> float | None:
        return getattr(self, stat)


_STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def json_safe(distributions: dict[str, dict]) -> dict[str, dict]:
    """Distributions as plain dicts for JSON: an infinite statistic (error-adjusted ones)
    becomes null and is named in the dict's `infinite` list, since strict JSON (jq,
    JavaScript's JSON.parse) has no infinity. Finite distributions are left as they are."""
    out = {}
    for name, d in distributions.items():
        inf = [k for k in _STATS if isinstance(d.get(k), float) and math.isinf(d[k])]
        adjusted = inf or name in ERROR_ADJUSTED  # an adjusted one always says, even []
        out[name] = {**d, **dict.fromkeys(inf), "infinite": inf} if adjusted else d
    return out


def request_rows(con: duckdb.DuckDBPyConnection, run_id: int) -> str:
    """A SQL relation (subquery text) of one run's per-request metrics."""
    return f"(SELECT * FROM ({REQUEST_METRICS_SQL}) WHERE run_id = {int(run_id)})"


def distribution(con: duckdb.DuckDBPyConnection, run_id: int, name: str) -> Distribution:
    expr, where, label = DISTRIBUTIONS[name]
    return _dist(con, f"SELECT {expr} AS x FROM {request_rows(con, run_id)} WHERE {where}", label)


def chunk_gap_sql(run_id: int, column: str = "e.gap_ns") -> str:
    """The chunk-gap population: gaps between consecutive token-bearing events
    (token_events.gap_ns, derived from t_ns at ingest) of ok, non-warm-up requests.

    Every token event is written with its request's row, so "ok, not warm-up" is the same as
    "not failed and not warm-up"; the anti join builds its hash table from the few excluded
    requests rather than from all of them (1M requests / 100M events: 2.0 s, not 2.8 s)."""
    return f"""
        SELECT {column} AS x
        FROM token_events e
        ANTI JOIN (SELECT idx FROM requests
                   WHERE run_id = {int(run_id)} AND (error_kind IS NOT NULL OR warmup)) r
          ON e.idx = r.idx
        WHERE e.run_id = {int(run_id)}
    """


def chunk_gaps(con: duckdb.DuckDBPyConnection, run_id: int) -> Distribution:
    # Quantiles over the integer column, scaled after: ~40% faster than over doubles at 1e8 rows.
    return _dist(
        con, chunk_gap_sql(run_id), "gaps between token-bearing events of ok requests", 1e-6
    )


def _dist(con: duckdb.DuckDBPyConnection, sql: str, label: str, scale: float = 1.0) -> Distribution:
    row = con.execute(
        f"""SELECT count(x), avg(x), quantile_cont(x, [{",".join(map(str, PERCENTILES))}]), max(x)
            FROM ({sql}) WHERE x IS NOT NULL"""
    ).fetchone()
    assert row is not None
    n, mean, qs, mx = row
    qs = [None if q is None else q * scale for q in qs] if qs else [None] * len(PERCENTILES)
    mean = None if mean is None else mean * scale
    mx = None if mx is None else mx * scale
    return Distribution(int(n), mean, qs[0], qs[1], qs[2], qs[3], mx, label)
