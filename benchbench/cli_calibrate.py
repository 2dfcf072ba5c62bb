"""`bench calibrate`: measure this machine's client ceilings (benchbench.calibrate), store them,
print them with the scaling efficiency of each worker count."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from benchbench.calibrate import CalibrateOptions, Calibration, calibrate


def calibrate_command(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Short probes and few steps (a 90 s budget unless --budget-s)."
        ),
    ] = False,
    max_workers: Annotated[
        int | None,
        typer.Option(
            "--max-workers",
            help="Measure 1, 2, 4, ... up to this many workers (default: the core count).",
        ),
    ] = None,
    budget_s: Annotated[
        float | None,
        typer.Option(
            "--budget-s",
            "--budget",
            help="Stop probing after about this many seconds (default 90 with --quick, else 600).",
        ),
    ] = None,
    db: Annotated[str, typer.Option("--db", help="DuckDB store to keep the result in.")] = (
        "bench.duckdb"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure this machine's client ceilings against the built-in simulator and store them:
    `bench run` then warns above them, and `--workers auto` uses them."""
    options = CalibrateOptions(quick=quick, max_workers=max_workers, budget_s=budget_s)
    err = Console(stderr=True, highlight=False)
    result = calibrate(options, db, on_step=None if as_json else err.print)
    if as_json:
        cap = result.capacity
        out = {"host": cap.host, "cores": cap.cores, "quick": cap.quick,
               "rows": [{**asdict(r), "efficiency": cap.efficiency(r)} for r in cap.rows],
               "stalls": asdict(cap.stalls) if cap.stalls else None,
               "notes": list(result.notes)}  # fmt: skip
        print(json.dumps(out))
        return
    Console().print(calibration_table(result))
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}")
    err.print(f"stored in {db}; `bench run` warns above these ceilings")


def calibration_table(result: Calibration) -> Table:
    cap = result.capacity
    table = Table(title=f"client ceilings of {cap.host} ({cap.cores} cores)")
    for col in ("workers", "max req/s", "lag p99 ms", "efficiency", "max tokens/s",
                "stamp p99 ms", "token efficiency", "CPU-s / 1M tokens"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in cap.rows:
        table.add_row(
            str(r.workers),
            _f(r.max_rate, ",.0f"),
            _f(r.lag_p99_ms, ".2f"),
            _f(cap.efficiency(r), ".2f"),
            _f(r.max_tokens_per_s, ",.0f"),
            _f(r.stamp_error_p99_ms, ".2f"),
            _f(cap.efficiency(r, "max_tokens_per_s"), ".2f"),
            _f(r.cpu_s_per_1m_tokens, ".2f"),
        )
    return table


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)
