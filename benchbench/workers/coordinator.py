"""The coordinator of a multi-worker run: plans nothing itself (the traffic is planned once,
as for one process), deals it to the workers, and owns everything that must be single: the
store's writer, the collectors, the live view and the signals.

Books across processes: a worker notes each send as it begins and streams those notes with
its finished records at least every quarter second. A worker that dies mid-run leaves sends
begun and never finished: each becomes a row with error kind worker_lost, and what was dealt
to it but never sent is counted as unsent, so sent (begun) still equals rows stored."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

from benchbench.books import RecordSink
from benchbench.collect import CollectorSet
from benchbench.config import Load, Target
from benchbench.errors import RunError
from benchbench.live import LiveStats
from benchbench.runloop import OPEN_LOOP_IN_FLIGHT, Clock, Driven, LiveCallback, run_event_loop
from benchbench.signals import Signals
from benchbench.target import TargetLink
from benchbench.traffic import Traffic
from benchbench.workers import tally
from benchbench.workers.body import WorkerSetup
from benchbench.workers.plan import Dealer, check_picklable, planned_items, shares
from loadgen.httpcommon import HttpSettings
from loadgen.load import SessionSource

READY_TIMEOUT_S = 120.0  # a worker process (or Ray actor) must be up by then
CLOCK_PINGS = 5


class WorkersDriver:
    """LoadDriver's counterpart for N workers: drive(traffic) -> Driven."""

    def __init__(
        self,
        load: Load,
        target: Target,
        link: TargetLink,
        tokenizer: str | None,
        collectors: CollectorSet,
        sink: RecordSink,
        signals: Signals,
        clock: Clock,
        on_live: LiveCallback | None = None,
        workers: int = 2,
    ) -> None:
        self.load, self.target, self.link, self.tokenizer = load, target, link, tokenizer
        self.collectors, self.sink, self.signals = collectors, sink, signals
        self.clock, self.on_live, self.n = clock, on_live, workers
        self.stop = asyncio.Event()
        self.stats = LiveStats(total=None)
        self.books = tally.Tally(sink, self.stats, clock)
        self._pongs: dict[int, asyncio.Future[int]] = {}
        self._ray_owned = False  # this run joined the Ray cluster, and leaves it at the end

    def drive(self, traffic: Traffic) -> Driven:
        max_requests = self.load.requests
        if traffic.max_requests is not None:
            max_requests = min(max_requests or traffic.max_requests, traffic.max_requests)
        self.stats.total = max_requests
        if isinstance(traffic.specs, SessionSource):
            check_picklable(traffic.specs)
        try:
            # asyncio's own loop: the coordinator stamps nothing (the workers do, on uvloop),
            # and under uvloop a worker's pipe was seen to stop waking the loop after a
            # SIGINT had been handled (about one run in two), leaving the run hanging.
            return run_event_loop(self._main(traffic, max_requests), "asyncio")
        except KeyboardInterrupt:
            if self.signals.count:
                raise RunError("interrupted twice; the run's measured requests were kept") from None
            raise
        finally:
            self.signals.install()

    def _setups(self, traffic: Traffic, max_requests: int | None) -> list[WorkerSetup]:
        load, target, sessions = self.load, self.target, isinstance(traffic.specs, SessionSource)
        open_loop = traffic.arrivals is not None
        parts = shares(
            self.n, open_loop, load.concurrency, max_requests, load.warmup,
            OPEN_LOOP_IN_FLIGHT, sessions,
        )  # fmt: skip
        out = []
        for share in parts:
            cap = share.in_flight_limit if open_loop else (share.concurrency or 1)
            settings = HttpSettings(
                base_url=self.link.base_url,
                headers=dict(self.link.headers),
                max_connections=max(64, cap * 2),
                connect_timeout_s=target.connect_timeout_s,
                read_timeout_s=target.timeout_s,
                transport=target.transport,
                request_timeout_s=target.request_timeout_s,
            )
            out.append(
                WorkerSetup(
                    share,
                    len(parts),
                    settings,
                    target.api,
                    self.link.model(),
                    target.stream,
                    self.tokenizer,
                    target.event_loop,
                    open_loop,
                    sessions,
                    load.duration_s,
                    load.drain_timeout_s,
                    load.max_rate,
                )  # fmt: skip
            )
        return out

    def _links(self, setups: list[WorkerSetup]) -> list[Any]:
        if self.load.ray:
            from benchbench.workers.ray_actors import ray_links

            links, self._ray_owned = ray_links(self.load.ray, setups)
            return links
        from benchbench.workers.process import ProcessLink

        return [ProcessLink(s) for s in setups]

    async def _main(self, traffic: Traffic, max_requests: int | None) -> Driven:
        setups = self._setups(traffic, max_requests)
        total = None if max_requests is None else max_requests + self.load.warmup
        duration_ns = None if self.load.duration_s is None else int(self.load.duration_s * 1e9)
        items = planned_items(traffic.specs, traffic.arrivals, total, duration_ns)
        self.dealer = Dealer(items, len(setups), by_position=traffic.arrivals is not None)
        links = self._links(setups)
        self.books.start(links, self.dealer)
        # From here a signal stops the run in order (workers that have not started yet
        # start with a stop: nothing is sent), never as an exception at a random point.
        self._catch_signals(links)
        try:
            for link in links:
                link.start()
                link.attach(self._deliver, self.books.lost)
            await self._until(lambda: self.books.all_ready(), READY_TIMEOUT_S, "start")
            await self._clocks("start")
            return await self._run(links)
        finally:
            self.signals.release_loop()
            for link in links:
                link.detach()
            await asyncio.gather(*(asyncio.to_thread(link.close) for link in links))
            if self._ray_owned:
                from benchbench.workers.ray_actors import disconnect

                disconnect()

    async def _run(self, links: list[Any]) -> Driven:
        self.collectors.start(self.clock, self.sink.writer)
        await self.collectors.idle_baseline(self.clock, self.stop)
        cpu0, t0 = time.process_time(), self.clock()
        origin = self.clock() + 20_000_000  # every worker has its go before the schedule starts
        self.books.origin_ns = origin
        try:
            if self.stop.is_set():
                for link in links:
                    link.send(("stop",))
            for w, link in enumerate(links):
                link.send(("go", origin + self.books.shift(w)))
            lags = await self._tick()
        finally:
            self.collectors.stop()
        await self._clocks("end")
        self._show_live()
        cpu_s, wall_s = time.process_time() - cpu0, (self.clock() - t0) / 1e9
        return self.books.driven(cpu_s, wall_s, lags, self.stop.is_set())

    def _deliver(self, msg: tuple[Any, ...]) -> None:
        kind, w = msg[0], msg[1]
        if kind == "more":
            links = self.books.links
            items = self.dealer.take(w, max(1, int(msg[2])))
            links[w].send(("feed", items, self.dealer.done_for(w)))
        elif kind == "failed":
            self.books.lost(w, str(msg[2]))
        elif kind == "pong":
            future = self._pongs.get(w)
            if future is not None and not future.done():
                future.set_result(msg[3])
        else:
            self.books.deliver(msg)

    async def _until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.books.failed_to_start:
                raise RunError(self.books.failed_to_start)
            if time.monotonic() > deadline:
                hint = f" (does the Ray cluster have {self.n} free CPUs?)" if self.load.ray else ""
                raise RunError(f"the client workers did not {what} within {timeout_s:g} s{hint}")
            await asyncio.sleep(0.02)

    async def _clocks(self, when: str) -> None:
        """Each live worker's clock offset: the best of a few round trips."""
        for w, link in enumerate(self.books.links):
            for _ in range(CLOCK_PINGS):
                if not self.books.alive(w):
                    break
                future = self._pongs[w] = asyncio.get_running_loop().create_future()
                t0 = self.clock()
                link.send(("ping", t0))
                with contextlib.suppress(TimeoutError):
                    worker_ns = await asyncio.wait_for(future, 5.0)
                    self.books.clock_sample(w, when, t0, worker_ns, self.clock())

    async def _tick(self) -> list[int]:
        lags: list[int] = []
        stopped = False
        for n in itertools.count(1):
            if self.books.finished():
                break
            if self.stop.is_set() and not stopped:
                stopped = True
                for link in self.books.links:
                    link.send(("stop",))
            due = self.clock() + 100_000_000
            await asyncio.sleep(0.1)
            lags.append(self.clock() - due)
            if n % 10 == 0:  # once a second, as one process does
                self.collectors.drain()
                self.sink.writer.flush()
            self._show_live()
        return lags

    def _catch_signals(self, links: list[Any]) -> None:
        def stop() -> None:  # SIGINT or SIGTERM: every worker stops, records are kept
            self.stop.set()
            for link in links:
                link.send(("stop",))

        self.signals.catch_on_loop(stop)

    def _show_live(self) -> None:
        if self.on_live is not None:
            self.on_live(self.stats, self.clock())
