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

A share is None when neither source says: unknown, never 0. `expected_cache` compares it
request by request with what the workload itself expects (prefix-cache truth). Compare it
also with the reuse the workload itself implies (the traffic description's
`ideal_prefix_hit`): a share far above it means the server remembered an earlier run (see
`bench run --no-salt`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from collectors.prometheus import NORMALIZE

__all__ = [
    "ExpectedCache",
    "ServedCache",
    "counter_increase",
    "expected_cache",
    "served_cache",
    "served_cache_of",
]

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
    requests, measured), with the workload's expectation beside it (expected_cache), for
    summaries and JSON."""
    return {**asdict(served_cache_of(con, run_id)), **asdict(expected_cache(con, run_id))}


# A workload claims reuse when it expects at least this share of its prompt tokens cached,
# and it "did not produce" it when the server served less than this fraction of that claim.
CLAIM_MIN_SHARE = 0.05
SHORTFALL = 0.5


@dataclass(frozen=True, slots=True)
class ExpectedCache:
    """Prefix-cache truth: the prompt tokens the workload expected a perfect prefix cache to
    serve (RequestSpec.cached_input_tokens_expected: a warm shared system prompt, a session's
    earlier turns, a trace's repeated hash blocks) beside what the server said it served, over
    the same measured requests (ok, not warm-up, both counts known)."""

    expected_share: float | None  # expected cached / prompt tokens; None = no claim
    expected_tokens: float | None = None
    expected_requests: int = 0  # measured requests that carry an expectation
    served_share_same: float | None = None  # served / prompt over requests with both
    compared_requests: int = 0
    reuse_warning: str | None = None  # the workload did not get the reuse it claims


def expected_cache(con: duckdb.DuckDBPyConnection, run_id: int) -> ExpectedCache:
    """Expected vs served prefix-cache share of the run's measured requests, and a warning
    when the workload claims reuse the server did not give."""
    row = con.execute(
        """SELECT count(*), sum(expected), sum(input_tokens),
                  count(*) FILTER (WHERE cached_input_tokens IS NOT NULL),
                  sum(expected) FILTER (WHERE cached_input_tokens IS NOT NULL),
                  sum(least(cached_input_tokens, input_tokens))
                      FILTER (WHERE cached_input_tokens IS NOT NULL),
                  sum(input_tokens) FILTER (WHERE cached_input_tokens IS NOT NULL)
           FROM (
               -- The workload counts its prompts in its own units (words, for synthetic
               -- text); the server in its tokens, chat template included: the expectation
               -- is scaled to the server's count of the same prompt.
               SELECT *, CASE WHEN input_tokens_expected > 0
                              THEN cached_input_tokens_expected * input_tokens
                                   / input_tokens_expected
                              ELSE cached_input_tokens_expected END AS expected
               FROM requests
               WHERE run_id = ? AND error_kind IS NULL AND NOT warmup
                 AND cached_input_tokens_expected IS NOT NULL AND input_tokens > 0)""",
        [run_id],
    ).fetchone()
    n, expected, prompt, compared, expected_same, served, prompt_same = row or (0,) * 7
    if not n or not prompt:
        return ExpectedCache(None)
    share = min(1.0, float(expected) / float(prompt))
    if not compared or not prompt_same:
        return ExpectedCache(share, float(expected), int(n))
    claim = min(1.0, float(expected_same) / float(prompt_same))
    got = float(served) / float(prompt_same)
    warning = None
    if claim >= CLAIM_MIN_SHARE and got < SHORTFALL * claim:
        warning = (
            f"the workload expects {claim:.1%} of its prompt tokens from the prefix cache but "
            f"the server served {got:.1%}: is prefix caching on (vLLM --enable-prefix-caching, "
            "SGLang's radix cache, llama.cpp cache_prompt), or are prompts evicted or routed "
            "to other replicas?"
        )
    return ExpectedCache(share, float(expected), int(n), got, int(compared), warning)


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
