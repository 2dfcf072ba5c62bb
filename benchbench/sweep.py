"""Several measured runs from one command: sweeps over rate or concurrency, and repeats.

Each point is one `execute` call stored under its own run id and tied to the others by a
RunGroup (runs.sweep_id, sweep_point, group_kind). A rate sweep stops climbing at the first
over-saturated point, since every point above it only measures a longer queue.

Over-saturation, judged within a point from the store (ok, measured requests):
- the client fell behind its own schedule: the sends' lag behind their intended times (which
  are stored) reached BEHIND_MS at p99. A Poisson schedule of a few dozen arrivals deviates
  from its nominal rate by tens of percent by chance, so the achieved rate alone proves
  nothing; the lag compares each send with the time the plan gave it. The client is named as
  the bottleneck only when its own health figures say so (CPU share, event-loop lag);
- the server completed well under what was sent (completions/s < 85% of sends/s);
- time to first token grew without bound (open loop; a closed loop's queue is bounded): the
  median TTFT of the last third of requests (in send order) is over 4x that of the first
  third and 25 ms more;
- closed loop: throughput grew under 10% although concurrency rose 1.5x or more.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchbench.calibrate import recommended_workers
from benchbench.config import RunConfig
from benchbench.execute import RunGroup, RunPlan, execute
from benchbench.metrics import RunSummary
from benchbench.results import load_results
from benchbench.runloop import busy_warnings
from benchbench.store import open_store

BEHIND_MS = 100.0  # schedule lag p99 at which a point's sends fell behind their plan


@dataclass(frozen=True, slots=True)
class PointCheck:
    """What the store says about one point's load."""

    completed_rate: float | None  # ok completions per second, first to last completion
    ttft_first_ms: float | None  # median TTFT of the first third of requests (send order)
    ttft_last_ms: float | None  # and of the last third
    lag_p99_ms: float | None = None  # sends behind their intended time (open loop)
    client_busy: str | None = None  # the client's own health warning, if any


@dataclass(slots=True)
class Point:
    index: int
    rate: float | None
    concurrency: int | None
    run_id: int
    summary: RunSummary
    check: PointCheck
    saturated: str | None = None  # why this point counts as over-saturated
    status: str = "complete"  # the run's final status (failed: its books did not balance)

    @property
    def load(self) -> str:
        return f"{self.rate:g}/s" if self.rate is not None else f"c={self.concurrency}"

    def row(self) -> dict[str, Any]:
        s, d = self.summary, self.summary.distributions
        good = s.goodput or {}
        return {
            "point": self.index,
            "run_id": self.run_id,
            "rate": self.rate,
            "concurrency": self.concurrency,
            "achieved_rate": s.achieved_rate,
            "completed_rate": self.check.completed_rate,
            "schedule_lag_p99_ms": self.check.lag_p99_ms,
            "requests_s": s.requests_s,
            "output_tok_s": s.output_tok_s,
            "ttft_p50_ms": d["ttft_ms"].p50,
            "ttft_p99_ms": d["ttft_ms"].p99,
            "tpot_p99_ms": d["tpot_ms"].p99,
            "goodput_rps": good.get("goodput_rps"),
            "slo_met": good.get("all_met"),
            "errored": s.errored,
            "saturated": self.saturated,
            "status": self.status,
        }


@dataclass
class GroupResult:
    group_id: str
    kind: str  # "sweep" | "repeat" | "search"
    points: list[Point] = field(default_factory=list)
    stopped: str | None = None  # why a sweep stopped climbing early

    @property
    def run_ids(self) -> list[int]:
        return [p.run_id for p in self.points]

    @property
    def failed(self) -> list[int]:
        """Runs of the group that failed (lost records, a store or task failure): the
        command that ran them must exit non-zero."""
        return [p.run_id for p in self.points if p.status == "failed"]


def new_group_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def point_check(db: str, run_id: int) -> PointCheck:
    store = open_store(db, read_only=True)
    try:
        row = store.con.execute(
            """WITH r AS (
                   SELECT sent_ns, coalesce(last_token_ns, closed_ns) AS done_ns,
                          (first_token_ns - sent_ns) / 1e6 AS ttft_ms,
                          ntile(3) OVER (ORDER BY sent_ns) AS third
                   FROM requests
                   WHERE run_id = ? AND NOT warmup AND error_kind IS NULL)
               SELECT count(*), min(done_ns), max(done_ns),
                      median(ttft_ms) FILTER (WHERE third = 1),
                      median(ttft_ms) FILTER (WHERE third = 3),
                      (SELECT quantile_disc((sent_ns - intended_ns) / 1e6, 0.99) FROM requests
                       WHERE run_id = ? AND NOT warmup AND intended_ns IS NOT NULL
                             AND sent_ns IS NOT NULL)
               FROM r""",
            [run_id, run_id],
        ).fetchone()
        client = load_results(store.con, run_id).client
    finally:
        store.close()
    assert row is not None
    n, t0, t1, first, last, lag = row
    rate = (n - 1) / ((t1 - t0) / 1e9) if n and n > 2 and t1 > t0 else None
    busy = busy_warnings(client.cpu_util, client.loop_lag_p99_ms) if client else []
    return PointCheck(rate, first, last, lag, busy[0] if busy else None)


