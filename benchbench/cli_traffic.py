"""Traffic commands: `bench workloads` (the length presets) and `bench search` (the highest
rate meeting SLOs; it takes `bench run`'s options, made from the same config sections)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchbench.cli_options import (
    build_config,
    given_on_command_line,
    run_parameters,
    with_parameters,
)
from benchbench.cli_render import wide_console


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
    wide_console().print(table)


def search_command(
    ctx: typer.Context,
    slo: Annotated[str, typer.Option(help="SLOs to meet, e.g. ttft_p99_ms=500,tpot_p99_ms=50.")],
    low: Annotated[float, typer.Option(help="Lowest rate to try (req/s); should pass.")] = 1.0,
    high: Annotated[float, typer.Option(help="Highest rate to try (req/s); should fail.")] = 64.0,
    precision: Annotated[
        float, typer.Option(help="Stop when high/low <= 1 + precision (0.1 = within 10%).")
    ] = 0.1,
    max_probes: Annotated[int, typer.Option(help="Give up after this many probes.")] = 20,
    config: Annotated[
        str | None, typer.Option(help="Read settings from this TOML file, as `bench run` does.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    **options: Any,
) -> None:
    """Find the highest request rate that meets the SLOs, by bisection over short runs."""
    from benchbench.cli_render import points_table, wide_console
    from benchbench.search import search_rate

    flags = {**given_on_command_line(ctx, options), "rate": str(low), "slo": slo}
    for name, value in SEARCH_DEFAULTS.items():
        flags.setdefault(name, value)
    cfg, _, _ = build_config(config, flags)
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
    console = wide_console()
    console.print(points_table([p.point for p in result.probes], f"search {result.group_id}"))
    best = "none" if result.best_rate is None else f"{result.best_rate:.4g} req/s"
    console.print(f"highest rate meeting {slo}: [bold]{best}[/] ({result.note})")
    if result.best_rate is None:
        raise typer.Exit(1)


# A probe is short and needs no idle baseline; the search sets the rate, the SLOs and groups.
SEARCH_DEFAULTS = {"duration_s": 10.0, "idle_seconds": 0.0}
with_parameters(
    search_command,
    run_parameters(frozenset({"rate", "concurrency", "slo", "repeat", "report"}), SEARCH_DEFAULTS),
)


def register(app: typer.Typer) -> None:
    app.command("workloads")(workloads_command)
    app.command("search")(search_command)
