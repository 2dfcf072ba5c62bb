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
import threading
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
from benchbench.store import BatchWriter, PeriodicCheckpoint, Store, open_store
from benchbench.target import auth_headers, discover_model
from benchbench.traffic import build_traffic
from benchbench.urls import redact_url
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.runner import LoadPlan, Runner, RunOutcome
from loadgen.spec import RequestRecord

Clock = Callable[[], int]
T = TypeVar("T")
LiveCallback = Callable[[LiveStats, int], None]


# A run's data reach the .duckdb file itself (not only its write-ahead log) at least this
# often, so copying that file alone keeps all but the last interval of a live run.
CHECKPOINT_EVERY_S = 10.0
# An open loop that fell further behind its schedule than this is said so at the end.
BEHIND_SCHEDULE_WARN_NS = 100_000_000
_MAX_STORED_ERRORS = 10


@dataclass
class RunResult:
    run_id: int
    summary: RunSummary
    outcome: RunOutcome
    header: dict[str, Any] = field(default_factory=dict)
    # complete | interrupted | failed (the books did not balance, a store write or a task of
    # the run failed): `bench run` exits 1 on failed, 130 on interrupted.
    status: str = "complete"


# Requests one open-loop run may hold open at once (memory stays bounded at any rate).
OPEN_LOOP_IN_FLIGHT = 10_000


def run_benchmark(
    cfg: RunConfig,
    *,
    clock: Clock = time.monotonic_ns,
    on_live: LiveCallback | None = None,
    group: RunGroup | None = None,
    nvml: Any | None = None,
) -> RunResult:
    """One measured run, stored under a new run id. `group` ties sweep points or repeats.

    Every exit leaves the run with a final status: SIGTERM is handled as SIGINT (sending
    stops, what is in flight is recorded as cancelled, status "interrupted"); an exception
    after the run was created marks it "interrupted" or "failed", with what was measured
    kept. Only a process killed outright leaves it "running" (later seen as "abandoned")."""
    with _Signals() as signals:
        return _run_benchmark(cfg, clock, on_live, group, nvml, signals)


