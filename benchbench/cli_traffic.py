"""Traffic commands: `bench workloads` (the length presets) and `bench search` (highest rate
meeting SLOs), plus the rendering of sweeps, repeats and traffic notes for `bench run`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchbench.config import RunConfig
    from benchbench.metrics import RunSummary
    from benchbench.sweep import GroupResult, Point


def _console() -> Console:
    """stdout; when piped, wide enough that tables are not squeezed to 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def workload_rows() -> list[dict[str, Any]]:
    """Every preset with its input/output p50/p90/p99 (tokens) and its source."""
    import numpy as np

    from benchbench.traffic import (
        AGENT_INPUT,
        AGENT_OUTPUT,
        AGENT_SOURCE,
        AGENT_SYSTEM_FRACTION,
    )
    from loadgen.lengths import parse_length
    from loadgen.presets import PRESETS

    rows = []
    for p in PRESETS.values():
        rows.append(
            {
                "name": p.name,
                "api": p.api,
                **{f"input_p{q}": p.input.quantile(q) for q in (50, 90, 99)},
                **{f"output_p{q}": p.output.quantile(q) for q in (50, 90, 99)},
                "source": p.source,
                "description": p.description,
            }
        )
    rng = np.random.default_rng(0)
    agent_in = parse_length(AGENT_INPUT).sample(rng, 20_000)
    agent_out = parse_length(AGENT_OUTPUT).sample(rng, 20_000)
    rows.append(
        {
            "name": "agent",
            "api": "chat",
            **{f"input_p{q}": int(np.percentile(agent_in, q)) for q in (50, 90, 99)},
            **{f"output_p{q}": int(np.percentile(agent_out, q)) for q in (50, 90, 99)},
            "source": AGENT_SOURCE,
            "description": (
                f"tool/agent calls: a shared system prompt of ~{AGENT_SYSTEM_FRACTION:.0%} of "
                f"the mean input ({round(AGENT_SYSTEM_FRACTION * float(agent_in.mean())):,} "
                "tokens) in every request"
            ),
        }
    )
    return rows


