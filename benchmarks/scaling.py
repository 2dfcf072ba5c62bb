"""Scaling out on one host: achieved rate and schedule lag vs workers, scaling efficiency, and
the coordination cost (client CPU-s per 1M streamed tokens with N workers vs one).

    python benchmarks/scaling.py [--workers 1,2] [--rates 1000,2000,4000] [--duration 3]

Every run goes through `benchbench.execute` (what `bench run --workers N` does: storage, the
coordinator, the books), against one fast simulator process started here:

- rate table: open-loop Poisson runs of short streams (32 tokens in, 16 out) at each rate with
  each worker count: achieved send rate, schedule lag p50/p99 and errors;
- scaling efficiency: the highest rate of the table held with lag p99 <= 2 ms per worker count
  over N x one worker's (the `bench calibrate` criterion, on the table's grid);
- coordination cost: closed-loop streams (--tokens per stream, --concurrency in all) with N
  workers; client CPU is this process's plus its reaped children's (the workers; the
  simulator is reaped only at the end, so it is not counted), per 1M streamed token events,
  marginal: the difference between a run of --requests streams and one of twice as many.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from benchbench.config import make_config
from benchbench.execute import RunPlan, execute
from benchbench.sim import SimConfig, SimProcess


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def rate_run(base_url: str, db: str, rate: float, workers: int, duration_s: float) -> dict:
    cfg = make_config(
        endpoint=base_url, api="completions", rate=rate, requests=round(rate * duration_s),
        warmup=max(10, round(rate * 0.3)), input_len="32", output_len="16",
        workers=str(workers), db=db, salt=False,
    )  # fmt: skip
    result = execute(RunPlan(cfg))
    con = duckdb.connect(db, read_only=True)
    try:
        row = con.execute(
            """SELECT count(*), count(error_kind), count(DISTINCT worker),
                      quantile_cont((sent_ns - intended_ns) / 1e6, 0.5),
                      quantile_cont((sent_ns - intended_ns) / 1e6, 0.99)
               FROM requests WHERE run_id = ? AND NOT warmup""",
            [result.run_id],
        ).fetchone()
    finally:
        con.close()
    sent, errored, seen, lag50, lag99 = row
    return {"rate": rate, "workers": workers, "seen": seen, "sent": sent, "errored": errored,
            "achieved": result.summary.achieved_rate or 0.0, "lag50": lag50 or 0.0,
            "lag99": lag99 or 0.0, "status": result.status}  # fmt: skip


def token_run(
    base_url: str, db: str, workers: int, concurrency: int, tokens: int, requests: int
) -> dict[str, Any]:
    cfg = make_config(
        endpoint=base_url, api="completions", concurrency=concurrency, requests=requests,
        input_len="8", output_len=str(tokens), workers=str(workers), db=db, salt=False,
    )  # fmt: skip
    c0 = cpu_s()
    result = execute(RunPlan(cfg))
    used = cpu_s() - c0
    con = duckdb.connect(db, read_only=True)
    try:
        (events,) = con.execute(
            "SELECT count(*) FROM token_events WHERE run_id = ?", [result.run_id]
        ).fetchone()
    finally:
        con.close()
    return {"workers": workers, "events": events, "cpu_s": used,
            "cpu_s_per_1m": used / max(events, 1) * 1e6, "status": result.status}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rates", default="500,1000,2000,3000,4000")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of schedule per run")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200, help="tokens per stream (cost table)")
    ap.add_argument("--requests", type=int, default=512, help="streams per cost run")
    ap.add_argument("--repeats", type=int, default=3, help="cost runs per worker count")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp, SimProcess(SimConfig(fast=True)) as sim:
        print(f"{'workers':>7} {'rate':>7} {'achieved':>9} {'lag p50':>8} {'lag p99':>8} "
              f"{'errors':>6} {'seen':>4} status")  # fmt: skip
        held: dict[int, float] = {}
        for n in counts:
            for i, rate in enumerate(rates):
                r = rate_run(sim.base_url, str(Path(tmp) / f"r{n}_{i}.duckdb"), rate, n,
                             args.duration)  # fmt: skip
                print(f"{n:>7} {rate:>7.0f} {r['achieved']:>9.1f} {r['lag50']:>8.2f} "
                      f"{r['lag99']:>8.2f} {r['errored']:>6} {r['seen']:>4} {r['status']}",
                      flush=True)  # fmt: skip
                if r["lag99"] <= 2.0 and r["errored"] == 0 and r["status"] == "complete":
                    held[n] = max(held.get(n, 0.0), r["achieved"])
        one = held.get(1)
        for n in counts:
            eff = held.get(n, 0.0) / (n * one) if one else float("nan")
            print(f"scaling: {n} worker(s) held {held.get(n, 0.0):,.0f} req/s "
                  f"(lag p99 <= 2 ms on this grid), efficiency {eff:.2f}")  # fmt: skip
        costs: dict[int, list[float]] = {}
        for n in counts:
            for k in range(args.repeats):
                costs.setdefault(n, []).append(marginal_cost(sim.base_url, tmp, n, k, args))
        base = sorted(costs[counts[0]])[len(costs[counts[0]]) // 2]
        for n in counts:
            med = sorted(costs[n])[len(costs[n]) // 2]
            print(f"cost: {n} worker(s) {med:.2f} client CPU-s per 1M streamed events "
                  f"(marginal, median of {args.repeats}; {med / base:.2f} x {counts[0]} "
                  "worker(s))")  # fmt: skip


def marginal_cost(base_url: str, tmp: str, n: int, k: int, args: argparse.Namespace) -> float:
    """CPU-s per 1M events between a run of R streams and one of 2R: the fixed costs of a
    run (planning, store, worker start-up, the summary) cancel out."""
    small, large = (
        token_run(base_url, str(Path(tmp) / f"t{n}_{k}_{m}.duckdb"), n, args.concurrency,
                  args.tokens, args.requests * m)
        for m in (1, 2)
    )  # fmt: skip
    events = large["events"] - small["events"]
    return (large["cpu_s"] - small["cpu_s"]) / max(events, 1) * 1e6


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
