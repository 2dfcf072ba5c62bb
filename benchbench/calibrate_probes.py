"""The two probes of `bench calibrate`, each one load level against the built-in simulator.

- Rate probe: one open-loop run of short streams through `benchbench.execute` (the same code
  as `bench run`, storage included, `--workers N` included), against a fast simulator, with
  a warm-up first. It passes when every planned request was sent without error, schedule lag
  p99 <= 2 ms, and the achieved send rate is within 0.5% of the schedule's own (planned sends
  over the planned span, so Poisson's sampling noise is not counted against the client).
- Token probe: closed-loop streams against a paced simulator (one token per stream per decode
  step), in N worker processes, each with its own simulator process so the simulator is not
  the shared bottleneck. Every event's receive stamp is compared with the simulator's send
  stamp (`bb_send_ns`, the same monotonic clock on one host). It passes when that error's
  p99 <= 1 ms and the streams got >= 90% of the tokens the pacing offers (below that the
  pair, not the stamps, is the limit). Records are stored through BatchWriter as in a run."""

from __future__ import annotations

import gc
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchbench.calibrate_search import Probe
from benchbench.config import make_config
from benchbench.sim import SimConfig, SimProcess
from loadgen.spec import RequestRecord, RequestSpec

LAG_P99_LIMIT_MS = 2.0
RATE_TOLERANCE = 0.005
STAMP_P99_LIMIT_MS = 1.0
WARMUP_S = 0.3  # rate probe: this much of the schedule is warm-up
# A probe that misses its limit by more than this factor (or falls behind) is saturated: the
# search goes no higher. Within it, the miss may be an idle machine's wake-up latency.
SATURATED_FACTOR = 5.0
TOKENS_HELD_SHARE = 0.9
# Token probe pacing: one token per stream every STEP_MS, STREAM_TOKENS tokens per stream.
STEP_MS = 10.0
STREAM_TOKENS = 40


@dataclass(frozen=True, slots=True)
class RateFigures:
    rate: float
    achieved_rate: float
    planned_rate: float
    lag_p99_ms: float
    sent: int
    errored: int
    workers_seen: int


@dataclass(frozen=True, slots=True)
class TokenFigures:
    tokens_per_s: float
    offered_tokens_per_s: float
    stamp_error_p99_ms: float
    cpu_s_per_1m_tokens: float
    tokens: int
    errored: int


def rate_probe(base_url: str, rate: float, workers: int, duration_s: float) -> Probe[RateFigures]:
    """One open-loop run at `rate` req/s of short streams (see the module docstring)."""
    from benchbench.execute import RunPlan, execute
    from benchbench.store import open_store

    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as tmp:
        db = str(Path(tmp) / "probe.duckdb")
        measured = max(20, round(rate * duration_s))
        # Warm-up first (excluded): connections open, caches fill, the loop settles.
        warmup = max(10, round(rate * WARMUP_S))
        cfg = make_config(
            endpoint=base_url, api="completions", rate=rate, requests=measured,
            warmup=warmup, input_len="32", output_len="16", workers=str(workers), db=db,
            salt=False,
        )  # fmt: skip
        result = execute(RunPlan(cfg))
        store = open_store(db, read_only=True)
        try:
            figures = _rate_figures(store.con, result.run_id, rate)
        finally:
            store.close()
    kept_up = (
        figures.errored == 0
        and figures.sent == measured
        and abs(figures.achieved_rate / figures.planned_rate - 1) <= RATE_TOLERANCE
        and figures.lag_p99_ms <= SATURATED_FACTOR * LAG_P99_LIMIT_MS
    )
    return Probe(kept_up and figures.lag_p99_ms <= LAG_P99_LIMIT_MS, figures, not kept_up)


def _rate_figures(con: object, run_id: int, rate: float) -> RateFigures:
    row = con.execute(  # type: ignore[attr-defined]
        """SELECT count(*), count(error_kind),
                  quantile_cont((sent_ns - intended_ns) / 1e6, 0.99),
                  min(intended_ns), max(intended_ns), min(sent_ns), max(sent_ns),
                  count(DISTINCT worker)
           FROM requests WHERE run_id = ? AND NOT warmup""",
        [run_id],
    ).fetchone()
    sent, errored, lag, i0, i1, _s0, s1, workers = row
    # Both spans start at the first intended send, so a late first send (the one that
    # opens the window) is not counted twice; a client falling behind shows as a late last.
    planned = (sent - 1) / ((i1 - i0) / 1e9) if sent > 1 and i1 > i0 else 0.0
    achieved = (sent - 1) / ((s1 - i0) / 1e9) if sent > 1 and s1 > i0 else 0.0
    return RateFigures(
        rate, achieved, planned or rate, float(lag or 0.0), sent, errored, int(workers)
    )


