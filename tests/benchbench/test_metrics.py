"""Metric definitions over the store: which requests each population holds."""

from __future__ import annotations

from pathlib import Path

from benchbench.request_metrics import chunk_gaps
from benchbench.store import BatchWriter, open_store
from loadgen.spec import RequestRecord

MS = 1_000_000


def _record(index: int, gap_ms: int, *, error: str | None = None, warmup: bool = False):
    events = [10 * MS + k * gap_ms * MS for k in range(5)]
    return RequestRecord(
        index=index,
        intended_ns=None,
        sent_ns=0,
        first_token_ns=events[0],
        last_token_ns=events[-1],
        closed_ns=events[-1] + MS,
        event_ns=events,
        event_tokens=[None] * len(events),
        output_tokens=5,
        http_status=200,
        error_kind=error,
        warmup=warmup,
    )


def test_chunk_gaps_hold_only_ok_measured_requests(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.duckdb")
    run_id = store.create_run(wall_anchor_s=0.0, endpoint="http://127.0.0.1:1")
    writer = BatchWriter(store, run_id, origin_ns=0)
    writer.add_record(_record(0, 20))  # ok: four 20 ms gaps
    writer.add_record(_record(1, 40))  # ok: four 40 ms gaps
    writer.add_record(_record(2, 500, error="incomplete"))  # failed mid-stream, tokens kept
    writer.add_record(_record(3, 900, warmup=True))  # warm-up
    writer.close()

    gaps = chunk_gaps(store.con, run_id)

    assert gaps.n == 8
    assert gaps.mean == 30.0 and gaps.max == 40.0
    # The failed request's events are still stored: measured data is never dropped.
    stored = store.con.execute(
        "SELECT count(*) FROM token_events WHERE run_id = ?", [run_id]
    ).fetchone()
    assert stored == (20,)
    store.close()
