"""Timelines of one run, bucketed in DuckDB: throughput, sends, latency percentiles, requests
in flight, errors by kind, and per-GPU power and energy from the collectors' samples."""

from __future__ import annotations

import math
from typing import Any

import duckdb

from benchbench.request_metrics import request_rows
from reports.model import DevicePower, Timeline

MAX_BUCKETS = 1_000  # timeline buckets

_POWER_METRICS = {  # store metric -> role; DCGM names as the Prometheus collector stores them
    "power_instant_w": "instant",
    "power_avg_w": "avg",
    "energy_mj": "energy",
    "DCGM_FI_DEV_POWER_USAGE_INSTANT": "instant",
    "DCGM_FI_DEV_POWER_USAGE": "avg",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total": "energy",
}


def bucket_width_ns(span_ns: int, max_buckets: int = MAX_BUCKETS) -> int:
    """At most max_buckets buckets; no finer than span/50 or 1 s (whichever is finer), so a
    short run is not split into buckets too thin to hold a request."""
    span_ns = max(int(span_ns), 1)
    return max(math.ceil(span_ns / max_buckets), min(1_000_000_000, span_ns // 50), 1)


def run_span_ns(con: duckdb.DuckDBPyConnection, run_id: int, ended_ns: int | None) -> int:
    row = con.execute(
        """SELECT greatest(
               (SELECT max(coalesce(closed_ns, last_token_ns, sent_ns)) FROM requests
                WHERE run_id = $1),
               (SELECT max(t_ns) FROM samples WHERE run_id = $1))""",
        [run_id],
    ).fetchone()
    ends = [v for v in ((row[0] if row else None), ended_ns) if v is not None]
    return max(int(max(ends)) if ends else 1, 1)


def timeline(
    con: duckdb.DuckDBPyConnection, run_id: int, span_ns: int, b: int, notes: list[str]
) -> Timeline | None:
    n = math.ceil(span_ns / b)
    has_req = con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id]).fetchone()
    if not has_req or not has_req[0]:
        return None
    bs = b / 1e9
    series: dict[str, list[float | None]] = {}

    def fill(name: str, rows: list[tuple[Any, ...]], scale: float = 1.0, col: int = 1) -> None:
        values: list[float | None] = [None] * n
        for r in rows:
            if r[0] is not None and 0 <= int(r[0]) < n and r[col] is not None:
                values[int(r[0])] = float(r[col]) * scale
        series[name] = values

    # Each event's own token count where stored; else, as the energy window does, each ok
    # request's server-reported output tokens spread evenly over its token events.
    tok = con.execute(
        f"""WITH ev AS (SELECT idx, count(*) AS n FROM token_events WHERE run_id = $1
                        GROUP BY idx)
            SELECT e.t_ns // {b}, sum(coalesce(e.tokens, r.output_tokens / ev.n))
            FROM token_events e JOIN ev USING (idx)
            JOIN requests r ON r.run_id = e.run_id AND r.idx = e.idx
            WHERE e.run_id = $1 AND r.error_kind IS NULL GROUP BY 1""",
        [run_id],
    ).fetchall()
    if not tok:  # not streamed: tokens land when each request ends
        tok = con.execute(
            f"""SELECT last_token_ns // {b}, sum(output_tokens) FROM requests
                WHERE run_id = ? AND error_kind IS NULL GROUP BY 1""",
            [run_id],
        ).fetchall()
    fill("output tok/s", tok, 1 / bs)
    series["output tok/s"] = [v or 0.0 for v in series["output tok/s"]]
    sends = con.execute(
        f"SELECT sent_ns // {b}, count(*) FROM requests WHERE run_id = ? GROUP BY 1", [run_id]
    ).fetchall()
    fill("sends/s", sends, 1 / bs)
    series["sends/s"] = [v or 0.0 for v in series["sends/s"]]
    lat = con.execute(
        f"""SELECT sent_ns // {b}, quantile_cont(ttft_ms, [0.5, 0.99]),
                   quantile_cont(tpot_ms, [0.5, 0.99])
            FROM {request_rows(con, run_id)} WHERE ok AND NOT warmup GROUP BY 1"""
    ).fetchall()
    for i, name in enumerate(("TTFT p50 ms", "TTFT p99 ms")):
        fill(name, [(r[0], r[1][i] if r[1] else None) for r in lat])
    for i, name in enumerate(("TPOT p50 ms", "TPOT p99 ms")):
        fill(name, [(r[0], r[2][i] if r[2] else None) for r in lat])
    series["in flight"] = list(_in_flight(con, run_id, n, b))
    notes.append(f"timelines: {n:,} buckets of {_dur(bs)}")
    return Timeline(tuple(i * bs for i in range(n)), bs, {k: tuple(v) for k, v in series.items()})


