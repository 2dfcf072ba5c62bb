"""One self-contained HTML report file for a run, several runs, or a group: what `bench
report` and `bench run --report` write. Library code: the commands only resolve run
references and print where the file went."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchbench.errors import BenchError, ConfigError
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
        raise ConfigError(f"directory {out.parent} does not exist: create it or choose another -o")
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
    """Run references (ids, 'latest', baseline names) or a group id ('latest': the latest
    run's group) -> run ids, plus a note on what was chosen. With neither, the last command's
    runs: the whole group when the latest run belongs to a sweep, repeat or search."""
    store = open_store(db, read_only=True)
    try:
        if sweep is not None:
            if refs:
                raise ConfigError("give run ids or --sweep, not both")
            return _group_runs(store, sweep), None
        ids = [resolve_run(store, ref) for ref in (refs or ["latest"])]
        group = _group_of(store, ids[0]) if len(ids) == 1 else None
        if group is None:
            return ids, None
        if not refs:  # the last command was a group: report all of it
            return _group_runs(store, group), f"the runs of group {group} (the last command)"
        return ids, f"run {ids[0]} is one of a group: --sweep {group} reports them together"
    finally:
        store.close()


def _group_of(store: Store, run_id: int) -> str | None:
    row = store.con.execute(
        "SELECT sweep_id, (SELECT count(*) FROM runs r2 WHERE r2.sweep_id = r.sweep_id) "
        "FROM runs r WHERE run_id = ?",
        [run_id],
    ).fetchone()
    return str(row[0]) if row and row[0] and row[1] > 1 else None


def _group_runs(store: Store, sweep: str) -> list[int]:
    group = sweep
    if sweep == "latest":
        row = store.con.execute(
            "SELECT sweep_id FROM runs WHERE sweep_id IS NOT NULL ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        if not row:
            raise ConfigError(f"no sweep or repeat group in {store.path}: pass run ids instead")
        group = str(row[0])
    rows = store.con.execute(
        "SELECT run_id FROM runs WHERE sweep_id = ? ORDER BY sweep_point, run_id", [group]
    ).fetchall()
    if not rows:
        raise ConfigError(f"no runs in group {group!r} in {store.path}: `bench runs` lists them")
    return [int(r[0]) for r in rows]
