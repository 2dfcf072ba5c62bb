"""`bench run --workers N` at the edges: more workers than requests, a duration without a
request budget, trace replay, a worker that dies before it sends anything, and the rows of a
dead worker carrying what was planned for each request it had begun (expected lengths, the
expected prefix-cache hit, its session and turn)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchbench.config import make_config
from benchbench.execute import RunResult, run_benchmark
from benchbench.live import LiveStats
from benchbench.results import load_results
from benchbench.sim import SimConfig, SimProcess
from benchbench.traffic import build_traffic
from loadgen import errors


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    """10 ms per decode step, no batching cost: 100-token streams last about a second."""
    cfg = SimConfig(prefill_base_ms=10.0, prefill_ms_per_token=0.0, decode_base_ms=10.0,
                    decode_ms_per_seq=0.0, max_batch=512)  # fmt: skip
    with SimProcess(cfg) as proc:
        yield proc.base_url


def _run(base_url: str, db: Path, on_live: Any = None, **kw: Any) -> RunResult:
    fields: dict[str, Any] = dict(endpoint=base_url, db=str(db), input_len="30", output_len="5")
    fields.update(kw)
    return run_benchmark(make_config(**fields), on_live=on_live)


def _rows(db: Path, run_id: int, columns: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            f"SELECT {columns} FROM requests WHERE run_id = ? ORDER BY idx", [run_id]
        ).fetchall()


def _mooncake(path: Path, times_s: list[float], output: int = 5) -> Path:
    """A Mooncake trace whose prompts share leading 512-token blocks (a prefix-cache claim)."""
    lines = []
    for i, t in enumerate(times_s):
        blocks = 2 + i % 2
        hashes = [1, 2, 3 + i % 4][:blocks]
        lines.append(json.dumps({"timestamp": round(t * 1000), "input_length": 512 * blocks - 7,
                                 "output_length": output, "hash_ids": hashes}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _kill_worker(w: int, when: Callable[[LiveStats], bool]) -> tuple[Any, list[int]]:
    """An on_live callback that SIGKILLs worker w's process once `when` holds."""
    killed: list[int] = []

    def on_live(stats: LiveStats, _now: int) -> None:
        if killed or not when(stats):
            return
        for child in multiprocessing.active_children():
            if child.name == f"bench-worker-{w}" and child.pid:
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    return on_live, killed


@pytest.mark.parametrize(
    "kw",
    [dict(workers=4, rate=50, requests=3), dict(workers=3, concurrency=4, requests=2)],
    ids=["open-loop", "closed-loop"],
)
def test_more_workers_than_requests_sends_each_request_once(
    sim: str, tmp_path: Path, kw: dict[str, Any]
) -> None:
    result = _run(sim, tmp_path / "few.duckdb", **kw)
    rows = _rows(tmp_path / "few.duckdb", result.run_id, "idx, error_kind")
    assert result.status == "complete"
    assert rows == [(i, None) for i in range(kw["requests"])]
    assert result.outcome.sent == kw["requests"]


def test_open_loop_duration_only_sends_the_one_worker_schedule(sim: str, tmp_path: Path) -> None:
    kw = dict(rate=40, duration_s=1.5)
    one = _run(sim, tmp_path / "d1.duckdb", workers=1, **kw)
    two = _run(sim, tmp_path / "d2.duckdb", workers=2, **kw)
    a = _rows(tmp_path / "d1.duckdb", one.run_id, "idx, intended_ns, worker, error_kind")
    b = _rows(tmp_path / "d2.duckdb", two.run_id, "idx, intended_ns, worker, error_kind")
    assert one.status == two.status == "complete"
    # The schedule ends where it reaches the duration: the same requests, whoever sends them.
    assert len(a) == len(b) > 20 and [r[0] for r in b] == list(range(len(b)))
    assert [r[1] - a[0][1] for r in a] == [r[1] - b[0][1] for r in b]
    assert [r[2] for r in b] == [i % 2 for i in range(len(b))]
    assert all(r[3] is None for r in b)


def test_closed_loop_duration_only_keeps_every_user_busy(sim: str, tmp_path: Path) -> None:
    result = _run(sim, tmp_path / "cd.duckdb", workers=2, concurrency=4, duration_s=1.5)
    rows = _rows(tmp_path / "cd.duckdb", result.run_id, "idx, worker, error_kind")
    assert result.status == "complete"
    idx = [r[0] for r in rows]
    assert len(set(idx)) == len(idx) > 8
    # Requests go to whichever worker asks next, a few ahead of their sending: those a worker
    # held when the time ran out are never sent (gaps in idx, not losses: the books balance).
    # A worker asks for a chunk (max(4, 2 x its users) = 4) when it holds fewer than one.
    held = 2 * (2 * 4)
    assert max(idx) + 1 - len(idx) <= held
    assert {r[1] for r in rows} == {0, 1} and all(r[2] is None for r in rows)
    assert result.outcome.sent == len(rows) and result.outcome.max_in_flight <= 4


