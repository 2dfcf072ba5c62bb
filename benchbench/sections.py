"""The six sections of a run's configuration, each a frozen model whose field descriptions
are the only help text of `bench run`'s flags (benchbench.cli_options makes them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from benchbench.checks import check_header, check_http_url, parse_header_lines

# Fields that the command line spells differently from `--field-name` (minus a `_s` suffix).
_FLAG = "flag"
# Fields whose flag also takes a comma-separated list, which makes a sweep.
_SWEEP = "sweep"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(Section):
    """The endpoint under test and how the client talks to it."""

    endpoint: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1 "
        "(native APIs such as llamacpp, tgi, ollama-* drop a trailing /v1). "
        "Omitted: the built-in simulator is started and benchmarked.",
    )
    api: str = Field(
        "chat",
        description="API to benchmark: chat, completions, responses, messages, llamacpp, tgi, "
        "ollama-chat, ollama-generate, or an installed plugin; `bench apis` lists them.",
    )
    model: str | None = Field(None, description="Model name; read from /v1/models if omitted.")
    api_key: str | None = Field(
        None, repr=False, description="Bearer token (default: $OPENAI_API_KEY)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Extra header 'Name: value' (repeatable).",
        json_schema_extra={_FLAG: "--header"},
    )
    stream: bool = Field(True, description="Stream responses (SSE).")
    transport: Literal["raw", "aiohttp", "httpx"] = Field(
        "raw",
        description="HTTP client for streams: raw (asyncio protocol, lowest overhead), aiohttp "
        "or httpx (both through httpx).",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto", description="Client event loop: auto (uvloop when installed), uvloop, asyncio."
    )
    timeout_s: float = Field(
        300.0,
        gt=0,
        description="Seconds a request may stay silent (no byte) before it counts as a timeout.",
    )
    request_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Total seconds one request may take, from send to the end of its stream "
        "(--timeout is the silence limit).",
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    sim_fast: bool = Field(False, description="Simulator only: stream as fast as possible.")

    @field_validator("api")
    @classmethod
    def _api(cls, v: str) -> str:
        # The registry's name check imports no adapter (only entry-point metadata).
        from loadgen.apis import check_name

        return check_name(v)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        check_http_url(v, "--endpoint", "http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: object) -> object:
        if isinstance(v, list | tuple):  # 'Name: value' lines, as the flag gives them
            return parse_header_lines([str(line) for line in v])
        if isinstance(v, dict):
            for name, value in v.items():
                check_header(str(name), str(value))
        return v


class Load(Section):
    """When requests are sent: open loop (a rate) or closed loop (a concurrency), and for how
    long."""

    concurrency: int | None = Field(
        None,
        ge=1,
        description="Closed loop: requests kept in flight; a list (1,4,16,64) sweeps them.",
        json_schema_extra={_SWEEP: True},
    )
    rate: float | None = Field(
        None,
        gt=0,
        description="Open loop: requests per second; a list (1,2,4,8) sweeps them.",
        json_schema_extra={_SWEEP: True},
    )
    arrival: str = Field(
        "poisson",
        description="Open-loop arrivals: poisson, constant, gamma:cv=2, onoff, ramp:..., "
        "diurnal:...",
    )
    burstiness: float | None = Field(
        None, gt=0, description="Gamma shape k for open-loop arrivals (CV = 1/sqrt(k))."
    )
    max_rate: float | None = Field(
        None, gt=0, description="Closed loop: cap the send rate (req/s)."
    )
    think_time: str = Field(
        "0",
        description="Closed loop: a user's pause between a response and their next request "
        "(sessions: between turns): seconds, or seeded exp:mean=S or uniform:min=A,max=B.",
    )
    requests: int | None = Field(
        None, ge=1, description="Measured requests to send (default 100 unless --duration)."
    )
    duration_s: float | None = Field(
        None, gt=0, description="Stop sending after this many seconds."
    )
    warmup: int = Field(
        0, ge=0, description="Warm-up requests sent first and excluded from metrics."
    )
    drain_timeout_s: float | None = Field(
        None, gt=0, description="Cancel requests still running this long after sending stops."
    )
    workers: str = Field(
        "1",
        description="Client worker processes driving the load (N, or auto: as many as "
        "`bench calibrate` says this machine needs).",
    )
    ray: str | None = Field(
        None,
        description="Run the workers as Ray actors across a Ray cluster: its address, or auto "
        "(needs the ray extra).",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: object) -> str:
        text = str(v).strip().lower()
        if text == "auto" or (text.isdigit() and int(text) >= 1):
            return text
        raise ValueError(f"give a number of workers (1, 2, ...) or auto, got {v!r}")

    @field_validator("think_time", mode="before")
    @classmethod
    def _think_time(cls, v: object) -> str:
        from loadgen.sessions import parse_think_time

        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError(f"give seconds or a distribution, got {v!r}")
        think = parse_think_time(v)
        return "0" if think.is_zero else think.describe()


class Workload(Section):
    """What is sent: synthetic lengths, a dataset, sessions, or a replayed trace."""

    preset: str | None = Field(
        None,
        description="Length preset (see `bench workloads`).",
        json_schema_extra={_FLAG: "--workload"},
    )
    input_len: str = Field(
        "lognormal:median=512,sigma=0.6,max=4096",
        description="Input length: N, uniform:min=..,max=.., normal:mean=..,std=.., "
        "lognormal:median=..,sigma=..",
    )
    output_len: str = Field(
        "lognormal:median=128,sigma=0.5,max=1024",
        description="Output length distribution (same forms as --input-len).",
    )
    system_prompt_tokens: int = Field(0, ge=0, description="Shared system prompt length (tokens).")
    system_prompt_share: float = Field(
        1.0, ge=0, le=1, description="Fraction of requests carrying the shared system prompt."
    )
    session_turns: str | None = Field(
        None,
        description="Multi-turn sessions carrying their history: turns per session (N or a "
        "length spec); closed loop, one session per concurrency slot.",
    )
    ignore_eos: bool = Field(True, description="Ask the server to generate exactly max_tokens.")
    salt: bool = Field(
        True,
        description="Start every prompt with a short per-run nonce so a rerun is never served "
        "from the server's prompt cache; --no-salt sends byte-identical prompts (warm-cache "
        "runs).",
    )
    seed: int = Field(0, description="Seed for lengths, prompts and the schedule.")
    batch_size: int = Field(
        1, ge=1, description="Embeddings: inputs per request; rerank: queries are sent one by one."
    )
    documents: int = Field(8, ge=1, description="Rerank: documents per query.")
    dataset: str | None = Field(
        None, description="Prompts from a ShareGPT JSON, JSONL or text file."
    )
    dataset_turns: Literal["first", "all"] = Field(
        "first", description="Dataset conversations: first user turn, or all turns with history."
    )
    exact_lengths: Literal["auto", "server", "tokenizer", "off"] = Field(
        "auto",
        description="Fit prompts to exact token counts: auto, server (/tokenize), tokenizer "
        "(--tokenizer), off.",
    )
    tokenizer: str | None = Field(
        None, description="A Hugging Face tokenizer.json for --exact-lengths."
    )
    trace: str | None = Field(
        None, description="Replay a timestamped trace file (Azure, BurstGPT, Mooncake, ...)."
    )
    trace_format: str | None = Field(
        None, description="Trace format (default: sniffed): azure, burstgpt, mooncake, ..."
    )
    trace_start_s: float = Field(
        0.0, ge=0, description="Replay from this many seconds into the trace."
    )
    trace_duration_s: float | None = Field(
        None, gt=0, description="Replay this many seconds of trace time."
    )
    trace_offset_s: float = Field(
        0.0, ge=0, description="Seconds of run time before the first replayed request."
    )
    speedup: float = Field(
        1.0, gt=0, description="Replay faster: trace seconds per run second (10 = 10x)."
    )
    rate_scale: float | None = Field(
        None, gt=0, description="Replay at this multiple of the trace's rate, keeping its duration."
    )
    trace_model: str | None = Field(None, description="BurstGPT: replay only this model's rows.")
    trace_log_type: str | None = Field(
        None, description="BurstGPT: replay only this log type's rows."
    )


class Collect(Section):
    """What is measured beside the requests: GPU power and energy, server metrics."""

    gpus: str | None = Field(
        None, description="GPU indices for NVML, e.g. 0,1 (default: all visible)."
    )
    nvml: bool = Field(True, description="Measure local GPUs through NVML when present.")
    idle_seconds: float = Field(
        3.0, ge=0, description="Idle baseline before load, for idle watts (0 skips)."
    )
    sample_hz: float = Field(10.0, gt=0, le=100, description="Power samples per second per GPU.")
    scrape: tuple[str, ...] = Field(
        (), description="Prometheus /metrics URL to scrape during the run (repeatable)."
    )
    scrape_interval_s: float = Field(1.0, gt=0, description="Seconds between scrapes.")
    power_agent: str | None = Field(None, description="URL of a `bench agent` on the GPU host.")
    power_agent_token: str | None = Field(
        None, repr=False, description="Bearer token for --power-agent."
    )

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


class Prices(Section):
    """What the hardware or the hosted API costs (cost figures are omitted without them)."""

    gpu_price: float | None = Field(
        None,
        ge=0,
        description="USD per GPU-hour (default: a dated table by GPU name); without "
        "--gpu-count, a remote endpoint counts as one GPU.",
    )
    instance_price: float | None = Field(
        None, ge=0, description="USD per instance-hour (with --gpu-count)."
    )
    gpu_count: int | None = Field(None, ge=1, description="GPUs serving the endpoint (for prices).")
    kwh_price: float | None = Field(
        None, ge=0, description="USD per kWh, for energy cost (shown separately)."
    )
    pue: float = Field(1.0, ge=1.0, description="Data-centre PUE applied to energy cost.")
    input_price: float | None = Field(
        None, ge=0, description="Hosted API: USD per 1M input tokens."
    )
    output_price: float | None = Field(
        None, ge=0, description="Hosted API: USD per 1M output tokens."
    )


class Output(Section):
    """Where the run is stored and what is made of it."""

    db: str = Field("bench.duckdb", description="DuckDB store file holding the runs.")
    name: str | None = Field(None, description="A label stored with the run.")
    slo: str | None = Field(
        None, description="SLOs for goodput, e.g. ttft_p99_ms=500,tpot_p99_ms=50."
    )
    repeat: int = Field(
        1, ge=1, description="Run the same configuration N times (pooled by `bench gate`)."
    )
    report: str | None = Field(None, description="Write an HTML report of the run to this path.")


SECTIONS: dict[str, type[Section]] = {
    "target": Target,
    "load": Load,
    "workload": Workload,
    "collect": Collect,
    "prices": Prices,
    "output": Output,
}
# Fields whose value is a secret: never stored, never printed.
SECRETS = frozenset({"api_key", "headers", "power_agent_token"})
