"""Clocks across hosts: workers whose monotonic clocks differ from the coordinator's (a test
seam offsets each worker's clock, as if it ran on a host of its own) still store one schedule
on the coordinator's clock. The coordinator finds each offset by round trips, within the
uncertainty it states, and shifts every stored time by it; latencies are unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import RunResult, run_benchmark
from benchbench.results import load_results
from benchbench.sim import SimConfig, SimProcess
from benchbench.workers.body import CLOCK_OFFSET_ENV, worker_clock

# Worker 0's clock 2 s behind the coordinator's, worker 1's 5 s ahead.
OFFSETS_NS = (-2_000_000_000, 5_000_000_000)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    cfg = SimConfig(prefill_base_ms=10.0, prefill_ms_per_token=0.0, decode_base_ms=5.0,
                    decode_ms_per_seq=0.0, max_batch=256)  # fmt: skip
    with SimProcess(cfg) as proc:
        yield proc.base_url


def _run(base_url: str, db: Path, workers: int) -> RunResult:
    cfg = make_config(endpoint=base_url, db=str(db), rate=50, requests=80, warmup=2,
                      input_len="30", output_len="8", workers=workers)  # fmt: skip
    return run_benchmark(cfg)


def _rows(db: Path, run_id: int) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            """SELECT idx, worker, intended_ns, sent_ns, first_token_ns, closed_ns
               FROM requests WHERE run_id = ? ORDER BY idx""",
            [run_id],
        ).fetchall()


def test_the_seam_offsets_only_the_named_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_ENV, ",7000000000")
    before = time.monotonic_ns()
    zero, ahead, unnamed = worker_clock(0)(), worker_clock(1)(), worker_clock(2)()
    assert before <= zero < before + 1_000_000_000
    assert ahead - zero >= 7_000_000_000 - 1_000_000_000
    assert unnamed < before + 1_000_000_000


def test_offset_worker_clocks_store_the_one_workers_schedule(
    sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _run(sim, tmp_path / "one.duckdb", workers=1)
    # Spawned worker processes inherit the environment: each reads its own offset.
    monkeypatch.setenv(CLOCK_OFFSET_ENV, ",".join(str(o) for o in OFFSETS_NS))
    begun = time.monotonic_ns()
    two = _run(sim, tmp_path / "two.duckdb", workers=2)
    ended = time.monotonic_ns()
    assert one.status == two.status == "complete"
    a, b = _rows(tmp_path / "one.duckdb", one.run_id), _rows(tmp_path / "two.duckdb", two.run_id)
    assert [r[0] for r in b] == list(range(82)) and {r[1] for r in b} == {0, 1}
    with duckdb.connect(str(tmp_path / "two.duckdb"), read_only=True) as con:
        workers = load_results(con, two.run_id).workers
    for w in workers:
        # The offset the coordinator found is the injected one, within its stated bound.
        assert w.clock_offset_ns is not None and w.clock_uncertainty_ns is not None
        assert abs(w.clock_offset_ns - OFFSETS_NS[w.worker]) <= w.clock_uncertainty_ns
        assert abs(w.clock_offset_end_ns - OFFSETS_NS[w.worker]) <= w.clock_uncertainty_end_ns
        assert w.clock_uncertainty_ns < 50_000_000
    # One schedule on the coordinator's clock: intended times relative to the first are the
    # one-worker run's, whichever worker sent them, and each was sent when intended (an
    # unshifted or wrongly shifted worker would be seconds off).
    assert [r[2] - a[0][2] for r in a] == [r[2] - b[0][2] for r in b]
    lags_ms = sorted((r[3] - r[2]) / 1e6 for r in b)
    assert lags_ms[0] > -5.0 and lags_ms[len(lags_ms) // 2] < 50.0
    # Every stamp is on the coordinator's clock (stored relative to the run's origin, which
    # this process, the coordinator, took within the call), and all moved together.
    for _idx, _w, intended, sent, first, closed in b:
        assert 0 <= intended and sent <= first <= closed < ended - begun
