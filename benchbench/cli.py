"""The `bench` command: each command parses, calls one library function, renders, and picks an
exit code. Every command runs under one guard (benchbench.cli_guard): a user-fixable error
(the BenchError tree) is one line and exit 2, an interrupt 130, a bug keeps its traceback;
`main()` and a test's CliRunner see the same exit codes."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from benchbench import (
    __version__,
    cli_apis,
    cli_calibrate,
    cli_energy,
    cli_export,  # `bench export` (replaces cli_gate's Parquet-only one)
    cli_gate,
    cli_report,
    cli_run,
    cli_traffic,
)
from benchbench.cli_guard import guard_commands
from benchbench.sim.cli import sim_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark LLM inference endpoints: latency, throughput, energy and cost.",
)

DbOpt = Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")]


def _version(value: bool) -> None:
    if value:
        print(f"bench (benchbench) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Benchmark LLM inference endpoints: latency, throughput, energy and cost."""


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
    as_tool: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Print the run in a peer tool's metric names and definitions: "
            "vllm, aiperf, guidellm, inference-perf or mlperf.",
        ),
    ] = None,
) -> None:
    """Print one run's summary."""
    from benchbench.console import print_summary
    from benchbench.queries import run_summary

    if as_tool is not None:
        from benchbench.peers import peer_report, peer_table

        report = peer_report(db, run, as_tool)
        if as_json:
            print(json.dumps(report.to_dict(), default=str))
        else:
            Console().print(peer_table(report))
        return
    summary, header = run_summary(db, run, slo)
    if as_json:
        print(json.dumps(summary.to_dict(), default=str))
    else:
        print_summary(Console(), summary, header)


app.command("sim")(sim_command)
for _module in (cli_traffic, cli_energy, cli_report, cli_gate, cli_export, cli_calibrate, cli_apis):
    _module.register(app)
guard_commands(app)


def _usage_error_types() -> tuple[type[Exception], ...]:
    """The exception classes click raises for bad command lines. Recent typer bundles its own
    copy of click (typer._click) whose classes do not derive from click's, so catch both."""
    import click

    types: list[type[Exception]] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as BundledClickException
    except ImportError:  # typer that uses the installed click
        pass
    else:
        types.append(BundledClickException)
    return tuple(types)


def _print_usage_error(exc: Exception) -> None:
    """One `error:` line and, when the failing command is known, one line naming its help."""
    from benchbench.urls import redact_url

    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        return  # `bench` or `bench baseline` alone: typer has already printed the help
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    message = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"[red]error:[/] {escape(_redact_words(message, redact_url))}", markup=True)
    path = getattr(ctx, "command_path", None)
    if path:
        err.print(f"see `{path} --help`", markup=False)


# A URL inside free text: a scheme, "://", and everything up to a blank, quote or bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"()<>]+")


def _redact_words(text: str, redact: Callable[[str], str]) -> str:
    # Click echoes bad values and stray arguments; a URL among them may hold a password.
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)


def main() -> None:
    """Entry point: the one exit path. Bad command lines (click's errors, raised before any
    command runs) are one line and exit 2; everything else was settled by the guard."""
    usage_errors = _usage_error_types()
    try:
        # With standalone_mode=False, click returns a typer.Exit's code instead of exiting.
        rc = app(prog_name="bench", standalone_mode=False)
    except usage_errors as exc:
        _print_usage_error(exc)
        rc = 2
    except typer.Abort:
        Console(stderr=True).print("aborted")
        rc = 130
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
