"""`bench run` as a library call against the simulator in its own process: the measured
figures match what the simulator was configured to do, and every request is stored."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from benchbench.config import make_config
from benchbench.console import print_summary
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimProcess
from benchbench.store import BatchWriter
from loadgen.load import RunOutcome
from loadgen.runner import Runner
from loadgen.spec import RequestRecord

PREFILL_MS = 20.0
STEP_MS = 10.0


@pytest.fixture(scope="module")
def timed_sim() -> Iterator[str]:
    """Fixed, easily predicted timings: prefill 20 ms, each decode step 10 ms, no batching cost."""
    cfg = SimConfig(
        prefill_base_ms=PREFILL_MS,
        prefill_ms_per_token=0.0,
        decode_base_ms=STEP_MS,
        decode_ms_per_seq=0.0,
        max_batch=64,
    )
    with SimProcess(cfg) as sim:
        yield sim.base_url


def _run(base_url: str, db: Path, **kw):
    defaults = dict(endpoint=base_url, db=str(db), input_len="100", output_len="20")
    defaults.update(kw)
    return run_benchmark(make_config(**defaults))


def test_ttft_tpot_and_e2e_match_the_simulated_server(timed_sim: str, tmp_path: Path) -> None:
    # A lone request sees its first token after prefill + one step, then one token per step.
    result = _run(timed_sim, tmp_path / "b.duckdb", concurrency=1, requests=15, api="completions")
    d = result.summary.distributions
    tolerance_ms = 4.0  # loopback HTTP, scheduler wake-ups and timer slack on a shared 2-core box
    assert d["ttft_ms"].p50 == pytest.approx(PREFILL_MS + STEP_MS, abs=tolerance_ms)
    assert d["tpot_ms"].p50 == pytest.approx(STEP_MS, abs=1.0)
    assert d["e2e_ms"].p50 == pytest.approx(PREFILL_MS + 20 * STEP_MS, abs=tolerance_ms)
    assert d["chunk_gap_ms"].p50 == pytest.approx(STEP_MS, abs=1.0)
    assert result.summary.output_tokens == 15 * 20
    assert result.summary.token_truth["output_mismatch"] == 0
    assert result.summary.token_truth["input_mismatch"] == 0


def test_requests_beyond_the_batch_limit_queue_and_ttft_shows_it(tmp_path: Path) -> None:
    cfg = SimConfig(
        prefill_base_ms=5,
        prefill_ms_per_token=0,
        decode_base_ms=10,
        decode_ms_per_seq=0,
        max_batch=2,
    )
    with SimProcess(cfg) as sim:
        result = _run(sim.base_url, tmp_path / "q.duckdb", concurrency=6, requests=12)
    ttft = result.summary.distributions["ttft_ms"]
    # Two run at a time, so most requests wait for a whole earlier request (~215 ms).
    assert ttft.p90 > 150
    assert ttft.p50 > 100


def test_open_loop_achieves_the_requested_rate_and_records_intent(
    timed_sim: str, tmp_path: Path
) -> None:
    result = _run(
        timed_sim, tmp_path / "o.duckdb", rate=40, arrival="constant", requests=80, output_len="5"
    )
    s = result.summary
    assert s.achieved_rate == pytest.approx(40, rel=0.01)
    assert s.requested_rate == 40
    lag = s.distributions["schedule_lag_ms"]
    # asyncio timers wake up to ~1 ms late; a shared 2-core machine adds the rest.
    assert lag.n == 80 and lag.p50 < 3 and lag.p99 < 25
    assert s.distributions["schedule_lag_ms"].get("p50") >= 0  # never sent early
    # Latency from the intended send includes the schedule lag, so it is never smaller.
    assert s.distributions["ttft_intended_ms"].p50 >= s.distributions["ttft_ms"].p50


def test_every_request_and_token_event_is_stored(timed_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    result = _run(timed_sim, db, concurrency=4, requests=20, warmup=3)
    con = duckdb.connect(str(db), read_only=True)
    n, warm, events, ok = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE warmup), sum(n_events), "
        "count(*) FILTER (WHERE error_kind IS NULL) FROM requests WHERE run_id = ?",
        [result.run_id],
    ).fetchone()
    stored_events = con.execute(
        "SELECT count(*) FROM token_events WHERE run_id = ?", [result.run_id]
    ).fetchone()[0]
    status, version = con.execute(
        "SELECT status, (SELECT max(version) FROM schema_migrations) FROM runs WHERE run_id = ?",
        [result.run_id],
    ).fetchone()
    assert (n, warm) == (23, 3)
    assert events == stored_events == 23 * 20
    assert status == "complete" and version >= 1
    s = result.summary
    assert s.sent == s.ok + s.errored + s.cancelled == 20
    assert s.distributions["ttft_ms"].n == 20  # warm-up excluded


def test_failing_requests_are_counted_not_dropped(tmp_path: Path) -> None:
    with SimProcess(SimConfig(fast=True, error_rate=0.3, error_status=503, seed=3)) as sim:
        result = _run(sim.base_url, tmp_path / "e.duckdb", concurrency=4, requests=60)
    s = result.summary
    assert s.sent == 60 == s.ok + s.errored + s.cancelled
    assert s.errors_by_kind.get("http_5xx", 0) == s.errored > 0
    assert s.distributions["ttft_ms"].n == s.ok


def test_median_of_chunk_gaps_follows_decode_step(tmp_path: Path) -> None:
    cfg = SimConfig(
        prefill_base_ms=1, prefill_ms_per_token=0, decode_base_ms=4, decode_ms_per_seq=0
    )
    with SimProcess(cfg) as sim:
        result = _run(
            sim.base_url, tmp_path / "g.duckdb", concurrency=2, requests=6, output_len="30"
        )
    gaps = result.summary.distributions["chunk_gap_ms"]
    assert gaps.n == 6 * 29
    assert gaps.p50 == pytest.approx(4.0, abs=1.0)


def test_the_books_balance_and_are_stored_with_the_run(timed_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    result = _run(timed_sim, db, concurrency=3, requests=12, warmup=2)
    con = duckdb.connect(str(db), read_only=True)
    extra = json.loads(
        con.execute("SELECT extra FROM runs WHERE run_id = ?", [result.run_id]).fetchone()[0]
    )
    con.close()
    books = extra["books"]
    assert result.status == "complete"
    # The runner's count (warm-up included) equals the rows stored, at every step between.
    assert books["sent"] == books["received"] == books["written"] == books["stored"] == 14
    assert books["missing"] == 0 and books["errors"] == [] and books["writer_error"] is None


def test_a_record_lost_on_its_way_to_the_store_fails_the_run(
    timed_sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add = BatchWriter.add_record

    def lossy(self: BatchWriter, record: RequestRecord) -> None:
        if record.index != 5:
            add(self, record)

    monkeypatch.setattr(BatchWriter, "add_record", lossy)
    result = _run(timed_sim, tmp_path / "l.duckdb", concurrency=2, requests=10)
    s = result.summary
    assert result.status == s.status == "failed"
    assert (s.extra["books"]["sent"], s.extra["books"]["stored"]) == (10, 9)
    assert any("BOOKS DO NOT BALANCE" in w for w in s.extra["warnings"])
    text = _render(s)
    assert "LOST RECORDS: the client sent 10 requests, the store holds 9 (1 missing)" in text


def test_an_unhandled_error_inside_the_run_fails_it(
    timed_sim: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Runner.run

    async def broken(self: Runner, *args: object, **kw: object) -> RunOutcome:
        outcome = await run(self, *args, **kw)
        outcome.errors.append("Traceback (most recent call last):\nValueError: boom")
        return outcome

    monkeypatch.setattr(Runner, "run", broken)
    result = _run(timed_sim, tmp_path / "u.duckdb", concurrency=2, requests=4)
    assert result.status == result.summary.status == "failed"
    books = result.summary.extra["books"]
    assert books["error_count"] == 1 and "ValueError: boom" in books["errors"][0]
    assert any("ValueError: boom" in w for w in result.summary.extra["warnings"])


def test_a_finished_run_is_in_the_database_file_without_its_log(
    timed_sim: str, tmp_path: Path
) -> None:
    db = tmp_path / "f.duckdb"
    # Another connection keeps the database open, so closing the run's store does not
    # checkpoint it: only the run's own checkpoint can put it in the file.
    keep = duckdb.connect(str(db))
    try:
        result = _run(timed_sim, db, concurrency=2, requests=8)
        copy = tmp_path / "copy.duckdb"
        shutil.copyfile(db, copy)  # the .duckdb alone, as a user would copy it
    finally:
        keep.close()
    con = duckdb.connect(str(copy), read_only=True)
    try:
        row = con.execute(
            "SELECT status, (SELECT count(*) FROM requests WHERE run_id = ?) FROM runs "
            "WHERE run_id = ?",
            [result.run_id, result.run_id],
        ).fetchone()
    finally:
        con.close()
    assert row == ("complete", 8)


def test_a_password_in_the_endpoint_never_reaches_the_store(timed_sim: str, tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    url = timed_sim.replace("http://", "http://user:hunter2@")
    result = _run(url, db, concurrency=1, requests=2)
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT * FROM runs WHERE run_id = ?", [result.run_id]).fetchone()
    finally:
        con.close()
    assert "hunter2" not in json.dumps(row, default=str)
    assert "hunter2" not in result.header["endpoint"]


def _render(s: object) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    print_summary(console, s)  # type: ignore[arg-type]
    return console.export_text()
