"""The async runner: sends RequestSpecs through an Endpoint and a StreamClient, open or closed
loop, and hands every finished RequestRecord to a sink. Nothing here parses or stores on the
hot path: pieces are timestamped on arrival and parsed once the stream has closed.

What is sent comes either as one spec iterator (closed-loop workers share it, each spec goes
to exactly one of them) or as a SessionSource: a session's next turn is asked for only once
its previous turn has completed and been parsed, so the turn may carry the actual reply, and
is sent after the turn's think time. Closed loop: each worker runs one session after another.
Open loop: a session starts at each arrival; its later turns follow their predecessor.

Accounting identity: every request that was sent yields exactly one record, so
sent = ok + errored + cancelled holds even when the run is interrupted."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from loadgen import errors
from loadgen.client import Clock, StreamClient, sleep_until
from loadgen.endpoints import Endpoint
from loadgen.spec import RequestRecord, RequestSpec

Sink = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class Turn:
    spec: RequestSpec
    think_ns: int = 0  # pause after the previous turn completed (ignored for a first turn)


class Session(Protocol):
    def next_turn(self, previous: RequestRecord | None) -> Turn | None:
        """The next turn, given the previous turn's parsed record (None before the first);
        None when the session is over."""
        ...


@runtime_checkable
class SessionSource(Protocol):
    def new_session(self) -> Session | None:
        """A session not started yet; None when there are no more."""
        ...


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How much load, and when to stop. Open loop when the runner gets arrival offsets."""

    concurrency: int | None = None  # closed loop: this many requests always in flight
    max_requests: int | None = None  # measured requests (warm-up comes on top)
    duration_s: float | None = None  # stop sending after this long
    warmup_requests: int = 0
    max_rate: float | None = None  # closed loop: also cap the send rate (requests/s)
    # Closed loop over a spec iterator: pause between a response and the next send. A
    # SessionSource brings its own (drawn) think times instead.
    think_time_s: float = 0.0
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._outcome: RunOutcome | None = None
        self._in_flight = 0
        self._to_parse: deque[_Closed] = deque()
        self._parser: asyncio.Task[None] | None = None
        self._budget: int | None = None  # requests this run may send (warm-up included)
        self._warmup = 0
        self._claimed = 0  # send numbers handed out (sessions claim one before each turn)
        self._throttler: Any = None

    def stop(self) -> None:
        """Stop sending and cancel what is in flight (Ctrl-C). Records are still emitted."""
        self._stopping = True
        if self._outcome is not None:
            self._outcome.interrupted = True
        for task in list(self._tasks):
            task.cancel()

    async def run(
        self,
        work: Iterator[RequestSpec] | SessionSource,
        plan: LoadPlan,
        arrivals: Iterator[int] | None = None,
        origin_ns: int | None = None,
    ) -> RunOutcome:
        """Send ``work`` (a spec iterator or a SessionSource), open loop when ``arrivals``
        (offsets in ns from the origin) are given, until the plan's count or duration."""
        if plan.think_time_s and isinstance(work, SessionSource):
            raise ValueError("a session source draws its own think times; leave think_time_s 0")
        origin = self._clock() if origin_ns is None else origin_ns
        self._outcome = RunOutcome(origin_ns=origin, end_ns=origin)
        total = None if plan.max_requests is None else plan.max_requests + plan.warmup_requests
        self._budget, self._warmup, self._claimed = total, plan.warmup_requests, 0
        self._throttler = _throttler(plan.max_rate) if arrivals is None else None
        deadline = None if plan.duration_s is None else origin + int(plan.duration_s * 1e9)
        try:
            if isinstance(work, SessionSource):
                if arrivals is not None:
                    await self._open_sessions(work, arrivals, origin, deadline)
                else:
                    await self._workers(lambda: self._session_worker(work, deadline), plan)
            else:
                numbered = itertools.islice(work, total) if total is not None else work
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
            self._spawn(self._execute(spec, intended, n < plan.warmup_requests))

    async def _closed_loop(
        self, specs: Iterator[RequestSpec], plan: LoadPlan, deadline: int | None
    ) -> None:
        counter = itertools.count()

        async def worker() -> None:
            for spec in specs:  # a shared iterator: each spec goes to exactly one worker
                if self._stopping or (deadline is not None and self._clock() >= deadline):
                    return
                n = next(counter)
                await self._throttle()
                await self._execute(spec, None, n < plan.warmup_requests)
                if plan.think_time_s > 0:
                    await asyncio.sleep(plan.think_time_s)

        await self._workers(worker, plan)

    async def _workers(
        self, worker: Callable[[], Coroutine[Any, Any, None]], plan: LoadPlan
    ) -> None:
        workers = [asyncio.create_task(worker()) for _ in range(plan.concurrency or 1)]
        self._tasks.update(workers)
        try:
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            self._tasks.difference_update(workers)

    async def _throttle(self) -> None:
        if self._throttler is not None:
            async with self._throttler:
                pass

    async def _session_worker(self, source: SessionSource, deadline: int | None) -> None:
        while (session := source.new_session()) is not None:
            if not await self._converse(session, None, deadline):
                return

    async def _open_sessions(
        self, source: SessionSource, arrivals: Iterator[int], origin: int, deadline: int | None
    ) -> None:
        for offset in arrivals:
            intended = origin + offset
            if deadline is not None and intended >= deadline:
                break
            if self._budget is not None and self._claimed >= self._budget:
                break
            await sleep_until(self._clock, intended)
            session = None if self._stopping else source.new_session()
            if session is None:
                break
            self._spawn(self._converse(session, intended, deadline))

    async def _converse(self, session: Session, intended: int | None, deadline: int | None) -> bool:
        """Send one session's turns in order: each once the previous one has completed and
        been parsed, plus the turn's think time. Open loop (``intended`` given), a later
        turn's intended send time is its predecessor's close + think time. Returns whether
        the run goes on (False: stopped, out of budget or time, or an empty session)."""
        previous: RequestRecord | None = None
        while (turn := session.next_turn(previous)) is not None:
            if previous is not None:
                due = (previous.closed_ns or self._clock()) + turn.think_ns
                # uvloop's timers have ms resolution and may fire early: think time is a floor.
                while due > self._clock():
                    await sleep_until(self._clock, due)
                intended = None if intended is None else due
            n = self._claim(deadline)
            if n is None:
                return False
            await self._throttle()
            parsed = asyncio.get_running_loop().create_future()
            await self._execute(turn.spec, intended, n < self._warmup, parsed)
            previous = await parsed
            if previous.error_kind == errors.CANCELLED:
                return False
        return previous is not None

    def _claim(self, deadline: int | None) -> int | None:
        """The next send number, or None when the run sends no more."""
        if self._stopping or (deadline is not None and self._clock() >= deadline):
            return None
        if self._budget is not None and self._claimed >= self._budget:
            return None
        self._claimed += 1
        return self._claimed - 1

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
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

    async def _execute(
        self,
        spec: RequestSpec,
        intended_ns: int | None,
        warmup: bool,
        parsed: asyncio.Future[RequestRecord] | None = None,
    ) -> None:
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
            self._finish(_Closed(record, pieces, times, parsed))

    def _finish(self, closed: _Closed) -> None:
        """Queue a closed response for parsing. Parsing costs ~2 us per event, so a long
        response parsed inline would hold the loop for milliseconds while other streams'
        pieces wait to be timestamped; the parser task yields between responses instead."""
        self._to_parse.append(closed)
        if self._parser is None or self._parser.done():
            self._parser = asyncio.get_running_loop().create_task(self._parse_queued())

    async def _parse_queued(self) -> None:
        queue = self._to_parse
        while queue:
            self._parse(queue.popleft())
            if queue:
                await asyncio.sleep(0)  # let pending socket reads be timestamped first

    async def _parsed(self) -> None:
        """Wait until every closed response has been parsed and handed to the sink."""
        while self._parser is not None and not self._parser.done():
            await asyncio.shield(self._parser)
        while self._to_parse:  # queued after the parser finished (shouldn't happen)
            self._parse(self._to_parse.popleft())

    def _parse(self, closed: _Closed) -> None:
        outcome = self._outcome
        assert outcome is not None
        record, pieces, times = closed.record, closed.pieces, closed.times
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
        if closed.parsed is not None and not closed.parsed.done():
            closed.parsed.set_result(record)


@dataclass(frozen=True, slots=True)
class _Closed:
    """A closed response waiting to be parsed; ``parsed`` is resolved with its record after."""

    record: RequestRecord
    pieces: list[bytes]
    times: list[int]
    parsed: asyncio.Future[RequestRecord] | None


def _throttler(max_rate: float | None) -> Any:
    """asyncio-throttle's Throttler capping sends at ``max_rate`` per second, or None."""
    if not max_rate:
        return None
    from asyncio_throttle import Throttler

    if max_rate < 1:
        return Throttler(rate_limit=1, period=1.0 / max_rate)
    return Throttler(rate_limit=max(1, int(max_rate)), period=1.0)
