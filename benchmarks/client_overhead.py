"""Client overhead: CPU per streamed event and timestamp error, per transport and concurrency.

    python benchmarks/client_overhead.py [--concurrency 64,256,1024] [--tokens 200]
    python benchmarks/client_overhead.py --short   # 16-token requests: CPU-us per request

The simulator runs in its own process and, where the machine allows, on its own core; the
client runs on another. For each transport and concurrency it runs a closed-loop load twice:

- saturated: the simulator in fast mode writes every token as fast as it can, so the client is
  the bottleneck; prints events per client CPU-second and client CPU-seconds per 1M streamed
  events (the whole process: event loop, parsing after each stream, the DuckDB writer thread);
- paced: the simulator decodes one token per stream every --step-ms (a busy but not saturated
  client, as in a real benchmark); prints the timestamp error, the client's receive time minus
  the simulator's send stamp (`bb_send_ns`, same monotonic clock), p50 and p99 in microseconds.
  A saturated client's "error" is its own queueing, which is why the two are measured apart.

Each row also gives the client CPU-us per request (`--short`: 16-token requests, the figure
DESIGN.md's 50 us target is about) and the kernel's share of the CPU (`sys%`, from
os.times(): the recv, send and epoll calls no Python change removes).

`--transports` takes benchbench's stream clients (raw, aiohttp, httpx) and `peer`: a reference
written here in the style most serving benchmarks use (an aiohttp session, the body iterated
line by line, `json.loads` and a `perf_counter()` stamp per event in the request's coroutine,
text accumulated as it arrives, nothing stored). It gives the ratio that matters on whatever
machine runs this: benchbench's cost per token against the field's common client, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from benchbench.runloop import run_event_loop
from benchbench.sim import SimConfig, SimProcess
from benchbench.store import BatchWriter, open_store
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec
from loadgen.sse import split_events


class Capturing:
    """Keeps each response's raw pieces so send stamps can be read after the clock stops."""

    def __init__(self, inner: OpenAIEndpoint) -> None:
        self.inner = inner
        self.path = inner.path
        self.captured: list[tuple[list[bytes], list[int]]] = []

    def body(self, spec: RequestSpec) -> bytes:
        return self.inner.body(spec)

    def finish(self, record: RequestRecord, pieces: list[bytes], times: list[int]) -> None:
        self.captured.append((pieces, times))
        self.inner.finish(record, pieces, times)


def stamp_errors_us(captured: list[tuple[list[bytes], list[int]]]) -> list[float]:
    out: list[float] = []
    for pieces, times in captured:
        ev_t, ev_d, _ = split_events(pieces, times)
        for t, data in zip(ev_t, ev_d, strict=True):
            if data.startswith(b"{") and b"bb_send_ns" in data:
                out.append((t - orjson.loads(data)["bb_send_ns"]) / 1e3)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def figures(
    ok: int, errored: int, events: int, cpu: float, wall: float, errs: list[float]
) -> dict[str, float]:
    """One run's row: CPU per event, throughput and timestamp error."""
    return {
        "ok": ok,
        "errored": errored,
        "events": events,
        "events_per_cpu_s": events / cpu,
        "cpu_s_per_1m": cpu / events * 1e6,
        "events_per_s": events / wall,
        "cpu_util": cpu / wall,
        "cpu_us_per_req": cpu / max(1, ok + errored) * 1e6,
        "err_p50_us": pct(errs, 0.5),
        "err_p99_us": pct(errs, 0.99),
    }


async def one(
    base_url: str, transport: str, concurrency: int, tokens: int, per_stream: int, db: Path
) -> dict[str, float]:
    clock = time.monotonic_ns
    store = open_store(db)
    run_id = store.create_run(wall_anchor_s=time.time(), endpoint=base_url)
    origin = clock()
    writer = BatchWriter(store, run_id, origin)
    endpoint = Capturing(OpenAIEndpoint("completions", "sim-llm"))
    client = make_client(
        HttpSettings(base_url=base_url, transport=transport, max_connections=concurrency * 2),
        clock,
    )
    records: list[RequestRecord] = []

    def sink(r: RequestRecord) -> None:
        records.append(r)
        writer.add_record(r)

    runner = Runner(client, endpoint, clock, sink)
    n = concurrency * per_stream
    specs = (RequestSpec(index=i, prompt="a b c d", max_tokens=tokens) for i in range(n))
    gc.collect()
    gc.freeze()  # as bench run does: no full collection in the middle of the streams
    cpu0, t0, sys0 = time.process_time(), time.perf_counter(), os.times().system
    outcome = await runner.run(
        specs, LoadPlan(concurrency=concurrency, max_requests=n), origin_ns=origin
    )
    await client.aclose()
    writer.close()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    kernel = os.times().system - sys0
    gc.unfreeze()
    store.close()
    events = sum(len(r.event_ns) for r in records)
    errs = stamp_errors_us(endpoint.captured)
    return figures(outcome.ok, outcome.errored, events, cpu, wall, errs) | {"sys": kernel / cpu}


