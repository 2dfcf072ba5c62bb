"""A peer tool's view of a run: its metric names, each computed by that tool's definition from
the stored events, beside the benchbench name it corresponds to and how the two differ.

Three shapes of metric cover the five peers:

- per request: one SQL expression (ms, tokens or tokens/s) over `peer_rows`, one row per ok,
  measured request (benchbench.reasoning.phase_rows_sql: send, first event of any kind, first
  token of any kind, first answer token, second token, last token, stream close, counts);
  summarised as mean, median, p90 and p99 (numpy's linear interpolation = quantile_cont);
- gaps: a population of gaps between events across the ok, measured requests;
- rate: a sum over the requests divided by the run's measurement window (benchbench.window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import duckdb

from benchbench.reasoning import phase_rows_sql
from benchbench.request_metrics import chunk_gap_sql
from benchbench.window import load_window

__all__ = ["PeerMetric", "PeerReport", "PeerRow", "PeerView", "compute_view"]

Shape = Literal["request", "gaps", "rate"]

# Per-request expressions shared by several peers (ms).
TTFT_ANY = "(first_token_ns - sent_ns) / 1e6"  # first non-empty fragment of any kind
TTFA = "(answer_first_ns - sent_ns) / 1e6"
TPOT = (
    "CASE WHEN output_tokens > 1 "
    "THEN (last_token_ns - first_token_ns) / 1e6 / (output_tokens - 1) END"
)
NTPOT = "CASE WHEN output_tokens > 0 THEN (last_token_ns - sent_ns) / 1e6 / output_tokens END"
E2E = "(last_token_ns - sent_ns) / 1e6"
E2E_CLOSED = "(coalesce(closed_ns, last_token_ns) - sent_ns) / 1e6"

# Gap populations (ns): between token-bearing events; vLLM also counts the gap from a
# role-only opening chunk to the first token.
TOKEN_GAPS = "token_gaps"
GAPS_FROM_FIRST_EVENT = "gaps_from_first_event"


@dataclass(frozen=True, slots=True)
class PeerMetric:
    name: str  # the peer's own label, e.g. "Mean TTFT (ms)" -> "TTFT"
    unit: str
    shape: Shape
    expr: str  # SQL over peer_rows (request, rate) or a gap population name (gaps)
    ours: str  # the benchbench metric it corresponds to
    note: str  # one line: how it differs from benchbench's glossary


@dataclass(frozen=True, slots=True)
class PeerView:
    tool: str  # the --as name
    title: str
    source: str  # the file the definitions were read from
    metrics: tuple[PeerMetric, ...]


@dataclass(frozen=True, slots=True)
class PeerRow:
    name: str
    unit: str
    n: int
    mean: float | None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    ours: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class PeerReport:
    run_id: int
    tool: str
    title: str
    source: str
    rows: list[PeerRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compute_view(con: duckdb.DuckDBPyConnection, run_id: int, view: PeerView) -> PeerReport:
    """Every metric of `view` computed over run `run_id`'s stored requests and events."""
    rows = f"({phase_rows_sql(run_id)})"
    window = load_window(con, run_id)
    window_s = window.seconds if window else 0.0
    out = []
    for m in view.metrics:
        if m.shape == "rate":
            total = con.execute(f"SELECT sum({m.expr}) FROM {rows}").fetchone()
            value = total[0] / window_s if total and total[0] is not None and window_s else None
            out.append(PeerRow(m.name, m.unit, 1 if value is not None else 0, value, ours=m.ours,
                               note=m.note))  # fmt: skip
            continue
        sql = (
            _gaps_sql(run_id, rows, m.expr)
            if m.shape == "gaps"
            else f"SELECT {m.expr} AS x FROM {rows}"
        )
        n, mean, p50, p90, p99 = _stats(con, sql)
        out.append(PeerRow(m.name, m.unit, n, mean, p50, p90, p99, m.ours, m.note))
    return PeerReport(run_id, view.tool, view.title, view.source, out)


def _gaps_sql(run_id: int, rows: str, population: str) -> str:
    """A gap population in ms."""
    gaps = f"SELECT x / 1e6 AS x FROM ({chunk_gap_sql(run_id)})"
    if population == TOKEN_GAPS:
        return gaps
    if population == GAPS_FROM_FIRST_EVENT:
        return (
            f"{gaps} UNION ALL SELECT (first_token_ns - first_event_ns) / 1e6 AS x FROM {rows} "
            "WHERE first_event_ns < first_token_ns"
        )
    raise ValueError(f"unknown gap population {population!r}")


def _stats(
    con: duckdb.DuckDBPyConnection, sql: str
) -> tuple[int, float | None, float | None, float | None, float | None]:
    row = con.execute(
        f"SELECT count(x), avg(x), quantile_cont(x, [0.5, 0.9, 0.99]) FROM ({sql}) "
        "WHERE x IS NOT NULL"
    ).fetchone()
    assert row is not None
    n, mean, qs = row
    qs = qs or [None, None, None]
    return int(n), mean, qs[0], qs[1], qs[2]
