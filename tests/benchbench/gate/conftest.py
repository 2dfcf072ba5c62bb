"""Real runs against the simulator (each config in its own process), made once per session
and shared by the gate's tests: open loop at a fixed seed and rate, as a CI job would run.

Timings: 20-token outputs at 10 ms decode steps, 5 ms prefill, 50 requests at 16 req/s
(about 4 in flight), so one run takes about 3.5 s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchbench.config import make_config
from benchbench.execute import RunGroup, run_benchmark
from benchbench.sim import SimConfig, SimProcess

BASE_SIM = dict(prefill_base_ms=5.0, prefill_ms_per_token=0.0, decode_base_ms=10.0,
                decode_ms_per_seq=0.0)  # fmt: skip
RUN = dict(input_len="100", output_len="20", rate=16.0, requests=50, seed=7, api="completions")


@dataclass(frozen=True)
class Runs:
    db: Path
    same: tuple[int, ...]  # four runs of the baseline configuration
    slow_decode: int  # decode_base_ms 10 -> 12 (TPOT +20%)
    fast_prefill: int  # prefill 5 -> 2 ms (TTFT 15 -> 12 ms, 20% better)
    other_model: int  # the same traffic against a server naming another model
    other_workload: int  # 10-token outputs instead of 20
    repeat_group: tuple[int, ...]  # two runs of the baseline configuration as a --repeat group


def _run(url: str, db: Path, group: RunGroup | None = None, **kw: object) -> int:
    cfg = make_config(endpoint=url, db=str(db), **{**RUN, **kw})
    return run_benchmark(cfg, group=group).run_id


@pytest.fixture(scope="session")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    db = tmp_path_factory.mktemp("gate") / "bench.duckdb"
    with SimProcess(SimConfig(**BASE_SIM)) as sim:
        same = tuple(_run(sim.base_url, db) for _ in range(4))
        other_workload = _run(sim.base_url, db, output_len="10", requests=40)
        group = tuple(
            _run(sim.base_url, db, group=RunGroup("g-repeat", "repeat", i)) for i in range(2)
        )
    with SimProcess(SimConfig(**{**BASE_SIM, "decode_base_ms": 12.0})) as sim:
        slow = _run(sim.base_url, db)
    with SimProcess(SimConfig(**{**BASE_SIM, "prefill_base_ms": 2.0})) as sim:
        fast = _run(sim.base_url, db)
    with SimProcess(SimConfig(**BASE_SIM, model="other-llm")) as sim:
        other_model = _run(sim.base_url, db)
    yield Runs(db, same, slow, fast, other_model, other_workload, group)


# What a slower decode step moves: the time per output token and the gaps between chunks
# (and through them NTPOT and E2E). A gate may flag any of these, and nothing else (TTFT,
# errors, throughput of prefill) may fail on a decode-only change.
DECODE_METRICS = ("tpot_ms.", "chunk_gap_ms.", "ntpot_ms.", "e2e_ms.")