async def peer_one(
    base_url: str, concurrency: int, tokens: int, per_stream: int
) -> dict[str, float]:
    """The reference client: what a typical serving benchmark's request function does."""
    n = concurrency * per_stream
    url = base_url.rstrip("/") + "/completions"
    errs: list[float] = []
    counts: list[int] = []
    failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600))
    todo = iter(range(n))

    async def worker() -> None:
        nonlocal failed
        for _ in todo:
            payload = {
                "model": "sim-llm",
                "prompt": "a b c d",
                "max_tokens": tokens,
                "stream": True,
            }
            stamps: list[float] = []
            sends: list[int] = []
            text = ""
            async with session.post(url, json=payload) as response:
                if response.status != 200:
                    failed += 1
                    continue
                async for line in response.content:
                    line = line.strip()
                    if not line or not line.startswith(b"data: "):
                        continue
                    data = line[6:]
                    if data == b"[DONE]":
                        continue
                    now = time.perf_counter()
                    event = json.loads(data)
                    choices = event.get("choices")
                    if choices and choices[0].get("text"):
                        text += choices[0]["text"]
                        stamps.append(now)
                        sends.append(event.get("bb_send_ns", 0))
            counts.append(len(stamps))
            # Same clock translation as the record's: perf_counter and monotonic_ns share
            # CLOCK_MONOTONIC on Linux, so the error is comparable with the others'.
            errs.extend((s * 1e9 - b) / 1e3 for s, b in zip(stamps, sends, strict=True) if b)

    gc.collect()
    gc.freeze()
    cpu0, t0, sys0 = time.process_time(), time.perf_counter(), os.times().system
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await session.close()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    kernel = os.times().system - sys0
    gc.unfreeze()
    events = sum(counts)
    return figures(len(counts) - failed, failed, events, cpu, wall, errs) | {"sys": kernel / cpu}


def row(mode: str, loop: str, transport: str, conc: int, med: dict[str, float]) -> str:
    return (
        f"{mode:9} {loop:7} {transport:9} {conc:>5} {med['events']:>8.0f} "
        f"{med['events_per_cpu_s']:>10,.0f} {med['cpu_s_per_1m']:>9.2f} "
        f"{med['events_per_s']:>9,.0f} {med['cpu_util']:>5.0%} "
        f"{med['err_p50_us']:>10.0f} {med['err_p99_us']:>10.0f} {med['errored']:>6.0f} "
        f"{med['cpu_us_per_req']:>10.1f} {med['sys']:>5.0%}"
    )


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", default="64,256,1024")
    ap.add_argument("--transports", default="raw,aiohttp,httpx,peer")
    ap.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    ap.add_argument("--per-stream", type=int, default=2, help="requests per concurrent stream")
    ap.add_argument("--repeats", type=int, default=3, help="medians over this many runs")
    ap.add_argument("--step-ms", type=float, default=40.0, help="paced mode: decode step")
    ap.add_argument("--loops", default="auto", help="event loops to compare: auto,asyncio,uvloop")
    ap.add_argument("--modes", default="saturated,paced", help="saturated, paced or both")
    ap.add_argument(
        "--short",
        action="store_true",
        help="short requests: 16 tokens, 16 per stream, saturated only (read cpu-us/req)",
    )
    args = ap.parse_args()
    if args.short:
        args.tokens, args.per_stream, args.modes = 16, 16, "saturated"
    return args


def main() -> None:
    args = _args()
    concs = [int(c) for c in args.concurrency.split(",")]
    transports = args.transports.split(",")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    fast = SimConfig(fast=True)
    paced = SimConfig(
        prefill_base_ms=1,
        prefill_ms_per_token=0,
        decode_base_ms=args.step_ms,
        decode_ms_per_seq=0,
        max_batch=max(concs),
    )
    print(
        f"client on core {cores[1:2] or 'any'}, simulator on {cores[:1] or 'any'}; "
        f"medians of {args.repeats}; {args.tokens} tokens per stream"
    )
    print(
        f"{'mode':9} {'loop':7} {'transport':9} {'conc':>5} {'events':>8} {'ev/cpu-s':>10} "
        f"{'cpu-s/1M':>9} {'ev/s':>9} {'cpu%':>5} {'err p50 us':>10} {'err p99 us':>10} "
        f"{'failed':>6} {'cpu-us/req':>10} {'sys%':>5}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        modes = [m for m in (("saturated", fast), ("paced", paced)) if m[0] in args.modes]
        for mode, sim_cfg in modes:
            with SimProcess(sim_cfg) as sim:
                if len(cores) > 1:
                    os.sched_setaffinity(sim.pid, {cores[0]})  # server on one core,
                    os.sched_setaffinity(0, {cores[1]})  # the client alone on another
                for conc in concs:
                    for loop in args.loops.split(","):
                        for transport in transports:
                            runs = [
                                run_event_loop(
                                    peer_one(sim.base_url, conc, args.tokens, args.per_stream)
                                    if transport == "peer"
                                    else one(
                                        sim.base_url,
                                        transport,
                                        conc,
                                        args.tokens,
                                        args.per_stream,
                                        Path(tmp) / f"{mode}{loop}{transport}{conc}{i}.db",
                                    ),
                                    loop,
                                )
                                for i in range(args.repeats)
                            ]
                            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                            print(row(mode, loop, transport, conc, med), flush=True)


if __name__ == "__main__":
    main()
