"""The server's own view of a run, beside the client's: what each scraped inference server's
/metrics said over the measurement window.

- tokens the server counted (prompt, generation) next to the tokens the client saw in the same
  span, and their ratio: a cross-check of token truth;
- requests running and waiting (the server's queue) and KV-cache use: mean and max of scrapes;
- the server's prefix-cache hit ratio where it exposes one, next to the workload's ideal
  (infinite-cache) ratio;
- server-side generation throughput.

Counters are read at the span edges by linear interpolation between the scrapes either side
(as the energy counter is), a decrease taken as a restart from zero. The compared span is the
measurement window clipped to what the scrapes cover, and the client's totals are taken over
that same span, so the two sides always count the same seconds.

Pure functions over stored sample rows (device, t_ns, metric, value), plus `server_view`,
which reads them from the store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchbench.energy_readings import reset_corrected
from benchbench.results import ServerView, load_results
from benchbench.store import Store
from benchbench.window import Window, load_window, tokens_in_window
from collectors.prometheus import AGGREGATE, NORMALIZE, canonical_metric

__all__ = [
    "CounterDelta",
    "ServerSeries",
    "counter_delta",
    "gauge_stats",
    "group_rows",
    "server_figures",
    "server_metric_names",
    "server_view",
]

Series = Sequence[tuple[int, float]]  # (t_ns on the run clock, value), sorted by time

# The server-neutral names this view reads (energy and power belong to benchbench.energy).
_USED = (
    "running",
    "waiting",
    "prompt_tokens",
    "generation_tokens",
    "kv_cache_usage",
    "prefix_hit",
    "prefix_hit_tokens",
    "prefix_query_tokens",
)
_COUNTERS = ("prompt_tokens", "generation_tokens", "prefix_hit_tokens", "prefix_query_tokens")
_PREFERENCE = {raw: i for canon in _USED for i, raw in enumerate(NORMALIZE[canon])}

MIN_COVERAGE = 0.9  # below this share of the window covered by scrapes, say so
EDGE_SLACK = 0.02  # client and server clocks and counting points differ slightly
MIN_TOKENS_TO_CHECK = 50  # too few tokens for a ratio to mean anything


def server_metric_names() -> tuple[str, ...]:
    """Every exposition sample name this view reads, across servers."""
    return tuple(raw for canon in _USED for raw in NORMALIZE[canon])


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """A counter's increase over [t0, t1]. `low`..`high` bound the true increase: the
    interpolation cannot know when inside the edge intervals the counts happened."""

    delta: float
    low: float
    high: float
    resets: int


def counter_delta(series: Series, t0_ns: int, t1_ns: int) -> CounterDelta | None:
    """The increase of a cumulative counter over [t0_ns, t1_ns] (which should lie inside the
    sampled span: outside it the counter is held at its first or last value). None with
    fewer than two samples or an empty span."""
    if len(series) < 2 or t1_ns <= t0_ns:
        return None
    ts = [t for t, _ in series]
    cum_arr, _ = reset_corrected(np.array([v for _, v in series]))
    # np.interp holds the counter at its first or last value outside the sampled span.
    c0, c1 = np.interp([t0_ns, t1_ns], ts, cum_arr)
    delta = float(c1 - c0)
    cum = cum_arr.tolist()
    # Bounds: whole edge intervals in (high) or out (low).
    lo_out = bisect.bisect_right(ts, t0_ns) - 1  # last sample at or before t0
    lo_in = bisect.bisect_left(ts, t0_ns)  # first sample at or after t0
    hi_in = bisect.bisect_right(ts, t1_ns) - 1  # last sample at or before t1
    hi_out = bisect.bisect_left(ts, t1_ns)  # first sample at or after t1
    last = len(ts) - 1
    high = cum[min(hi_out, last)] - cum[max(lo_out, 0)]
    low = cum[hi_in] - cum[lo_in] if hi_in > lo_in else 0.0
    resets = sum(
        1
        for i in range(1, len(series))
        if series[i][1] < series[i - 1][1] and ts[i] > t0_ns and ts[i - 1] < t1_ns
    )
    return CounterDelta(delta, low, high, resets)


@dataclass(frozen=True, slots=True)
class ServerSeries:
    """One scrape URL's server metrics: canonical name -> instance (the stored device: the
    URL plus '#engine=...' or '#dp_rank=...') -> samples sorted by time. One exposition name
    per instance and canonical name (vLLM's old and new spellings are not added up)."""

    url: str
    kind: str  # "vllm", "sglang", "tgi", "llamacpp", "sim", "unknown"
    series: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)

    @property
    def instances(self) -> int:
        return len({d for per in self.series.values() for d in per})