def test_trace_replay_with_workers_replays_the_one_worker_trace(sim: str, tmp_path: Path) -> None:
    trace = _mooncake(tmp_path / "t.jsonl", [i * 0.03 for i in range(40)])
    one = _run(sim, tmp_path / "t1.duckdb", workers=1, trace=str(trace))
    two = _run(sim, tmp_path / "t2.duckdb", workers=2, trace=str(trace))
    cols = "idx, intended_ns, input_tokens_expected, cached_input_tokens_expected, worker"
    a, b = _rows(tmp_path / "t1.duckdb", one.run_id, cols), _rows(tmp_path / "t2.duckdb",
                                                                    two.run_id, cols)  # fmt: skip
    assert one.status == two.status == "complete" and len(a) == len(b) == 40
    assert [r[1] - a[0][1] for r in a] == [r[1] - b[0][1] for r in b]
    assert [r[2:4] for r in a] == [r[2:4] for r in b]
    assert [r[4] for r in b] == [i % 2 for i in range(40)]


def test_a_worker_killed_before_it_sends_anything_leaves_only_its_share_unsent(
    sim: str, tmp_path: Path
) -> None:
    # Worker 1's first request (the trace's second) is due a second in: it dies before it.
    trace = _mooncake(tmp_path / "late.jsonl", [0.0] + [1.0 + i * 0.05 for i in range(19)])
    on_live, killed = _kill_worker(1, lambda _stats: True)
    db = tmp_path / "late.duckdb"
    result = _run(sim, db, on_live=on_live, workers=2, trace=str(trace))
    assert killed
    rows = _rows(db, result.run_id, "idx, worker, error_kind")
    assert rows == [(i, 0, None) for i in range(0, 20, 2)]
    with duckdb.connect(str(db), read_only=True) as con:
        results = load_results(con, result.run_id)
        warnings = json.loads(con.execute("SELECT warnings FROM runs").fetchone()[0])
    books = results.books
    assert books is not None and books.missing == 0 and books.sent == books.stored == 10
    assert result.status == "failed"  # a lost worker fails the run
    assert any("client worker 1 died mid-run" in w and "exit code -9" in w
               and "0 request(s) in flight" in w for w in warnings)  # fmt: skip
    w1 = results.workers[1]
    assert w1.lost and w1.lost_requests == 0 and w1.records == 0 and w1.unsent == 10


def test_worker_lost_rows_carry_what_was_planned_for_each_request(sim: str, tmp_path: Path) -> None:
    trace = _mooncake(tmp_path / "lost.jsonl", [i * 0.025 for i in range(120)], output=100)
    db = tmp_path / "lost.duckdb"
    on_live, killed = _kill_worker(1, lambda stats: stats.done >= 10)
    result = _run(sim, db, on_live=on_live, workers=2, trace=str(trace))
    assert killed
    cols = ("idx, worker, error_kind, input_tokens_expected, output_tokens_expected, "
            "cached_input_tokens_expected, intended_ns, sent_ns")  # fmt: skip
    rows = _rows(db, result.run_id, cols)
    lost = [r for r in rows if r[2] == errors.WORKER_LOST]
    assert lost and all(r[1] == 1 for r in lost)
    planned = {s.index: s for s in build_traffic(make_config(trace=str(trace))).specs}
    for idx, _w, _kind, inp, out, cached, intended, sent in lost:
        spec = planned[idx]
        assert (inp, out, cached) == (
            spec.input_tokens_expected, spec.output_tokens_expected,
            spec.cached_input_tokens_expected,
        )  # fmt: skip
        assert intended is not None and sent >= intended
    assert any(r[5] for r in lost)  # the trace claims shared blocks: some expect a hit
    assert result.status == "failed"  # a lost worker fails the run


def test_worker_lost_rows_keep_their_session_and_turn(sim: str, tmp_path: Path) -> None:
    db = tmp_path / "sess.duckdb"
    on_live, killed = _kill_worker(1, lambda stats: stats.done >= 8)
    result = _run(sim, db, on_live=on_live, workers=2, concurrency=6, requests=60,
                  session_turns="4", output_len="60")  # fmt: skip
    assert killed
    rows = _rows(db, result.run_id, "session_id, turn, worker, error_kind")
    lost = [r for r in rows if r[3] == errors.WORKER_LOST]
    assert lost and all(r[2] == 1 and r[0] for r in lost)
    turns: dict[str, list[int]] = {}
    for session, turn, _w, _kind in rows:
        turns.setdefault(session, []).append(turn)
    # A session's turns go one after another: the lost turn is its session's last, and the
    # turns stored before it are all of the earlier ones.
    for session, turn, _w, _kind in lost:
        assert sorted(turns[session]) == list(range(turn + 1))
    assert result.status == "failed"  # a lost worker fails the run
