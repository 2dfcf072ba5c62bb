"""`bench run` as a library call: target -> traffic -> runner -> store -> summary.

The event loop only sends, timestamps and appends records; the store writes on its own
thread; the simulator (when no endpoint is given) runs in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import platform
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchbench import __version__
from benchbench.collect import CollectorSet, build_collectors, energy_and_cost, validate_prices
from benchbench.config import RunConfig
from benchbench.errors import BenchError
from benchbench.live import LiveStats
from benchbench.metrics import RunSummary, parse_slos, summarize
from benchbench.server_view import server_view
from benchbench.store import BatchWriter, open_store
from benchbench.target import auth_headers, discover_model
from benchbench.traffic import build_traffic
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.runner import LoadPlan, Runner, RunOutcome
from loadgen.spec import RequestRecord

Clock = Callable[[], int]
T = TypeVar("T")
LiveCallback = Callable[[LiveStats, int], None]


@dataclass
class RunResult:
    run_id: int
    summary: RunSummary
    outcome: RunOutcome
    header: dict[str, Any] = field(default_factory=dict)


def run_benchmark(
    cfg: RunConfig,
    *,
    clock: Clock = time.monotonic_ns,
    on_live: LiveCallback | None = None,
    group: RunGroup | None = None,
    nvml: Any | None = None,
) -> RunResult:
    """One measured run, stored under a new run id. `group` ties sweep points or repeats."""
    slos = parse_slos(cfg.slo) if cfg.slo else None
    traffic = build_traffic(cfg)  # validate the workload before touching anything else
    validate_prices(cfg)
    with contextlib.ExitStack() as stack:
        base_url = cfg.endpoint
        sim_note = sim_metrics = None
        if base_url is None:
            from benchbench.sim import SimConfig, SimProcess

            sim = stack.enter_context(SimProcess(SimConfig(seed=cfg.seed, fast=cfg.sim_fast)))
            base_url = sim.base_url
            sim_note = "built-in simulator"
            sim_metrics = sim.root_url + "/metrics"
        headers = auth_headers(cfg.api_key, cfg.headers)
        model = cfg.model or discover_model(base_url, headers, cfg.connect_timeout_s)
        store = open_store(cfg.db)
        stack.callback(store.close)
        origin = clock()
        wall_anchor = time.time()
        run_id = store.create_run(
            wall_anchor_s=wall_anchor,
            name=cfg.name,
            endpoint=sim_note or base_url,
            api=cfg.api,
            model=model,
            load_mode=traffic.mode,
            requested_rate=cfg.rate,
            concurrency=cfg.concurrency,
            seed=cfg.seed,
            fingerprint=traffic.description.get("fingerprint"),
            config=cfg.public_dict(),
            versions=_versions(),
            host={"hostname": socket.gethostname(), "platform": platform.platform()},
            sweep_id=group.group_id if group else None,
            sweep_point=group.index if group else None,
            group_kind=group.kind if group else None,
        )
        writer = BatchWriter(store, run_id, origin)
        collectors = build_collectors(cfg, sim_metrics, nvml)
        stats = LiveStats(total=cfg.requests or traffic.max_requests)
        outcome, overhead = _run_loop(
            cfg, traffic, base_url, headers, model, clock, writer, stats, on_live, collectors
        )
        status = "interrupted" if outcome.interrupted else "complete"
        try:
            writer.close()
        except Exception as exc:  # the data already written stays; say what failed
            status = "failed"
            overhead["warnings"].append(f"store write failed: {exc}")
        extra = {
            "outcome": {
                "sent": outcome.sent,
                "ok": outcome.ok,
                "errored": outcome.errored,
                "cancelled": outcome.cancelled,
                "max_in_flight": outcome.max_in_flight,
            },
            "client": overhead["client"],
            "traffic": traffic.description,
            "warnings": overhead["warnings"],
        }
        costs = energy_and_cost(store, run_id, cfg, collectors, origin)
        extra.update(costs)
        ideal = traffic.description.get("ideal_prefix_hit")
        extra["server"] = server_view(store, run_id, ideal_prefix_hit=ideal)
        overhead["warnings"].extend(extra["server"].get("warnings") or [])
        energy = costs.get("energy") or {}
        overhead["warnings"].extend(energy.get("warnings") or [])
        for name, info in costs["collectors"].items():
            if info.get("degraded"):
                overhead["warnings"].append(f"collector {name} degraded: {info['degraded']}")
        store.update_run(
            run_id,
            status=status,
            ended_ns=outcome.end_ns - origin,
            extra=extra,
            warnings=overhead["warnings"],
        )
        summary = summarize(store.con, run_id, slos)
        header = {"endpoint": sim_note or base_url, "model": model, "api": cfg.api}
        header["load"] = (
            f"open loop {cfg.rate:g} req/s ({cfg.arrival})"
            if cfg.rate is not None
            else (
                "trace replay"
                if traffic.mode == "replay"
                else f"closed loop, concurrency {cfg.concurrency or 1}"
            )
        )
        return RunResult(run_id, summary, outcome, header)


@dataclass(frozen=True, slots=True)
class RunGroup:
    """Runs measured together: the points of a sweep, or the repeats of one configuration."""

    group_id: str
    kind: str  # "sweep" | "repeat"
    index: int


def _run_loop(
    cfg: RunConfig,
    traffic: Any,
    base_url: str,
    headers: dict[str, str],
    model: str,
    clock: Clock,
    writer: BatchWriter,
    stats: LiveStats,
    on_live: LiveCallback | None,
    collectors: CollectorSet,
) -> tuple[RunOutcome, dict[str, Any]]:
    max_requests = cfg.requests
    if traffic.max_requests is not None:
        max_requests = min(max_requests or traffic.max_requests, traffic.max_requests)
    plan = LoadPlan(
        concurrency=cfg.concurrency if traffic.arrivals is None else None,
        max_requests=max_requests,
        duration_s=cfg.duration_s,
        warmup_requests=cfg.warmup,
        max_rate=cfg.max_rate,
        drain_timeout_s=cfg.drain_timeout_s,
    )
    in_flight_cap = (cfg.concurrency or 1) if traffic.arrivals is None else 1024
    settings = HttpSettings(
        base_url=base_url,
        headers=headers,
        max_connections=max(64, in_flight_cap * 2),
        connect_timeout_s=cfg.connect_timeout_s,
        read_timeout_s=cfg.timeout_s,
        transport=cfg.transport,
    )
    endpoint = OpenAIEndpoint(
        api=cfg.api, model=model, stream=cfg.stream, count_output=_output_counter(cfg)
    )

    def sink(record: RequestRecord) -> None:
        writer.add_record(record)
        stats.add(record)

    async def main() -> tuple[RunOutcome, dict[str, Any]]:
        client = make_client(settings, clock)
        runner = Runner(client, endpoint, clock, sink)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, runner.stop)
        collectors.start(clock, writer)
        if collectors.idle_seconds > 0:
            # Idle baseline before any load: idle watts, for marginal (net) energy.
            t_idle = clock()
            await asyncio.sleep(collectors.idle_seconds)
            collectors.idle_window = (t_idle, clock())
        lags: list[int] = []
        cpu0 = time.process_time()
        t0 = clock()

        async def ticker() -> None:
            # Event-loop lag: how late a 100 ms timer fires measures how busy the client is.
            for n in itertools.count(1):
                due = clock() + 100_000_000
                await asyncio.sleep(0.1)
                lags.append(clock() - due)
                if n % 10 == 0:
                    # Once a second: each DuckDB insert costs ~1.5 ms of CPU however small,
                    # and a crash loses at most this second (full batches flush at once).
                    collectors.drain()
                    writer.flush()
                if on_live is not None:
                    on_live(stats, clock())

        tick = asyncio.create_task(ticker())
        # Everything built so far (traces, prompts, the store) lives for the whole run: move it
        # out of the collector's reach, so a full collection cannot stall the loop mid-run.
        gc.collect()
        gc.freeze()
        try:
            # The schedule starts now (after the idle phase); stored times stay on the run origin.
            outcome = await runner.run(traffic.specs, plan, traffic.arrivals)
        finally:
            gc.unfreeze()
            tick.cancel()
            collectors.stop()
            await client.aclose()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
        wall = (clock() - t0) / 1e9
        cpu = time.process_time() - cpu0
        if on_live is not None:
            on_live(stats, clock())
        return outcome, _overhead(cpu, wall, lags)

    try:
        return run_loop(main(), cfg.event_loop)
    except KeyboardInterrupt:  # a second Ctrl-C: what was measured is already in the writer
        raise BenchError("interrupted twice; the run's measured requests were kept") from None


def _output_counter(cfg: RunConfig) -> Callable[[str], int] | None:
    """With --tokenizer, output tokens of responses that carry no usage are counted from
    their text (stored as such); without it they stay unknown, never guessed from chunks."""
    if not cfg.tokenizer:
        return None
    from benchbench.exact import HFTokenizerCounter

    try:
        counter = HFTokenizerCounter(cfg.tokenizer)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return lambda text: counter.count([text])[0]


def run_loop(coro: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run the client's event loop: uvloop where installed (measured cheaper per streamed
    token, and tighter timestamps), else asyncio's."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                coro.close()
                raise BenchError("--event-loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def _overhead(cpu_s: float, wall_s: float, lags_ns: list[int]) -> dict[str, Any]:
    lags = sorted(lags_ns)
    p99 = lags[int(0.99 * (len(lags) - 1))] / 1e6 if lags else None
    util = cpu_s / wall_s if wall_s > 0 else None
    warnings: list[str] = []
    if util is not None and util > 0.85:
        warnings.append(
            f"the client used {util:.0%} of a CPU core: it may be the bottleneck "
            "(lower the load, or run the client on a less busy machine)"
        )
    if p99 is not None and p99 > 20:
        warnings.append(
            f"event-loop lag p99 {p99:.0f} ms: client timestamps may be late by that much"
        )
    return {
        "client": {"cpu_s": cpu_s, "wall_s": wall_s, "cpu_util": util, "loop_lag_p99_ms": p99},
        "warnings": warnings,
    }


def _versions() -> dict[str, str]:
    import duckdb
    import httpx

    return {
        "benchbench": __version__,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "httpx": httpx.__version__,
    }
