"""CPU cost of the NVML collector: run it for N seconds at 10 Hz and report samples/s and the
polling thread's CPU seconds per second (target: < 0.01 per GPU, i.e. < 1% of a core).

    python benchmarks/nvml_overhead.py --seconds 10          # real NVML, else the fake
    python benchmarks/nvml_overhead.py --fake --gpus 8       # fake NVML with 8 GPUs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.collectors.fake_nvml

from collectors.nvml import NvmlCollector, NvmlUnavailable  # noqa: E402
from tests.collectors.fake_nvml import FakeGpu, FakeNvml  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--detail-interval", type=float, default=0.5)
    parser.add_argument("--fake", action="store_true", help="use the fake NVML even with a GPU")
    parser.add_argument("--gpus", type=int, default=1, help="fake GPUs (with --fake)")
    args = parser.parse_args()

    collector = None
    kind = "fake"
    if not args.fake:
        try:
            collector = NvmlCollector(
                interval_s=args.interval, detail_interval_s=args.detail_interval
            )
            kind = "real"
        except NvmlUnavailable as exc:
            print(f"real NVML unavailable ({exc}); using the fake")
    if collector is None:
        fake = FakeNvml([FakeGpu() for _ in range(args.gpus)], clock=time.monotonic_ns)
        collector = NvmlCollector(
            interval_s=args.interval, detail_interval_s=args.detail_interval, nvml=fake, env={}
        )
    gpus = len(collector.gpus)
    names = sorted({g.name for g in collector.gpus})

    cpu0, wall0 = time.process_time(), time.monotonic()
    collector.start(time.monotonic_ns)
    time.sleep(args.seconds)
    collector.stop()
    wall = time.monotonic() - wall0
    process_cpu = time.process_time() - cpu0
    samples = collector.drain()

    print(f"NVML: {kind}, {gpus} GPU(s): {', '.join(names)}")
    print(f"interval {args.interval} s (detail {args.detail_interval} s), ran {wall:.2f} s")
    print(f"polls/s           {collector.polls / wall:8.2f}")
    print(f"samples/s         {len(samples) / wall:8.1f}")
    per_s = collector.cpu_s / wall
    print(f"thread CPU s/s    {per_s:8.5f}  ({per_s / gpus:.5f} per GPU)")
    print(f"process CPU s/s   {process_cpu / wall:8.5f}  (includes this script's idle main thread)")
    print(f"degraded          {collector.degraded}")


if __name__ == "__main__":
    main()