def token_probe(tokens_per_s: float, workers: int, duration_s: float) -> Probe[TokenFigures]:
    """`tokens_per_s` streamed tokens/s shared by `workers` processes (module docstring)."""
    streams = max(1, round(tokens_per_s * STEP_MS / 1000 / workers))
    sim_cfg = SimConfig(
        prefill_base_ms=0.5, prefill_ms_per_token=0, decode_base_ms=STEP_MS,
        decode_ms_per_seq=0, max_batch=max(64, streams * 2),
    )  # fmt: skip
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited store
    sims = [SimProcess(sim_cfg).start() for _ in range(workers)]
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = [
                pool.submit(stream_worker, sim.base_url, streams, duration_s) for sim in sims
            ]
            parts = [f.result(timeout=duration_s * 4 + 60) for f in futures]
    finally:
        for sim in sims:
            sim.stop()
    tokens = sum(p.tokens for p in parts)
    errors_ms = sorted(e for p in parts for e in p.stamp_errors_ms)
    p99 = errors_ms[min(len(errors_ms) - 1, int(0.99 * len(errors_ms)))] if errors_ms else 0.0
    span = max(p.span_s for p in parts)
    offered = streams * workers * 1000 / STEP_MS
    figures = TokenFigures(
        tokens_per_s=tokens / span if span > 0 else 0.0,
        offered_tokens_per_s=offered,
        stamp_error_p99_ms=p99,
        cpu_s_per_1m_tokens=sum(p.cpu_s for p in parts)
        / max(sum(p.all_tokens for p in parts), 1)
        * 1e6,
        tokens=tokens,
        errored=sum(p.errored for p in parts),
    )
    kept_up = (
        figures.errored == 0
        and tokens > 0
        and figures.tokens_per_s >= TOKENS_HELD_SHARE * offered
        and p99 <= SATURATED_FACTOR * STAMP_P99_LIMIT_MS
    )
    return Probe(kept_up and p99 <= STAMP_P99_LIMIT_MS, figures, not kept_up)


@dataclass(frozen=True, slots=True)
class WorkerPart:
    tokens: int  # token events of the measured (not warm-up) streams
    all_tokens: int  # every token event, warm-up included: the CPU paid for them all
    errored: int
    cpu_s: float
    span_s: float  # first to last measured token event
    stamp_errors_ms: list[float]


def stream_worker(base_url: str, streams: int, duration_s: float) -> WorkerPart:
    """One worker process of the token probe (module-level: it is pickled by name)."""
    from benchbench.runloop import run_event_loop

    return run_event_loop(_stream(base_url, streams, duration_s), "auto")


class _Capturing:
    """An endpoint that keeps each stream's pieces and stamps to read the send stamps after."""

    def __init__(self) -> None:
        from loadgen.endpoints import OpenAIEndpoint

        self.inner = OpenAIEndpoint("completions", "sim-llm")
        self.path = self.inner.path
        self.captured: list[tuple[list[bytes], list[int]]] = []
        self.all_events = 0  # token events of every stream, warm-up included

    def body(self, spec: RequestSpec) -> bytes:
        return self.inner.body(spec)

    def finish(self, record: RequestRecord, pieces: list[bytes], times: list[int]) -> None:
        self.inner.finish(record, pieces, times)
        self.all_events += len(record.event_ns)
        if not record.warmup:  # the first wave connects all at once: not a steady state
            self.captured.append((pieces, times))


async def _stream(base_url: str, streams: int, duration_s: float) -> WorkerPart:
    from benchbench.store import BatchWriter, open_store
    from loadgen.client import HttpSettings, make_client
    from loadgen.load import LoadPlan
    from loadgen.runner import Runner

    clock = time.monotonic_ns
    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as tmp:
        store = open_store(Path(tmp) / "tokens.duckdb")
        run_id = store.create_run(wall_anchor_s=time.time(), endpoint=base_url)
        origin = clock()
        writer = BatchWriter(store, run_id, origin)
        endpoint = _Capturing()
        client = make_client(HttpSettings(base_url, max_connections=streams * 2), clock)
        runner = Runner(client, endpoint, clock, writer.add_record)
        specs = (
            RequestSpec(index=i, prompt="a b c d", max_tokens=STREAM_TOKENS)
            for i in range(10_000_000)
        )
        gc.collect()
        gc.freeze()  # as bench run does: no full collection in the middle of the streams
        cpu0 = time.process_time()
        plan = LoadPlan(
            concurrency=streams,
            duration_s=duration_s,
            warmup_requests=streams,
            drain_timeout_s=30.0,
        )
        outcome = await runner.run(specs, plan, origin_ns=origin)
        await client.aclose()
        writer.close()
        cpu = time.process_time() - cpu0
        gc.unfreeze()
        store.close()
    tokens, span_s, errs = _stamp_errors(endpoint.captured)
    errored = outcome.errored + outcome.cancelled
    return WorkerPart(tokens, endpoint.all_events, errored, cpu, span_s, errs)


def _stamp_errors(
    captured: list[tuple[list[bytes], list[int]]],
) -> tuple[int, float, list[float]]:
    """Token events of the measured streams, the span from their first to their last (s),
    and each one's receive stamp minus the simulator's send stamp (ms)."""
    from loadgen.sse import split_events

    out: list[float] = []
    first, last = None, None
    for pieces, times in captured:
        ev_t, ev_d, _ = split_events(pieces, times)
        for t, data in zip(ev_t, ev_d, strict=True):
            if data.startswith(b"{") and b"bb_send_ns" in data:
                out.append((t - orjson.loads(data)["bb_send_ns"]) / 1e6)
                first = t if first is None or t < first else first
                last = t if last is None or t > last else last
    span_s = (last - first) / 1e9 if first is not None and last is not None else 0.0
    return len(out), span_s, out


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
