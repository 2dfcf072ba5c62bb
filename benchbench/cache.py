"""The served prompt cache of a run: the share of its prompt tokens the server took from its
prompt (prefix) cache instead of prefilling them.

Two sources, in order of preference:

- the requests: each stored request's `cached_input_tokens` (the server's own per-request
  report: usage.prompt_tokens_details.cached_tokens, cache_read_input_tokens, llama.cpp's
  timings.cache_n) over its `input_tokens`, summed over the run's measured requests (ok, not
  warm-up) that report both;
- the server's Prometheus counters scraped during the run (`--scrape`): vLLM's
  Δprefix_cache_hits / Δprefix_cache_queries, SGLang's Δcached_tokens / Δprompt_tokens or its
  cache_hit_rate gauge. These cover every request the server served while scraped (warm-up
  and other clients' too), so they are only the fallback.

A share is None when neither source says: unknown, never 0. Compare it with the reuse the
workload itself implies (the traffic description's `ideal_prefix_hit`): a share far above it
means the server remembered an earlier run (see `bench run --no-salt`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from collectors.prometheus import NORMALIZE

__all__ = ["ServedCache", "counter_increase", "served_cache", "served_cache_of"]

_PROMETHEUS = ("prefix_hit_tokens", "prefix_query_tokens", "prompt_tokens", "prefix_hit")


@dataclass(frozen=True, slots=True)
class ServedCache:
    """A run's served-cache share (0..1, None = unknown) and what it was read from."""

    share: float | None
    source: str  # "requests" | "prometheus: <how>" | "not reported"
    cached_tokens: float | None = None
    prompt_tokens: float | None = None
    requests: int = 0  # measured requests that reported their cached tokens
    measured: int = 0  # measured requests (ok, not warm-up)


def served_cache(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any]:
    """served_cache_of as a plain dict (share, source, cached_tokens, prompt_tokens,
    requests, measured), for summaries and JSON."""
    return asdict(served_cache_of(con, run_id))


def served_cache_of(con: duckdb.DuckDBPyConnection, run_id: int) -> ServedCache:
    """The run's served-cache share: from its requests when any reported it, else from the
    server's scraped counters, else unknown."""
    row = con.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE cached_input_tokens IS NOT NULL
                                     AND input_tokens IS NOT NULL),
                  sum(cached_input_tokens) FILTER (WHERE input_tokens IS NOT NULL),
                  sum(input_tokens) FILTER (WHERE cached_input_tokens IS NOT NULL)
           FROM requests WHERE run_id = ? AND error_kind IS NULL AND NOT warmup""",
        [run_id],
    ).fetchone()
    measured, reporting, cached, prompt = row if row else (0, 0, None, None)
    if reporting and prompt:
        # A server may count cached tokens it then re-reads for the last position: never more
        # than the whole prompt.
        share = min(1.0, float(cached) / float(prompt))
        return ServedCache(share, "requests", float(cached), float(prompt), reporting, measured)
    from_metrics = _prometheus(con, run_id)
    if from_metrics is not None:
        return ServedCache(*from_metrics, requests=0, measured=measured)
    return ServedCache(None, "not reported", None, None, 0, measured)


def counter_increase(values: Iterable[float]) -> float:
    """A counter's increase over its samples in time order; a decrease is a restart from
    zero, so the value after it is all new."""
    total, previous = 0.0, None
    for v in values:
        if previous is not None:
            total += v - previous if v >= previous else v
        previous = v
    return total


def _prometheus(
    con: duckdb.DuckDBPyConnection, run_id: int
) -> tuple[float | None, str, float | None, float | None] | None:
    """(share, source, cached, prompt) from the run's scraped server counters, or None."""
    canonical = {raw: canon for canon in _PROMETHEUS for raw in NORMALIZE[canon]}
    names = ",".join(f"'{m}'" for m in canonical)
    rows = con.execute(
        f"""SELECT device, metric, value FROM samples
            WHERE run_id = ? AND collector = 'prometheus' AND metric IN ({names})
              AND value IS NOT NULL AND isfinite(value)
            ORDER BY t_ns""",
        [run_id],
    ).fetchall()
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for device, metric, value in rows:
        series[(str(device), canonical[metric])].append(float(value))
    increase: dict[str, float] = defaultdict(float)
    gauges: list[float] = []
    for (_, canon), values in series.items():
        if canon == "prefix_hit":
            gauges += values
        elif len(values) >= 2:
            increase[canon] += counter_increase(values)
    hits = increase.get("prefix_hit_tokens")
    queries = increase.get("prefix_query_tokens")
    if hits is not None and queries:  # vLLM: token counters
        return (
            min(1.0, hits / queries),
            "prometheus: Δprefix_cache_hits / Δprefix_cache_queries",
            hits,
            queries,
        )
    prompt = increase.get("prompt_tokens")
    if hits is not None and prompt:  # SGLang: cached tokens of all prompt tokens
        return min(1.0, hits / prompt), "prometheus: Δcached_tokens / Δprompt_tokens", hits, prompt
    if gauges:  # SGLang's own hit-rate gauge
        return (
            sum(gauges) / len(gauges),
            "prometheus: cache_hit_rate gauge, mean of scrapes",
            None,
            None,
        )
    return None
