"""`bench show RUN --as TOOL`: open the store, compute the view, render it as a table."""

from __future__ import annotations

import duckdb
from rich.table import Table

from benchbench.errors import ConfigError
from benchbench.peers.base import PeerReport, compute_view
from benchbench.peers.table import PEERS
from benchbench.queries import resolve_run
from benchbench.store import open_store


def peer_report(db: str, ref: str, tool: str) -> PeerReport:
    """Run `ref` of store `db` in `tool`'s metric names and definitions."""
    view = PEERS.get(tool.strip().lower())
    if view is None:
        raise ConfigError(f"--as {tool!r} is not a known tool; use one of {', '.join(PEERS)}")
    store = open_store(db, read_only=True)
    try:
        return compute_view(store.con, resolve_run(store, ref), view)
    finally:
        store.close()


def peer_table(report: PeerReport) -> Table:
    """Their name, mean / p50 / p90 / p99, our name, and how the definitions differ."""
    table = Table(
        title=f"run {report.run_id} as {report.title}",
        caption=f"definitions from {report.source}",
        caption_justify="left",
    )
    table.add_column(f"{report.title} metric")
    for stat in ("mean", "p50", "p90", "p99"):
        table.add_column(stat, justify="right")
    table.add_column("ours")
    table.add_column("how it differs", overflow="fold")
    for row in report.rows:
        stats = (
            [row.mean] if row.p50 is None and row.n <= 1 else [row.mean, row.p50, row.p90, row.p99]
        )
        cells = [_fmt(v) for v in stats] + [""] * (4 - len(stats))
        table.add_row(f"{row.name} ({row.unit})", *cells, row.ours, row.note)
    return table


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"


def peer_facts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, dict[str, str]]:
    """The run in each peer's names, for the HTML report: one fact table per tool, a row per
    metric it could compute ("p50 · p99 (ours: name)"), the tool left out when none."""
    out: dict[str, dict[str, str]] = {}
    for view in PEERS.values():
        rows = {}
        for row in compute_view(con, run_id, view).rows:
            if row.n == 0 or row.mean is None:
                continue
            figure = (
                _fmt(row.mean) if row.p50 is None else f"p50 {_fmt(row.p50)} · p99 {_fmt(row.p99)}"
            )
            rows[f"{row.name} ({row.unit})"] = f"{figure} (ours: {row.ours or '-'})"
        if rows:
            out[f"as {view.title}"] = rows
    return out
