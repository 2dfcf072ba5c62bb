"""`bench run`'s flags, made from the config sections (benchbench.config): each field becomes
one option whose help is the field's description and whose default is the field's default,
so both are written once. `bench search` takes the same options (less the ones it sets).

Also the config file: `--config run.toml` (section tables, as `--print-config` writes them)
with flags given on the command line overriding it."""

from __future__ import annotations

import inspect
import os
import tomllib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
import typer

from benchbench.config import SECRETS, SECTIONS, RunConfig, flag_of, is_sweepable, make_config
from benchbench.errors import ConfigError


def _cli_type(annotation: Any, sweep: bool) -> Any:
    """The type typer parses a field's flag as."""
    if sweep:
        return str | None  # one value, or a comma-separated list that makes a sweep
    origin = get_origin(annotation)
    if origin is dict or origin is tuple:
        return list[str]  # repeatable: --header 'A: b' --header 'C: d'; --scrape URL ...
    if origin is Literal:
        return str  # checked by the model, which names the valid values
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1 and get_origin(inner[0]) is Literal:
            return str | None
    return annotation


def run_parameters(
    skip: frozenset[str] = frozenset(), defaults: dict[str, Any] | None = None
) -> list[inspect.Parameter]:
    """One keyword parameter per config field (those in `skip` left out), annotated for typer;
    `defaults` replaces a field's default (e.g. a search probe's shorter duration)."""
    params = []
    for model in SECTIONS.values():
        for name, info in model.model_fields.items():
            if name in skip:
                continue
            default = (defaults or {}).get(name, info.get_default(call_default_factory=True))
            if isinstance(default, dict | tuple):
                default = list(default)
            flag = flag_of(name)
            if info.annotation is bool:
                flag = f"{flag}/--no-{flag.removeprefix('--')}"
            option = typer.Option(flag, help=info.description, show_default=True)
            hint = Annotated[_cli_type(info.annotation, is_sweepable(name)), option]
            params.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
                )  # fmt: skip
            )
    return params


def with_parameters(
    func: Callable[..., Any], params: list[inspect.Parameter]
) -> Callable[..., Any]:
    """`func(ctx, **options)` presented to typer with `params` after its own parameters:
    typer reads a command's options from its signature."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=[*own, *params])  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in [*own, *params]}
    return func


def given_on_command_line(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user typed (not their defaults): these override a config file."""
    typed = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    out = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        if source is None or getattr(source, "name", None) in {s.name for s in typed}:
            out[name] = value
    return out


def parse_list(text: str | None, flag: str, cast: type) -> list[Any] | None:
    """`--rate 1,2,4` -> [1.0, 2.0, 4.0]; None stays None. One line on bad input."""
    if text is None:
        return None
    try:
        values = [cast(p) for p in (p.strip() for p in str(text).split(",")) if p]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        kind = "whole numbers" if cast is int else "numbers"
        raise ConfigError(f"{flag} must be {kind} > 0, one or a list like 1,2,4,8; got {text!r}")
    return values


def build_config(
    config_file: str | None, flags: dict[str, Any]
) -> tuple[RunConfig, list[float] | None, list[int] | None]:
    """The run's config from the file (if any) overridden by `flags`, and the sweep lists of
    --rate and --concurrency (None unless given)."""
    flags = dict(flags)
    rates = parse_list(flags.pop("rate", None), "--rate", float)
    concurrencies = parse_list(flags.pop("concurrency", None), "--concurrency", int)
    if rates:
        flags["rate"] = rates[0]
    if concurrencies:
        flags["concurrency"] = concurrencies[0]
    sections = read_config_file(config_file) if config_file else {}
    from_file = isinstance(sections.get("target"), dict) and "api_key" in sections["target"]
    if "api_key" not in flags and not from_file and os.environ.get("OPENAI_API_KEY"):
        flags["api_key"] = os.environ["OPENAI_API_KEY"]
    return make_config(sections, **flags), rates, concurrencies


def read_config_file(path: str) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"--config {path}: {name!r} must be a [section] table")
    return data


def to_toml(cfg: RunConfig) -> str:
    """The config as TOML section tables that `--config` reads back to the same config.
    Unset (None) fields are left out; secrets are never printed."""
    lines = ["# bench run --config FILE; flags given with it override these values", ""]
    for name in SECTIONS:
        lines.append(f"[{name}]")
        for key, value in getattr(cfg, name).model_dump().items():
            if value is None or key in SECRETS:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    lines.append("# not printed: api_key (set OPENAI_API_KEY), headers, power_agent_token")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest round-tripping form; finite by the models' bounds
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
