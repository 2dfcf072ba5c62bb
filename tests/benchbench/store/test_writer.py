"""The batch writer never loses a batch to one bad value: values that do not fit their column
are stored as NULL, a row that cannot be stored at all is lost alone and counted, and
`requests_written` is exactly the rows in the store."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from benchbench.store import BatchWriter, Store, open_store
from loadgen.spec import RequestRecord


def _record(i: int, **fields: object) -> RequestRecord:
    r = RequestRecord(index=i, intended_ns=None, sent_ns=1_000 + i)
    r.event_ns = [2_000 + i, 3_000 + i]
    r.event_tokens = [None, None]
    r.first_token_ns, r.last_token_ns, r.closed_ns = 2_000 + i, 3_000 + i, 3_500 + i
    r.input_tokens, r.output_tokens, r.http_status = 3, 2, 200
    for key, value in fields.items():
        setattr(r, key, value)
    return r


def _write(tmp_path: Path, records: list[RequestRecord]) -> tuple[Store, BatchWriter, int]:
    store = open_store(tmp_path / "t.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0)
    for r in records:
        writer.add_record(r)
    writer.close()
    return store, writer, run_id


def _column(store: Store, column: str) -> list[object]:
    rows = store.con.execute(f"SELECT {column} FROM requests ORDER BY idx").fetchall()
    return [v for (v,) in rows]


@pytest.mark.parametrize(
    ("field", "column", "bad"),
    [
        ("output_tokens", "output_tokens", 2**31),
        ("output_tokens", "output_tokens", 2**70),
        ("output_tokens", "output_tokens", True),
        ("output_tokens", "output_tokens", -5),
        ("input_tokens", "input_tokens", 1.5),
        ("input_tokens", "input_tokens", "7"),
        ("output_tokens_expected", "output_tokens_expected", -(2**40)),
        ("http_status", "http_status", 70_000),
        ("output_text_chars", "output_chars", 2**32),
        ("turn", "turn", 2**33),
        ("closed_ns", "closed_ns", 2**64),
        ("intended_ns", "intended_ns", 3.5),
    ],
)
def test_a_value_that_does_not_fit_its_column_is_null_and_the_batch_is_kept(
    tmp_path: Path, field: str, column: str, bad: object
) -> None:
    records = [_record(i, **{field: 1}) for i in range(5)]
    setattr(records[2], field, bad)
    store, writer, _ = _write(tmp_path, records)
    values = _column(store, column)
    assert values[2] is None
    assert all(v is not None for i, v in enumerate(values) if i != 2)
    assert (writer.requests_written, writer.rows_failed, writer.events_written) == (5, 0, 10)


def test_a_row_that_cannot_be_stored_is_lost_alone_and_counted(tmp_path: Path) -> None:
    records = [_record(i) for i in range(6)]
    records[1].sent_ns = None  # type: ignore[assignment]  # NOT NULL: no row can hold it
    records[4].index = 2**40  # idx is NOT NULL too: out of range becomes NULL, then fails
    store, writer, _ = _write(tmp_path, records)
    assert _column(store, "idx") == [0, 2, 3, 5]
    assert (writer.requests_written, writer.rows_failed) == (4, 2)
    assert writer.failures and all("NOT NULL" in f or "null" in f.lower() for f in writer.failures)
    # The lost rows took their token events with them: no orphan events.
    events = store.con.execute("SELECT DISTINCT idx FROM token_events ORDER BY idx").fetchall()
    assert [i for (i,) in events] == [0, 2, 3, 5]
    assert writer.events_written == 8


def test_books_balance_over_many_batches_with_bad_rows(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0, flush_every=64)
    added = 0
    for i in range(500):
        record = _record(i, output_tokens=2**31 if i % 7 == 0 else 2)
        if i % 97 == 0:
            record.sent_ns = None  # type: ignore[assignment]
        writer.add_record(record)
        added += 1
    writer.close()
    stored = store.con.execute("SELECT count(*) FROM requests").fetchone()
    assert stored is not None
    assert writer.requests_written == stored[0]
    assert writer.requests_written + writer.rows_failed == added
    assert writer.rows_failed == len(range(0, 500, 97))


def test_notes_are_joined_and_empty_notes_are_null(tmp_path: Path) -> None:
    records = [_record(0, notes=["malformed_usage: completion_tokens=-5", "x"]), _record(1)]
    store, _, _ = _write(tmp_path, records)
    assert _column(store, "notes") == ["malformed_usage: completion_tokens=-5; x", None]


def test_text_that_is_not_valid_unicode_is_repaired_not_lost(tmp_path: Path) -> None:
    records = [_record(0, error_kind="malformed", error_detail="bad \ud800 half"), _record(1)]
    store, writer, _ = _write(tmp_path, records)
    assert writer.rows_failed == 0
    detail = _column(store, "error_detail")[0]
    assert isinstance(detail, str) and detail.startswith("bad ") and detail.endswith(" half")


def test_timings_that_are_not_json_lose_the_timings_not_the_row(tmp_path: Path) -> None:
    records = [_record(0, server_timings={"prompt_ms": float("nan")}), _record(1)]
    store, writer, _ = _write(tmp_path, records)
    assert _column(store, "server_timings") == [None, None]
    assert writer.requests_written == 2


def test_event_tokens_that_do_not_pair_with_event_times_cost_nothing(tmp_path: Path) -> None:
    records = [_record(0, event_tokens=[1]), _record(1, event_tokens=[4, 5, 6]), _record(2)]
    records[2].event_tokens = [1, 1]
    store, writer, _ = _write(tmp_path, records)
    tokens = store.con.execute("SELECT idx, tokens FROM token_events ORDER BY idx, seq").fetchall()
    assert tokens == [(0, None), (0, None), (1, None), (1, None), (2, 1), (2, 1)]
    assert (writer.requests_written, writer.events_written) == (3, 6)


def test_an_older_store_gains_the_notes_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchbench.store.db as db
    from benchbench.store.schema import MIGRATIONS

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[:4])
    open_store(path).close()
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    store = open_store(path)
    columns = {
        c
        for (c,) in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
        ).fetchall()
    }
    assert {"notes", "cached_input_tokens"} <= columns
    names = [n for (n,) in store.con.execute("SELECT name FROM schema_migrations").fetchall()]
    assert names == [name for name, _ in MIGRATIONS]
    store.close()
    assert isinstance(duckdb.__version__, str)


def test_cached_prompt_tokens_are_stored_and_unknown_stays_null(tmp_path: Path) -> None:
    records = [_record(i) for i in range(4)]
    records[0].cached_input_tokens = 0
    records[1].cached_input_tokens = 37
    records[3].cached_input_tokens = 2**40  # out of range for the column: NULL, row kept
    store, writer, _ = _write(tmp_path, records)
    assert _column(store, "cached_input_tokens") == [0, 37, None, None]
    assert writer.requests_written == 4
