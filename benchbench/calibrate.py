"""`bench calibrate`: this machine's client ceilings, measured against the built-in simulator
and stored, so `bench run` can warn before it asks for more than the client can send, and
`--workers auto` can pick enough workers.

For 1, 2, 4, ... workers (up to the core count): the highest open-loop rate held with schedule
lag p99 <= 2 ms and the send rate within 0.5% of the schedule (benchbench.calibrate_probes),
the highest streamed tokens/s held with timestamp error p99 <= 1 ms, and the client's CPU-s
per 1M streamed tokens (stored as a run stores them). Each ceiling is found by ramp then
bisect (benchbench.calibrate_search), bounded in probes and in time. Scaling efficiency is
throughput with N workers / (N x one worker's).

First, a spin measures how often the machine itself takes the CPU away (benchbench.stalls): on
a shared VM that alone can hold every client's schedule lag p99 above 2 ms, and the ceilings
found are then the machine's, which the result says."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from benchbench import __version__
from benchbench.calibrate_probes import (
    STEP_MS,
    RateFigures,
    TokenFigures,
    cores,
    rate_probe,
    token_probe,
)
from benchbench.calibrate_search import F, Probe, SearchBounds, SearchResult, search_max
from benchbench.errors import ConfigError
from benchbench.stalls import Stalls, measure_stalls

# A load is "within capacity" up to this share of a calibrated ceiling: a ceiling is where the
# client starts to fall behind, not where it is comfortable.
HEADROOM = 0.8
# Closed loop: a stream is counted as one token per STEP_MS (the token probe's pacing) when a
# concurrency is compared with the calibrated tokens/s.
TOKENS_PER_S_PER_STREAM = 1000 / STEP_MS


@dataclass(frozen=True, slots=True)
class CalibrateOptions:
    quick: bool = False
    max_workers: int | None = None  # default: the core count
    budget_s: float | None = None  # default: 90 s quick, 600 s full

    def __post_init__(self) -> None:
        if self.max_workers is not None and self.max_workers < 1:
            raise ConfigError(f"--max-workers must be at least 1 (got {self.max_workers})")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ConfigError(f"--budget must be a number of seconds > 0 (got {self.budget_s})")

    @property
    def total_budget_s(self) -> float:
        return self.budget_s if self.budget_s is not None else (90.0 if self.quick else 600.0)

    @property
    def probe_s(self) -> float:
        return 1.5 if self.quick else 3.0

    @property
    def max_steps(self) -> int:
        return 5 if self.quick else 12

    def worker_counts(self, core_count: int) -> list[int]:
        """1, 2, 4, ... up to --max-workers (default: the cores), the top always included."""
        top = self.max_workers if self.max_workers is not None else core_count
        counts = [1]
        while counts[-1] * 2 <= top:
            counts.append(counts[-1] * 2)
        return counts if counts[-1] == top else [*counts, top]


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """The ceilings measured with `workers` client workers (None: not reached or not run)."""

    workers: int
    max_rate: float | None
    lag_p99_ms: float | None
    max_tokens_per_s: float | None
    stamp_error_p99_ms: float | None
    cpu_s_per_1m_tokens: float | None


@dataclass(frozen=True, slots=True)
class Capacity:
    """A stored calibration of this host: one row per worker count, fewest workers first."""

    host: str
    cores: int
    rows: tuple[WorkerRow, ...]
    created_at: datetime | None
    quick: bool
    version: str
    stalls: Stalls | None = None  # the machine's own stalls while it was measured

    def row(self, workers: int) -> WorkerRow | None:
        """The row for `workers`, else the largest measured count below it."""
        below = [r for r in self.rows if r.workers <= workers]
        return below[-1] if below else None

    def efficiency(self, row: WorkerRow, field: str = "max_rate") -> float | None:
        """Throughput with N workers / (N x one worker's)."""
        one = self.row(1)
        mine, base = getattr(row, field), getattr(one, field) if one else None
        return mine / (row.workers * base) if mine and base else None


@dataclass(frozen=True, slots=True)
class Calibration:
    capacity: Capacity
    notes: tuple[str, ...]


StepCallback = Callable[[str], None]


def calibrate(
    options: CalibrateOptions, store_path: str, on_step: StepCallback | None = None
) -> Calibration:
    """Measure every worker count in turn, store the rows, and return them."""
    from benchbench.sim import SimConfig, SimProcess

    if not Path(store_path).parent.is_dir():  # before minutes of measuring, not after
        raise ConfigError(f"--db: directory {Path(store_path).parent} does not exist")
    say = on_step or (lambda _line: None)
    spin_s = 1.0 if options.quick else 2.0
    before = measure_stalls(spin_s)  # before anything else runs
    say(before.describe())
    core_count = cores()
    counts = options.worker_counts(core_count)
    deadline = time.monotonic() + options.total_budget_s
    rows: list[WorkerRow] = []
    notes: list[str] = []
    rate_scales = True
    with SimProcess(SimConfig(fast=True)) as sim:
        for i, n in enumerate(counts):
            share_s = max(1.0, (deadline - time.monotonic()) / (len(counts) - i) / 2)
            rate = _rate_search(sim.base_url, n, options, share_s, rows) if rate_scales else None
            if rate is not None and n > 1 and rate.last_figures is not None:
                seen = rate.last_figures.workers_seen
                if seen < n:
                    notes.append(f"a run asked for {n} workers stored requests from {seen}: "
                                 f"rates with {n} or more workers are not measured")  # fmt: skip
                    rate_scales, rate = False, None
            tokens = _token_search(n, options, share_s, rows)
            rows.append(_row(n, rate, tokens))
            say(_progress(rows[-1], rate, tokens))
            if time.monotonic() >= deadline and n != counts[-1]:
                notes.append(f"the time budget ran out after {n} worker(s)")
                break
    # Stalls come and go: the worse of a spin before and one after the probes is kept.
    after = measure_stalls(spin_s)
    stalls = max(before, after, key=lambda s: s.beyond_lag_bound)
    if stalls.bounds_lag_p99:
        notes.insert(0, _stall_note(stalls))
    capacity = Capacity(socket.gethostname(), core_count, tuple(rows), None, options.quick,
                        __version__, stalls)  # fmt: skip
    save(store_path, capacity)
    return Calibration(capacity, tuple(notes))


def _stall_note(stalls: Stalls) -> str:
    return (
        f"{stalls.describe()}: {stalls.beyond_lag_bound:.1%} of sends at random times would be "
        "over 2 ms late on any client here, so no rate holds lag p99 <= 2 ms on this machine "
        "and the rates found are bounded by it (a quiet or dedicated machine measures the client)"
    )


def _rate_search(
    base_url: str, n: int, options: CalibrateOptions, budget_s: float, rows: list[WorkerRow]
) -> SearchResult[RateFigures]:
    one = rows[0].max_rate if rows and rows[0].max_rate else None
    # A busy loop keeps its timers: start where a client is busy, not idle (an idle VM's
    # wake-ups alone can exceed 2 ms of lag); a start that fails steps down.
    start = max(100.0, one * n * 0.5) if one else 1000.0 * n
    bounds = SearchBounds(start, 1e6, 2.0, options.max_steps, budget_s)
    probe = _confirmed(lambda r: rate_probe(base_url, r, n, options.probe_s), budget_s)
    return search_max(probe, bounds)


def _token_search(
    n: int, options: CalibrateOptions, budget_s: float, rows: list[WorkerRow]
) -> SearchResult[TokenFigures]:
    one = rows[0].max_tokens_per_s if rows and rows[0].max_tokens_per_s else None
    start = max(500.0, one * n * 0.5) if one else 1000.0 * n
    bounds = SearchBounds(start, 1e8, 2.0, options.max_steps, budget_s)
    return search_max(_confirmed(lambda t: token_probe(t, n, options.probe_s), budget_s), bounds)


def _confirmed(probe: Callable[[float], Probe[F]], budget_s: float) -> Callable[[float], Probe[F]]:
    """A failed probe is run once more (within `budget_s` from now) and the level counts as
    held if either run held it: a ceiling is what the client can do, and one stall caused by
    another process on a shared machine should not lower it (a client that cannot hold the
    load fails both)."""
    deadline = time.monotonic() + budget_s

    def twice(level: float) -> Probe[F]:
        first = probe(level)
        if first.passed or first.saturated or time.monotonic() >= deadline:
            return first
        return probe(level)

    return twice


def _row(
    n: int,
    rate: SearchResult[RateFigures] | None,
    tokens: SearchResult[TokenFigures],
) -> WorkerRow:
    rf = rate.best_figures if rate is not None else None
    tf = tokens.best_figures
    return WorkerRow(
        workers=n,
        max_rate=rf.achieved_rate if rf else None,
        lag_p99_ms=rf.lag_p99_ms if rf else None,
        max_tokens_per_s=tf.tokens_per_s if tf else None,
        stamp_error_p99_ms=tf.stamp_error_p99_ms if tf else None,
        cpu_s_per_1m_tokens=tf.cpu_s_per_1m_tokens if tf else None,
    )


def _progress(
    row: WorkerRow,
    rate: SearchResult[RateFigures] | None,
    tokens: SearchResult[TokenFigures],
) -> str:
    probes = len(rate.steps if rate else []) + len(tokens.steps)
    return (
        f"{row.workers} worker(s): rate {_fmt(row.max_rate, ',.0f')} req/s "
        f"(lag p99 {_fmt(row.lag_p99_ms, '.2f')} ms), "
        f"tokens {_fmt(row.max_tokens_per_s, ',.0f')}/s "
        f"(stamp p99 {_fmt(row.stamp_error_p99_ms, '.2f')} ms), "
        f"{_fmt(row.cpu_s_per_1m_tokens, '.2f')} CPU-s/1M tokens; {probes} probes"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def save(store_path: str, capacity: Capacity) -> None:
    """Store one row per worker count, sharing one batch id."""
    from benchbench.store import open_store

    store = open_store(store_path)
    batch = uuid.uuid4().hex
    stalls = capacity.stalls
    try:
        for r in capacity.rows:
            store.con.execute(
                """INSERT INTO calibrations (batch, host, cores, workers, max_rate, lag_p99_ms,
                       max_tokens_per_s, stamp_error_p99_ms, cpu_s_per_1m_tokens, quick, version,
                       stalled_share, beyond_lag_bound)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [batch, capacity.host, capacity.cores, r.workers, r.max_rate, r.lag_p99_ms,
                 r.max_tokens_per_s, r.stamp_error_p99_ms, r.cpu_s_per_1m_tokens,
                 capacity.quick, capacity.version,
                 stalls.stalled_share if stalls else None,
                 stalls.beyond_lag_bound if stalls else None],
            )  # fmt: skip
    finally:
        store.close()


def capacity(store_path: str, host: str | None = None) -> Capacity | None:
    """The latest calibration of `host` (default: this machine) in the store; None when the
    store does not exist, cannot be read now, or holds none."""
    from benchbench.store import StoreError, open_store

    if not Path(store_path).is_file():
        return None
    host = host or socket.gethostname()
    try:
        store = open_store(store_path, read_only=True)
    except (StoreError, duckdb.Error, OSError):
        return None  # held by a writer, or not a store: no calibration to use
    try:
        return read_capacity(store.con, host)
    finally:
        store.close()


def read_capacity(con: duckdb.DuckDBPyConnection, host: str) -> Capacity | None:
    """The latest calibration of `host` through an open connection (None: none, or a store
    older than the calibrations table)."""
    try:
        rows = con.execute(
            """SELECT workers, max_rate, lag_p99_ms, max_tokens_per_s, stamp_error_p99_ms,
                      cpu_s_per_1m_tokens, cores, created_at, quick, version
               FROM calibrations WHERE host = ? AND batch = (
                   SELECT batch FROM calibrations WHERE host = ?
                   ORDER BY created_at DESC, calibration_id DESC LIMIT 1)
               ORDER BY workers""",
            [host, host],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    if not rows:
        return None
    worker_rows = tuple(WorkerRow(*r[:6]) for r in rows)
    cores_, created, quick, version = rows[0][6:]
    return Capacity(host, int(cores_), worker_rows, created, bool(quick), str(version))


def recommended_workers(store_path: str, rate: float | None, concurrency: int | None) -> int | None:
    """Fewest calibrated workers whose ceiling, at HEADROOM, covers the load (an open-loop
    rate, or a closed-loop concurrency counted as streams); the most calibrated when none
    does; None when this host has no calibration in the store."""
    cap = capacity(store_path)
    if cap is None:
        return None
    for row in cap.rows:
        if _covers(row, rate, concurrency):
            return row.workers
    return cap.rows[-1].workers


def _covers(row: WorkerRow, rate: float | None, concurrency: int | None) -> bool:
    if rate is not None:
        return row.max_rate is not None and rate <= HEADROOM * row.max_rate
    if concurrency is not None:
        need = concurrency * TOKENS_PER_S_PER_STREAM
        return row.max_tokens_per_s is not None and need <= HEADROOM * row.max_tokens_per_s
    return True
