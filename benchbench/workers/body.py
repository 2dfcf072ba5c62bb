"""One worker: loadgen's runner on its share of the run, with its own event loop and HTTP
client. The same body runs in a local process (benchbench.workers.process) and in a Ray
actor (benchbench.workers.ray_actors); the transport only carries its messages.

To the coordinator it sends (through `send`, thread-safe):
    ("ready", w, info)            started, with pid, host and node
    ("more", w, n)                its work is running low: n more items, please
    ("batch", w, started, records) at least every `flush_s`: sends begun, records finished
    ("done", w, outcome, health)  the runner finished (after a last batch)
    ("failed", w, why)            it could not go on (after a last batch): it is lost
From the coordinator it takes feed(), go() and stop(), called from any thread."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from benchbench.runloop import health, run_event_loop
from benchbench.workers.plan import FEED_CHUNK, Share
from loadgen.apis import AdapterOptions, make_endpoint
from loadgen.client import StreamClient, make_client
from loadgen.httpcommon import HttpSettings
from loadgen.load import LoadPlan, RunOutcome, Session
from loadgen.runner import Runner
from loadgen.spec import RequestRecord

Send = Callable[[tuple[Any, ...]], None]
_END = object()
# Test seam: fixed offsets (ns) added to the workers' monotonic clocks, one per worker
# ("0,5000000000": worker 1's clock runs 5 s ahead), as if each ran on a host of its own.
# Read only by the worker body; the coordinator must find and undo the offset by itself.
CLOCK_OFFSET_ENV = "BENCHBENCH_TEST_WORKER_CLOCK_OFFSETS_NS"


class Started(NamedTuple):
    """A send begun: all a worker_lost row can say if the worker dies before it ends (what
    the request was planned to be; nothing measured after the send is known)."""

    index: int
    intended_ns: int | None
    sent_ns: int
    warmup: bool
    session_id: str | None
    turn: int
    input_tokens_expected: int | None
    output_tokens_expected: int | None
    cached_input_tokens_expected: int | None
    inputs: int | None


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs, picklable: it travels to another process or host."""

    share: Share
    workers: int
    settings: HttpSettings
    api: str
    model: str
    stream: bool
    tokenizer: str | None
    event_loop: str
    open_loop: bool
    sessions: bool
    duration_s: float | None
    drain_timeout_s: float | None
    max_rate: float | None
    flush_s: float = 0.25


def worker_clock(worker: int) -> Callable[[], int]:
    """The worker's monotonic clock: the host's, unless the test seam offsets it."""
    raw = os.environ.get(CLOCK_OFFSET_ENV, "").split(",")
    offset = int(raw[worker]) if worker < len(raw) and raw[worker].strip() else 0
    if not offset:
        return time.monotonic_ns
    return lambda: time.monotonic_ns() + offset


def node_info() -> dict[str, Any]:
    """Where this worker runs (Ray adds its node id)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


class Feed:
    """The worker's work as the coordinator hands it over: asks for more below one chunk."""

    def __init__(self, ask: Callable[[int], None], chunk: int = FEED_CHUNK) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ask = ask
        self._chunk = chunk
        self._asked = False
        self._ended = False
        self.stopped = threading.Event()
        self.taken = 0

    def put(self, items: list[Any], exhausted: bool) -> None:
        for item in items:
            self._queue.put(item)
        self._asked = False
        if exhausted:
            self._queue.put(_END)

    def next(self) -> tuple[Any, int | None] | None:
        """The next item, or None once the work is over. Blocks only when the coordinator is
        behind (asked for more a chunk earlier), or until stop()."""
        if self._ended:
            return None
        if not self._asked and self._queue.qsize() < self._chunk:
            self._asked = True
            self._ask(self._chunk)
        while not self.stopped.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _END:
                break
            self.taken += 1
            return item  # type: ignore[no-any-return]
        self._ended = True
        return None


class _Split:
    """The feed's (unit, offset) pairs as the runner takes them: a unit iterator and an
    offset iterator pulled in lockstep (the runner zips them), or a session source."""

    def __init__(self, feed: Feed) -> None:
        self._feed = feed
        self._offset: int | None = None
        self._unit: Any = None

    def units(self) -> Iterator[Any]:
        while (pair := self._feed.next()) is not None:
            self._unit, self._offset = pair
            yield self._unit

    def offsets(self) -> Iterator[int]:
        """Offsets of the units just taken (specs first: zip(specs, arrivals))."""
        while True:
            assert self._offset is not None
            yield self._offset

    def offsets_first(self) -> Iterator[int]:
        """Open-loop sessions: the runner takes the arrival, then the session."""
        while (pair := self._feed.next()) is not None:
            self._unit, offset = pair
            assert offset is not None
            yield offset

    def new_session(self) -> Session | None:
        unit, self._unit = self._unit, None
        return unit  # type: ignore[no-any-return]


class _ClosedSessions:
    def __init__(self, feed: Feed) -> None:
        self._feed = feed

    def new_session(self) -> Session | None:
        pair = self._feed.next()
        return None if pair is None else pair[0]  # type: ignore[no-any-return]


