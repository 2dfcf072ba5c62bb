"""`bench run`: flags (and/or a TOML file) -> RunConfig -> one run, a sweep or repeats ->
the summary. The options are made from the config sections (benchbench.cli_options)."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from benchbench.cli_options import (
    build_config,
    given_on_command_line,
    run_parameters,
    to_toml,
    with_parameters,
)
from benchbench.errors import ConfigError

if TYPE_CHECKING:
    from benchbench.config import RunConfig
    from benchbench.sweep import GroupResult, Point


def run_command(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(help="Read settings from this TOML file (flags given as well override it)."),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(help="Print the settings as a TOML file for --config, and run nothing."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live view; summary only (for CI).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    **options: Any,
) -> None:
    """Benchmark an endpoint (or the built-in simulator) and store every request."""
    cfg, rates, concurrencies = build_config(config, given_on_command_line(ctx, options))
    if print_config:
        print(to_toml(cfg), end="")
        return
    from benchbench.calibrate_headroom import warn_before_run

    warn_before_run(cfg, rates, concurrencies)
    sweep = (rates and len(rates) > 1) or (concurrencies and len(concurrencies) > 1)
    if sweep or cfg.output.repeat > 1:
        group = run_group(cfg, rates, concurrencies, quiet=quiet, as_json=as_json)
        exit_for_group(group)
        return
    run_one(cfg, quiet=quiet, as_json=as_json)


with_parameters(run_command, run_parameters())


def run_one(cfg: RunConfig, *, quiet: bool, as_json: bool) -> None:
    from benchbench.calibrate import recommended_workers
    from benchbench.cli_render import print_traffic_notes
    from benchbench.console import live_line, print_summary
    from benchbench.execute import RunPlan, execute

    console = Console(stderr=as_json)
    # --workers auto: as many as this machine's stored calibration says the load needs.
    plan = RunPlan(cfg, recommend_workers=recommended_workers)
    if quiet or as_json or not console.is_terminal:
        result = execute(plan)
    else:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            show = lambda s, now: live.update(live_line(s, now))  # noqa: E731
            result = execute(dataclasses.replace(plan, on_live=show))
    if as_json:
        print(json.dumps(result.summary.to_dict(), default=str))
    else:
        print_summary(Console(), result.summary, result.header)
        print_traffic_notes(Console(), result.summary)
    _report(cfg, [result.run_id])
    # A failed run (lost records, a store or task failure) must fail the caller's CI job.
    if result.status == "failed":
        raise typer.Exit(1)
    if result.status == "interrupted":
        raise typer.Exit(130)


def run_group(
    cfg: RunConfig,
    rates: list[float] | None,
    concurrencies: list[int] | None,
    *,
    quiet: bool,
    as_json: bool,
) -> GroupResult:
    """A sweep (rate or concurrency lists) or --repeat N, printed as one table."""
    from benchbench.cli_render import points_table, wide_console
    from benchbench.sweep import run_repeats, run_sweep

    err = Console(stderr=True)

    def progress(p: Point) -> None:
        if not as_json and not quiet:
            note = f"  saturated: {p.saturated}" if p.saturated else ""
            err.print(f"point {p.index} ({p.load}): run {p.run_id} done{note}", highlight=False)

    multi_rate, multi_conc = bool(rates and len(rates) > 1), bool(concurrencies and len(concurrencies) > 1)  # fmt: skip
    if (multi_rate or multi_conc) and cfg.output.repeat > 1:
        raise ConfigError("give a --rate/--concurrency list (a sweep) or --repeat N, not both")
    if multi_rate or multi_conc:
        group = run_sweep(
            cfg,
            rates=rates if multi_rate else None,
            concurrencies=concurrencies if multi_conc else None,
            on_point=progress,
        )
    else:
        group = run_repeats(cfg, on_point=progress)
    if as_json:
        out = {"group_id": group.group_id, "kind": group.kind, "stopped": group.stopped,
               "points": [p.row() for p in group.points]}  # fmt: skip
        print(json.dumps(out, default=str))
    else:
        console = wide_console()
        console.print(points_table(group.points, f"{group.kind} {group.group_id}"))
        if group.stopped:
            console.print(f"[yellow]{group.stopped}[/]", highlight=False)
        if cfg.output.slo:
            console.print(f"SLOs: {cfg.output.slo} (goodput counts errors in the denominator)")
    _report(cfg, group.run_ids)
    return group


def _report(cfg: RunConfig, run_ids: list[int]) -> None:
    if cfg.output.report:
        from benchbench.report_file import write_report

        info = write_report(cfg.output.db, run_ids, cfg.output.report)
        Console(stderr=True).print(f"report written to {info.path}", highlight=False)


def exit_for_group(group: GroupResult) -> None:
    """A sweep or repeat exits like one run: 1 when any point failed, 130 when interrupted."""
    if group.failed:
        Console(stderr=True).print(
            f"[red]failed runs in this group: {', '.join(map(str, group.failed))}[/]",
            highlight=False,
        )
        raise typer.Exit(1)
    if group.stopped == "interrupted":
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
