"""What the runner is asked to send and how much (sessions and their turns, LoadPlan), and
what came of it (RunOutcome).

A session's next turn is asked for only once its previous turn has completed and been
parsed, so the turn may carry the actual reply, and is sent after the turn's think time.
Closed loop: each worker runs one session after another. Open loop: a session starts at each
arrival; its later turns follow their predecessor."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from loadgen import errors
from loadgen.spec import RequestRecord, RequestSpec


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
    # Open loop: at most this many requests open at once (sent, or closed and not yet parsed;
    # with sessions, sessions started and not over). A send due past it waits for room, keeps
    # its intended time, and the wait shows as schedule lag: memory stays bounded at any rate.
    in_flight_limit: int = 10_000

    def __post_init__(self) -> None:
        if self.max_requests is None and self.duration_s is None:
            raise ValueError("give --requests N or --duration S so the run ends")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.in_flight_limit < 1:
            raise ValueError("the in-flight limit must be at least 1")


@dataclass(slots=True)
class RunOutcome:
    origin_ns: int
    end_ns: int
    sent: int = 0
    ok: int = 0
    errored: int = 0
    cancelled: int = 0
    emitted: int = 0  # records handed to the sink (one that raised counts: compare with stored)
    interrupted: bool = False
    max_in_flight: int = 0
    # Open loop: the most any send (or a send still due when sending stopped) was behind its
    # intended time. Far above the usual ~1 ms: the client could not reach the rate.
    behind_schedule_max_ns: int = 0
    # Unhandled exceptions inside the run's tasks, with tracebacks: bugs, so the run failed.
    errors: list[str] = field(default_factory=list)

    def note_bug(self, exc: BaseException, where: str) -> None:
        """An unhandled exception inside the run: kept with its traceback."""
        self.errors.append(f"{where}: " + "".join(traceback.format_exception(exc)).rstrip())

    def note_internal(self, record: RequestRecord, exc: Exception, where: str) -> None:
        """A bug met while handling one request: the request is recorded as such."""
        record.error_kind = errors.INTERNAL
        record.error_detail = f"client bug {where}: {type(exc).__name__}: {exc}"[:300]
        self.note_bug(exc, f"{where} (request {record.index})")

    def note_lag(self, lag_ns: int) -> None:
        if lag_ns > self.behind_schedule_max_ns:
            self.behind_schedule_max_ns = lag_ns

    @property
    def balanced(self) -> bool:
        """sent = ok + errored + cancelled = emitted."""
        return self.sent == self.ok + self.errored + self.cancelled == self.emitted
