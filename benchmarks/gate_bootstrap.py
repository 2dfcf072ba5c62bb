"""How long `bench gate`'s interval of a change takes on large runs: the order-statistic
bootstrap of a percentile (benchbench.gate.stats.change_of_statistic) over N requests a side.
Its cost is two sorts plus O(resamples), whatever N: target for 100k a side with 2,000
resamples, well under 0.5 s.

    python benchmarks/gate_bootstrap.py [--requests 100000] [--resamples 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchbench.gate.stats import change_of_statistic

TARGET_S = 0.5  # for the default 100k a side, 2,000 resamples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--resamples", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a = rng.lognormal(3, 0.5, args.requests)
    b = rng.lognormal(3, 0.5, args.requests)
    for label, q in (("p99", 0.99), ("p50", 0.5), ("mean", None)):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            change_of_statistic(a, b, q, confidence=0.95, resamples=args.resamples, rng=rng)
            times.append(time.perf_counter() - t0)
        print(
            f"{label:>4}: {args.requests:,} a side, {args.resamples:,} resamples: "
            f"median {statistics.median(times) * 1e3:.0f} ms, best {min(times) * 1e3:.0f} ms "
            f"(target at the defaults: < {TARGET_S * 1e3:.0f} ms)"
        )


if __name__ == "__main__":
    main()
