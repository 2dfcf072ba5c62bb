"""`bench agent`: serve this host's NVML energy and power readings to a remote `bench run`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from benchbench.errors import BenchError


def agent_command(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9464,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; loopback unless you mean to expose it (use --token)."),
    ] = "127.0.0.1",
    token: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer TOKEN' on every request.")
    ] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU indices, e.g. 0,1 (default: all).")] = None,
) -> None:
    """Serve read-only NVML snapshots (GET /snapshot) for `bench run --power-agent URL`."""
    from collectors.agent import make_agent_server, serve_until_interrupted
    from collectors.nvml import NvmlUnavailable

    selection = (
        [int(g) if g.strip().isdigit() else g.strip() for g in gpus.split(",")] if gpus else None
    )
    try:
        server = make_agent_server(host=host, port=port, token=token, gpus=selection)
    except (NvmlUnavailable, ValueError) as exc:
        raise BenchError(str(exc)) from None
    err = Console(stderr=True)
    if host not in ("127.0.0.1", "::1", "localhost") and not token:
        err.print(
            f"[yellow]warning:[/] serving on {host} without --token: anyone who can reach "
            "this port can read the GPU readings"
        )
    err.print(f"bench agent on {server.url}/snapshot (Ctrl-C to stop)")
    serve_until_interrupted(server)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent_command)
