"""Driving the load: the client's event loop, from the first byte sent to the last record.

The event loop only sends, timestamps and hands records to the sink; the store writes on its
own thread; a 100 ms ticker measures the loop's own lag (how late a timer fires: how busy the
client is), flushes the store once a second and refreshes the live view."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchbench.books import RecordSink
from benchbench.collect import CollectorSet
from benchbench.config import Load, Target
from benchbench.errors import RunError
from benchbench.live import LiveStats
from benchbench.results import ClientOverhead, WorkerHealth
from benchbench.signals import Signals
from benchbench.target import TargetLink
from benchbench.traffic import Traffic
from loadgen.client import HttpSettings, make_client
from loadgen.load import LoadPlan, RunOutcome
from loadgen.runner import Runner
from loadgen.spec import RequestRecord

Clock = Callable[[], int]
LiveCallback = Callable[[LiveStats, int], None]
T = TypeVar("T")

# Requests one open-loop run may hold open at once (memory stays bounded at any rate).
OPEN_LOOP_IN_FLIGHT = 10_000
# The client is said to be the bottleneck above this share of a core, or this loop lag.
BUSY_CPU_UTIL = 0.85
BUSY_LOOP_LAG_MS = 20.0


@dataclass
class Driven:
    """What driving the load hands back."""

    outcome: RunOutcome
    client: ClientOverhead
    warnings: list[str]
    retries: int = 0
    signalled: bool = False
    workers: list[WorkerHealth] = field(default_factory=list)  # multi-worker runs only


def run_event_loop(coro: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run the client's event loop: uvloop where installed (measured cheaper per streamed
    token, and tighter timestamps), else asyncio's."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                coro.close()
                raise RunError("--event-loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


class LoadDriver:
    """One run's sending phase: the idle baseline, then the runner over the traffic, with
    SIGINT/SIGTERM stopping the runner (every record kept)."""

    def __init__(
        self,
        load: Load,
        target: Target,
        link: TargetLink,
        count_output: Callable[[str], int] | None,
        collectors: CollectorSet,
        sink: RecordSink,
        signals: Signals,
        clock: Clock,
        on_live: LiveCallback | None = None,
    ) -> None:
        self.load, self.target, self.link = load, target, link
        self.count_output = count_output
        self.collectors, self.sink, self.signals = collectors, sink, signals
        self.clock, self.on_live = clock, on_live
        self.stop = asyncio.Event()
        self.lags: list[int] = []
        self.stats = LiveStats(total=None)

    def drive(self, traffic: Traffic) -> Driven:
        max_requests = self.load.requests
        if traffic.max_requests is not None:
            max_requests = min(max_requests or traffic.max_requests, traffic.max_requests)
        self.stats = LiveStats(total=max_requests)
        try:
            return run_event_loop(self._main(traffic, max_requests), self.target.event_loop)
        except KeyboardInterrupt:
            if self.signals.count:  # a second signal: what was measured is in the writer
                raise RunError("interrupted twice; the run's measured requests were kept") from None
            raise
        finally:
            self.signals.install()  # closing the event loop reset the signal handlers

    def _plan(self, traffic: Traffic, max_requests: int | None) -> tuple[LoadPlan, HttpSettings]:
        load, target = self.load, self.target
        # Open loop: the runner holds at most this many requests open and the pool has room
        # for all of them, so a request that cannot be sent waits in the runner, where its
        # lateness is recorded as schedule lag, never silently in a connection pool's queue.
        closed = traffic.arrivals is None
        in_flight_cap = (load.concurrency or 1) if closed else OPEN_LOOP_IN_FLIGHT
        plan = LoadPlan(
            concurrency=load.concurrency if closed else None,
            max_requests=max_requests,
            duration_s=load.duration_s,
            warmup_requests=load.warmup,
            max_rate=load.max_rate,
            drain_timeout_s=load.drain_timeout_s,
            in_flight_limit=OPEN_LOOP_IN_FLIGHT,
        )
        settings = HttpSettings(
            base_url=self.link.base_url,
            headers=self.link.headers,
            max_connections=max(64, in_flight_cap * 2),
            connect_timeout_s=target.connect_timeout_s,
            read_timeout_s=target.timeout_s,
            transport=target.transport,
            request_timeout_s=target.request_timeout_s,
        )
        return plan, settings

    def _record(self, record: RequestRecord) -> None:
        self.sink.add(record)
        self.stats.add(record)

    async def _main(self, traffic: Traffic, max_requests: int | None) -> Driven:
        plan, settings = self._plan(traffic, max_requests)
        endpoint = self.link.endpoint(self.target.stream, self.count_output)
        client = make_client(settings, self.clock)
        runner = Runner(client, endpoint, self.clock, self._record)
        self._catch_signals(runner)
        # Everything built so far (traces, prompts, the store) lives for the whole run: move
        # it out of the collector's reach, so a full collection cannot stall the loop mid-run.
        # Before the idle baseline, not after it: the collection takes ~50-300 ms, which
        # would otherwise lie between the idle window and the first send, unmeasured.
        gc.collect()
        gc.freeze()
        try:
            self.collectors.start(self.clock, self.sink.writer)
            # Idle watts before any load (for marginal energy), once idle power has settled.
            await self.collectors.idle_baseline(self.clock, self.stop)
            cpu0, t0 = time.process_time(), self.clock()
            tick = asyncio.create_task(self._ticker())
            try:
                if self.stop.is_set():  # a signal during the idle baseline: nothing is sent
                    now = self.clock()
                    outcome = RunOutcome(origin_ns=now, end_ns=now, interrupted=True)
                else:  # the schedule starts now; stored times stay on the run's origin
                    outcome = await runner.run(traffic.specs, plan, traffic.arrivals)
            finally:
                tick.cancel()
                self.collectors.stop()
                await client.aclose()
                self.signals.release_loop()
        finally:
            gc.unfreeze()
        client_health, warnings = health(
            time.process_time() - cpu0, (self.clock() - t0) / 1e9, self.lags
        )
        self._show_live()
        retries = int(getattr(client, "retries", 0) or 0)
        return Driven(outcome, client_health, warnings, retries, self.stop.is_set())

    def _catch_signals(self, runner: Runner) -> None:
        def stop() -> None:  # SIGINT or SIGTERM: stop sending, keep every record
            self.stop.set()
            runner.stop()

        self.signals.catch_on_loop(stop)

    async def _ticker(self) -> None:
        for n in itertools.count(1):
            due = self.clock() + 100_000_000
            await asyncio.sleep(0.1)
            self.lags.append(self.clock() - due)
            if n % 10 == 0:
                # Once a second: each DuckDB insert costs ~1.5 ms of CPU however small, and a
                # crash loses at most this second (full batches flush at once).
                self.collectors.drain()
                self.sink.writer.flush()
            self._show_live()

    def _show_live(self) -> None:
        if self.on_live is not None:
            self.on_live(self.stats, self.clock())


def health(cpu_s: float, wall_s: float, lags_ns: list[int]) -> tuple[ClientOverhead, list[str]]:
    """The client's own health figures, and a warning for each that says it was busy."""
    lags = sorted(lags_ns)
    p99 = lags[int(0.99 * (len(lags) - 1))] / 1e6 if lags else None
    util = cpu_s / wall_s if wall_s > 0 else None
    return ClientOverhead(cpu_s, wall_s, util, p99), busy_warnings(util, p99)


def busy_warnings(cpu_util: float | None, loop_lag_p99_ms: float | None) -> list[str]:
    warnings: list[str] = []
    if cpu_util is not None and cpu_util > BUSY_CPU_UTIL:
        warnings.append(
            f"the client used {cpu_util:.0%} of a CPU core: it may be the bottleneck "
            "(lower the load, or run the client on a less busy machine)"
        )
    if loop_lag_p99_ms is not None and loop_lag_p99_ms > BUSY_LOOP_LAG_MS:
        warnings.append(
            f"event-loop lag p99 {loop_lag_p99_ms:.0f} ms: client timestamps may be late by "
            "that much"
        )
    return warnings
