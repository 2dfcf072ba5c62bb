"""How fast synthetic prompts are made: N prompts of L words each from `synth_text` (the
random-word prompts `bench run --input-len` sends). Target: 10,000 prompts of 2,000 tokens
in well under 5 s, so planning a long run never delays its first request.

    python benchmarks/prompt_synthesis.py [--prompts 10000] [--tokens 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from loadgen.prompts import synth_text

TARGET_S = 5.0  # for the default 10,000 x 2,000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--tokens", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    times = []
    for k in range(args.repeat):
        rng = np.random.default_rng(k)
        t0 = time.perf_counter()
        chars = sum(len(synth_text(args.tokens, rng)) for _ in range(args.prompts))
        times.append(time.perf_counter() - t0)
    best, median = min(times), statistics.median(times)
    words_per_s = args.prompts * args.tokens / median
    print(
        f"{args.prompts:,} prompts x {args.tokens:,} words ({chars / 1e6:,.0f} M chars): "
        f"median {median:.2f} s, best {best:.2f} s ({words_per_s / 1e6:.1f} M words/s); "
        f"target at the defaults: < {TARGET_S:g} s"
    )


if __name__ == "__main__":
    main()
