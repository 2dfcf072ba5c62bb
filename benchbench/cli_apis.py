"""`bench apis`: every --api value, built in or installed as a plugin (the
`benchbench.adapters` entry points), with where its requests go."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from benchbench.cli_render import wide_console
from benchbench.errors import ConfigError


def api_rows() -> list[dict[str, Any]]:
    """One row per --api name: built-ins first, then plugins (their declared details)."""
    from loadgen.apis import BadAdapter, known, lookup

    rows = []
    for name, listed in known().items():
        try:
            info = lookup(name)
        except BadAdapter as exc:  # listed, so the user sees the broken plugin and why
            rows.append({"name": name, "source": "plugin", "broken": str(exc)})
            continue
        rows.append(
            {
                "name": name,
                "source": f"plugin {listed.target}" if info.plugin else "built-in",
                "shape": info.shape,
                "at": "server root" if info.at_root else "--endpoint (e.g. .../v1)",
                "models": info.models,
                "summary": info.summary,
            }
        )
    return rows


def apis_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the APIs `bench run --api NAME` speaks, plugins included."""
    try:
        rows = api_rows()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="APIs (--api)")
    for column in ("api", "requests", "paths under", "source", "what"):
        table.add_column(column)
    for r in rows:
        if "broken" in r:
            table.add_row(r["name"], "", "", r["source"], f"cannot load: {r['broken']}")
        else:
            table.add_row(r["name"], r["shape"], r["at"], r["source"], r["summary"])
    wide_console().print(table)


def register(app: typer.Typer) -> None:
    app.command("apis")(apis_command)
