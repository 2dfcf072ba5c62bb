"""`bench sim`: serve the simulated endpoint until Ctrl-C (or SIGTERM).

When ready it prints one JSON line on stdout, `{"port": P, "base_url": ..., "pid": N}`,
which is how SimProcess learns the port it bound with `--port 0`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading

import typer

from benchbench.sim.config import DEFAULT_MODEL, SimConfig, SimConfigError
from benchbench.sim.fault_server import FaultServer, start_faults
from benchbench.sim.faults import describe_faults
from benchbench.sim.server import SimServer, start_sim


def sim_command(
    port: int = typer.Option(8000, help="TCP port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model id served by /v1/models."),
    seed: int = typer.Option(0, help="Seed for outputs, early stops and injected errors."),
    prefill_base_ms: float = typer.Option(5.0, help="Fixed cost of a step that admits requests."),
    prefill_ms_per_token: float = typer.Option(0.02, help="Prefill cost per prompt token."),
    decode_base_ms: float = typer.Option(8.0, help="Fixed cost of one decode step."),
    decode_ms_per_seq: float = typer.Option(0.1, help="Decode step cost per running sequence."),
    max_batch: int = typer.Option(64, help="Most sequences decoding at once; the rest queue FIFO."),
    eos_prob: float = typer.Option(0.0, help="Per-token chance of stopping early (0 = never)."),
    tokens_per_chunk: int = typer.Option(1, help="Generated tokens per streamed chunk."),
    default_max_tokens: int = typer.Option(128, help="max_tokens when a request gives none."),
    error_rate: float = typer.Option(0.0, help="Fraction of requests answered with an error."),
    error_status: int = typer.Option(500, help="HTTP status of injected errors (e.g. 429)."),
    api_key: str | None = typer.Option(None, help="Require 'Authorization: Bearer KEY' on /v1."),
    fast: bool = typer.Option(False, help="All step times zero: stream as fast as possible."),
    reasoning_tokens: int = typer.Option(
        0, help="Chat streams send this many reasoning tokens first (delta.reasoning_content)."
    ),
    reasoning_ratio: float = typer.Option(
        0.0, help="Or this share (0..1) of each response's tokens as reasoning."
    ),
    tool_calls: bool = typer.Option(
        False, help="Chat streams answer with a streamed tool call (delta.tool_calls)."
    ),
    prefix_block: int = typer.Option(16, help="Prefix cache block size, in prompt tokens."),
    prefix_cache_blocks: int = typer.Option(
        4096, help="Blocks the prefix cache holds (LRU); 0 turns the cache off."
    ),
    faults: str | None = typer.Option(
        None,
        help="Serve a hostile endpoint instead: fault names served round-robin "
        "('stall-after-headers,negative-chunk-size'), weighted ('ok:9,trickle:1'), 'all'; "
        "'list' prints every fault. The timing options do not apply.",
    ),
    exit_on_stdin_eof: bool = typer.Option(
        False, help="Exit when stdin closes (so a parent that dies takes the server with it)."
    ),
) -> None:
    """Serve the simulated OpenAI-compatible endpoint until Ctrl-C."""
    if faults is not None and faults.strip() == "list":
        typer.echo(describe_faults())
        return
    try:
        config = SimConfig(
            model=model,
            seed=seed,
            prefill_base_ms=prefill_base_ms,
            prefill_ms_per_token=prefill_ms_per_token,
            decode_base_ms=decode_base_ms,
            decode_ms_per_seq=decode_ms_per_seq,
            max_batch=max_batch,
            eos_prob=eos_prob,
            tokens_per_chunk=tokens_per_chunk,
            default_max_tokens=default_max_tokens,
            error_rate=error_rate,
            error_status=error_status,
            api_key=api_key,
            fast=fast,
            faults=faults,
            reasoning_tokens=reasoning_tokens,
            reasoning_ratio=reasoning_ratio,
            tool_calls=tool_calls,
            prefix_block=prefix_block,
            prefix_cache_blocks=prefix_cache_blocks,
        )
    except SimConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(serve(config, host, port, exit_on_stdin_eof))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


async def serve(config: SimConfig, host: str, port: int, exit_on_stdin_eof: bool = False) -> None:
    """Run the simulator until SIGINT/SIGTERM (or stdin EOF when asked)."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    if exit_on_stdin_eof:

        def watch_stdin() -> None:
            try:
                # os.read, not sys.stdin: a daemon thread blocked inside a buffered
                # reader aborts the interpreter at shutdown.
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            finally:
                loop.call_soon_threadsafe(stopped.set)

        threading.Thread(target=watch_stdin, name="sim-stdin-watch", daemon=True).start()
    server: SimServer | FaultServer
    if config.faults is not None:
        server = await start_faults(config.faults, host, port, model=config.model, seed=config.seed)
        what = f"faults {config.faults}"
    else:
        server = await start_sim(config, host, port)
        what = f"model {config.model}"
    ready = {"port": server.port, "base_url": server.base_url, "pid": os.getpid()}
    print(json.dumps(ready), flush=True)
    print(
        f"benchbench sim: serving {server.base_url} ({what}); Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    engine = asyncio.ensure_future(server.serve_forever())
    waiter = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({engine, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    await server.stop()
    if engine.done() and not engine.cancelled() and engine.exception() is not None:
        raise engine.exception()  # type: ignore[misc]
