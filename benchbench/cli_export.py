"""`bench export`: a run (with its group) to Parquet for `bench import` and the gate (the
format it always had, benchbench.cli_gate), or to the result files of an MLPerf Endpoints
submission (benchbench.export_mlperf)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from benchbench.errors import BenchError

FORMATS = ("parquet", "mlperf-endpoints")


def export_command(
    run: Annotated[
        str, typer.Argument(help="Run id, 'latest', a baseline name, or a sweep/repeat group id.")
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "--out",
            "-o",
            help="parquet: a .parquet file or a directory; mlperf-endpoints: a directory.",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="parquet (for `bench import` and `bench gate`) or mlperf-endpoints (the result "
            "files of an MLPerf Endpoints v1.0 submission, for a run or a concurrency sweep).",
        ),
    ] = "parquet",
    db: Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")] = (
        "bench.duckdb"
    ),
) -> None:
    """Export a run (with the rest of its group): Parquet, or MLPerf Endpoints result files."""
    if fmt not in FORMATS:
        raise BenchError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not output:
        raise BenchError("--out DIR (or --output FILE for parquet) is required")
    if fmt == "parquet":
        from benchbench.cli_gate import export_command as parquet_export

        parquet_export(run, output, db)
        return
    _mlperf(run, output, db)


def _mlperf(ref: str, out_dir: str, db: str) -> None:
    from benchbench.export_mlperf import export_mlperf, resolve_runs
    from benchbench.queries import resolve_run
    from benchbench.store import open_store

    store = open_store(db, read_only=True)
    try:
        try:
            named = [resolve_run(store, ref)]
        except BenchError:
            if ref.isdigit() or ref == "latest":
                raise
            named = []  # perhaps a group id
        result = export_mlperf(store.con, resolve_runs(store.con, named, ref), out_dir)
    finally:
        store.close()
    console = Console(highlight=False, soft_wrap=True)
    for p in result.points:
        tps_user = "-" if p.tps_per_user is None else f"{p.tps_per_user:.2f}"
        console.print(
            f"run {p.run_id}: concurrency {p.concurrency}, ttft_p90_ms {p.ttft_p90_ms}, "
            f"tpot_p90_ms {p.tpot_p90_ms}, tps_per_user {tps_user}, system_tps {p.system_tps}",
            markup=False,
        )
        for reason in p.reasons:
            console.print(f"  not filled / not official: {reason}", markup=False)
    for item in result.unfilled:
        console.print(f"not filled: {item['field']}: {item['reason']}", markup=False)
    console.print(
        f"wrote {len(result.files)} file(s) under {result.out_dir} "
        f"({len(result.pareto)} Pareto step(s))",
        markup=False,
    )


def register(app: Any) -> None:
    """Replace the Parquet-only `bench export` (benchbench.cli_gate) with this one, which
    still writes Parquet by default."""
    app.registered_commands[:] = [c for c in app.registered_commands if c.name != "export"]
    app.command("export")(export_command)
