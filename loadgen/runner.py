"""The async runner: sends RequestSpecs through an Endpoint and a StreamClient, open or closed
loop, and hands every finished RequestRecord to a sink. Nothing here parses or stores on the
hot path: pieces are timestamped on arrival and parsed once the stream has closed.

Accounting identity: every request that was sent yields exactly one record, so
sent = ok + errored + cancelled holds even when the run is interrupted."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from loadgen import errors
from loadgen.client import Clock, StreamClient, sleep_until
from loadgen.endpoints import Endpoint
from loadgen.spec import RequestRecord, RequestSpec

Sink = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How much load, and when to stop. Open loop when the runner gets arrival offsets."""

    concurrency: int | None = None  # closed loop: this many requests always in flight
    max_requests: int | None = None  # measured requests (warm-up comes on top)
    duration_s: float | None = None  # stop sending after this long
    warmup_requests: int = 0
    max_rate: float | None = None  # closed loop: also cap the send rate (requests/s)
    think_time_s: float = 0.0  # closed loop: pause between a response and the next send
    drain_timeout_s: float | None = None  # after sending stops, cancel what is still running

    def __post_init__(self) -> None:
        if self.max_requests is None and self.duration_s is None:
            raise ValueError("give --requests N or --duration S so the run ends")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")


@dataclass(slots=True)
class RunOutcome:
    origin_ns: int
    end_ns: int
    sent: int = 0
    ok: int = 0
    errored: int = 0
    cancelled: int = 0
    interrupted: bool = False
    max_in_flight: int = 0


class Runner:
    def __init__(
        self,
        client: StreamClient,
        endpoint: Endpoint,
        clock: Clock,
        sink: Sink,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._clock = clock
        self._sink = sink
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._outcome: RunOutcome | None = None
        self._in_flight = 0
        self._to_parse: deque[tuple[RequestRecord, list[bytes], list[int]]] = deque()
        self._parser: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Stop sending and cancel what is in flight (Ctrl-C). Records are still emitted."""
        self._stopping = True
        if self._outcome is not None:
            self._outcome.interrupted = True
        for task in list(self._tasks):
            task.cancel()

    async def run(
        self,
        specs: Iterator[RequestSpec],
        plan: LoadPlan,
        arrivals: Iterator[int] | None = None,
        origin_ns: int | None = None,
    ) -> RunOutcome:
        origin = self._clock() if origin_ns is None else origin_ns
        self._outcome = RunOutcome(origin_ns=origin, end_ns=origin)
        total = None if plan.max_requests is None else plan.max_requests + plan.warmup_requests
        numbered = itertools.islice(specs, total) if total is not None else specs
        deadline = None if plan.duration_s is None else origin + int(plan.duration_s * 1e9)
        try:
            if arrivals is not None:
                await self._open_loop(numbered, arrivals, plan, origin, deadline)
            else:
                await self._closed_loop(numbered, plan, deadline)
            await self._drain(plan)
        except asyncio.CancelledError:
            self.stop()
            await self._drain(plan)
        self._outcome.end_ns = self._clock()
        await self._parsed()
        return self._outcome

    async def _open_loop(
        self,
        specs: Iterator[RequestSpec],
        arrivals: Iterator[int],
        plan: LoadPlan,
        origin: int,
        deadline: int | None,
    ) -> None:
        clock = self._clock
        for n, (spec, offset) in enumerate(zip(specs, arrivals, strict=False)):
            intended = origin + offset
            if deadline is not None and intended >= deadline:
                break
            await sleep_until(clock, intended)
            if self._stopping:
                break
            self._spawn(spec, intended, n < plan.warmup_requests)

    async def _closed_loop(
        self, specs: Iterator[RequestSpec], plan: LoadPlan, deadline: int | None
    ) -> None:
        concurrency = plan.concurrency or 1
        counter = itertools.count()
        throttler = None
        if plan.max_rate:
            from asyncio_throttle import Throttler

            throttler = Throttler(rate_limit=max(1, int(plan.max_rate)), period=1.0)
            if plan.max_rate < 1:
                throttler = Throttler(rate_limit=1, period=1.0 / plan.max_rate)

        async def worker() -> None:
            for spec in specs:  # a shared iterator: each spec goes to exactly one worker
                if self._stopping or (deadline is not None and self._clock() >= deadline):
                    return
                n = next(counter)
                if throttler is not None:
                    async with throttler:
                        pass
                await self._execute(spec, None, n < plan.warmup_requests)
                if plan.think_time_s > 0:
                    await asyncio.sleep(plan.think_time_s)

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        self._tasks.update(workers)
        try:
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            self._tasks.difference_update(workers)

    def _spawn(self, spec: RequestSpec, intended: int | None, warmup: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(spec, intended, warmup))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, plan: LoadPlan) -> None:
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=plan.drain_timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)

    async def _execute(self, spec: RequestSpec, intended_ns: int | None, warmup: bool) -> None:
        outcome = self._outcome
        assert outcome is not None
        record = RequestRecord(
            index=spec.index,
            intended_ns=intended_ns,
            sent_ns=self._clock(),
            input_tokens_expected=spec.input_tokens_expected,
            output_tokens_expected=spec.output_tokens_expected,
            warmup=warmup,
            session_id=spec.session_id,
            turn=spec.turn,
        )
        pieces: list[bytes] = []
        times: list[int] = []
        outcome.sent += 1
        self._in_flight += 1
        if self._in_flight > outcome.max_in_flight:
            outcome.max_in_flight = self._in_flight
        try:
            await self._client.post(
                self._endpoint.path, self._endpoint.body(spec), record, pieces, times
            )
        except asyncio.CancelledError:
            record.error_kind = errors.CANCELLED
            record.error_detail = "cancelled by the client"
            record.closed_ns = self._clock()
        finally:
            self._in_flight -= 1
            self._finish(record, pieces, times)

    def _finish(self, record: RequestRecord, pieces: list[bytes], times: list[int]) -> None:
        """Queue a closed response for parsing. Parsing costs ~2 us per event, so a long
        response parsed inline would hold the loop for milliseconds while other streams'
        pieces wait to be timestamped; the parser task yields between responses instead."""
        self._to_parse.append((record, pieces, times))
        if self._parser is None or self._parser.done():
            self._parser = asyncio.get_running_loop().create_task(self._parse_queued())

    async def _parse_queued(self) -> None:
        queue = self._to_parse
        while queue:
            record, pieces, times = queue.popleft()
            self._parse(record, pieces, times)
            if queue:
                await asyncio.sleep(0)  # let pending socket reads be timestamped first

    async def _parsed(self) -> None:
        """Wait until every closed response has been parsed and handed to the sink."""
        while self._parser is not None and not self._parser.done():
            await asyncio.shield(self._parser)
        while self._to_parse:  # queued after the parser finished (shouldn't happen)
            self._parse(*self._to_parse.popleft())

    def _parse(self, record: RequestRecord, pieces: list[bytes], times: list[int]) -> None:
        outcome = self._outcome
        assert outcome is not None
        cancelled = record.error_kind == errors.CANCELLED
        if record.http_status is not None and 200 <= record.http_status < 300:
            # Keep every token that arrived, also for a cancelled or broken stream.
            kind, detail = record.error_kind, record.error_detail
            record.error_kind = None
            self._endpoint.finish(record, pieces, times)
            if kind is not None:
                record.error_kind, record.error_detail = kind, detail
        if cancelled:
            outcome.cancelled += 1
        elif record.error_kind is None:
            outcome.ok += 1
        else:
            outcome.errored += 1
        self._sink(record)
