"""`bench search` bisects to the knee of a simulator whose capacity is known: 4 sequences at a
time, 10 tokens at 5 ms a step, so 50 ms a request and at most 80 requests/s. Below that,
evenly spaced requests never wait (TTFT one step); above it the queue and TTFT grow."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.errors import BenchError
from benchbench.search import search_rate
from benchbench.sim import SimConfig, SimProcess

KNEE_RPS = 4 / (10 * 0.005)


@pytest.fixture(scope="module")
def knee_sim():
    cfg = SimConfig(
        prefill_base_ms=0, prefill_ms_per_token=0, decode_base_ms=5, decode_ms_per_seq=0,
        max_batch=4,
    )  # fmt: skip
    with SimProcess(cfg) as sim:
        yield sim.base_url


def _cfg(url: str, db: Path, slo: str | None = "ttft_p99_ms=30"):
    return make_config(
        endpoint=url, db=str(db), rate=1, arrival="constant", duration_s=0.6,
        input_len="20", output_len="10", slo=slo, exact_lengths="off",
    )  # fmt: skip


def test_search_converges_on_the_simulators_knee(knee_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    result = search_rate(_cfg(knee_sim, db), low=20, high=320, precision=0.2)
    assert result.best_rate is not None
    assert 0.7 * KNEE_RPS <= result.best_rate <= 1.1 * KNEE_RPS
    assert result.high / result.low <= 1.2
    assert result.probes[0].passed and not result.probes[1].passed  # low passes, high fails
    assert len(result.probes) <= 8
    con = duckdb.connect(str(db), read_only=True)
    kinds = con.execute("SELECT DISTINCT group_kind, sweep_id FROM runs").fetchall()
    assert kinds == [("search", result.group_id)]


def test_search_reports_when_even_low_fails(knee_sim: str, tmp_path: Path) -> None:
    cfg = _cfg(knee_sim, tmp_path / "l.duckdb", slo="ttft_p99_ms=0.001")
    result = search_rate(cfg, low=20, high=40)
    assert result.best_rate is None and "lower --low" in result.note
    assert len(result.probes) == 1


def test_search_needs_slos_and_a_sane_range(knee_sim: str, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="needs --slo"):
        search_rate(_cfg(knee_sim, tmp_path / "n.duckdb", slo=None), low=1, high=2)
    with pytest.raises(BenchError, match="--low must be > 0 and below --high"):
        search_rate(_cfg(knee_sim, tmp_path / "n.duckdb"), low=5, high=2)
