"""Token truth in the store: where each output count came from is kept, and the summary says
which method the run used."""

from __future__ import annotations

import time
from pathlib import Path

from benchbench.metrics import token_truth
from benchbench.store import BatchWriter, open_store
from loadgen.spec import RequestRecord


def _record(i: int, tokens: int | None, source: str | None) -> RequestRecord:
    r = RequestRecord(index=i, intended_ns=None, sent_ns=1_000 + i)
    r.event_ns = [2_000 + i, 3_000 + i]
    r.event_tokens = [None, None]
    r.first_token_ns, r.last_token_ns, r.closed_ns = 2_000 + i, 3_000 + i, 3_500 + i
    r.output_tokens, r.output_tokens_source = tokens, source
    r.output_tokens_expected = 2
    r.http_status = 200
    return r


def test_each_requests_count_source_is_stored_and_summarised(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0)
    for i, (tokens, source) in enumerate(
        [(2, "usage"), (2, "usage"), (5, "client_tokenizer"), (None, None)]
    ):
        writer.add_record(_record(i, tokens, source))
    writer.close()
    stored = store.con.execute("SELECT output_tokens_source FROM requests ORDER BY idx").fetchall()
    assert [s for (s,) in stored] == ["usage", "usage", "client_tokenizer", None]
    tt = token_truth(store.con, run_id)
    assert tt["method"] == "server_usage+client_tokenizer"
    assert (tt["with_usage"], tt["client_tokenizer"], tt["requests"]) == (2, 1, 4)
    assert tt["output_mismatch"] == 1  # the client's 5 against 2 requested is flagged


def test_requests_whose_usage_was_malformed_are_counted(tmp_path: Path) -> None:
    store = open_store(tmp_path / "t.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0)
    bad = _record(0, None, None)
    bad.notes = ["malformed_usage: completion_tokens=-5"]
    warm = _record(1, None, None)
    warm.notes, warm.warmup = ["malformed_usage: completion_tokens=true"], True
    for record in (bad, warm, _record(2, 2, "usage"), _record(3, 2, "usage")):
        writer.add_record(record)
    writer.close()
    tt = token_truth(store.con, run_id)
    assert tt["malformed_usage"] == 1  # the warm-up request is outside the population
    assert (tt["with_usage"], tt["requests"]) == (2, 3)
    stored = store.con.execute("SELECT output_tokens FROM requests WHERE idx = 0").fetchone()
    assert stored == (None,)
