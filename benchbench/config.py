"""RunConfig: every knob of `bench run`, validated at the boundary (flags or a TOML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchbench.errors import BenchError


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Target
    endpoint: str | None = None  # base URL ending in /v1; None = the built-in simulator
    api: Literal["chat", "completions"] = "chat"
    model: str | None = None  # read from /v1/models when omitted
    api_key: str | None = Field(default=None, repr=False)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    stream: bool = True
    transport: Literal["raw", "aiohttp", "httpx"] = "raw"
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    timeout_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)

    # Load
    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)
    arrival: str = "poisson"
    burstiness: float | None = Field(default=None, gt=0)
    max_rate: float | None = Field(default=None, gt=0)
    # Closed loop: a user's pause between a response and their next request (sessions: between
    # turns): seconds, or a seeded distribution of seconds ("exp:mean=2", "uniform:min=1,max=3").
    think_time: str = "0"
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    warmup: int = Field(default=0, ge=0)
    drain_timeout_s: float | None = Field(default=None, gt=0)

    # Workload
    workload: str | None = None  # a length preset name
    input_len: str = "lognormal:median=512,sigma=0.6,max=4096"
    output_len: str = "lognormal:median=128,sigma=0.5,max=1024"
    system_prompt_tokens: int = Field(default=0, ge=0)  # 0 with --workload agent: its own
    system_prompt_share: float = Field(default=1.0, ge=0, le=1)  # requests sharing it
    session_turns: str | None = None  # multi-turn sessions: turns per session (a length spec)
    ignore_eos: bool = True
    seed: int = 0
    dataset: str | None = None
    dataset_turns: Literal["first", "all"] = "first"
    exact_lengths: Literal["auto", "server", "tokenizer", "off"] = "auto"
    tokenizer: str | None = None  # a Hugging Face tokenizer.json for exact lengths

    # Trace replay
    trace: str | None = None
    trace_format: str | None = None
    trace_start_s: float = Field(default=0.0, ge=0)
    trace_duration_s: float | None = Field(default=None, gt=0)
    trace_offset_s: float = Field(default=0.0, ge=0)
    speedup: float = Field(default=1.0, gt=0)
    rate_scale: float | None = Field(default=None, gt=0)
    trace_model: str | None = None  # BurstGPT filters
    trace_log_type: str | None = None

    # Store and output
    db: str = "bench.duckdb"
    name: str | None = None
    slo: str | None = None

    # Simulator (when no endpoint)
    sim_fast: bool = False

    # Collectors: energy and server metrics (issue: energy and cost)
    gpus: str | None = None  # "0,1"; None = all visible (CUDA_VISIBLE_DEVICES honoured)
    nvml: bool = True  # try the local NVML collector
    idle_seconds: float = Field(default=3.0, ge=0)
    sample_hz: float = Field(default=10.0, gt=0, le=100)
    scrape: tuple[str, ...] = ()  # Prometheus /metrics URLs
    scrape_interval_s: float = Field(default=1.0, gt=0)
    power_agent: str | None = None
    power_agent_token: str | None = Field(default=None, repr=False)

    # Prices (cost)
    gpu_price: float | None = Field(default=None, ge=0)  # USD per GPU-hour
    instance_price: float | None = Field(default=None, ge=0)  # USD per instance-hour
    gpu_count: int | None = Field(default=None, ge=1)
    kwh_price: float | None = Field(default=None, ge=0)
    pue: float = Field(default=1.0, ge=1.0)
    input_price: float | None = Field(default=None, ge=0)  # USD per 1M input tokens (hosted)
    output_price: float | None = Field(default=None, ge=0)  # USD per 1M output tokens

    # Grouping (sweeps and repeats) and outputs
    repeat: int = Field(default=1, ge=1)
    report: str | None = None  # write an HTML report here after the run

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError(
                f"--endpoint must be an http(s) URL like http://127.0.0.1:8000/v1, got {v!r}"
            )
        return v.rstrip("/")

    @field_validator("think_time", mode="before")
    @classmethod
    def _think_time(cls, v: object) -> str:
        from loadgen.sessions import parse_think_time

        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError(f"give seconds or a distribution, got {v!r}")
        think = parse_think_time(v)
        return "0" if think.is_zero else think.describe()

    @model_validator(mode="after")
    def _load(self) -> RunConfig:
        if self.concurrency is not None and self.rate is not None:
            raise ValueError(
                "give either --concurrency (closed loop) or --rate (open loop), not both"
            )
        if self.session_turns is not None and self.trace is not None:
            raise ValueError("--session-turns builds synthetic sessions: drop --trace")
        if self.think_time != "0" and self.open_loop and self.session_turns is None:
            raise ValueError(
                "--think-time paces closed-loop users (--concurrency) or the turns of "
                "--session-turns; open-loop arrivals do not wait for responses"
            )
        if self.requests is None and self.duration_s is None and self.trace is None:
            object.__setattr__(self, "requests", 100)
        if self.concurrency is None and not self.open_loop:
            object.__setattr__(self, "concurrency", 8)
        return self

    @property
    def open_loop(self) -> bool:
        return self.rate is not None or self.trace is not None

    def public_dict(self) -> dict[str, object]:
        """The config as stored with the run: secrets never reach the store."""
        d = self.model_dump()
        d["api_key"] = "***" if self.api_key else None
        d["headers"] = {k: "***" for k in self.headers}
        d["power_agent_token"] = "***" if self.power_agent_token else None
        return d


def make_config(**kwargs: object) -> RunConfig:
    """Build a RunConfig, turning pydantic's multi-line report into one actionable line."""
    try:
        return RunConfig(**kwargs)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        flag = "--" + loc.removesuffix("_s").replace("_", "-") if loc != "config" else ""
        raise BenchError(f"{flag + ': ' if flag else ''}{msg}") from None
