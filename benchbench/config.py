"""The run's configuration: six frozen sections (target, load, workload, collect, prices,
output), each field's description its only help text. `bench run` builds its flags from these
models (benchbench/cli_options.py), reads them from a TOML file (`--config`) and prints one
(`--print-config`); each stage of a run receives only the sections it needs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchbench.errors import ConfigError
from benchbench.sections import (  # noqa: F401 - the sections are part of the config's API
    _FLAG,
    _SWEEP,
    SECRETS,
    SECTIONS,
    Collect,
    Load,
    Output,
    Prices,
    Section,
    Target,
    Workload,
)
from benchbench.urls import redact_url


def section_of(field: str) -> str:
    """The section that declares `field` (field names are unique across sections)."""
    for name, model in SECTIONS.items():
        if field in model.model_fields:
            return name
    raise ConfigError(f"unknown setting {field!r}")


def flag_of(field: str) -> str:
    """The command-line flag of a field: --field-name without a `_s` unit suffix."""
    info = SECTIONS[section_of(field)].model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return str(extra.get(_FLAG) or "--" + field.removesuffix("_s").replace("_", "-"))


def is_sweepable(field: str) -> bool:
    info = SECTIONS[section_of(field)].model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bool(extra.get(_SWEEP))


class RunConfig(BaseModel):
    """One run's whole configuration, validated across sections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Target = Field(default_factory=Target)
    load: Load = Field(default_factory=Load)
    workload: Workload = Field(default_factory=Workload)
    collect: Collect = Field(default_factory=Collect)
    prices: Prices = Field(default_factory=Prices)
    output: Output = Field(default_factory=Output)

    @model_validator(mode="after")
    def _across_sections(self) -> RunConfig:
        load, wl = self.load, self.workload
        if load.concurrency is not None and load.rate is not None:
            raise ValueError(
                "give either --concurrency (closed loop) or --rate (open loop), not both"
            )
        if wl.session_turns is not None and wl.trace is not None:
            raise ValueError("--session-turns builds synthetic sessions: drop --trace")
        if load.think_time != "0" and self.open_loop and wl.session_turns is None:
            raise ValueError(
                "--think-time paces closed-loop users (--concurrency) or the turns of "
                "--session-turns; open-loop arrivals do not wait for responses"
            )
        defaults: dict[str, Any] = {}
        if load.requests is None and load.duration_s is None and wl.trace is None:
            defaults["requests"] = 100
        if load.concurrency is None and not self.open_loop:
            defaults["concurrency"] = 8
        if defaults:  # values of the section's own types: nothing left to validate
            object.__setattr__(self, "load", load.model_copy(update=defaults))
        return self

    @property
    def open_loop(self) -> bool:
        return self.load.rate is not None or self.workload.trace is not None

    def flat(self) -> dict[str, Any]:
        """Every field by its own name, sections merged."""
        return {k: v for s in SECTIONS for k, v in getattr(self, s).model_dump().items()}

    def replace(self, **changes: Any) -> RunConfig:
        """A validated variant (a sweep point, a search probe): the changed fields are checked
        against every rule, as if given on the command line."""
        return make_config(**{**self.flat(), **changes})

    def public_dict(self) -> dict[str, object]:
        """The config as stored with the run (flat, by field name): secrets never reach the
        store."""
        d = self.flat()
        d["endpoint"] = redact_url(self.target.endpoint) if self.target.endpoint else None
        d["scrape"] = [redact_url(u) for u in self.collect.scrape]
        agent = self.collect.power_agent
        d["power_agent"] = redact_url(agent) if agent else None
        d["api_key"] = "***" if self.target.api_key else None
        d["headers"] = {k: "***" for k in self.target.headers}
        d["power_agent_token"] = "***" if self.collect.power_agent_token else None
        return d


def make_config(sections: dict[str, dict[str, Any]] | None = None, /, **fields: Any) -> RunConfig:
    """A RunConfig from section tables (a TOML file) overridden by fields given by name
    (flags); pydantic's multi-line report becomes one line naming the flag to fix."""
    tables: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for name, table in (sections or {}).items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section [{name}]; sections: {', '.join(SECTIONS)}")
        tables[name].update(table)
    for field, value in fields.items():
        tables[section_of(field)][field] = value
    try:
        return RunConfig(**tables)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    field = next((p for p in reversed(loc) if _known(p)), None)
    if err["type"] == "extra_forbidden":
        return f"unknown setting {'.'.join(loc)!r}"
    flag = flag_of(field) if field else ""
    if flag and msg.startswith(flag):
        flag = ""  # the message names its flag already
    return f"{flag + ': ' if flag else ''}{msg}"


def _known(field: str) -> bool:
    return any(field in m.model_fields for m in SECTIONS.values())
