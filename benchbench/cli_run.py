"""`bench run`: flags -> RunConfig -> one run, a sweep or repeats -> the summary."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live

from benchbench.errors import BenchError

if TYPE_CHECKING:
    from benchbench.config import RunConfig
    from benchbench.sweep import GroupResult

DbOpt = Annotated[str, typer.Option("--db", help="DuckDB store file holding the runs.")]


def _parse_headers(values: list[str]) -> dict[str, str]:
    """'Name: value' flags as a dict; a name that is not a header token, or a value holding
    CR/LF (which would smuggle in another header line), is refused here."""
    from benchbench.config import check_header

    out: dict[str, str] = {}
    for v in values:
        name, sep, value = v.partition(":")
        if not sep or not name.strip():
            raise BenchError(f"--header must look like 'Name: value', got {name.strip()!r}")
        # Only blanks are trimmed: a CR or LF at either end is refused, not silently dropped.
        name, value = name.strip(" \t"), value.strip(" \t")
        try:
            check_header(name, value)
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        out[name] = value
    return out


def run_command(
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1. "
            "Omitted: the built-in simulator is started and benchmarked."
        ),
    ] = None,
    api: Annotated[str, typer.Option(help="chat or completions.")] = "chat",
    model: Annotated[
        str | None, typer.Option(help="Model name; read from /v1/models if omitted.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="Bearer token (default: $OPENAI_API_KEY).", show_default=False),
    ] = None,
    header: Annotated[
        list[str], typer.Option(help="Extra header 'Name: value' (repeatable).")
    ] = [],  # noqa: B006
    concurrency: Annotated[
        str | None,
        typer.Option(help="Closed loop: requests kept in flight; a list (1,4,16,64) sweeps them."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(help="Open loop: requests per second; a list (1,2,4,8) sweeps them."),
    ] = None,
    arrival: Annotated[
        str,
        typer.Option(
            help="Open-loop arrivals: poisson, constant, gamma:cv=2, onoff, ramp:..., diurnal:..."
        ),
    ] = "poisson",
    burstiness: Annotated[
        float | None, typer.Option(help="Gamma shape k for open-loop arrivals (CV = 1/sqrt(k)).")
    ] = None,
    max_rate: Annotated[
        float | None, typer.Option(help="Closed loop: cap the send rate (req/s).")
    ] = None,
    think_time: Annotated[
        str,
        typer.Option(
            help="Closed loop: a user's pause between a response and their next request "
            "(sessions: between turns): seconds, or seeded exp:mean=S or uniform:min=A,max=B."
        ),
    ] = "0",
    requests: Annotated[
        int | None, typer.Option(help="Measured requests to send (default 100 unless --duration).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop sending after this many seconds.")
    ] = None,
    warmup: Annotated[
        int, typer.Option(help="Warm-up requests sent first and excluded from metrics.")
    ] = 0,
    drain_timeout: Annotated[
        float | None,
        typer.Option(help="Cancel requests still running this long after sending stops."),
    ] = None,
    workload: Annotated[
        str | None, typer.Option(help="Length preset (see `bench workloads`).")
    ] = None,
    input_len: Annotated[
        str,
        typer.Option(
            help="Input length: N, uniform:min=..,max=.., normal:mean=..,std=.., lognormal:median=..,sigma=.."
        ),
    ] = "lognormal:median=512,sigma=0.6,max=4096",
    output_len: Annotated[
        str, typer.Option(help="Output length distribution (same forms as --input-len).")
    ] = "lognormal:median=128,sigma=0.5,max=1024",
    system_prompt_tokens: Annotated[
        int, typer.Option(help="Shared system prompt length (tokens).")
    ] = 0,
    system_prompt_share: Annotated[
        float,
        typer.Option(help="Fraction of requests carrying the shared system prompt (0..1)."),
    ] = 1.0,
    session_turns: Annotated[
        str | None,
        typer.Option(
            help="Multi-turn sessions carrying their history: turns per session (N or a "
            "length spec); closed loop, one session per concurrency slot."
        ),
    ] = None,
    exact_lengths: Annotated[
        str,
        typer.Option(
            help="Fit prompts to exact token counts: auto, server (/tokenize), tokenizer "
            "(--tokenizer), off."
        ),
    ] = "auto",
    tokenizer: Annotated[
        str | None, typer.Option(help="A Hugging Face tokenizer.json for --exact-lengths.")
    ] = None,
    ignore_eos: Annotated[
        bool, typer.Option(help="Ask the server to generate exactly max_tokens.")
    ] = True,
    dataset: Annotated[
        str | None, typer.Option(help="Prompts from a ShareGPT JSON, JSONL or text file.")
    ] = None,
    dataset_turns: Annotated[
        str,
        typer.Option(help="Dataset conversations: first user turn, or all turns with history."),
    ] = "first",
    trace: Annotated[
        str | None,
        typer.Option(help="Replay a timestamped trace file (Azure, BurstGPT, Mooncake, ...)."),
    ] = None,
    trace_format: Annotated[
        str | None,
        typer.Option(help="Trace format (default: sniffed): azure, burstgpt, mooncake, ..."),
    ] = None,
    trace_start: Annotated[
        float, typer.Option(help="Replay from this many seconds into the trace.")
    ] = 0.0,
    trace_duration: Annotated[
        float | None, typer.Option(help="Replay this many seconds of trace time.")
    ] = None,
    trace_offset: Annotated[
        float, typer.Option(help="Seconds of run time before the first replayed request.")
    ] = 0.0,
    speedup: Annotated[
        float, typer.Option(help="Replay faster: trace seconds per run second (10 = 10x).")
    ] = 1.0,
    rate_scale: Annotated[
        float | None,
        typer.Option(help="Replay at this multiple of the trace's rate, keeping its duration."),
    ] = None,
    trace_model: Annotated[
        str | None, typer.Option(help="BurstGPT: replay only this model's rows.")
    ] = None,
    trace_log_type: Annotated[
        str | None, typer.Option(help="BurstGPT: replay only this log type's rows.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for lengths, prompts and the schedule.")] = 0,
    stream: Annotated[bool, typer.Option(help="Stream responses (SSE).")] = True,
    transport: Annotated[
        str,
        typer.Option(
            help="HTTP client for streams: raw (asyncio protocol, lowest overhead), aiohttp or httpx (both through httpx)."
        ),
    ] = "raw",
    event_loop: Annotated[
        str, typer.Option(help="Client event loop: auto (uvloop when installed), uvloop, asyncio.")
    ] = "auto",
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a request may stay silent (no byte) before it counts as a timeout."
        ),
    ] = 300.0,
    request_timeout: Annotated[
        float,
        typer.Option(
            help="Total seconds one request may take, from send to the end of its stream "
            "(--timeout is the silence limit)."
        ),
    ] = 1800.0,
    slo: Annotated[
        str | None, typer.Option(help="SLOs for goodput, e.g. ttft_p99_ms=500,tpot_p99_ms=50.")
    ] = None,
    sim_fast: Annotated[
        bool, typer.Option(help="Simulator only: stream as fast as possible.")
    ] = False,
    gpus: Annotated[
        str | None, typer.Option(help="GPU indices for NVML, e.g. 0,1 (default: all visible).")
    ] = None,
    nvml: Annotated[
        bool, typer.Option(help="Measure local GPUs through NVML when present.")
    ] = True,
    idle_seconds: Annotated[
        float, typer.Option(help="Idle baseline before load, for idle watts (0 skips).")
    ] = 3.0,
    scrape: Annotated[
        list[str],
        typer.Option(help="Prometheus /metrics URL to scrape during the run (repeatable)."),
    ] = [],  # noqa: B006
    scrape_interval: Annotated[float, typer.Option(help="Seconds between scrapes.")] = 1.0,
    power_agent: Annotated[
        str | None, typer.Option(help="URL of a `bench agent` on the GPU host.")
    ] = None,
    power_agent_token: Annotated[
        str | None, typer.Option(help="Bearer token for --power-agent.")
    ] = None,
    gpu_price: Annotated[
        float | None, typer.Option(help="USD per GPU-hour (default: a dated table by GPU name).")
    ] = None,
    instance_price: Annotated[
        float | None, typer.Option(help="USD per instance-hour (with --gpu-count).")
    ] = None,
    gpu_count: Annotated[
        int | None, typer.Option(help="GPUs serving the endpoint (for prices).")
    ] = None,
    kwh_price: Annotated[
        float | None, typer.Option(help="USD per kWh, for energy cost (shown separately).")
    ] = None,
    pue: Annotated[float, typer.Option(help="Data-centre PUE applied to energy cost.")] = 1.0,
    input_price: Annotated[
        float | None, typer.Option(help="Hosted API: USD per 1M input tokens.")
    ] = None,
    output_price: Annotated[
        float | None, typer.Option(help="Hosted API: USD per 1M output tokens.")
    ] = None,
    repeat: Annotated[
        int, typer.Option(help="Run the same configuration N times (pooled by `bench gate`).")
    ] = 1,
    report: Annotated[
        str | None, typer.Option(help="Write an HTML report of the run to this path.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label stored with the run.")] = None,
    db: DbOpt = "bench.duckdb",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No live view; summary only (for CI).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Benchmark an endpoint (or the built-in simulator) and store every request."""
    from benchbench.config import make_config
    from benchbench.sweep import parse_list

    rates = parse_list(rate, "--rate", float)
    concurrencies = parse_list(concurrency, "--concurrency", int)
    cfg = make_config(
        endpoint=endpoint,
        api=api,
        model=model,
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or None,
        headers=_parse_headers(header),
        concurrency=concurrencies[0] if concurrencies else None,
        rate=rates[0] if rates else None,
        arrival=arrival,
        burstiness=burstiness,
        max_rate=max_rate,
        think_time=think_time,
        requests=requests,
        duration_s=duration,
        warmup=warmup,
        drain_timeout_s=drain_timeout,
        workload=workload,
        input_len=input_len,
        output_len=output_len,
        system_prompt_tokens=system_prompt_tokens,
        system_prompt_share=system_prompt_share,
        session_turns=session_turns,
        exact_lengths=exact_lengths,
        tokenizer=tokenizer,
        ignore_eos=ignore_eos,
        dataset=dataset,
        dataset_turns=dataset_turns,
        trace=trace,
        trace_format=trace_format,
        trace_start_s=trace_start,
        trace_duration_s=trace_duration,
        trace_offset_s=trace_offset,
        speedup=speedup,
        rate_scale=rate_scale,
        trace_model=trace_model,
        trace_log_type=trace_log_type,
        seed=seed,
        stream=stream,
        transport=transport,
        event_loop=event_loop,
        timeout_s=timeout,
        request_timeout_s=request_timeout,
        slo=slo,
        sim_fast=sim_fast,
        gpus=gpus,
        nvml=nvml,
        idle_seconds=idle_seconds,
        scrape=tuple(scrape),
        scrape_interval_s=scrape_interval,
        power_agent=power_agent,
        power_agent_token=power_agent_token,
        gpu_price=gpu_price,
        instance_price=instance_price,
        gpu_count=gpu_count,
        kwh_price=kwh_price,
        pue=pue,
        input_price=input_price,
        output_price=output_price,
        repeat=repeat,
        report=report,
        name=name,
        db=db,
    )
    if (rates and len(rates) > 1) or (concurrencies and len(concurrencies) > 1):
        from benchbench.cli_traffic import run_group

        group = run_group(cfg, rates, concurrencies, quiet=quiet, as_json=as_json)
        _exit_for_group(group)
        return
    if cfg.repeat > 1:
        from benchbench.cli_traffic import run_group

        group = run_group(cfg, None, None, quiet=quiet, as_json=as_json)
        _exit_for_group(group)
        return
    _run_one(cfg, quiet=quiet, as_json=as_json)


