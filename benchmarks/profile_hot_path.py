"""Profile the worker's hot path: one saturated closed-loop run of the raw client against a
fast simulator (in its own process), storage included, under cProfile; prints the top
functions by own time.

    python benchmarks/profile_hot_path.py [--concurrency 64] [--tokens 200] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path

from client_overhead import one  # this folder is on sys.path when run as a script

from benchbench.runloop import run_event_loop
from benchbench.sim import SimConfig, SimProcess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--per-stream", type=int, default=4)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SimProcess(SimConfig(fast=True)) as sim:
        prof = cProfile.Profile()
        prof.enable()
        row = run_event_loop(
            one(sim.base_url, "raw", args.concurrency, args.tokens, args.per_stream,
                Path(tmp) / "p.duckdb"),
            "auto",
        )  # fmt: skip
        prof.disable()
    print({k: round(v, 2) for k, v in row.items()})
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
