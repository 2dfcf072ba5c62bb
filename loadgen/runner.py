"""The async runner: sends RequestSpecs through an Endpoint and a StreamClient, open or closed
loop, and hands every finished RequestRecord to a sink. Nothing here parses or stores on the
hot path: pieces are timestamped on arrival and parsed once the stream has closed.

What is sent comes either as one spec iterator (closed-loop workers share it, each spec goes
to exactly one of them) or as a SessionSource (loadgen.load).

Sending and requests are separate tasks. The sending side (the open loop's schedule, the
closed-loop workers, the sessions) stops when the duration is reached, the budget has been
handed out, the work runs out, or stop() is called; the requests still in flight then get
drain_timeout_s before they are cancelled, in every mode (stop() cancels them at once).

The open loop never outruns the machine: behind schedule it still yields (loadgen.pacing),
and at most ``in_flight_limit`` requests are open at once. A send that waits for room keeps
its intended time, so the wait is schedule lag, and ``behind_schedule_max_ns`` says how far
behind the schedule the client got.

Accounting identity: every request that was sent yields exactly one record, handed to the
sink, so sent = ok + errored + cancelled = emitted holds even when the run is interrupted.
A bug inside one of the run's tasks (a parser, a sink or a session raising, a client raising
anything but a cancellation) never escapes as a stray traceback: the request still gets its
record (error kind "internal"), the traceback goes to RunOutcome.errors, and the run goes on."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from loadgen import errors
from loadgen.client import Clock, StreamClient, sleep_until
from loadgen.endpoints import Endpoint
from loadgen.load import LoadPlan, RunOutcome, Session, SessionSource
from loadgen.pacing import Pacer
from loadgen.parsequeue import Closed, ParseQueue, Sink
from loadgen.spec import RequestRecord, RequestSpec


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
        self._sender: asyncio.Task[None] | None = None  # the schedule, or the workers' parent
        self._drivers: set[asyncio.Task[None]] = set()  # closed-loop workers, open-loop sessions
        self._requests: set[asyncio.Task[None]] = set()  # one per request, until it closes
        self._room = asyncio.Event()  # set whenever a request or session ends
        self._stopping = False
        self._ended_ns: int | None = None  # when sending stopped: the drain counts from here
        self._outcome = RunOutcome(origin_ns=0, end_ns=0)  # run() makes the run's own
        self._in_flight = 0
        self._parsing = ParseQueue(endpoint, sink, self._outcome, self._room.set)
        self._budget: int | None = None  # requests this run may send (warm-up included)
        self._warmup = 0
        self._claimed = 0  # send numbers handed out (sessions claim one before each turn)
        self._pacer = Pacer(clock, None)

    def stop(self) -> None:
        """Stop sending and cancel what is in flight (Ctrl-C, SIGTERM). Records are still
        emitted. Safe to call from a signal handler, any number of times."""
        self._stopping = True
        self._outcome.interrupted = True
        self._end_sending()
        for task in list(self._requests):
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
        # stop() may come first (Ctrl-C during an idle baseline): then nothing is sent.
        self._outcome = outcome = RunOutcome(origin_ns=origin, end_ns=origin)
        outcome.interrupted = self._stopping
        total = None if plan.max_requests is None else plan.max_requests + plan.warmup_requests
        self._budget, self._warmup, self._claimed = total, plan.warmup_requests, 0
        self._pacer = Pacer(self._clock, plan.max_rate if arrivals is None else None)
        self._room = asyncio.Event()
        self._parsing = ParseQueue(self._endpoint, self._sink, outcome, self._room.set)
        self._ended_ns = None
        deadline = None if plan.duration_s is None else origin + int(plan.duration_s * 1e9)
        self._sender = asyncio.create_task(self._send(work, plan, arrivals, origin, deadline))
        self._sender.add_done_callback(self._sender_done)
        try:
            await self._sending(deadline)
            await self._drain(plan.drain_timeout_s)
        except asyncio.CancelledError:  # the caller cancelled the run: as Ctrl-C
            self.stop()
            await self._sending(None)
            await self._drain(None)
        outcome.end_ns = self._clock()
        await self._parsing.drained()
        if not outcome.balanced:
            outcome.errors.append(
                f"the runner's books do not balance: sent {outcome.sent}, ok {outcome.ok}, "
                f"errored {outcome.errored}, cancelled {outcome.cancelled}, "
                f"emitted {outcome.emitted}"
            )
        return outcome

    async def _send(
        self,
        work: Iterator[RequestSpec] | SessionSource,
        plan: LoadPlan,
        arrivals: Iterator[int] | None,
        origin: int,
        deadline: int | None,
    ) -> None:
        if isinstance(work, SessionSource):
            if arrivals is not None:
                await self._open_sessions(work, arrivals, plan, origin, deadline)
            else:
                await self._workers(functools.partial(self._session_worker, work, deadline), plan)
        else:
            total = self._budget
            numbered = itertools.islice(work, total) if total is not None else work
            if arrivals is not None:
                await self._open_loop(numbered, arrivals, plan, origin, deadline)
            else:
                await self._closed_loop(numbered, plan, deadline)

    async def _sending(self, deadline: int | None) -> None:
        """Wait until the sending is over: the work ran out, or the duration was reached
        (then end it), or stop() ended it."""
        sender = self._sender
        assert sender is not None
        while not sender.done():
            if deadline is None:
                await asyncio.wait((sender,))
            elif (left_ns := deadline - self._clock()) > 0:
                await asyncio.wait((sender,), timeout=left_ns / 1e9)
            else:
                self._end_sending()  # the duration is reached
                await asyncio.wait((sender,))
        self._end_sending()  # a no-op unless the sender raised with sessions still going
        if self._drivers:
            await asyncio.wait(set(self._drivers))

    def _sender_done(self, sender: asyncio.Task[None]) -> None:
        if not sender.cancelled() and (exc := sender.exception()) is not None:
            self._outcome.note_bug(exc, "scheduling requests")

    def _end_sending(self) -> None:
        """No more sends: cancel the sender and the drivers. The requests they started are
        tasks of their own, left in flight for the drain."""
        if self._ended_ns is None:
            self._ended_ns = self._clock()
        if self._sender is not None:
            self._sender.cancel()
        for task in list(self._drivers):
            task.cancel()

    async def _open_loop(
        self,
        specs: Iterator[RequestSpec],
        arrivals: Iterator[int],
        plan: LoadPlan,
        origin: int,
        deadline: int | None,
    ) -> None:
        requests, to_parse, limit = self._requests, self._parsing.pending, plan.in_flight_limit
        intended = None
        try:
            for n, (spec, offset) in enumerate(zip(specs, arrivals, strict=False)):
                intended = origin + offset
                if deadline is not None and intended >= deadline:
                    self._ended_ns = deadline  # the schedule reached the duration
                    return
                await self._pacer.until(intended)
                while len(requests) + len(to_parse) >= limit:
                    await self._wait_for_room()
                if self._stopping:
                    return
                self._spawn_request(spec, intended, n < plan.warmup_requests)
        except asyncio.CancelledError:
            self._due_unsent(intended)
            raise

    async def _wait_for_room(self) -> None:
        self._room.clear()
        await self._room.wait()

    def _due_unsent(self, intended_ns: int | None) -> None:
        """Sending stopped with an arrival due and not sent: it counts as behind schedule."""
        if intended_ns is not None:
            self._outcome.note_lag(self._clock() - intended_ns)

    async def _closed_loop(
        self, specs: Iterator[RequestSpec], plan: LoadPlan, deadline: int | None
    ) -> None:
        async def worker() -> None:
            while True:
                await self._pacer.throttle()
                n = self._claim(deadline)
                if n is None:
                    return
                spec = next(specs, None)  # a shared iterator: each spec goes to one worker
                if spec is None:  # the work ran out: nothing more will be sent
                    asyncio.get_running_loop().call_soon(self._end_sending)
                    return
                request = self._spawn_request(spec, None, n < plan.warmup_requests)
                # Wait for it without owning it: ending the sending leaves it to the drain.
                # A bare future: asyncio.wait((request,)) costs ~5 us more per request.
                waiter = asyncio.get_running_loop().create_future()
                request.add_done_callback(lambda _, w=waiter: w.done() or w.set_result(None))
                await waiter
                if plan.think_time_s > 0:
                    await asyncio.sleep(plan.think_time_s)

        await self._workers(worker, plan)

    async def _workers(
        self, worker: Callable[[], Coroutine[Any, Any, object]], plan: LoadPlan
    ) -> None:
        workers = [self._spawn_driver(worker) for _ in range(plan.concurrency or 1)]
        await asyncio.wait(workers)

    async def _session_worker(self, source: SessionSource, deadline: int | None) -> None:
        while (session := source.new_session()) is not None:
            if not await self._converse(session, None, deadline):
                return

    async def _open_sessions(
        self,
        source: SessionSource,
        arrivals: Iterator[int],
        plan: LoadPlan,
        origin: int,
        deadline: int | None,
    ) -> None:
        intended = None
        try:
            for offset in arrivals:
                intended = origin + offset
                if deadline is not None and intended >= deadline:
                    self._ended_ns = deadline  # the schedule reached the duration
                    break
                if self._budget is not None and self._claimed >= self._budget:
                    break
                await self._pacer.until(intended)
                while len(self._drivers) >= plan.in_flight_limit:
                    await self._wait_for_room()
                session = None if self._stopping else source.new_session()
                if session is None:
                    break
                self._spawn_driver(functools.partial(self._converse, session, intended, deadline))
        except asyncio.CancelledError:
            self._due_unsent(intended)
            raise
        # The sessions started go on with their later turns until they end or sending stops.
        if self._drivers:
            await asyncio.wait(set(self._drivers))

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
            await self._pacer.throttle()
            n = self._claim(deadline)
            if n is None:
                return False
            parsed = asyncio.get_running_loop().create_future()
            self._spawn_request(turn.spec, intended, n < self._warmup, parsed)
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
        if self._claimed == self._budget:
            # The last send: once it has been started, the sending is over, and the requests
            # still in flight (the workers' included) are the drain's.
            asyncio.get_running_loop().call_soon(self._end_sending)
        return self._claimed - 1

    def _spawn_request(
        self,
        spec: RequestSpec,
        intended_ns: int | None,
        warmup: bool,
        parsed: asyncio.Future[RequestRecord] | None = None,
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._execute(spec, intended_ns, warmup, parsed)
        )
        self._requests.add(task)
        task.add_done_callback(self._request_done)
        return task

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        self._room.set()

    def _spawn_driver(self, make: Callable[[], Coroutine[Any, Any, object]]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._guarded(make))
        self._drivers.add(task)
        task.add_done_callback(self._driver_done)
        return task

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        self._drivers.discard(task)
        self._room.set()

    async def _guarded(self, make: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """A driver's task boundary: a bug inside (a session raising, say) is recorded in the
        outcome and ends this driver only. The coroutine is made here, inside the task, so a
        driver cancelled before it starts leaves no coroutine un-awaited."""
        try:
            await make()
        except Exception as exc:
            self._outcome.note_bug(exc, "driving requests")

    async def _drain(self, timeout_s: float | None) -> None:
        """Let the requests still in flight finish, for at most ``timeout_s`` after sending
        stopped; cancel the rest (each then yields a cancelled record)."""
        pending = [t for t in self._requests if not t.done()]
        if not pending:
            return
        timeout = None
        if timeout_s is not None:
            ended = self._clock() if self._ended_ns is None else self._ended_ns
            timeout = max(0.0, (ended + int(timeout_s * 1e9) - self._clock()) / 1e9)
        _done, still = await asyncio.wait(pending, timeout=timeout)
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
        record = RequestRecord(
            index=spec.index,
            intended_ns=intended_ns,
            sent_ns=self._clock(),
            input_tokens_expected=spec.input_tokens_expected,
            output_tokens_expected=spec.output_tokens_expected,
            warmup=warmup,
            session_id=spec.session_id,
            turn=spec.turn,
            inputs=None if spec.inputs is None else len(spec.inputs),  # embeddings, rerank
            cached_input_tokens_expected=spec.cached_input_tokens_expected,
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
        except Exception as exc:  # a bug in the client or the endpoint: still a record
            outcome.note_internal(record, exc, "sending")
            record.closed_ns = self._clock()
        finally:
            self._in_flight -= 1
            self._parsing.put(Closed(record, pieces, times, parsed))
