"""The `bench` command: each command parses, calls one library function, renders, and picks an
exit code. Every user-fixable error is a BenchError (or ValueError) printed as one line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from benchbench import cli_energy, cli_gate, cli_report, cli_run, cli_traffic
from benchbench.errors import BenchError
from benchbench.sim.cli import sim_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark LLM inference endpoints: latency, throughput, energy and cost.",
)

DbOpt = Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")]

# Order is the order of `bench --help`.
cli_run.register(app)


@app.command("runs")
def runs_command(
    db: DbOpt = "bench.duckdb",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the runs in a store."""
    from rich.table import Table

    from benchbench.queries import list_runs

    rows = list_runs(db)
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table()
    for col in ("run", "created", "status", "endpoint", "model", "load", "requests", "ok"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["run_id"]),
            str(r["created_at"])[:19],
            r["status"],
            str(r["endpoint"]),
            str(r["model"]),
            str(r["load"]),
            str(r["requests"]),
            str(r["ok"]),
        )
    Console().print(table)


@app.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help="Run id, or 'latest'.")] = "latest",
    db: DbOpt = "bench.duckdb",
    slo: Annotated[str | None, typer.Option(help="SLOs for goodput, e.g. ttft_p99_ms=500.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Print one run's summary."""
    from benchbench.console import print_summary
    from benchbench.queries import run_summary

    summary, header = run_summary(db, run, slo)
    if as_json:
        print(json.dumps(summary.to_dict(), default=str))
    else:
        print_summary(Console(), summary, header)


app.command("sim")(sim_command)
for _module in (cli_traffic, cli_energy, cli_report, cli_gate):
    _module.register(app)


def main() -> None:
    """Entry point: one place that turns user errors into one line and an exit code."""
    from benchbench.store import StoreError

    try:
        # With standalone_mode=False, click returns a typer.Exit's code instead of exiting.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except (BenchError, StoreError, ValueError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        Console(stderr=True).print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            Console(stderr=True).print(f"[red]error:[/] {exc.format_message()}", highlight=False)
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
