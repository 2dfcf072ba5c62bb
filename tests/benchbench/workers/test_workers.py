"""`bench run --workers N` against the built-in simulator: the same experiment as one
process (requests, fingerprint, schedule, latencies), every row tagged with its worker, and
a worker killed mid-run turning its open requests into worker_lost rows with balanced books."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.execute import RunResult, run_benchmark
from benchbench.live import LiveStats
from benchbench.results import load_results
from benchbench.sim import SimConfig, SimProcess
from loadgen import errors

PREFILL_MS = 20.0
STEP_MS = 10.0


@pytest.fixture(scope="module")
def timed_sim() -> Iterator[str]:
    """Fixed timings (prefill 20 ms, 10 ms per decode step, no batching cost): latencies do
    not depend on which client process sent the request."""
    cfg = SimConfig(
        prefill_base_ms=PREFILL_MS,
        prefill_ms_per_token=0.0,
        decode_base_ms=STEP_MS,
        decode_ms_per_seq=0.0,
        max_batch=256,
    )
    with SimProcess(cfg) as sim:
        yield sim.base_url


def _run(base_url: str, db: Path, **kw: Any) -> RunResult:
    fields: dict[str, Any] = dict(endpoint=base_url, db=str(db), input_len="50", output_len="10")
    fields.update(kw)
    on_live = fields.pop("on_live", None)
    return run_benchmark(make_config(**fields), on_live=on_live)


def _rows(db: Path, run_id: int, columns: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            f"SELECT {columns} FROM requests WHERE run_id = ? ORDER BY idx", [run_id]
        ).fetchall()


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def test_two_workers_send_the_same_experiment_as_one(timed_sim: str, tmp_path: Path) -> None:
    kw = dict(rate=60, requests=120, warmup=4)
    one = _run(timed_sim, tmp_path / "one.duckdb", workers=1, **kw)
    two = _run(timed_sim, tmp_path / "two.duckdb", workers=2, **kw)
    assert one.status == two.status == "complete"
    assert two.outcome.sent == one.outcome.sent == 124
    cols = "idx, intended_ns, worker, warmup, first_token_ns - sent_ns, closed_ns - sent_ns"
    a, b = (
        _rows(tmp_path / "one.duckdb", one.run_id, cols),
        _rows(tmp_path / "two.duckdb", two.run_id, cols),
    )
    assert [r[0] for r in a] == [r[0] for r in b] == list(range(124))
    # One schedule: the intended send times, relative to the first, are identical.
    assert [r[1] - a[0][1] for r in a] == [r[1] - b[0][1] for r in b]
    assert [r[3] for r in a] == [r[3] for r in b]  # the same requests are warm-up
    assert {r[2] for r in a} == {0}
    assert [r[2] for r in b] == [i % 2 for i in range(124)]  # dealt round-robin
    with duckdb.connect(str(tmp_path / "one.duckdb"), read_only=True) as con:
        fp_one = con.execute("SELECT fingerprint FROM runs").fetchone()
    with duckdb.connect(str(tmp_path / "two.duckdb"), read_only=True) as con:
        fp_two = con.execute("SELECT fingerprint FROM runs").fetchone()
        results = load_results(con, two.run_id)
    assert fp_one == fp_two and fp_one[0]
    # The same latencies, within the noise of a shared 2-core machine (the simulator, the
    # coordinator and two workers share it: medians within a generous bound).
    ttft_a, ttft_b = [r[4] / 1e6 for r in a], [r[4] / 1e6 for r in b]
    e2e_a, e2e_b = [r[5] / 1e6 for r in a], [r[5] / 1e6 for r in b]
    assert _median(ttft_b) == pytest.approx(_median(ttft_a), abs=5.0)
    assert _median(e2e_b) == pytest.approx(_median(e2e_a), rel=0.25)
    s1, s2 = one.summary.distributions, two.summary.distributions
    assert s2["tpot_ms"].p50 == pytest.approx(s1["tpot_ms"].p50, rel=0.25)
    assert [w.worker for w in results.workers] == [0, 1]
    console = Console(record=True, width=240)
    print_summary(console, two.summary, two.header)
    shown = console.export_text()
    assert "worker 0" in shown and "worker 1" in shown and "schedule lag p99" in shown
    assert [w.records for w in results.workers] == [62, 62]
    assert all(w.pid and w.pid != os.getpid() and not w.lost for w in results.workers)
    assert all(abs(w.clock_offset_ns or 0) <= (w.clock_uncertainty_ns or 0) + 1_000_000
               for w in results.workers)  # fmt: skip


def test_closed_loop_splits_users_and_budget(timed_sim: str, tmp_path: Path) -> None:
    result = _run(timed_sim, tmp_path / "c.duckdb", workers=2, concurrency=4, requests=40)
    rows = _rows(tmp_path / "c.duckdb", result.run_id, "idx, worker, error_kind")
    assert result.status == "complete"
    assert sorted(r[0] for r in rows) == list(range(40))
    assert {r[1] for r in rows} == {0, 1}
    assert all(r[2] is None for r in rows)
    assert result.outcome.max_in_flight <= 4


def test_sessions_stay_whole_on_one_worker(timed_sim: str, tmp_path: Path) -> None:
    result = _run(
        timed_sim, tmp_path / "s.duckdb", workers=2, concurrency=2, requests=24,
        session_turns="3",
    )  # fmt: skip
    rows = _rows(tmp_path / "s.duckdb", result.run_id, "session_id, worker, turn")
    assert result.status == "complete" and len(rows) == 24
    by_session: dict[str, set[int]] = {}
    for session, worker, _turn in rows:
        by_session.setdefault(session, set()).add(worker)
    assert all(len(ws) == 1 for ws in by_session.values())
    assert {w for ws in by_session.values() for w in ws} == {0, 1}


def test_think_time_users_cannot_be_split_and_say_so(timed_sim: str, tmp_path: Path) -> None:
    from benchbench.errors import ConfigError

    with pytest.raises(ConfigError, match="--workers 1"):
        _run(timed_sim, tmp_path / "t.duckdb", workers=2, concurrency=2, requests=4,
             think_time="0.1")  # fmt: skip


def test_a_worker_killed_mid_run_leaves_worker_lost_rows_and_balanced_books(
    timed_sim: str, tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_worker_1(stats: LiveStats, _now: int) -> None:
        if killed or stats.done < 20:
            return
        for child in multiprocessing.active_children():
            if child.name == "bench-worker-1" and child.pid:
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    db = tmp_path / "k.duckdb"
    # Each request streams ~1 s (100 steps of 10 ms): at 40 req/s dozens are in flight.
    result = _run(timed_sim, db, workers=2, rate=40, requests=160, output_len="100",
                  on_live=kill_worker_1)  # fmt: skip
    assert killed
    rows = _rows(db, result.run_id, "idx, worker, error_kind")
    lost = [r for r in rows if r[2] == errors.WORKER_LOST]
    assert lost and all(r[1] == 1 for r in lost)
    # Worker 0's share is complete; worker 1's unsent share was never sent.
    assert sorted(r[0] for r in rows if r[1] == 0) == list(range(0, 160, 2))
    assert len(rows) < 160
    with duckdb.connect(str(db), read_only=True) as con:
        results = load_results(con, result.run_id)
        status, warnings = con.execute("SELECT status, warnings FROM runs").fetchone()
    books = results.books
    assert books is not None and books.missing == 0 and books.sent == books.stored == len(rows)
    # The books balance (nothing measured is lost), but the client broke: the run is failed
    # so no CI gate passes it, and the warnings say which worker and why.
    assert status == "failed" == result.status
    assert any("died mid-run" in w for w in json.loads(warnings))
    assert any("client worker 1 died: the run is failed" in w for w in json.loads(warnings))
    w1 = results.workers[1]
    assert w1.lost and w1.lost_requests == len(lost) and w1.pid == killed[0]
    assert w1.records + w1.unsent == 80
