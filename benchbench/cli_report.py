"""`bench report`: one self-contained HTML file for a run, several runs, or a sweep.

Library first: `write_report(db, run_ids, out_path)` is what `bench run --report` calls; the
command only resolves run references and prints where the file went."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from benchbench.errors import BenchError
from benchbench.metrics import parse_slos
from benchbench.queries import resolve_run
from benchbench.report_data import gather_report
from benchbench.store import Store, open_store
from reports import chart_count, render_html


@dataclass(frozen=True, slots=True)
class ReportInfo:
    path: str
    run_ids: tuple[int, ...]
    bytes: int
    seconds: float
    charts: int
    notes: tuple[str, ...]  # what was downsampled, per run


def write_report(
    db: str, run_ids: list[int], out_path: str, slos: dict[str, float] | None = None
) -> ReportInfo:
    """Write one HTML report over run_ids (in that order) from the store at db. The file is
    written whole or not at all (a temporary file renamed into place)."""
    t0 = time.perf_counter()
    out = Path(out_path)
    if out.parent and not out.parent.exists():
        raise BenchError(f"directory {out.parent} does not exist: create it or choose another -o")
    store = open_store(db, read_only=True)
    try:
        store.con.execute("SET enable_progress_bar = false")
        for rid in run_ids:
            if not store.run_exists(rid):
                raise BenchError(f"no run {rid} in {db}: `bench runs --db {db}` lists them")
        data = gather_report(store.con, run_ids, slos)
    finally:
        store.close()
    page = render_html(data)
    fd, tmp = tempfile.mkstemp(dir=out.parent or ".", prefix=".report-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ReportInfo(
        path=str(out),
        run_ids=tuple(run_ids),
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - t0,
        charts=chart_count(page),
        notes=tuple(n for r in data.runs for n in r.notes),
    )


def resolve_runs(db: str, refs: list[str], sweep: str | None) -> tuple[list[int], str | None]:
    """Run references (ids, 'latest', baseline names) or a sweep/group id ('latest': the
    latest run's group) -> run ids, plus a hint when the latest run belongs to a group."""
    store = open_store(db, read_only=True)
    try:
        if sweep is not None:
            if refs:
                raise BenchError("give run ids or --sweep, not both")
            return _group_runs(store, sweep), None
        ids = [resolve_run(store, ref) for ref in (refs or ["latest"])]
        hint = None
        if len(ids) == 1:
            row = store.con.execute(
                "SELECT sweep_id, (SELECT count(*) FROM runs r2 WHERE r2.sweep_id = r.sweep_id) "
                "FROM runs r WHERE run_id = ?",
                [ids[0]],
            ).fetchone()
            if row and row[0] and row[1] > 1:
                hint = f"run {ids[0]} is one of {row[1]} runs in group {row[0]}: --sweep {row[0]}"
                hint += " reports them together"
        return ids, hint
    finally:
        store.close()


def _group_runs(store: Store, sweep: str) -> list[int]:
    group = sweep
    if sweep == "latest":
        row = store.con.execute(
            "SELECT sweep_id FROM runs WHERE sweep_id IS NOT NULL ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        if not row:
            raise BenchError(f"no sweep or repeat group in {store.path}: pass run ids instead")
        group = str(row[0])
    rows = store.con.execute(
        "SELECT run_id FROM runs WHERE sweep_id = ? ORDER BY sweep_point, run_id", [group]
    ).fetchall()
    if not rows:
        raise BenchError(f"no runs in group {group!r} in {store.path}: `bench runs` lists them")
    return [int(r[0]) for r in rows]


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        runs: Annotated[
            list[str] | None,
            typer.Argument(help="Run ids, 'latest' or baseline names (default: latest run)."),
        ] = None,
        output: Annotated[
            str, typer.Option("--output", "-o", help="HTML file to write.")
        ] = "report.html",
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

        ids, hint = resolve_runs(db, list(runs or []), sweep)
        info = write_report(db, ids, output, parse_slos(slo) if slo else None)
        console = Console(stderr=True)
        console.print(
            f"wrote {info.path} ({info.bytes / 1e6:.1f} MB, {info.charts} charts, "
            f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}) "
            f"in {info.seconds:.1f} s",
            highlight=False,
        )
        if hint:
            console.print(hint, highlight=False)
