"""Several measured runs from one command: sweeps over rate or concurrency, and repeats.

Each point is one `run_benchmark` call stored under its own run id and tied to the others by
a RunGroup (runs.sweep_id, sweep_point, group_kind). A rate sweep stops climbing at the first
over-saturated point, since every point above it only measures a longer queue.

Over-saturation, judged within a point from the store (ok, measured requests):
- the client could not send at the requested rate (achieved < 90% of requested);
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

from benchbench.config import RunConfig
from benchbench.metrics import RunSummary, parse_slos, summarize
from benchbench.orchestrate import RunGroup, RunResult, run_benchmark
from benchbench.store import open_store

RunFn = Callable[..., RunResult]


@dataclass(frozen=True, slots=True)
class PointCheck:
    """What the store says about one point's load: completions/s and TTFT drift."""

    completed_rate: float | None  # ok completions per second, first to last completion
    ttft_first_ms: float | None  # median TTFT of the first third of requests (send order)
    ttft_last_ms: float | None  # and of the last third


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


def parse_list(text: str | None, flag: str, cast: type) -> list[Any] | None:
    """`--rate 1,2,4` -> [1.0, 2.0, 4.0]; None stays None. One line on bad input."""
    if text is None:
        return None
    try:
        values = [cast(p) for p in (p.strip() for p in text.split(",")) if p]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        kind = "whole numbers" if cast is int else "numbers"
        raise ValueError(f"{flag} must be {kind} > 0, one or a list like 1,2,4,8; got {text!r}")
    return values


def measure(
    cfg: RunConfig, *, group: RunGroup | None = None, run: RunFn = run_benchmark, **kw: Any
) -> RunResult:
    """One run, then what only the finished run can tell: its schedule fingerprint stored in
    runs.fingerprint and, for trace replay, the send-time drift in runs.extra."""
    result = run(cfg, group=group, **kw)
    annotate_run(cfg.db, result)
    return result


def annotate_run(db: str, result: RunResult) -> None:
    traffic = result.summary.extra.get("traffic") or {}
    added: dict[str, Any] = {}
    store = open_store(db)
    try:
        if traffic.get("fingerprint"):
            store.update_run(result.run_id, fingerprint=traffic["fingerprint"])
        if result.header.get("load") == "trace replay" or "trace" in traffic:
            from loadgen.replay import replay_drift

            rows = store.con.execute(
                "SELECT intended_ns, sent_ns FROM requests WHERE run_id = ? AND NOT warmup",
                [result.run_id],
            ).fetchall()
            added["replay_drift"] = replay_drift([r[0] for r in rows], [r[1] for r in rows])
        if added:
            extra = {**result.summary.extra, **added}
            store.update_run(result.run_id, extra=extra)
            result.summary.extra.update(added)
    finally:
        store.close()


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
                      median(ttft_ms) FILTER (WHERE third = 3)
               FROM r""",
            [run_id],
        ).fetchone()
    finally:
        store.close()
    assert row is not None
    n, t0, t1, first, last = row
    rate = (n - 1) / ((t1 - t0) / 1e9) if n and n > 2 and t1 > t0 else None
    return PointCheck(rate, first, last)


def saturation(summary: RunSummary, check: PointCheck, requested_rate: float | None) -> str | None:
    """Why a point is over-saturated, or None. See the module docstring for the rules."""
    if requested_rate is not None:
        achieved = summary.achieved_rate
        if achieved is not None and achieved < 0.9 * requested_rate:
            return (
                f"the client sent {achieved:.3g} of {requested_rate:g} req/s "
                "(client-bound: see the run's warnings)"
            )
        sent_rate = achieved or requested_rate
        # Completions spread over the spread of service times, so the completion rate only
        # says "queueing" when the point sends for much longer than one request takes.
        e2e = summary.distributions.get("e2e_ms")
        e2e_s = ((e2e.p50 if e2e else None) or 0.0) / 1e3
        send_span_s = summary.sent / sent_rate if sent_rate else 0.0
        if (
            check.completed_rate is not None
            and send_span_s >= 10 * e2e_s
            and check.completed_rate < 0.85 * sent_rate
        ):
            return (
                f"the server completed {check.completed_rate:.3g} req/s of "
                f"{sent_rate:.3g} sent: requests queue"
            )
        first, last = check.ttft_first_ms, check.ttft_last_ms
        if first is not None and last is not None and last > 4 * first and last - first > 25:
            return (
                f"TTFT grew from {first:.0f} ms to {last:.0f} ms within the point: a growing queue"
            )
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
    run: RunFn = run_benchmark,
    **kw: Any,
) -> GroupResult:
    """One run per (rate, concurrency) in ``loads``, grouped as ``kind`` (added to ``group``
    when given, so a search's probes share one group)."""
    group = group if group is not None else GroupResult(new_group_id(kind), kind)
    slos = parse_slos(cfg.slo) if cfg.slo else None
    for j, (rate, conc) in enumerate(loads):
        i = len(group.points)
        point_cfg = cfg.model_copy(update={"rate": rate, "concurrency": conc})
        result = measure(point_cfg, group=RunGroup(group.group_id, kind, i), run=run, **kw)
        summary = result.summary
        if slos and summary.goodput is None:
            summary = _summary(cfg.db, result.run_id, slos, summary)
        check = point_check(cfg.db, result.run_id)
        point = Point(i, rate, conc if rate is None else None, result.run_id, summary, check)
        point.status = result.status
        point.saturated = saturation(summary, check, rate)
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


def _summary(db: str, run_id: int, slos: dict[str, float], old: RunSummary) -> RunSummary:
    store = open_store(db, read_only=True)
    try:
        s = summarize(store.con, run_id, slos)
    finally:
        store.close()
    s.extra = old.extra
    return s


def run_sweep(
    cfg: RunConfig,
    *,
    rates: Sequence[float] | None = None,
    concurrencies: Sequence[int] | None = None,
    **kw: Any,
) -> GroupResult:
    """A sweep over ``rates`` (open loop) or ``concurrencies`` (closed loop), in the order
    given, stopping at the first over-saturated point."""
    if (rates is None) == (concurrencies is None):
        raise ValueError("a sweep needs either --rate or --concurrency lists, not both")
    loads: list[tuple[float | None, int | None]] = (
        [(float(r), None) for r in rates] if rates is not None else []
    )
    if concurrencies is not None:
        loads = [(None, int(c)) for c in concurrencies]
    return run_points(cfg, loads, "sweep", **kw)


def run_repeats(cfg: RunConfig, **kw: Any) -> GroupResult:
    """The same configuration ``cfg.repeat`` times (same seed, same requests)."""
    loads = [(cfg.rate, cfg.concurrency)] * cfg.repeat
    return run_points(cfg, loads, "repeat", stop_on_saturation=False, **kw)


def write_report(db: str, run_ids: list[int], out_path: str) -> str:
    """The HTML report through benchbench.cli_report when it exists; a line saying what
    happened either way."""
    try:
        from benchbench.cli_report import write_report as _write
    except ImportError:
        return f"reports not available: {out_path} not written"
    _write(db, run_ids, out_path)
    return f"report written to {out_path}"