def saturation(summary: RunSummary, check: PointCheck, requested_rate: float | None) -> str | None:
    """Why a point is over-saturated, or None. See the module docstring for the rules."""
    if requested_rate is None:
        return None
    if check.lag_p99_ms is not None and check.lag_p99_ms >= BEHIND_MS:
        why = f"client-bound: {check.client_busy}" if check.client_busy else "see schedule lag"
        return f"the client's sends fell {check.lag_p99_ms:.0f} ms behind schedule at p99 ({why})"
    sent_rate = summary.achieved_rate or requested_rate
    # Completions spread over the spread of service times, so the completion rate only says
    # "queueing" when the point sends for much longer than one request takes.
    e2e = summary.distributions.get("e2e_ms")
    e2e_s = ((e2e.p50 if e2e else None) or 0.0) / 1e3
    send_span_s = summary.sent / sent_rate if sent_rate else 0.0
    done = check.completed_rate
    if done is not None and send_span_s >= 10 * e2e_s and done < 0.85 * sent_rate:
        return f"the server completed {done:.3g} req/s of {sent_rate:.3g} sent: requests queue"
    first, last = check.ttft_first_ms, check.ttft_last_ms
    if first is not None and last is not None and last > 4 * first and last - first > 25:
        return f"TTFT grew from {first:.0f} ms to {last:.0f} ms within the point: a growing queue"
    return None


def _plateau(prev: Point, point: Point) -> str | None:
    a, b = prev.summary.requests_s, point.summary.requests_s
    if prev.concurrency and point.concurrency and a and b:
        if point.concurrency >= 1.5 * prev.concurrency and b < 1.1 * a:
            return (
                f"throughput stopped growing ({a:.3g} -> {b:.3g} req/s from "
                f"c={prev.concurrency} to c={point.concurrency})"
            )
    return None


def run_points(
    cfg: RunConfig,
    loads: Sequence[tuple[float | None, int | None]],
    kind: str,
    *,
    stop_on_saturation: bool = True,
    on_point: Callable[[Point], None] | None = None,
    group: GroupResult | None = None,
) -> GroupResult:
    """One run per (rate, concurrency) in ``loads``, grouped as ``kind`` (added to ``group``
    when given, so a search's probes share one group)."""
    group = group if group is not None else GroupResult(new_group_id(kind), kind)
    for j, (rate, conc) in enumerate(loads):
        i = len(group.points)
        point_cfg = cfg.replace(rate=rate, concurrency=conc)
        point_group = RunGroup(group.group_id, kind, i)
        result = execute(RunPlan(point_cfg, point_group, recommend_workers=recommended_workers))
        check = point_check(cfg.output.db, result.run_id)
        concurrency = point_cfg.load.concurrency if rate is None else None
        point = Point(i, rate, concurrency, result.run_id, result.summary, check)
        point.status = result.status
        point.saturated = saturation(result.summary, check, rate)
        if point.saturated is None and group.points and kind == "sweep":
            point.saturated = _plateau(group.points[-1], point)
        group.points.append(point)
        if on_point is not None:
            on_point(point)
        if result.status == "interrupted" or result.outcome.interrupted:
            group.stopped = "interrupted"
            break
        if stop_on_saturation and point.saturated and j + 1 < len(loads):
            group.stopped = f"stopped climbing after {point.load}: {point.saturated}"
            break
    return group


def run_sweep(
    cfg: RunConfig,
    *,
    rates: Sequence[float] | None = None,
    concurrencies: Sequence[int] | None = None,
    on_point: Callable[[Point], None] | None = None,
) -> GroupResult:
    """A sweep over ``rates`` (open loop) or ``concurrencies`` (closed loop), in the order
    given, stopping at the first over-saturated point."""
    if (rates is None) == (concurrencies is None):
        raise ValueError("a sweep needs either rates or concurrencies, not both")
    loads: list[tuple[float | None, int | None]] = (
        [(float(r), None) for r in rates] if rates is not None else []
    )
    if concurrencies is not None:
        loads = [(None, int(c)) for c in concurrencies]
    return run_points(cfg, loads, "sweep", on_point=on_point)


def run_repeats(cfg: RunConfig, on_point: Callable[[Point], None] | None = None) -> GroupResult:
    """The same configuration ``cfg.output.repeat`` times (same seed, same requests)."""
    loads = [(cfg.load.rate, cfg.load.concurrency)] * cfg.output.repeat
    return run_points(cfg, loads, "repeat", stop_on_saturation=False, on_point=on_point)
