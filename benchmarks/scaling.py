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
  workers, per 1M streamed token events; client CPU is what the run measured over the load
  itself (the coordinator's process and every worker's, from the first send to the drain:
  start-up, planning and the summary excluded). The simulator for these runs is paced (one
  token per stream every --step-ms, as a server's decode steps): a saturated one would make
  the figure depend on how many events each read happens to hold, which differs between one
  worker and two (--step-ms 0: saturated). Prompts are not fitted to exact lengths in any run
  here (a /tokenize call each: set-up, not load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from benchbench.config import make_config
from benchbench.execute import RunPlan, execute
from benchbench.sim import SimConfig, SimProcess


def rate_run(base_url: str, db: str, rate: float, workers: int, duration_s: float) -> dict:
    cfg = make_config(
        endpoint=base_url, api="completions", rate=rate, requests=round(rate * duration_s),
        warmup=max(10, round(rate * 0.3)), input_len="32", output_len="16",
        workers=str(workers), db=db, salt=False, exact_lengths="off",
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
        exact_lengths="off",
    )  # fmt: skip
    result = execute(RunPlan(cfg))
    con = duckdb.connect(db, read_only=True)
    try:
        run = [result.run_id]
        (events,) = con.execute(
            "SELECT count(*) FROM token_events WHERE run_id = ?", run
        ).fetchone()
        (extra,) = con.execute("SELECT extra FROM runs WHERE run_id = ?", run).fetchone()
    finally:
        con.close()
    # The client's CPU over the load (with workers: the coordinator's and every worker's,
    # summed), and the workers' share of it.
    figures = json.loads(extra)
    total = (figures.get("client") or {}).get("cpu_s") or 0.0
    kids = sum(w.get("cpu_s") or 0.0 for w in figures.get("workers") or [])
    per_1m = 1e6 / max(events, 1)
    return {"workers": workers, "events": events, "cpu_s_per_1m": total * per_1m,
            "coordinator_per_1m": (total - kids) * per_1m if kids else 0.0,
            "status": result.status}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rates", default="500,1000,2000,3000,4000")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of schedule per run")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200, help="tokens per stream (cost table)")
    ap.add_argument("--requests", type=int, default=512, help="streams per cost run")
    ap.add_argument("--repeats", type=int, default=3, help="cost runs per worker count")
    ap.add_argument("--step-ms", type=float, default=5.0, help="cost runs: decode step")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rates = [float(r) for r in args.rates.split(",") if r]  # --rates "": the cost table only
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
        for n in counts if rates else []:
            eff = held.get(n, 0.0) / (n * one) if one else float("nan")
            print(f"scaling: {n} worker(s) held {held.get(n, 0.0):,.0f} req/s "
                  f"(lag p99 <= 2 ms on this grid), efficiency {eff:.2f}")  # fmt: skip
    costs: dict[int, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, SimProcess(_cost_sim(args)) as sim:
        for k in range(args.repeats):  # alternated, so drift on a shared machine hits all
            for n in counts:
                db = str(Path(tmp) / f"t{n}_{k}.duckdb")
                r = token_run(sim.base_url, db, n, args.concurrency, args.tokens, args.requests)
                costs.setdefault(n, []).append(r)
    base = statistics.median(r["cpu_s_per_1m"] for r in costs[counts[0]])
    for n in counts:
        med = statistics.median(r["cpu_s_per_1m"] for r in costs[n])
        coord = statistics.median(r["coordinator_per_1m"] for r in costs[n])
        print(f"cost: {n} worker(s) {med:.2f} client CPU-s per 1M streamed events over the "
              f"load, {coord:.2f} of them the coordinator's (median of {args.repeats}; "
              f"{med / base:.2f} x {counts[0]} worker(s))")  # fmt: skip


def _cost_sim(args: argparse.Namespace) -> SimConfig:
    if args.step_ms <= 0:
        return SimConfig(fast=True)
    return SimConfig(
        prefill_base_ms=1, prefill_ms_per_token=0, decode_base_ms=args.step_ms,
        decode_ms_per_seq=0, max_batch=args.concurrency,
    )  # fmt: skip


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
