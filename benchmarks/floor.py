"""The floor: what a streamed request costs a Python client on this machine before any
benchmark logic, side by side with benchbench's own client in one run.

    python benchmarks/floor.py [--concurrency 64] [--tokens 16,200] [--repeats 3] [--step-ms 2]

Three clients drive the same closed-loop load against one simulator (its own process, pinned
to its own core where the machine has two). It is paced by default (one token per stream
every --step-ms, as a server's decode steps), so every client reads one event per read and
the comparison is of the same work. Saturated (--step-ms 0) it is not: the slower a client,
the more events pile up per read and the fewer reads it pays for, so there the bare floor
reads more often than benchbench and the ratio flatters benchbench.

- `bare`: an asyncio.Protocol per keep-alive connection on the same event loop; it writes a
  fixed request and waits for the stream's final `data: [DONE]` bytes. One callback per read,
  one future per request, no timestamp, no HTTP parser, no parse of the events, no record,
  no storage. Every streaming client does at least this much, so its CPU per request and per
  token is the floor of an asyncio client here (the kernel's recv/send/epoll, the event
  loop's callbacks and one awaited future per request).
- `bare+stamp`: the same, plus what timestamping every read costs (a clock call and two list
  appends per read), the least a client that times tokens must add.
- `bench`: benchbench's raw client through its runner, as client_overhead.py drives it
  (llhttp, every read timestamped, the events parsed, every record and token event written
  to DuckDB by the writer thread).

Prints CPU-us per request, CPU-s per 1M streamed tokens and the kernel's share (os.times()),
medians of --repeats; the ratio bench / bare is the client's own cost above the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from client_overhead import one  # this folder is on sys.path when run as a script

from benchbench.runloop import run_event_loop
from benchbench.sim import SimConfig, SimProcess

_END = b"data: [DONE]\n\n"


class _Bare(asyncio.Protocol):
    """One keep-alive connection that knows only where a stream ends."""

    def __init__(self, stamp: bool) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.tail = b""
        self.stamp = stamp
        self.pieces: list[bytes] = []
        self.times: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.stamp:
            self.times.append(time.monotonic_ns())
            self.pieces.append(data)
        # The stream's end may straddle two reads (and a chunked body adds a CRLF after it).
        window = self.tail + data[-32:]
        if _END in window and self.done is not None and not self.done.done():
            self.done.set_result(None)
        self.tail = data[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))


async def bare(base_url: str, concurrency: int, tokens: int, per_stream: int, stamp: bool) -> dict:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = (
        b'{"model":"sim-llm","prompt":"a b c d","max_tokens":%d,"stream":true,'
        b'"stream_options":{"include_usage":true}}' % tokens
    )
    request = (
        b"POST %s/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (url.path.encode(), host.encode(), len(body), body)
    )
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(lambda: _Bare(stamp), host, port))[1]
        for _ in range(concurrency)
    ]

    async def drive(conn: _Bare) -> None:
        for _ in range(per_stream):
            conn.done, conn.tail = loop.create_future(), b""
            conn.pieces, conn.times = [], []
            assert conn.transport is not None
            conn.transport.write(request)
            await conn.done

    gc.collect()
    gc.freeze()
    cpu0, sys0 = time.process_time(), os.times().system
    await asyncio.gather(*(drive(c) for c in conns))
    cpu, kernel = time.process_time() - cpu0, os.times().system - sys0
    gc.unfreeze()
    for c in conns:
        assert c.transport is not None
        c.transport.close()
    n = concurrency * per_stream
    return {"cpu_us_per_req": cpu / n * 1e6, "cpu_s_per_1m": cpu / (n * tokens) * 1e6,
            "sys": kernel / cpu}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", default="16,200", help="tokens per stream, comma separated")
    ap.add_argument("--per-stream", type=int, default=16, help="requests per connection")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step-ms", type=float, default=2.0, help="decode step; 0: saturated")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    head = f"{'tokens':>6} {'client':11} {'cpu-us/req':>10} {'cpu-s/1M':>9} {'sys%':>5}"
    print(head + f" {'x bare':>7}")
    sim_cfg = (
        SimConfig(
            prefill_base_ms=1, prefill_ms_per_token=0, decode_base_ms=args.step_ms,
            decode_ms_per_seq=0, max_batch=args.concurrency,
        )
        if args.step_ms > 0
        else SimConfig(fast=True)
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, SimProcess(sim_cfg) as sim:
        if len(cores) > 1:
            os.sched_setaffinity(sim.pid, {cores[0]})
            os.sched_setaffinity(0, {cores[1]})
        for tokens in (int(t) for t in args.tokens.split(",")):
            runs: dict[str, list[dict]] = {"bare": [], "bare+stamp": [], "bench": []}
            for i in range(args.repeats):  # alternated, so drift on a shared machine hits all
                for name in runs:
                    if name == "bench":
                        db = Path(tmp) / f"f{tokens}-{i}.duckdb"
                        coro = one(sim.base_url, "raw", args.concurrency, tokens,
                                   args.per_stream, db)  # fmt: skip
                    else:
                        coro = bare(sim.base_url, args.concurrency, tokens, args.per_stream,
                                    stamp=name == "bare+stamp")  # fmt: skip
                    runs[name].append(run_event_loop(coro, "auto"))
            floor = statistics.median(r["cpu_us_per_req"] for r in runs["bare"])
            for name, rs in runs.items():
                med = {k: statistics.median(r[k] for r in rs) for k in ("cpu_us_per_req",
                       "cpu_s_per_1m", "sys")}  # fmt: skip
                print(f"{tokens:>6} {name:11} {med['cpu_us_per_req']:>10.1f} "
                      f"{med['cpu_s_per_1m']:>9.2f} {med['sys']:>5.0%} "
                      f"{med['cpu_us_per_req'] / floor:>7.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
