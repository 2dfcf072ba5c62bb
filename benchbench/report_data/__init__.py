"""The figures of an HTML report, gathered from the store into reports.model's plain data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from benchbench import __version__
from benchbench.errors import BenchError, ConfigError
from benchbench.metrics import parse_slos
from benchbench.report_data.compare import compare_runs
from benchbench.report_data.latency import CDF_BIN_RATIO, EXACT_CDF_MAX, MAX_POINTS
from benchbench.report_data.run import gather_run
from benchbench.report_data.series import MAX_BUCKETS, bucket_width_ns
from reports.model import ReportData

__all__ = [
    "CDF_BIN_RATIO",
    "EXACT_CDF_MAX",
    "MAX_BUCKETS",
    "MAX_POINTS",
    "bucket_width_ns",
    "compare_runs",
    "gather_report",
    "gather_run",
]


def gather_report(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[int], slos: dict[str, float] | None = None
) -> ReportData:
    """One report over run_ids (in the order given). SLOs: as given, else the first run's
    stored --slo, else none."""
    if not run_ids:
        raise ConfigError("no runs to report: give a run id, 'latest' or --sweep ID")
    if slos is None:
        slos = _stored_slos(con, run_ids[0])
    runs = tuple(gather_run(con, rid, slos or None) for rid in run_ids)
    if len(runs) == 1:
        title = f"benchbench report: {runs[0].title}"
    else:
        title = f"benchbench report: {len(runs)} runs ({', '.join(str(r) for r in run_ids)})"
    return ReportData(
        title=title,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        generator=f"benchbench {__version__}",
        runs=runs,
        comparison=compare_runs(runs, slos) if len(runs) > 1 else None,
    )


def _stored_slos(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, float]:
    row = con.execute(
        "SELECT json_extract_string(config, '$.slo') FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    try:
        return parse_slos(row[0]) if row and row[0] else {}
    except (BenchError, ValueError):  # an SLO a later version no longer reads: report without
        return {}
