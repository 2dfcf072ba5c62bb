"""Energy per request: each sample interval's energy is split among the requests in flight in
proportion to their time in flight there (prefill: send -> first token; decode: first token
-> completion), gaps with nothing in flight are shared in proportion, and the parts sum to
the window's energy."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.energy_per_request import attribute
from benchbench.execute import run_benchmark
from benchbench.metrics import summarize
from benchbench.sim import SimConfig, SimProcess
from benchbench.store import open_store
from tests.collectors.fake_nvml import FakeGpu, FakeNvml

S = 1_000_000_000


def _ns(*seconds: float) -> np.ndarray:
    return np.array([round(x * S) for x in seconds], dtype=np.int64)


def test_an_interval_is_shared_by_time_in_flight_and_split_at_the_first_token() -> None:
    # 0-1 s: only A in flight (10 J); 1-2 s: A and B, a full second each (20 J).
    # A: prefill 0-0.5 s (5 J), decode 0.5-2 s (5 J + 10 J); B: prefill 1-1.5, decode 1.5-2.
    p = attribute(_ns(0, 1, 2), np.array([10.0, 20.0]), _ns(0, 1), _ns(0.5, 1.5), _ns(2, 2))
    assert p.prefill_j == pytest.approx([5.0, 5.0])
    assert p.decode_j == pytest.approx([15.0, 5.0])
    assert p.gap_j == pytest.approx([0.0, 0.0])
    assert p.total_j.sum() == pytest.approx(30.0)


def test_a_request_half_inside_an_interval_gets_half_the_weight() -> None:
    # 0-1 s: A all second, B from 0.5 s: 1.5 request-seconds for 12 J -> 8 J/request-s.
    p = attribute(_ns(0, 1), np.array([12.0]), _ns(0, 0.5), _ns(0, 0.5), _ns(1, 1))
    assert p.total_j == pytest.approx([8.0, 4.0])


def test_energy_with_nothing_in_flight_is_shared_in_proportion() -> None:
    # 1-2 s: nobody in flight (6 J); A got 10 J, B 20 J: A takes 2 J of the gap, B 4 J.
    p = attribute(_ns(0, 1, 2, 3), np.array([10.0, 6.0, 20.0]), _ns(0, 2), _ns(0.5, 2.5), _ns(1, 3))
    assert p.gap_j == pytest.approx([2.0, 4.0])
    assert p.total_j == pytest.approx([12.0, 24.0])


def test_a_request_without_a_token_is_in_prefill_throughout() -> None:
    p = attribute(_ns(0, 2), np.array([8.0]), _ns(0, 0), _ns(2, 1), _ns(2, 2))
    assert p.prefill_j == pytest.approx([4.0, 2.0]) and p.decode_j == pytest.approx([0.0, 2.0])


@pytest.fixture(scope="module")
def energy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A run against the simulator with two fake GPUs drawing 200 W and 300 W (the fake reads
    the real monotonic clock, as the run does), 30 requests of mixed lengths."""
    db = tmp_path_factory.mktemp("epr") / "bench.duckdb"
    gpus = [FakeGpu(uuid="GPU-0000", steps=[(0.0, 200.0)]),
            FakeGpu(uuid="GPU-1111", steps=[(0.0, 300.0)])]  # fmt: skip
    nvml = FakeNvml(gpus=gpus, clock=time.monotonic_ns)
    sim = SimConfig(prefill_base_ms=5, prefill_ms_per_token=0.05, decode_base_ms=4)
    with SimProcess(sim) as proc:
        cfg = make_config(
            endpoint=proc.base_url, db=str(db), concurrency=4, requests=30,
            input_len="uniform:min=20,max=400", output_len="uniform:min=4,max=60",
            gpus="0,1", idle_seconds=0.2, sample_hz=100.0, seed=11,
        )  # fmt: skip
        run_id = run_benchmark(cfg, nvml=nvml).run_id
    return db, run_id


def test_per_request_energies_sum_to_the_window_energy(energy_run: tuple[Path, int]) -> None:
    db, run_id = energy_run
    store = open_store(str(db), read_only=True)
    try:
        s = summarize(store.con, run_id)
    finally:
        store.close()
    e, epr = s.results.energy, s.energy_per_request
    assert e is not None and e.gross_j and epr is not None
    assert epr.window_j == e.gross_j
    assert epr.attributed_j == pytest.approx(e.gross_j, rel=0.005)
    assert epr.requests == s.ok
    d, tok = epr.j_per_request, epr.j_per_output_token
    assert d["n"] == s.ok and 0 < d["p50"] <= d["p90"] <= d["p99"]
    # Mean J per request x ok requests + the others' share = the window (nothing lost).
    assert d["mean"] * d["n"] + epr.other_j == pytest.approx(e.gross_j, rel=0.005)
    assert tok["n"] == s.ok and tok["p50"] > 0
    assert 0 < epr.prefill_share < 1
    assert sum(b["n"] for b in epr.by_input) == sum(b["n"] for b in epr.by_output) == s.ok


def test_energy_per_request_is_in_the_json_and_on_the_console(
    energy_run: tuple[Path, int],
) -> None:
    db, run_id = energy_run
    store = open_store(str(db), read_only=True)
    try:
        s = summarize(store.con, run_id)
    finally:
        store.close()
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))["energy_per_request"]
    assert d["j_per_request"]["n"] == s.ok and d["rule"].startswith("each sample interval")
    buf = io.StringIO()
    print_summary(Console(file=buf, width=160), s)
    assert "J per request" in buf.getvalue()


def test_the_report_shows_energy_per_request_by_length(energy_run: tuple[Path, int]) -> None:
    from benchbench.report_data.run import gather_run
    from reports.html import Page
    from reports.run_page import run_section

    db, run_id = energy_run
    store = open_store(str(db), read_only=True)
    try:
        run = gather_run(store.con, run_id)
    finally:
        store.close()
    assert run.energy_per_request is not None
    html = run_section(Page(), run, full=True)
    for heading in ("Energy per request", "By input length", "By output length"):
        assert heading in html