class _Tracked:
    """The worker's HTTP client, noting every send as it begins (for worker_lost rows)."""

    def __init__(self, inner: StreamClient, note: Callable[[Started], None]) -> None:
        self._inner = inner
        self._note = note

    @property
    def retries(self) -> int:
        return self._inner.retries

    async def post(
        self, path: str, body: bytes, record: RequestRecord, pieces: list[bytes], times: list[int]
    ) -> None:
        r = record
        self._note(
            Started(r.index, r.intended_ns, r.sent_ns, r.warmup, r.session_id, r.turn,
                    r.input_tokens_expected, r.output_tokens_expected,
                    r.cached_input_tokens_expected, r.inputs)
        )  # fmt: skip
        await self._inner.post(path, body, record, pieces, times)

    async def aclose(self) -> None:
        await self._inner.aclose()


class WorkerBody:
    def __init__(self, setup: WorkerSetup, send: Send) -> None:
        self.setup, self.w = setup, setup.share.worker
        self.clock = worker_clock(self.w)  # every stamp it takes, and its answer to a ping
        self._send = send
        self.feed = Feed(lambda n: send(("more", self.w, n)), setup.share.feed_chunk)
        self._go = threading.Event()
        self._origin = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Runner | None = None
        self._stop_requested = False
        self._records: list[RequestRecord] = []
        self._started: list[Started] = []
        self._lags: list[int] = []
        self._schedule_lags: list[int] = []

    # -- called by the transport, from any thread --
    def go(self, origin_ns: int) -> None:
        self._origin = origin_ns
        self._go.set()

    def stop(self) -> None:
        self._stop_requested = True
        self.feed.stopped.set()
        self._go.set()
        loop, runner = self._loop, self._runner
        if loop is not None and runner is not None:
            with contextlib.suppress(RuntimeError):  # the run is already over: its loop closed
                loop.call_soon_threadsafe(runner.stop)

    def run(self, info: dict[str, Any]) -> None:
        """The worker's whole life: ready, wait for go, run, done."""
        self._send(("ready", self.w, info))
        while not self._go.wait(1.0):
            pass
        try:
            outcome, overhead = run_event_loop(self._main(), self.setup.event_loop)
        except Exception as exc:
            # Say why before ending: in a Ray actor this thread's end is seen by no one (the
            # actor lives on), and a process's exit code alone does not say what failed.
            self._loop = None
            self._flush()
            self._send(("failed", self.w, f"{type(exc).__name__}: {exc}"[:300]))
            return
        self._loop = None
        self._send(("done", self.w, outcome, overhead))

    # -- inside the worker's event loop --
    def _plan(self) -> LoadPlan:
        s, share = self.setup, self.setup.share
        return LoadPlan(
            concurrency=share.concurrency,
            max_requests=share.max_requests,
            duration_s=s.duration_s,
            warmup_requests=share.warmup,
            max_rate=None if s.max_rate is None else s.max_rate / s.workers,
            drain_timeout_s=s.drain_timeout_s,
            in_flight_limit=share.in_flight_limit,
        )

    def _note_started(self, started: Started) -> None:
        self._started.append(started)

    def _record(self, record: RequestRecord) -> None:
        record.worker = self.w
        self._records.append(record)
        if record.intended_ns is not None and not record.warmup:
            self._schedule_lags.append(record.sent_ns - record.intended_ns)

    async def _main(self) -> tuple[RunOutcome, dict[str, Any]]:
        s = self.setup
        clock = self.clock
        options = AdapterOptions(s.model, s.stream, _counter(s.tokenizer))
        endpoint = make_endpoint(s.api, options)
        client = _Tracked(make_client(s.settings, clock), self._note_started)
        runner = Runner(client, endpoint, clock, self._record)
        self._loop, self._runner = asyncio.get_running_loop(), runner
        if self._stop_requested:
            runner.stop()
        work, arrivals = self._work()
        cpu0, t0 = time.process_time(), clock()
        tick = asyncio.create_task(self._ticker())
        try:
            outcome = await runner.run(work, self._plan(), arrivals, origin_ns=self._origin)
        finally:
            tick.cancel()
            await client.aclose()
        overhead, _ = health(time.process_time() - cpu0, (clock() - t0) / 1e9, self._lags)
        self._flush()
        return outcome, {
            "client": overhead,
            "schedule_lag_p99_ms": _p99_ms(self._schedule_lags),
            "retries": int(getattr(client, "retries", 0) or 0),
        }

    def _work(self) -> tuple[Any, Iterator[int] | None]:
        s, split = self.setup, _Split(self.feed)
        if s.sessions:
            if s.open_loop:
                return split, split.offsets_first()
            return _ClosedSessions(self.feed), None
        if s.open_loop:
            return split.units(), split.offsets()
        return split.units(), None

    async def _ticker(self) -> None:
        every = max(1, round(self.setup.flush_s / 0.05))
        for n in itertools.count(1):
            due = time.monotonic_ns() + 50_000_000
            await asyncio.sleep(0.05)
            self._lags.append(time.monotonic_ns() - due)
            if n % every == 0:
                self._flush()

    def _flush(self) -> None:
        if self._records or self._started:
            started, self._started = self._started, []
            records, self._records = self._records, []
            self._send(("batch", self.w, started, records))


def _p99_ms(values: list[int]) -> float | None:
    if not values:
        return None
    values.sort()
    return values[int(0.99 * (len(values) - 1))] / 1e6


def _counter(tokenizer: str | None) -> Callable[[str], int] | None:
    if not tokenizer:
        return None
    from benchbench.token_counters import HFTokenizerCounter

    counter = HFTokenizerCounter(tokenizer)
    return lambda text: counter.count([text])[0]
