"""RunConfig: every knob of `bench run`, validated at the boundary (flags or a TOML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchbench.errors import BenchError
from benchbench.urls import redact_url

# RFC 9110 token characters: what a header name may hold.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def check_http_url(url: str, flag: str, example: str) -> None:
    """Raise ValueError (one line, credentials removed) unless `url` is an http(s) URL with a
    host and a valid port: the same URL must not pass here and then fail inside a client."""
    from urllib.parse import urlsplit

    import httpx

    shown = redact_url(url)
    hint = f"{flag} must be an http(s) URL like {example}, got {shown!r}"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{hint} (it holds whitespace or control characters)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
        parsed = httpx.URL(url)
    except ValueError as exc:  # httpx.InvalidURL is not a ValueError; caught below
        raise ValueError(f"{hint} ({_redacted_reason(exc, url, shown)})") from None
    except httpx.InvalidURL as exc:
        raise ValueError(f"{hint} ({_redacted_reason(exc, url, shown)})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(hint)
    if not parts.hostname or not parsed.host:
        raise ValueError(f"{hint} (no host)")
    if port == 0:
        raise ValueError(f"{hint} (port 0)")


def _redacted_reason(exc: Exception, url: str, shown: str) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return reason.replace(url, shown)


def check_header(name: str, value: str) -> None:
    """Raise ValueError unless `name: value` is one well-formed header line: a name of token
    characters, a value without CR, LF or other control characters (tab allowed). A CR/LF in
    a value would otherwise end the line and smuggle in another header. The value is never
    echoed: it may be a secret."""
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(
            f"--header name {name!r} is not a valid header name "
            "(letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise ValueError(
            f"--header {name}: the value holds CR, LF or another control character; "
            "a header value must be one line"
        )


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
    timeout_s: float = Field(default=300.0, gt=0)  # silence: longest wait for the next byte
    # Total: one request from send to the end of its stream (a server may trickle bytes).
    request_timeout_s: float = Field(default=1800.0, gt=0)
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
        check_http_url(v, "--endpoint", "http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    @field_validator("scrape")
    @classmethod
    def _scrape(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for url in v:
            check_http_url(url, "--scrape", "http://127.0.0.1:8000/metrics")
        return v

    @field_validator("power_agent")
    @classmethod
    def _power_agent(cls, v: str | None) -> str | None:
        if v is not None:
            check_http_url(v, "--power-agent", "http://gpu-host:9464")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            check_header(name, value)
        return v

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
        d["endpoint"] = redact_url(self.endpoint) if self.endpoint else None
        d["scrape"] = [redact_url(u) for u in self.scrape]
        d["power_agent"] = redact_url(self.power_agent) if self.power_agent else None
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
        flag = _FLAG_NAMES.get(flag, flag)
        if flag and msg.startswith(flag):
            flag = ""  # the message names its flag already
        raise BenchError(f"{flag + ': ' if flag else ''}{msg}") from None


# Fields whose flag is not their name with dashes.
_FLAG_NAMES = {"--headers": "--header"}
