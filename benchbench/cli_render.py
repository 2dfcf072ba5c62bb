"""Rendering shared by the run and traffic commands: the points table of a sweep, repeat or
search, and what the traffic itself says under a run's summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchbench.metrics import RunSummary
    from benchbench.sweep import Point


def wide_console() -> Console:
    """stdout; when piped, wide enough that tables are not squeezed to 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


_COLUMNS = ("load", "run", "achieved/s", "done/s", "lag p99", "out tok/s", "TTFT p50",
            "TTFT p99", "TPOT p99", "goodput/s", "SLO met", "note")  # fmt: skip


def points_table(points: list[Point], title: str) -> Table:
    table = Table(title=title)
    for col in _COLUMNS:
        table.add_column(col, justify="left" if col in ("load", "note") else "right")
    for p in points:
        r = p.row()
        met = r["slo_met"]
        table.add_row(
            p.load,
            str(p.run_id),
            _fmt(r["achieved_rate"], 2),
            _fmt(r["completed_rate"], 2),
            _fmt(r["schedule_lag_p99_ms"]),
            _fmt(r["output_tok_s"], 0),
            _fmt(r["ttft_p50_ms"]),
            _fmt(r["ttft_p99_ms"]),
            _fmt(r["tpot_p99_ms"]),
            _fmt(r["goodput_rps"], 2),
            "-" if met is None else ("yes" if met else "[red]no[/]"),
            f"[yellow]saturated:[/] {p.saturated}" if p.saturated else "",
        )
    return table


def print_traffic_notes(console: Console, summary: RunSummary) -> None:
    """What the traffic itself says: ideal prefix hit, exact lengths, fingerprint."""
    traffic = summary.results.traffic or {}
    if "ideal_prefix_hit" in traffic:
        console.print(
            f"ideal prefix-hit ratio {traffic['ideal_prefix_hit']:.1%} "
            f"({traffic.get('ideal_prefix_hit_basis', '')}); the server's own hit ratio "
            "comes from its metrics",
            highlight=False,
        )
    exact = traffic.get("exact_lengths")
    if isinstance(exact, dict):
        stats = exact.get("stats")
        done = f", {stats['fitted']} fitted, {stats['unfit']} not" if stats else ""
        console.print(f"prompt lengths: {exact.get('method')}{done}", highlight=False)
    if traffic.get("fingerprint"):
        console.print(
            f"traffic fingerprint {traffic['fingerprint'][:16]} "
            f"(first {traffic.get('fingerprint_requests')} requests)",
            style="dim",
            highlight=False,
        )
