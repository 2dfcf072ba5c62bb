"""Parsing closed responses off the hot path, one at a time: each is parsed by its endpoint,
counted in the run's outcome and handed to the sink.

Parsing costs ~2 us per event, so a long response parsed inline would hold the loop for
milliseconds while other streams' pieces wait to be timestamped; the parser task yields
between responses instead."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from loadgen import errors
from loadgen.endpoints import Endpoint
from loadgen.load import RunOutcome
from loadgen.spec import RequestRecord

Sink = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class Closed:
    """A closed response waiting to be parsed; ``parsed`` is resolved with its record after."""

    record: RequestRecord
    pieces: list[bytes]
    times: list[int]
    parsed: asyncio.Future[RequestRecord] | None


class ParseQueue:
    def __init__(
        self, endpoint: Endpoint, sink: Sink, outcome: RunOutcome, on_emitted: Callable[[], None]
    ) -> None:
        self._endpoint = endpoint
        self._sink = sink
        self._outcome = outcome
        self._on_emitted = on_emitted  # a record was emitted: its request no longer counts
        self.pending: deque[Closed] = deque()
        self._parser: asyncio.Task[None] | None = None

    def put(self, closed: Closed) -> None:
        """Queue a closed response for parsing."""
        self.pending.append(closed)
        if self._parser is None or self._parser.done():
            self._parser = asyncio.get_running_loop().create_task(self._parse_queued())

    async def _parse_queued(self) -> None:
        queue = self.pending
        while queue:
            self._parse(queue.popleft())
            if queue:
                await asyncio.sleep(0)  # let pending socket reads be timestamped first

    async def drained(self) -> None:
        """Wait until every closed response has been parsed and handed to the sink."""
        while self._parser is not None and not self._parser.done():
            await asyncio.shield(self._parser)
        while self.pending:  # queued after the parser finished (shouldn't happen)
            self._parse(self.pending.popleft())

    def _parse(self, closed: Closed) -> None:
        """Parse, count and emit one record. Nothing raised here may escape: the parser task
        would die with the queue behind it and a session would wait for its turn forever."""
        outcome = self._outcome
        record, pieces, times = closed.record, closed.pieces, closed.times
        cancelled = record.error_kind == errors.CANCELLED
        if record.http_status is not None and 200 <= record.http_status < 300:
            # Keep every token that arrived, also for a cancelled or broken stream.
            kind, detail = record.error_kind, record.error_detail
            record.error_kind = None
            try:
                self._endpoint.finish(record, pieces, times)
            except Exception as exc:
                outcome.note_internal(record, exc, "parsing the response")
            if kind is not None:  # what went wrong first is what the request reports
                record.error_kind, record.error_detail = kind, detail
        if record.intended_ns is not None:  # the send as stored (the client may set it late)
            outcome.note_lag(record.sent_ns - record.intended_ns)
        if cancelled:
            outcome.cancelled += 1
        elif record.error_kind is None:
            outcome.ok += 1
        else:
            outcome.errored += 1
        outcome.emitted += 1
        try:
            self._sink(record)
        except Exception as exc:  # the record is counted; the spine compares with stored
            outcome.note_bug(exc, f"storing request {record.index}")
        if closed.parsed is not None and not closed.parsed.done():
            closed.parsed.set_result(record)
        self._on_emitted()