def _in_flight(con: duckdb.DuckDBPyConnection, run_id: int, n: int, b: int) -> list[float]:
    """Time-weighted mean requests in flight per bucket, exactly: the integral F(t) of the
    in-flight count is piecewise linear between send/end events, read at bucket edges with an
    ASOF join; mean over a bucket = (F(edge+1) - F(edge)) / width."""
    rows = con.execute(
        f"""
        WITH ev AS (
            SELECT t, sum(d) AS d FROM (
                SELECT sent_ns AS t, 1 AS d FROM requests WHERE run_id = $1
                UNION ALL
                SELECT coalesce(closed_ns, last_token_ns, sent_ns), -1 FROM requests
                WHERE run_id = $1) GROUP BY t),
        lv AS (SELECT t, sum(d) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING)::DOUBLE AS level
               FROM ev),
        seg AS (SELECT t, level, level * (lead(t) OVER (ORDER BY t) - t) AS area FROM lv),
        cum AS (SELECT t, level, coalesce(sum(area) OVER (ORDER BY t ROWS BETWEEN UNBOUNDED
                       PRECEDING AND 1 PRECEDING), 0) AS f FROM seg),
        edges AS (SELECT range AS k, range * {b} AS e FROM range(0, {n + 1}))
        SELECT k, coalesce(c.f + c.level * (e - c.t), 0) FROM edges
        ASOF LEFT JOIN cum c ON edges.e >= c.t ORDER BY k
        """,
        [run_id],
    ).fetchall()
    f = [float(r[1]) for r in rows]
    return [max(0.0, (f[i + 1] - f[i]) / b) for i in range(n)]


def errors_timeline(con: duckdb.DuckDBPyConnection, run_id: int, span_ns: int, b: int) -> Timeline:
    n = math.ceil(span_ns / b)
    series: dict[str, list[float | None]] = {}
    for k, kind, count in con.execute(
        f"""SELECT sent_ns // {b}, error_kind, count(*) FROM requests
            WHERE run_id = ? AND error_kind IS NOT NULL AND NOT warmup GROUP BY ALL""",
        [run_id],
    ).fetchall():
        series.setdefault(str(kind), [0.0] * n)[min(int(k), n - 1)] = float(count)
    bs = b / 1e9
    return Timeline(tuple(i * bs for i in range(n)), bs, {k: tuple(v) for k, v in series.items()})


def power_series(
    con: duckdb.DuckDBPyConnection, run_id: int, span_ns: int, max_buckets: int,
    notes: list[str],
) -> list[DevicePower]:  # fmt: skip
    names = ",".join(f"'{m}'" for m in _POWER_METRICS)
    rows = con.execute(
        f"""SELECT collector, device, metric, count(*) FROM samples
            WHERE run_id = ? AND metric IN ({names})
              AND (collector IN ('nvml', 'agent') OR metric LIKE 'DCGM%')
            GROUP BY ALL ORDER BY collector, device""",
        [run_id],
    ).fetchall()
    found: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
    for collector, device, metric, count in rows:
        found.setdefault((collector, device), {})[_POWER_METRICS[metric]] = (metric, int(count))
    b = max(math.ceil(span_ns / max_buckets), 1)
    out = []
    for (collector, device), roles in found.items():
        power = roles.get("instant") or roles.get("avg")
        pt: tuple[float, ...] = ()
        pw: tuple[float, ...] = ()
        if power:
            prow = con.execute(
                f"""SELECT avg(t_ns) / 1e9, avg(value) FROM samples
                    WHERE run_id = ? AND collector = ? AND device = ? AND metric = ?
                    GROUP BY t_ns // {b} ORDER BY 1""",
                [run_id, collector, device, power[0]],
            ).fetchall()
            pt, pw = tuple(r[0] for r in prow), tuple(r[1] for r in prow)
            if len(prow) < power[1]:
                notes.append(
                    f"power of {device}: {power[1]:,} samples averaged into {len(prow):,} buckets"
                )
        et: tuple[float, ...] = ()
        ej: tuple[float, ...] = ()
        if "energy" in roles:
            # Cumulative energy from the counter's positive steps (a reset adds nothing).
            erow = con.execute(
                f"""SELECT max(t_ns) / 1e9, max(cum) / 1e3 FROM (
                        SELECT t_ns, sum(greatest(coalesce(step, 0), 0))
                                 OVER (ORDER BY t_ns ROWS UNBOUNDED PRECEDING) AS cum
                        FROM (SELECT t_ns, value - lag(value) OVER (ORDER BY t_ns) AS step
                              FROM samples
                              WHERE run_id = ? AND collector = ? AND device = ?
                                AND metric = ?))
                    GROUP BY t_ns // {b} ORDER BY 1""",
                [run_id, collector, device, roles["energy"][0]],
            ).fetchall()
            et, ej = tuple(r[0] for r in erow), tuple(r[1] for r in erow)
        source = "dcgm" if (power or roles["energy"])[0].startswith("DCGM") else collector
        label = f"GPU {device}" if device.isdigit() else device
        out.append(
            DevicePower(label, source, power[0] if power else None, pt, pw, et, ej,
                        power[1] if power else 0)
        )  # fmt: skip
    return out


def _dur(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.3g} s"