def _kind(metric: str) -> str:
    if metric.startswith("tgi_"):
        return "tgi"
    return metric.split(":", 1)[0] if ":" in metric else "unknown"


def group_rows(rows: Iterable[tuple[str, int, str, float]]) -> list[ServerSeries]:
    """Group stored Prometheus sample rows (device, t_ns, metric, value) by scrape URL. Rows
    that no server-neutral name covers here (DCGM energy, extra gauges) are left out, so a
    dcgm-exporter URL yields no server."""
    chosen: dict[tuple[str, str, str], tuple[int, str]] = {}  # (url, canon, device) -> raw
    raw_rows: dict[tuple[str, str, str, str], list[tuple[int, float]]] = {}
    for device, t_ns, metric, value in rows:
        canon = canonical_metric(metric)
        if canon not in _USED:
            continue
        url = device.split("#", 1)[0]
        raw_rows.setdefault((url, canon, device, metric), []).append((int(t_ns), float(value)))
        rank = _PREFERENCE[metric]
        key = (url, canon, device)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, metric)
    servers: dict[str, ServerSeries] = {}
    for (url, canon, device), (_, metric) in sorted(chosen.items()):
        s = servers.setdefault(url, ServerSeries(url, _kind(metric)))
        s.series.setdefault(canon, {})[device] = sorted(raw_rows[(url, canon, device, metric)])
    return list(servers.values())


def gauge_stats(
    per_device: dict[str, list[tuple[int, float]]], how: str, t0_ns: int, t1_ns: int
) -> tuple[float, float, int] | None:
    """(mean, max, scrapes) of a gauge over the scrapes inside [t0, t1], the instances of one
    scrape combined by `how` ("sum" or "mean"). None when no scrape falls inside."""
    by_t: dict[int, list[float]] = {}
    for series in per_device.values():
        for t, v in series:
            if t0_ns <= t <= t1_ns:
                by_t.setdefault(t, []).append(v)
    if not by_t:
        return None
    values = [sum(vs) if how == "sum" else sum(vs) / len(vs) for vs in by_t.values()]
    return sum(values) / len(values), max(values), len(values)


def _span(s: ServerSeries, t0_ns: int, t1_ns: int) -> tuple[int, int] | None:
    """The window clipped to what every counter series of this server covers."""
    lo, hi = t0_ns, t1_ns
    found = False
    for canon in _COUNTERS:
        for series in s.series.get(canon, {}).values():
            if len(series) >= 2:
                found = True
                lo, hi = max(lo, series[0][0]), min(hi, series[-1][0])
    return (lo, hi) if found and hi > lo else None


def _counter(s: ServerSeries, canon: str, t0_ns: int, t1_ns: int) -> CounterDelta | None:
    parts = [counter_delta(x, t0_ns, t1_ns) for x in s.series.get(canon, {}).values()]
    found = [p for p in parts if p is not None]
    if not found:
        return None
    return CounterDelta(
        sum(p.delta for p in found),
        sum(p.low for p in found),
        sum(p.high for p in found),
        sum(p.resets for p in found),
    )


