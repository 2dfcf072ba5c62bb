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