def _run_benchmark(
    cfg: RunConfig,
    clock: Clock,
    on_live: LiveCallback | None,
    group: RunGroup | None,
    nvml: Any | None,
    signals: _Signals,
) -> RunResult:
    slos = parse_slos(cfg.slo) if cfg.slo else None
    # Validate the workload before touching anything else (this may ask the server's
    # /tokenize already: a signal here stops the command, and no run exists yet).
    traffic = build_traffic(cfg)
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
        model = cfg.model or discover_model(
            base_url,
            headers,
            cfg.timeout_s,
            _request_timeout(cfg),
            connect_timeout_s=cfg.connect_timeout_s,
        )
        endpoint_shown = sim_note or redact_url(base_url)
        store = open_store(cfg.db)
        stack.callback(store.close)
        origin = clock()
        wall_anchor = time.time()
        run_id = store.create_run(
            wall_anchor_s=wall_anchor,
            name=cfg.name,
            endpoint=endpoint_shown,
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
        writer = _Writer(BatchWriter(store, run_id, origin))
        try:
            with PeriodicCheckpoint(store, CHECKPOINT_EVERY_S):
                loop = _measure(
                    cfg, traffic, base_url, model, headers, clock, writer, on_live, nvml,
                    sim_metrics, signals,
                )  # fmt: skip
            status, extra, warnings = _settle(store, run_id, cfg, traffic, origin, writer, loop)
            store.update_run(
                run_id,
                status=status,
                ended_ns=loop.outcome.end_ns - origin,
                extra=extra,
                warnings=warnings,
            )
            store.checkpoint()
        except BaseException as exc:
            _end_early(store, run_id, writer, exc, signals, origin, clock)
            raise
        summary = summarize(store.con, run_id, slos)
        header = {"endpoint": endpoint_shown, "model": model, "api": cfg.api}
        header["load"] = (
            f"open loop {cfg.rate:g} req/s ({cfg.arrival})"
            if cfg.rate is not None
            else (
                "trace replay"
                if traffic.mode == "replay"
                else f"closed loop, concurrency {cfg.concurrency or 1}"
            )
        )
        return RunResult(run_id, summary, loop.outcome, header, status)


def _request_timeout(cfg: RunConfig) -> float | None:
    return getattr(cfg, "request_timeout_s", None)


class _Writer:
    """The run's BatchWriter, closed exactly once whichever way the run ends; a failed close
    (a batch the store refused) is kept as text for the run's books."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.received = 0  # records the sink was handed: the spine's own count
        self.error: str | None = None
        self._closed = False

    def add(self, record: RequestRecord) -> None:
        self.received += 1
        self.writer.add_record(record)

    def close(self) -> str | None:
        if not self._closed:
            self._closed = True
            try:
                self.writer.close()
            except Exception as exc:  # the data already written stays; say what failed
                self.error = f"{type(exc).__name__}: {_first_line(exc)}"
        return self.error


@dataclass
class _Loop:
    """What the event-loop phase hands back."""

    outcome: RunOutcome
    overhead: dict[str, Any]
    collectors: CollectorSet
    retries: int = 0
    signalled: bool = False


def _measure(
    cfg: RunConfig,
    traffic: Any,
    base_url: str,
    model: str,
    headers: dict[str, str],
    clock: Clock,
    writer: _Writer,
    on_live: LiveCallback | None,
    nvml: Any | None,
    sim_metrics: str | None,
    signals: _Signals,
) -> _Loop:
    collectors = build_collectors(cfg, sim_metrics, nvml)
    stats = LiveStats(total=cfg.requests or traffic.max_requests)
    loop = _run_loop(
        cfg, traffic, base_url, headers, model, clock, writer, stats, on_live, collectors, signals
    )
    loop.collectors = collectors
    return loop


def _settle(
    store: Store,
    run_id: int,
    cfg: RunConfig,
    traffic: Any,
    origin: int,
    writer: _Writer,
    loop: _Loop,
) -> tuple[str, dict[str, Any], list[str]]:
    """The run's final status, extra and warnings, once everything measured is stored. The
    books: the runner's count of sent requests must equal the rows stored for the run."""
    outcome, overhead = loop.outcome, loop.overhead
    warnings: list[str] = overhead["warnings"]
    writer_error = writer.close()
    books = _books(store, run_id, outcome, writer, writer_error)
    failures = _book_failures(books)
    if failures:
        status = "failed"
    elif outcome.interrupted or loop.signalled:
        status = "interrupted"
    else:
        status = "complete"
    behind_ns = int(getattr(outcome, "behind_schedule_max_ns", 0) or 0)
    extra: dict[str, Any] = {
        "outcome": {
            "sent": outcome.sent,
            "ok": outcome.ok,
            "errored": outcome.errored,
            "cancelled": outcome.cancelled,
            "max_in_flight": outcome.max_in_flight,
            "retries": loop.retries,
            "behind_schedule_max_ns": behind_ns,
        },
        "books": books,
        "client": overhead["client"],
        "traffic": traffic.description,
        "warnings": warnings,
    }
    costs = energy_and_cost(store, run_id, cfg, loop.collectors, origin)
    extra.update(costs)
    ideal = traffic.description.get("ideal_prefix_hit")
    extra["server"] = server_view(store, run_id, ideal_prefix_hit=ideal)
    warnings.extend(extra["server"].get("warnings") or [])
    energy = costs.get("energy") or {}
    warnings.extend(energy.get("warnings") or [])
    for name, info in costs["collectors"].items():
        if info.get("degraded"):
            warnings.append(f"collector {name} degraded: {info['degraded']}")
    if loop.retries:
        warnings.append(
            f"retried {loop.retries} request{'s' if loop.retries != 1 else ''} on a fresh "
            "connection (the server closed a reused connection before answering)"
        )
    if cfg.rate is not None and behind_ns > BEHIND_SCHEDULE_WARN_NS:
        warnings.append(
            f"the client could not keep up with the requested rate ({cfg.rate:g} req/s): its "
            f"sends fell up to {behind_ns / 1e9:.2f} s behind schedule (see schedule lag); "
            "lower --rate or run the client on a faster machine"
        )
    # The books come last: the line a reader must not miss.
    warnings.extend(failures)
    return status, extra, warnings


def _books(
    store: Store,
    run_id: int,
    outcome: RunOutcome,
    writer: _Writer,
    writer_error: str | None,
) -> dict[str, Any]:
    errors = [str(e) for e in (getattr(outcome, "errors", None) or [])]
    stored = store.stored_requests(run_id)
    return {
        "sent": outcome.sent,  # the runner's count, warm-up included
        "emitted": getattr(outcome, "emitted", writer.received),  # records the runner finished
        "received": writer.received,  # records the store's writer was handed
        "written": writer.writer.requests_written,
        "stored": stored,  # rows in the store now
        "missing": outcome.sent - stored,
        "writer_error": writer_error,
        # Rows the store refused one by one (the rest of their batch was kept): why `missing`.
        "rows_failed": writer.writer.rows_failed,
        "store_failures": list(writer.writer.failures),
        "error_count": len(errors),
        "errors": [e[-4000:] for e in errors[:_MAX_STORED_ERRORS]],
    }


def _book_failures(books: dict[str, Any]) -> list[str]:
    """Why the run's books make it a failed run (one warning each); empty when they balance."""
    out = []
    if books["missing"]:
        out.append(
            f"THE BOOKS DO NOT BALANCE: the client sent {books['sent']} requests but the store "
            f"holds {books['stored']}; this run is failed"
        )
    if books["writer_error"]:
        out.append(f"store write failed: {books['writer_error']}")
    if books.get("rows_failed"):
        why = "; ".join(books.get("store_failures") or []) or "?"
        out.append(f"the store refused {books['rows_failed']} request row(s): {why}")
    if books["error_count"]:
        last = books["errors"][0].strip().splitlines()[-1] if books["errors"] else "?"
        out.append(
            f"{books['error_count']} unhandled error(s) inside the run's tasks (a benchbench "
            f"bug, please report it; tracebacks in the run's extra.books.errors): {last}"
        )
    return out


def _end_early(
    store: Store,
    run_id: int,
    writer: _Writer,
    exc: BaseException,
    signals: _Signals,
    origin: int,
    clock: Clock,
) -> None:
    """The run stopped on an exception: keep what was measured and give the run a final
    status, so no later command finds it "running". Never masks `exc`."""
    interrupted = isinstance(exc, KeyboardInterrupt) or signals.count > 0
    reason = "interrupted" if interrupted else f"{type(exc).__name__}: {_first_line(exc)}"
    with contextlib.suppress(BaseException):
        writer_error = writer.close()
        stored = store.stored_requests(run_id)
        warnings = [f"the run ended early ({reason}); the {stored} requests stored were kept"]
        if writer_error:
            warnings.append(f"store write failed: {writer_error}")
        store.update_run(
            run_id,
            status="interrupted" if interrupted and not writer_error else "failed",
            ended_ns=clock() - origin,
            extra={"books": {"stored": stored, "writer_error": writer_error}},
            warnings=warnings,
        )
        store.checkpoint()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Signals:
    """SIGTERM behaves as SIGINT for the whole run. While requests are sent, both stop the
    runner (see _run_loop, which counts them). Outside that phase (the simulator starting,
    /tokenize and /models, the writes after the run) SIGTERM is passed on as SIGINT, so it
    takes the same path as Ctrl-C: KeyboardInterrupt, also out of a nested asyncio.run, and
    the run (if it exists yet) gets its final status. Only the main thread may install
    signal handlers; a run started from another thread keeps the process's handlers."""

    def __init__(self) -> None:
        self.count = 0  # signals received while requests were being sent
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _Signals:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, self._previous)

    def install(self) -> None:
        """(Re)install the SIGTERM handler: closing an event loop resets it."""
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not self._installed:
            self._previous, self._installed = current, True
        # A handler installed by someone else (an embedding application) is theirs.
        if current in (signal.SIG_DFL, self._as_sigint):
            signal.signal(signal.SIGTERM, self._as_sigint)

    @staticmethod
    def _as_sigint(signum: int, frame: object) -> None:
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
            raise KeyboardInterrupt  # SIGINT ignored (a background job): stop all the same
        signal.raise_signal(signal.SIGINT)


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
    writer: _Writer,
    stats: LiveStats,
    on_live: LiveCallback | None,
    collectors: CollectorSet,
    signals: _Signals,
) -> _Loop:
    max_requests = cfg.requests
    if traffic.max_requests is not None:
        max_requests = min(max_requests or traffic.max_requests, traffic.max_requests)
    # Open loop: the runner holds at most this many requests open and the pool has room for
    # all of them, so a request that cannot be sent waits in the runner, where its lateness is
    # recorded as schedule lag, never silently in a connection pool's queue.
    in_flight_cap = (cfg.concurrency or 1) if traffic.arrivals is None else OPEN_LOOP_IN_FLIGHT
    plan = LoadPlan(
        concurrency=cfg.concurrency if traffic.arrivals is None else None,
        max_requests=max_requests,
        duration_s=cfg.duration_s,
        warmup_requests=cfg.warmup,
        max_rate=cfg.max_rate,
        drain_timeout_s=cfg.drain_timeout_s,
        in_flight_limit=OPEN_LOOP_IN_FLIGHT,
    )
    settings = HttpSettings(
        base_url=base_url,
        headers=headers,
        max_connections=max(64, in_flight_cap * 2),
        connect_timeout_s=cfg.connect_timeout_s,
        read_timeout_s=cfg.timeout_s,
        transport=cfg.transport,
        request_timeout_s=_request_timeout(cfg),
    )
    endpoint = OpenAIEndpoint(
        api=cfg.api, model=model, stream=cfg.stream, count_output=_output_counter(cfg)
    )

    def sink(record: RequestRecord) -> None:
        writer.add(record)
        stats.add(record)

    async def main() -> _Loop:
        client = make_client(settings, clock)
        runner = Runner(client, endpoint, clock, sink)
        stop = asyncio.Event()

        def on_signal() -> None:  # SIGINT or SIGTERM: stop sending, keep every record
            signals.count += 1
            stop.set()
            runner.stop()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
        collectors.start(clock, writer.writer)
        if collectors.idle_seconds > 0:
            # Idle baseline before any load: idle watts, for marginal (net) energy.
            t_idle = clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), collectors.idle_seconds)
            if not stop.is_set():
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
                    writer.writer.flush()
                if on_live is not None:
                    on_live(stats, clock())

        tick = asyncio.create_task(ticker())
        # Everything built so far (traces, prompts, the store) lives for the whole run: move it
        # out of the collector's reach, so a full collection cannot stall the loop mid-run.
        gc.collect()
        gc.freeze()
        try:
            if stop.is_set():  # a signal during the idle baseline: nothing is sent
                now = clock()
                outcome = RunOutcome(origin_ns=now, end_ns=now, interrupted=True)
            else:
                # The schedule starts now (after the idle phase); stored times stay on the
                # run origin.
                outcome = await runner.run(traffic.specs, plan, traffic.arrivals)
        finally:
            gc.unfreeze()
            tick.cancel()
            collectors.stop()
            await client.aclose()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            signals.install()
        wall = (clock() - t0) / 1e9
        cpu = time.process_time() - cpu0
        if on_live is not None:
            on_live(stats, clock())
        retries = int(getattr(client, "retries", 0) or 0)
        return _Loop(
            outcome, _overhead(cpu, wall, lags), collectors, retries, signalled=stop.is_set()
        )

    try:
        return run_loop(main(), cfg.event_loop)
    except KeyboardInterrupt:
        if signals.count:  # a second signal: what was measured is already in the writer
            raise BenchError("interrupted twice; the run's measured requests were kept") from None
        raise
    finally:
        signals.install()  # closing the event loop reset the signal handlers


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
