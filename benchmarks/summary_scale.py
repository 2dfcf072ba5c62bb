"""How long the run summary takes on a large run: the metric SQL over 1M requests and 100M
token events (DESIGN.md's target: under 2 s).

    python benchmarks/summary_scale.py [--requests 1000000] [--events-per-request 100]

The store is synthesised directly in DuckDB (generate_series), then `metrics.summarize` is
timed cold (first call) and warm (median of three)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchbench.metrics import summarize
from benchbench.store import open_store


def synthesise(db: Path, requests: int, per_request: int) -> int:
    store = open_store(db)
    run_id = store.create_run(
        wall_anchor_s=time.time(),
        endpoint="synthetic",
        model="m",
        load_mode="closed",
        concurrency=256,
    )
    con = store.con
    # Request i is sent at i ms, first token 50-150 ms later, one token every ~20 ms.
    con.execute(
        f"""INSERT INTO requests
            SELECT {run_id}, i, NULL, i * 1000000,
                   i * 1000000 + (50 + i % 100) * 1000000,
                   i * 1000000 + (50 + i % 100) * 1000000 + {per_request - 1} * 20000000,
                   i * 1000000 + (50 + i % 100) * 1000000 + {per_request - 1} * 20000000 + 100000,
                   {per_request}, 500 + i % 1000, {per_request}, 500 + i % 1000, {per_request},
                   200, CASE WHEN i % 1000 = 0 THEN 'http_5xx' END, NULL, false, NULL, 0,
                   {per_request} * 4, NULL, 'usage'
            FROM range({requests}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO token_events
            SELECT {run_id}, i // {per_request}, i % {per_request},
                   (i // {per_request}) * 1000000 + (50 + (i // {per_request}) % 100) * 1000000
                     + (i % {per_request}) * 20000000 + (i % 7) * 100000,
                   NULL,
                   CASE WHEN i % {per_request} > 0
                        THEN 20000000 + (i % 7) * 100000 - ((i - 1) % 7) * 100000 END
            FROM range({requests * per_request}) t(i)"""
    )
    store.close()
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--events-per-request", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.duckdb"
        t0 = time.perf_counter()
        run_id = synthesise(db, args.requests, args.events_per_request)
        made = time.perf_counter() - t0
        size_mb = db.stat().st_size / 1e6
        print(
            f"synthesised {args.requests:,} requests, "
            f"{args.requests * args.events_per_request:,} token events in {made:.1f} s "
            f"({size_mb:,.0f} MB)"
        )
        store = open_store(db, read_only=True)
        t0 = time.perf_counter()
        s = summarize(store.con, run_id)
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(3):
            t0 = time.perf_counter()
            summarize(store.con, run_id)
            warm.append(time.perf_counter() - t0)
        store.close()
        print(
            f"summary: cold {cold:.2f} s, warm median {statistics.median(warm):.2f} s "
            f"(ok {s.ok:,}, errored {s.errored:,}, "
            f"chunk gaps {s.distributions['chunk_gap_ms'].n:,})"
        )


if __name__ == "__main__":
    main()