def server_figures(s: ServerSeries, t0_ns: int, t1_ns: int) -> dict[str, Any]:
    """The server-side figures over the window [t0, t1]: counters over the covered span
    (`span_start_ns`..`span_end_ns`), gauges over the scrapes inside the window."""
    out: dict[str, Any] = {"url": s.url, "server": s.kind, "instances": s.instances}
    span = _span(s, t0_ns, t1_ns)
    notes: list[str] = []
    if span is not None:
        lo, hi = span
        span_s = (hi - lo) / 1e9
        out.update(span_start_ns=lo, span_end_ns=hi, span_s=span_s)
        out["coverage"] = (hi - lo) / (t1_ns - t0_ns)
        resets = 0
        for key in ("prompt_tokens", "generation_tokens"):
            c = _counter(s, key, lo, hi)
            out[key] = None if c is None else c.delta
            out[f"{key}_bounds"] = None if c is None else [c.low, c.high]
            resets += c.resets if c is not None else 0
        gen = out["generation_tokens"]
        out["generation_tok_s"] = gen / span_s if gen is not None else None
        hits = _counter(s, "prefix_hit_tokens", lo, hi)
        queries = _counter(s, "prefix_query_tokens", lo, hi)
        resets += sum(c.resets for c in (hits, queries) if c is not None)
        out["counter_resets"] = resets
        if resets:
            notes.append(f"counters went backwards {resets}x (server restart?): taken as resets")
    else:
        hits = queries = None
        notes.append("token counters not exposed, or fewer than two scrapes in the window")
    for canon in ("running", "waiting", "kv_cache_usage"):
        stats = gauge_stats(s.series.get(canon, {}), AGGREGATE[canon], t0_ns, t1_ns)
        out[f"{canon}_mean"] = stats[0] if stats else None
        out[f"{canon}_max"] = stats[1] if stats else None
        if canon == "running":
            out["scrapes"] = stats[2] if stats else 0
    out.update(_prefix_hit(s, hits, queries, out.get("prompt_tokens"), t0_ns, t1_ns))
    out["notes"] = notes
    return out


def _prefix_hit(
    s: ServerSeries,
    hits: CounterDelta | None,
    queries: CounterDelta | None,
    prompt_tokens: float | None,
    t0_ns: int,
    t1_ns: int,
) -> dict[str, Any]:
    """The server's prefix-cache hit ratio and how it was read, or why there is none."""
    if hits is not None and queries is not None:  # vLLM: token counters
        if queries.delta <= 0:
            return {"prefix_hit": None, "prefix_hit_source": "no prefix-cache queries in window"}
        return {
            "prefix_hit": hits.delta / queries.delta,
            "prefix_hit_source": "Δprefix_cache_hits / Δprefix_cache_queries",
        }
    gauge = gauge_stats(s.series.get("prefix_hit", {}), AGGREGATE["prefix_hit"], t0_ns, t1_ns)
    if gauge is not None:  # SGLang
        return {
            "prefix_hit": gauge[0],
            "prefix_hit_source": "cache_hit_rate gauge, mean of scrapes",
        }
    if hits is not None and prompt_tokens:  # SGLang without the gauge: cached / prompt tokens
        return {
            "prefix_hit": hits.delta / prompt_tokens,
            "prefix_hit_source": "Δcached_tokens / Δprompt_tokens",
        }
    return {"prefix_hit": None, "prefix_hit_source": f"not exposed by {s.kind}"}


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _check(name: str, fig: dict[str, Any], client: tuple[int, int], url: str) -> str | None:
    """Sets fig[name + "_consistent"]: whether some count the client allows (low..high) is one
    the server's counter allows (None: too few tokens to tell). A warning when none is: the
    two sides disagree beyond what the span's edges can explain."""
    bounds = fig.get(f"{name}_bounds")
    fig[f"{name}_consistent"] = None
    if not bounds or client[1] < MIN_TOKENS_TO_CHECK:
        return None
    ok = bounds[0] * (1 - EDGE_SLACK) <= client[1] and client[0] <= bounds[1] * (1 + EDGE_SLACK)
    fig[f"{name}_consistent"] = ok
    if ok:
        return None
    server, mine = fig[name], client[0] if client[0] > bounds[1] else client[1]
    what = "prompt" if name == "prompt_tokens" else "generation"
    return (
        f"server {url} counted {server:,.0f} {what} tokens in the window, the client "
        f"{mine:,} (x{server / mine:.3f}): check token truth (usage reporting) and whether "
        "other clients shared the server"
    )


