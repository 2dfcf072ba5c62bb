"""The coordinator's books of a multi-worker run: what each worker began, finished and
reported, the rows of a worker that died, and the one RunOutcome they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchbench.books import RecordSink
from benchbench.live import LiveStats
from benchbench.results import ClientOverhead, WorkerHealth
from benchbench.runloop import Clock, Driven, busy_warnings, health
from benchbench.workers.body import Started
from benchbench.workers.plan import Dealer
from loadgen import errors
from loadgen.load import RunOutcome
from loadgen.spec import RequestRecord

# A clock offset smaller than its uncertainty (or than this) is the same clock: one host's
# CLOCK_MONOTONIC is shared by all its processes, so local workers' times are never shifted.
SAME_CLOCK_NS = 1_000_000


@dataclass
class _Worker:
    info: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    done: bool = False
    lost: bool = False
    why: str = ""
    outcome: RunOutcome | None = None
    health: dict[str, Any] = field(default_factory=dict)
    open: dict[int, Started] = field(default_factory=dict)  # begun, not finished
    started: int = 0
    records: int = 0
    lost_rows: int = 0
    schedule_lags: list[int] = field(default_factory=list)
    clock: dict[str, tuple[int, int]] = field(default_factory=dict)  # when -> offset, unc.


class Tally:
    def __init__(self, sink: RecordSink, stats: LiveStats, clock: Clock) -> None:
        self.sink, self.stats, self.clock = sink, stats, clock
        self.links: list[Any] = []
        self.workers: list[_Worker] = []
        self.dealer: Dealer | None = None
        self.origin_ns = 0
        self.ok = self.errored = self.cancelled = 0
        self.warnings: list[str] = []
        self.failed_to_start: str | None = None

    def start(self, links: list[Any], dealer: Dealer) -> None:
        self.links, self.dealer = links, dealer
        self.workers = [_Worker() for _ in links]

    def all_ready(self) -> bool:
        return all(w.ready for w in self.workers)

    def alive(self, w: int) -> bool:
        return not self.workers[w].lost

    def finished(self) -> bool:
        return all(w.done or w.lost for w in self.workers)

    def shift(self, w: int) -> int:
        """Worker clock minus coordinator clock, where the two clocks differ."""
        offset, uncertainty = self.workers[w].clock.get("start", (0, 0))
        return offset if abs(offset) > max(uncertainty, SAME_CLOCK_NS) else 0

    def clock_sample(self, w: int, when: str, t0: int, worker_ns: int, t1: int) -> None:
        # The worker read its clock somewhere in [t0, t1]: offset within half the round
        # trip of the midpoint (rounded up, so the bound holds to the nanosecond).
        sample = (worker_ns - (t0 + t1) // 2, (t1 - t0 + 1) // 2)
        best = self.workers[w].clock.get(when)
        if best is None or sample[1] < best[1]:
            self.workers[w].clock[when] = sample

    def deliver(self, msg: tuple[Any, ...]) -> None:
        kind, w = msg[0], msg[1]
        worker = self.workers[w]
        if kind == "ready":
            worker.ready, worker.info = True, dict(msg[2])
        elif kind == "batch":
            self._batch(w, msg[2], msg[3])
        elif kind == "done":
            worker.done, worker.outcome, worker.health = True, msg[2], msg[3]

    def _batch(self, w: int, started: list[Started], records: list[RequestRecord]) -> None:
        worker, shift = self.workers[w], self.shift(w)
        worker.started += len(started)
        for s in started:
            worker.open[s.index] = s
        for record in records:
            worker.open.pop(record.index, None)
            if shift:
                _shift(record, shift)
            self._add(worker, record)

    def _add(self, worker: _Worker, record: RequestRecord) -> None:
        worker.records += 1
        if record.intended_ns is not None and not record.warmup:
            worker.schedule_lags.append(record.sent_ns - record.intended_ns)
        if record.error_kind is None:
            self.ok += 1
        elif record.error_kind == errors.CANCELLED:
            self.cancelled += 1
        else:
            self.errored += 1
        self.sink.add(record)
        self.stats.add(record)

    def lost(self, w: int, why: str) -> None:
        """A worker ended without finishing: its open requests become worker_lost rows and
        its share from now on is not sent."""
        worker = self.workers[w]
        if worker.done or worker.lost:
            return
        worker.lost, worker.why = True, why
        if not worker.ready:
            self.failed_to_start = f"client worker {w} failed to start: {why}"
            return
        now, shift = self.clock(), self.shift(w)
        for s in worker.open.values():
            record = RequestRecord(
                index=s.index, intended_ns=s.intended_ns, sent_ns=s.sent_ns, warmup=s.warmup,
                session_id=s.session_id, turn=s.turn,
                input_tokens_expected=s.input_tokens_expected,
                output_tokens_expected=s.output_tokens_expected,
                cached_input_tokens_expected=s.cached_input_tokens_expected,
                inputs=s.inputs, worker=w, error_kind=errors.WORKER_LOST,
                error_detail=f"client worker {w} died: {why}",
            )  # fmt: skip
            if shift:
                _shift(record, shift)
            record.closed_ns = now
            self._add(worker, record)
        worker.lost_rows = len(worker.open)
        worker.open.clear()
        if self.dealer is not None:
            self.dealer.drop(w)

    def outcome(self, end_ns: int, interrupted: bool) -> RunOutcome:
        out = RunOutcome(self.origin_ns, end_ns, ok=self.ok, errored=self.errored)
        out.cancelled, out.emitted = self.cancelled, self.sink.received
        out.interrupted = interrupted
        for w, worker in enumerate(self.workers):
            o = worker.outcome
            out.sent += o.sent if o is not None else worker.started
            if o is None:
                continue
            out.interrupted = out.interrupted or o.interrupted
            out.max_in_flight += o.max_in_flight
            out.note_lag(o.behind_schedule_max_ns)
            out.errors.extend(f"worker {w}: {e}" for e in o.errors)
        return out

    def driven(self, cpu_s: float, wall_s: float, lags: list[int], signalled: bool) -> Driven:
        """What the run's books need, as one process's LoadDriver hands it back."""
        per_worker = [self._health(w) for w in range(len(self.workers))]
        cpu = cpu_s + sum(h.cpu_s or 0.0 for h in per_worker)
        loop_lags = [h.loop_lag_p99_ms for h in per_worker if h.loop_lag_p99_ms is not None]
        own, _ = health(cpu_s, wall_s, lags)
        client = ClientOverhead(
            cpu, wall_s, cpu / wall_s if wall_s > 0 else None,
            max([*loop_lags, own.loop_lag_p99_ms or 0.0]),
        )  # fmt: skip
        warnings = list(self.warnings)
        for h in per_worker:
            warnings += [f"client worker {h.worker}: {m}" for m in busy_warnings(
                h.cpu_util, h.loop_lag_p99_ms)]  # fmt: skip
            if h.lost:
                warnings.append(
                    f"client worker {h.worker} died mid-run ({self.workers[h.worker].why}): "
                    f"{h.lost_requests} request(s) in flight recorded as worker_lost, "
                    f"{h.unsent} planned request(s) not sent"
                )
        retries = sum(int((w.health or {}).get("retries") or 0) for w in self.workers)
        outcome = self.outcome(self.clock(), signalled)
        return Driven(outcome, client, warnings, retries, signalled, per_worker)

    def _health(self, w: int) -> WorkerHealth:
        worker = self.workers[w]
        client = worker.health.get("client") or ClientOverhead()
        start, end = worker.clock.get("start"), worker.clock.get("end")
        unsent = 0
        if worker.lost and self.dealer is not None:
            unsent = self.dealer.dealt[w] - worker.started + self.dealer.undealt[w]
        return WorkerHealth(
            worker=w, pid=worker.info.get("pid"), host=worker.info.get("host"),
            node_id=worker.info.get("node_id"), cpu_s=client.cpu_s, wall_s=client.wall_s,
            cpu_util=client.cpu_util, loop_lag_p99_ms=client.loop_lag_p99_ms,
            schedule_lag_p99_ms=_p99_ms(worker.schedule_lags), records=worker.records,
            lost=worker.lost, lost_requests=worker.lost_rows, unsent=max(0, unsent),
            clock_offset_ns=start[0] if start else None,
            clock_uncertainty_ns=start[1] if start else None,
            clock_offset_end_ns=end[0] if end else None,
            clock_uncertainty_end_ns=end[1] if end else None,
        )  # fmt: skip


def _p99_ms(values: list[int]) -> float | None:
    if not values:
        return None
    values.sort()
    return values[int(0.99 * (len(values) - 1))] / 1e6


def _shift(record: RequestRecord, shift: int) -> None:
    """A record from a worker's clock onto the coordinator's: every time moves by the same
    amount, so latencies (differences on the worker's one clock) are unchanged."""
    for name in ("intended_ns", "first_token_ns", "last_token_ns", "closed_ns", "first_event_ns"):
        value = getattr(record, name)
        if value is not None:
            setattr(record, name, value - shift)
    record.sent_ns -= shift
    record.event_ns = [t - shift for t in record.event_ns]
