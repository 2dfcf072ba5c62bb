"""The report's "Server metrics" section: the stored server view
(benchbench.results.ServerView) shaped into table rows, and each server's running/waiting
requests over time, bucketed in DuckDB from the stored scrapes."""

from __future__ import annotations

import math
from typing import Any

import duckdb

from benchbench.results import ServerView as StoredView
from benchbench.server_view import server_metric_names
from collectors.prometheus import AGGREGATE, NORMALIZE, canonical_metric
from reports.model import ServerView

_SERIES = (("running", "running"), ("waiting", "waiting"), ("kv_cache_usage", "KV cache usage %"))
_RANK = {raw: i for canon, _ in _SERIES for i, raw in enumerate(NORMALIZE[canon])}


def server_section(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    server: StoredView | None,
    bucket_ns: int,
) -> tuple[tuple[ServerView, ...], str | None]:
    """(one view per scraped server, None) or ((), why there is none)."""
    if server is None:
        return (), "this run predates server metrics, or none were computed"
    if server.unavailable:
        return (), server.unavailable
    figures = [v for v in server.servers if isinstance(v, dict)]
    if not figures:
        return (), "no server metrics in this run"
    series = _queue_series(con, run_id, bucket_ns)
    ideal = server.ideal_prefix_hit
    general = tuple(server.notes)
    views = []
    for fig in figures:
        url = str(fig.get("url", ""))
        t_s, values = series.get(url, ((), {}))
        views.append(
            ServerView(
                url=url,
                kind=str(fig.get("server", "unknown")),
                rows=_rows(fig, ideal),
                t_s=t_s,
                series=values,
                notes=_notes(fig) + general,
            )
        )
    return tuple(views), None


def _rows(fig: dict[str, Any], ideal: float | None) -> tuple[tuple[str, Any, Any, Any], ...]:
    def tokens(v: Any) -> Any:
        n = _num(v)
        return round(n) if n is not None else None

    def pct(v: Any) -> float | None:
        n = _num(v)
        return None if n is None else n * 100

    hit = pct(fig.get("prefix_hit"))
    rows: list[tuple[str, Any, Any, Any]] = [
        ("prompt tokens", tokens(fig.get("prompt_tokens")), fig.get("client_input_tokens"),
         _num(fig.get("prompt_tokens_ratio"))),
        ("generation tokens", tokens(fig.get("generation_tokens")),
         fig.get("client_output_tokens"), _num(fig.get("generation_tokens_ratio"))),
        ("generation tokens/s", _num(fig.get("generation_tok_s")),
         _num(fig.get("client_output_tok_s")),
         _ratio(fig.get("generation_tok_s"), fig.get("client_output_tok_s"))),
        ("prefix-cache hit % (client column: workload ideal)",
         hit if hit is not None else str(fig.get("prefix_hit_source") or "not exposed"),
         pct(ideal), None),
        ("client's counts within the server's (prompt / generation)",
         f"{_yes(fig.get('prompt_tokens_consistent'))} / "
         f"{_yes(fig.get('generation_tokens_consistent'))}", None, None),
        ("requests running, mean / max", _pair(fig, "running", 1), None, None),
        ("requests waiting, mean / max", _pair(fig, "waiting", 1), None, None),
    ]  # fmt: skip
    if _num(fig.get("kv_cache_usage_mean")) is not None:
        rows.append(("KV-cache usage %, mean / max", _pair(fig, "kv_cache_usage", 100), None,
                     None))  # fmt: skip
    return tuple(rows)


def _yes(consistent: Any) -> str:
    return {True: "yes", False: "NO"}.get(consistent, "not checked")


def _pair(fig: dict[str, Any], key: str, scale: float) -> str:
    mean, mx = _num(fig.get(f"{key}_mean")), _num(fig.get(f"{key}_max"))
    if mean is None or mx is None:
        return "not exposed"
    return f"{mean * scale:,.1f} / {mx * scale:,.0f}"


def _notes(fig: dict[str, Any]) -> tuple[str, ...]:
    out = []
    span_s, cover = _num(fig.get("span_s")), _num(fig.get("coverage"))
    if span_s is not None and cover is not None:
        out.append(
            f"counters over {span_s:.2f} s: the measurement window "
            f"({cover:.0%}) covered by scrapes; the client's figures over the same span"
        )
    if fig.get("prefix_hit") is not None:
        out.append(f"prefix-cache hits: {fig.get('prefix_hit_source')}")
    if fig.get("scrapes") is not None:
        out.append(f"{fig['scrapes']} scrapes inside the window")
    return tuple(out) + tuple(str(n) for n in fig.get("notes") or ())


def _queue_series(
    con: duckdb.DuckDBPyConnection, run_id: int, b: int
) -> dict[str, tuple[tuple[float, ...], dict[str, tuple[float | None, ...]]]]:
    """Per scrape URL: bucket mean times and running / waiting / KV-cache series. One scrape's
    instances (engines, DP ranks) are summed (running, waiting) or averaged (KV cache)."""
    wanted = [m for m in server_metric_names() if m in _RANK]
    names = ",".join(f"'{m}'" for m in wanted)
    rows = con.execute(
        f"""WITH s AS (
                SELECT split_part(device, '#', 1) AS url, metric, t_ns,
                       sum(value) AS v_sum, avg(value) AS v_avg
                FROM samples WHERE run_id = ? AND collector = 'prometheus'
                  AND metric IN ({names})
                GROUP BY ALL)
            SELECT url, metric, t_ns // {int(b)} AS k, avg(t_ns) / 1e9, avg(v_sum), avg(v_avg)
            FROM s GROUP BY ALL ORDER BY url, k""",
        [run_id],
    ).fetchall()
    # One exposition name per URL and series (vLLM's old and new spellings are not mixed).
    chosen: dict[tuple[str, str], str] = {}
    for url, metric, *_ in rows:
        canon = canonical_metric(metric) or ""
        best = chosen.get((url, canon))
        if best is None or _RANK[metric] < _RANK[best]:
            chosen[(url, canon)] = metric
    times: dict[str, dict[int, float]] = {}
    values: dict[str, dict[str, dict[int, float]]] = {}
    for url, metric, k, t_s, v_sum, v_avg in rows:
        canon = canonical_metric(metric) or ""
        if chosen.get((url, canon)) != metric:
            continue
        times.setdefault(url, {}).setdefault(int(k), float(t_s))
        v = v_sum if AGGREGATE[canon] == "sum" else v_avg
        if canon == "kv_cache_usage":
            v = v * 100
        values.setdefault(url, {}).setdefault(canon, {})[int(k)] = float(v)
    out = {}
    for url, by_k in times.items():
        keys = sorted(by_k)
        series = {
            label: tuple(values[url][canon].get(k) for k in keys)
            for canon, label in _SERIES
            if canon in values.get(url, {})
        }
        out[url] = (tuple(by_k[k] for k in keys), series)
    return out


def _ratio(a: Any, b: Any) -> float | None:
    x, y = _num(a), _num(b)
    return x / y if x is not None and y else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