def _client_prompt_range(store: Store, run_id: int, t0_ns: int, t1_ns: int) -> tuple[int, int]:
    """The client's prompt tokens a server may have counted in [t0, t1]: a server counts a
    prompt somewhere between the request's send and its first token (on arrival, admission or
    prefill), so: requests wholly inside (low) to requests overlapping the span (high)."""
    row = store.con.execute(
        """SELECT
               coalesce(sum(input_tokens) FILTER (WHERE sent_ns >= $2 AND first_token_ns <= $3), 0),
               coalesce(sum(input_tokens) FILTER (WHERE sent_ns <= $3 AND first_token_ns >= $2), 0)
           FROM requests WHERE run_id = $1 AND error_kind IS NULL AND NOT warmup
             AND first_token_ns IS NOT NULL""",
        [run_id, t0_ns, t1_ns],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _warmup_overlap(store: Store, run_id: int, t0_ns: int, t1_ns: int) -> int:
    row = store.con.execute(
        """SELECT count(*) FROM requests WHERE run_id = ? AND warmup
           AND sent_ns < ? AND coalesce(closed_ns, last_token_ns, sent_ns) > ?""",
        [run_id, t1_ns, t0_ns],
    ).fetchone()
    return int(row[0]) if row else 0


def server_view(
    store: Store,
    run_id: int,
    window: Window | None = None,
    *,
    ideal_prefix_hit: float | None = None,
) -> ServerView:
    """Each scraped server's figures over the run's measurement window (default: the stored
    one) beside the client's. `ideal_prefix_hit` defaults to the stored traffic plan's."""
    if window is None:
        window = load_window(store.con, run_id)
    if ideal_prefix_hit is None:
        ideal = load_results(store.con, run_id).traffic.get("ideal_prefix_hit")
        ideal_prefix_hit = float(ideal) if isinstance(ideal, int | float) else None
    names = ",".join(f"'{m}'" for m in server_metric_names())
    rows = store.con.execute(
        f"""SELECT device, t_ns, metric, value FROM samples
            WHERE run_id = ? AND collector = 'prometheus' AND metric IN ({names})
            ORDER BY t_ns""",
        [run_id],
    ).fetchall()
    servers = group_rows(rows)
    if not servers:
        return ServerView(
            unavailable="no server metrics scraped (pass --scrape with the server's /metrics "
            "URL: vLLM, SGLang, TGI and llama.cpp are understood)"
        )
    if window is None:
        return ServerView(unavailable="no requests: no window to read the server's metrics over")
    warnings: list[str] = []
    warm = _warmup_overlap(store, run_id, window.start_ns, window.end_ns)
    figures = []
    for s in servers:
        fig = server_figures(s, window.start_ns, window.end_ns)
        if "span_start_ns" in fig:
            warnings += _beside_client(store, run_id, fig, warm)
        figures.append(fig)
    return ServerView(
        window_s=window.seconds,
        ideal_prefix_hit=ideal_prefix_hit,
        servers=tuple(figures),
        warnings=tuple(warnings),
        notes=_NOTES,
    )


def _beside_client(store: Store, run_id: int, fig: dict[str, Any], warm: int) -> list[str]:
    """Adds the client's totals over the server's covered span to `fig` and checks the two
    sides' counts against each other (not when warm-up requests overlap the window: the
    server counted their tokens, the client's totals exclude them). Returns the warnings."""
    lo, hi, url = fig["span_start_ns"], fig["span_end_ns"], fig["url"]
    out_tok, in_tok, _ = tokens_in_window(store.con, run_id, lo, hi)
    fig["client_input_tokens"] = in_tok
    fig["client_output_tokens"] = out_tok
    fig["client_output_tok_s"] = out_tok / fig["span_s"]
    fig["prompt_tokens_ratio"] = _ratio(fig["prompt_tokens"], in_tok)
    fig["generation_tokens_ratio"] = _ratio(fig["generation_tokens"], out_tok)
    warnings = []
    if fig["coverage"] < MIN_COVERAGE:
        warnings.append(
            f"server metrics of {url} cover only {fig['coverage']:.0%} of the window "
            "(scrape more often: --scrape-interval)"
        )
    if warm:
        fig["notes"].append(
            f"{warm} warm-up request(s) overlap the window: the server counted their "
            "tokens, the client's totals exclude them"
        )
        return warnings
    prompt_range = _client_prompt_range(store, run_id, lo, hi)
    fig["client_input_tokens_range"] = list(prompt_range)
    for name, client in (("prompt_tokens", prompt_range), ("generation_tokens", (out_tok,) * 2)):
        if fig.get(name) is not None and (w := _check(name, fig, client, url)):
            warnings.append(w)
    return warnings


_NOTES = (
    "server counters cover every request the server served in the span (errored ones, "
    "and other clients' too); the client's cover its ok, measured requests",
    "edges: a server counts a prompt on arrival, admission or prefill, the client at "
    "its first token; over a short window the two can differ by the requests at its "
    "edges (warned only beyond what the edges explain)",
    "gauges (running, waiting, KV cache): mean and max of the scrapes in the window",
)