def workloads_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the workload presets (--workload NAME): token lengths and where they come from."""
    rows = workload_rows()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="workload presets (tokens)")
    table.add_column("preset")
    table.add_column("api")
    for side in ("in", "out"):
        for q in ("p50", "p90", "p99"):
            table.add_column(f"{side} {q}", justify="right")
    table.add_column("source")
    for r in rows:
        table.add_row(
            r["name"],
            r["api"],
            *(
                f"{r[f'{side}_{q}']:,}"
                for side in ("input", "output")
                for q in ("p50", "p90", "p99")
            ),
            r["source"],
        )
    _console().print(table)


def points_table(points: list[Point], title: str) -> Table:
    table = Table(title=title)
    for col in (
        "load",
        "run",
        "achieved/s",
        "done/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "TPOT p99",
        "goodput/s",
        "SLO met",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("load", "note") else "right")
    for p in points:
        r = p.row()
        met = r["slo_met"]
        table.add_row(
            p.load,
            str(p.run_id),
            _fmt(r["achieved_rate"], 2),
            _fmt(r["completed_rate"], 2),
            _fmt(r["output_tok_s"], 0),
            _fmt(r["ttft_p50_ms"]),
            _fmt(r["ttft_p99_ms"]),
            _fmt(r["tpot_p99_ms"]),
            _fmt(r["goodput_rps"], 2),
            "-" if met is None else ("yes" if met else "[red]no[/]"),
            f"[yellow]saturated:[/] {p.saturated}" if p.saturated else "",
        )
    return table


def run_group(
    cfg: RunConfig,
    rates: list[float] | None,
    concurrencies: list[int] | None,
    *,
    quiet: bool,
    as_json: bool,
) -> GroupResult:
    """A sweep (rate or concurrency lists) or --repeat N, printed as one table."""
    from benchbench.errors import BenchError
    from benchbench.sweep import run_repeats, run_sweep, write_report

    err = Console(stderr=True)

    def progress(p: Point) -> None:
        if not as_json and not quiet:
            note = f"  saturated: {p.saturated}" if p.saturated else ""
            err.print(f"point {p.index} ({p.load}): run {p.run_id} done{note}", highlight=False)

    multi = (rates and len(rates) > 1) or (concurrencies and len(concurrencies) > 1)
    if multi and cfg.repeat > 1:
        raise BenchError("give a --rate/--concurrency list (a sweep) or --repeat N, not both")
    if multi:
        group = run_sweep(
            cfg,
            rates=rates if rates and len(rates) > 1 else None,
            concurrencies=concurrencies if concurrencies and len(concurrencies) > 1 else None,
            on_point=progress,
        )
    else:
        group = run_repeats(cfg, on_point=progress)
    if as_json:
        out = {
            "group_id": group.group_id,
            "kind": group.kind,
            "stopped": group.stopped,
            "points": [p.row() for p in group.points],
        }
        print(json.dumps(out, default=str))
    else:
        console = _console()
        console.print(points_table(group.points, f"{group.kind} {group.group_id}"))
        if group.stopped:
            console.print(f"[yellow]{group.stopped}[/]", highlight=False)
        if cfg.slo:
            console.print(f"SLOs: {cfg.slo} (goodput counts errors in the denominator)")
    if cfg.report:
        err.print(write_report(cfg.db, group.run_ids, cfg.report))
    return group


def print_traffic_notes(console: Console, summary: RunSummary) -> None:
    """What the traffic itself says: replay drift, ideal prefix hit, exact lengths, fingerprint."""
    traffic = summary.extra.get("traffic") or {}
    drift = summary.extra.get("replay_drift")
    if drift and drift.get("n"):
        console.print(
            f"replay drift (sent - intended): p50 {drift['p50_ms']:.2f} ms, "
            f"p99 {drift['p99_ms']:.2f} ms, max {drift['max_ms']:.2f} ms over {drift['n']} sends",
            highlight=False,
        )
    if "ideal_prefix_hit" in traffic:
        console.print(
            f"ideal prefix-hit ratio {traffic['ideal_prefix_hit']:.1%} "
            f"({traffic.get('ideal_prefix_hit_basis', '')}); the server's own hit ratio "
            "comes from its metrics",
            highlight=False,
        )
    exact = traffic.get("exact_lengths")
    if isinstance(exact, dict):
        stats = exact.get("stats")
        done = f", {stats['fitted']} fitted, {stats['unfit']} not" if stats else ""
        console.print(f"prompt lengths: {exact.get('method')}{done}", highlight=False)
    if traffic.get("fingerprint"):
        console.print(
            f"traffic fingerprint {traffic['fingerprint'][:16]} "
            f"(first {traffic.get('fingerprint_requests')} requests)",
            style="dim",
            highlight=False,
        )


def search_command(
    slo: Annotated[str, typer.Option(help="SLOs to meet, e.g. ttft_p99_ms=500,tpot_p99_ms=50.")],
    low: Annotated[float, typer.Option(help="Lowest rate to try (req/s); should pass.")] = 1.0,
    high: Annotated[float, typer.Option(help="Highest rate to try (req/s); should fail.")] = 64.0,
    precision: Annotated[
        float, typer.Option(help="Stop when high/low <= 1 + precision (0.1 = within 10%).")
    ] = 0.1,
    max_probes: Annotated[int, typer.Option(help="Give up after this many probes.")] = 20,
    duration: Annotated[float, typer.Option(help="Seconds each probe sends for.")] = 10.0,
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL (.../v1); omitted: the built-in simulator.")
    ] = None,
    api: Annotated[str, typer.Option(help="chat or completions.")] = "chat",
    model: Annotated[str | None, typer.Option(help="Model name (default: /v1/models).")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Bearer token (default: $OPENAI_API_KEY).")
    ] = None,
    arrival: Annotated[str, typer.Option(help="Arrival process, as in `bench run`.")] = "poisson",
    workload: Annotated[str | None, typer.Option(help="Length preset.")] = None,
    input_len: Annotated[
        str, typer.Option(help="Input length spec.")
    ] = "lognormal:median=512,sigma=0.6,max=4096",
    output_len: Annotated[
        str, typer.Option(help="Output length spec.")
    ] = "lognormal:median=128,sigma=0.5,max=1024",
    seed: Annotated[int, typer.Option(help="Seed for lengths, prompts and schedule.")] = 0,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may stay silent, as in `bench run`.")
    ] = 300.0,
    request_timeout: Annotated[
        float, typer.Option(help="Total seconds one request may take, as in `bench run`.")
    ] = 1800.0,
    sim_fast: Annotated[
        bool, typer.Option(help="Simulator only: stream as fast as possible.")
    ] = False,
    db: Annotated[str, typer.Option("--db", help="DuckDB store file.")] = "bench.duckdb",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Find the highest request rate that meets the SLOs, by bisection over short runs."""
    import os

    from benchbench.config import make_config
    from benchbench.search import search_rate

    cfg = make_config(
        endpoint=endpoint,
        api=api,
        model=model,
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or None,
        rate=low,
        arrival=arrival,
        duration_s=duration,
        workload=workload,
        input_len=input_len,
        output_len=output_len,
        seed=seed,
        timeout_s=timeout,
        request_timeout_s=request_timeout,
        slo=slo,
        sim_fast=sim_fast,
        idle_seconds=0.0,
        db=db,
    )
    err = Console(stderr=True)

    def show(p: Any) -> None:
        if not as_json:
            verdict = "[green]pass[/]" if p.passed else "[red]fail[/]"
            err.print(f"probe {p.rate:8.3f} req/s  run {p.point.run_id}  {verdict}  {p.why}")

    result = search_rate(
        cfg, low=low, high=high, precision=precision, max_probes=max_probes, on_probe=show
    )
    if as_json:
        print(json.dumps(result.to_dict(), default=str))
        return
    console = _console()
    console.print(points_table([p.point for p in result.probes], f"search {result.group_id}"))
    best = "none" if result.best_rate is None else f"{result.best_rate:.4g} req/s"
    console.print(f"highest rate meeting {slo}: [bold]{best}[/] ({result.note})")
    if result.best_rate is None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("workloads")(workloads_command)
    app.command("search")(search_command)