def _exit_for_group(group: GroupResult) -> None:
    """A sweep or repeat exits like one run: 1 when any point failed, 130 when interrupted."""
    if group.failed:
        Console(stderr=True).print(
            f"[red]failed runs in this group: {', '.join(map(str, group.failed))}[/]",
            highlight=False,
        )
        raise typer.Exit(1)
    if group.stopped == "interrupted":
        raise typer.Exit(130)


def _run_one(cfg: RunConfig, *, quiet: bool, as_json: bool) -> None:
    from benchbench.cli_traffic import print_traffic_notes
    from benchbench.console import live_line, print_summary
    from benchbench.sweep import measure, write_report

    console = Console(stderr=as_json)
    if quiet or as_json or not console.is_terminal:
        result = measure(cfg)
    else:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            result = measure(cfg, on_live=lambda s, now: live.update(live_line(s, now)))
    if as_json:
        print(json.dumps(result.summary.to_dict(), default=str))
    else:
        print_summary(Console(), result.summary, result.header)
        print_traffic_notes(Console(), result.summary)
    if cfg.report:
        Console(stderr=True).print(write_report(cfg.db, [result.run_id], cfg.report))
    # A failed run (lost records, a store or task failure) must fail the caller's CI job.
    if result.status == "failed":
        raise typer.Exit(1)
    if result.status == "interrupted":
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
