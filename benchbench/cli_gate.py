"""`bench gate`, `bench baseline set|list`, `bench export`, `bench import`: parse, call
benchbench.gate, render, pick the exit code (0 pass, 1 regression, 2 usage or data error)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from benchbench.errors import BenchError, first_line

DbOpt = Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")]
_REF_HELP = "Run id, 'latest', a baseline name (bench baseline set), or an exported .parquet file."


def _exit(code: int) -> NoReturn:
    """Exit with `code`. SystemExit, not typer.Exit: `bench` runs click with
    standalone_mode=False, where click turns typer.Exit into a return value that cli.main
    drops, so exit 1 or 2 would become 0. SystemExit passes through click and CliRunner."""
    raise SystemExit(code)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """The gate's parsers raise ValueError for bad rules, references and files: user input,
    so a BenchError here; the command guard (benchbench.cli_guard) prints it as one line and
    exits 2, under `bench` and a test's CliRunner alike."""
    try:
        yield
    except ValueError as exc:
        raise BenchError(first_line(exc)) from None


def gate_command(
    baseline: Annotated[str, typer.Option(help=_REF_HELP)],
    candidate: Annotated[str, typer.Option(help=_REF_HELP)] = "latest",
    config: Annotated[
        str | None,
        typer.Option(
            help="bench.toml with a 'gate' table, or pyproject.toml with 'tool.benchbench.gate'; "
            "default: ./bench.toml or ./pyproject.toml when they have one, else built-in rules."
        ),
    ] = None,
    db: DbOpt = "bench.duckdb",
    markdown: Annotated[
        str | None,
        typer.Option(help="Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY)."),
    ] = None,
    junit: Annotated[
        str | None, typer.Option(help="Write JUnit XML here: one test case per rule.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    cache_tolerance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=100.0,
            help="Refuse (exit 2) when the share of prompt tokens the server served from its "
            "prompt cache differs between the sides by more than this many points (both "
            "known); default 5, or the gate config's cache_tolerance.",
        ),
    ] = None,
) -> None:
    """Compare a candidate run with a baseline; exit 0 pass, 1 regression, 2 invalid/usage."""
    from benchbench.gate import InvalidComparison, load_gate_config, run_gate
    from benchbench.gate import output as out

    with _one_line_errors():
        cfg = load_gate_config(config)
        if cache_tolerance is not None:  # points on the command line, a fraction in the config
            cfg = dataclasses.replace(cfg, cache_tolerance=cache_tolerance / 100)
        try:
            result = run_gate(baseline, candidate, db, cfg)
        except InvalidComparison as exc:
            problems = exc.problems
            _emit(markdown, junit, lambda: out.invalid_markdown(baseline, candidate, problems),
                  lambda: out.invalid_junit(problems))  # fmt: skip
            if as_json:
                print(out.invalid_json(problems))
            err = Console(stderr=True)
            err.print("[red]error:[/] invalid comparison, no verdict:", highlight=False)
            for p in problems:
                err.print(f"  - {p}", highlight=False, soft_wrap=True)
            _exit(2)
    _emit(markdown, junit, lambda: out.markdown(result), lambda: out.junit(result))
    if as_json:
        print(out.to_json(result))
    else:
        console = Console()
        if not console.is_terminal:  # CI logs: wide enough for the whole table
            console = Console(width=max(console.width, 140))
        out.print_result(console, result)
    _exit(result.exit_code)


def _emit(
    md_path: str | None, junit_path: str | None, md: Callable[[], str], xml: Callable[[], str]
) -> None:
    with _one_line_errors():
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if md_path or summary:
            text = md()
            if md_path:
                _write(md_path, text)
            if summary:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
        if junit_path:
            _write(junit_path, xml())


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None


baseline_app = typer.Typer(help="Name runs as baselines for `bench gate --baseline NAME`.",
                           no_args_is_help=True)  # fmt: skip


@baseline_app.command("set")
def baseline_set(
    name: Annotated[str, typer.Argument(help="Baseline name, e.g. main.")],
    run: Annotated[str, typer.Argument(help="Run id, 'latest', or an exported .parquet file.")],
    db: DbOpt = "bench.duckdb",
) -> None:
    """Point a baseline name at a run (an exported file is imported first)."""
    from benchbench.gate import import_runs, set_baseline
    from benchbench.gate.transfer import is_export_file
    from benchbench.queries import resolve_run
    from benchbench.store import open_store

    with _one_line_errors():
        store = open_store(db)
        try:
            run_id = import_runs(store, run)[0] if is_export_file(run) else resolve_run(store, run)
            set_baseline(store, name, run_id)
        finally:
            store.close()
    Console().print(f"baseline {name!r} -> run {run_id}", highlight=False)


@baseline_app.command("list")
def baseline_list(
    db: DbOpt = "bench.duckdb",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the named baselines."""
    from rich.table import Table

    from benchbench.gate import list_baselines
    from benchbench.store import open_store

    with _one_line_errors():
        store = open_store(db, read_only=True)
        try:
            rows = list_baselines(store)
        finally:
            store.close()
    if as_json:
        print(json.dumps(rows, default=str))
        return
    table = Table()
    for col in ("name", "run", "set at", "model", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["name"]), str(r["run_id"]), str(r["set_at"])[:19], str(r["model"]),
                      str(r["status"]))  # fmt: skip
    Console().print(table)


def export_command(
    run: Annotated[str, typer.Argument(help="Run id, 'latest' or a baseline name.")],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="A .parquet file, or a directory for run-ID.parquet."),
    ],
    db: DbOpt = "bench.duckdb",
) -> None:
    """Export a run (with the rest of its --repeat group) to one Parquet file."""
    from benchbench.gate import export_runs
    from benchbench.queries import resolve_run
    from benchbench.store import open_store

    with _one_line_errors():
        store = open_store(db, read_only=True)
        try:
            path, ids = export_runs(store, resolve_run(store, run), output)
        finally:
            store.close()
    Console().print(f"exported run(s) {', '.join(map(str, ids))} to {path}", highlight=False)


def import_command(
    file: Annotated[str, typer.Argument(help="A file written by `bench export`.")],
    db: DbOpt = "bench.duckdb",
    as_json: Annotated[bool, typer.Option("--json", help="Print the new run ids as JSON.")] = False,
) -> None:
    """Import exported runs under new run ids."""
    from benchbench.gate import import_runs
    from benchbench.store import open_store

    with _one_line_errors():
        store = open_store(db)
        try:
            ids = import_runs(store, file)
        finally:
            store.close()
    if as_json:
        print(json.dumps({"run_ids": ids}))
    else:
        Console().print(f"imported as run(s) {', '.join(map(str, ids))}", highlight=False)


def register(app: Any) -> None:
    app.command("gate")(gate_command)
    app.add_typer(baseline_app, name="baseline")
    app.command("export")(export_command)
    app.command("import")(import_command)
