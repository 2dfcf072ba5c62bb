"""`bench report`: one self-contained HTML file for a run, several runs, or a group (the
library call is benchbench.report_file.write_report)."""

from __future__ import annotations

from typing import Annotated

import typer

from benchbench.metrics import parse_slos
from benchbench.report_file import resolve_runs, write_report


def report_command(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run ids, 'latest' or baseline names (default: the last command's runs, "
            "a whole sweep or repeat group)."
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="HTML file to write.")] = (
        "report.html"
    ),
    sweep: Annotated[
        str | None,
        typer.Option(help="Report every run of a sweep/repeat group; 'latest' for the latest."),
    ] = None,
    slo: Annotated[
        str | None,
        typer.Option(help="SLOs for the comparison, e.g. ttft_p99_ms=500,tpot_p99_ms=50."),
    ] = None,
    db: Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")] = (
        "bench.duckdb"
    ),
) -> None:
    """Write a self-contained HTML report (charts, tables, cost) for runs in the store."""
    from rich.console import Console

    ids, note = resolve_runs(db, list(runs or []), sweep)
    info = write_report(db, ids, output, parse_slos(slo) if slo else None)
    console = Console(stderr=True)
    console.print(
        f"wrote {info.path} ({info.bytes / 1e6:.1f} MB, {info.charts} charts, "
        f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}) "
        f"in {info.seconds:.1f} s",
        highlight=False,
    )
    if note:
        console.print(note, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
