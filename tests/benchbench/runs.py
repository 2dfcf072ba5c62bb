"""Test runs written through the library's own writer (Store.create_run, BatchWriter with
RequestRecords, results.write_results), so a schema change touches one place."""

from __future__ import annotations

from collections.abc import Iterable

from benchbench.results import RunResults, write_results
from benchbench.store import BatchWriter, Store
from benchbench.window import store_window
from collectors.base import Sample
from loadgen.spec import RequestRecord


def write_run(
    store: Store,
    records: Iterable[RequestRecord],
    samples: Iterable[Sample] = (),
    results: RunResults | None = None,
    status: str = "complete",
    **run_fields: object,
) -> int:
    """A finished run holding `records` and `samples` (times on the run clock, origin 0),
    its window stored as a run would, then `results`."""
    run_id = store.create_run(wall_anchor_s=0.0, **run_fields)
    writer = BatchWriter(store, run_id, 0)
    for record in records:
        writer.add_record(record)
    writer.add_samples(list(samples))
    writer.close()
    store_window(store, run_id)
    write_results(store, run_id, results or RunResults(), status=status)
    return run_id


def record(
    idx: int,
    sent_ns: int,
    ttft_ns: int | None,
    gap_ns: int = 5_000_000,
    events: int = 4,
    *,
    intended_ns: int | None = None,
    error_kind: str | None = None,
    closed_ns: int | None = None,
    **fields: object,
) -> RequestRecord:
    """An ok request with `events` token events `gap_ns` apart after its first token (each
    event one token unless `output_tokens` says otherwise), its stream closed at its last
    token unless `closed_ns` says later; or a failed one (`error_kind`)."""
    if error_kind is not None or ttft_ns is None:
        return RequestRecord(
            idx, intended_ns, sent_ns, closed_ns=closed_ns or sent_ns + (ttft_ns or 1_000_000),
            error_kind=error_kind or "http_500", **fields,
        )  # fmt: skip
    times = [sent_ns + ttft_ns + k * gap_ns for k in range(events)]
    fields.setdefault("output_tokens", events)
    fields.setdefault("output_tokens_source", "usage")
    return RequestRecord(
        idx, intended_ns, sent_ns, first_token_ns=times[0], last_token_ns=times[-1],
        closed_ns=closed_ns or times[-1], event_ns=times, event_tokens=[None] * events,
        http_status=200, **fields,
    )  # fmt: skip
