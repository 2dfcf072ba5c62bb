"""A run's books: every request the runner sent must be a row in the store. The sink that
hands records to the store's writer counts them, and a run whose books do not balance (or
whose writes or tasks failed) is marked failed, with the reason as its last warning."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from benchbench.errors import first_line
from benchbench.store import BatchWriter, Store
from loadgen.load import RunOutcome
from loadgen.spec import RequestRecord

_MAX_STORED_ERRORS = 10


class RecordSink:
    """The run's BatchWriter, closed exactly once whichever way the run ends; a failed close
    (a batch the store refused) is kept as text for the run's books."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.received = 0  # records the sink was handed: the spine's own count
        self.error: str | None = None
        self._closed = False

    def add(self, record: RequestRecord) -> None:
        self.received += 1
        self.writer.add_record(record)

    def close(self) -> str | None:
        if not self._closed:
            self._closed = True
            try:
                self.writer.close()
            except Exception as exc:  # the data already written stays; say what failed
                self.error = f"{type(exc).__name__}: {first_line(exc)}"
        return self.error


def balance(store: Store, run_id: int, outcome: RunOutcome, sink: RecordSink) -> dict[str, Any]:
    """Close the sink and count: sent by the runner, handed to the sink, written, stored."""
    writer_error = sink.close()
    errors = [str(e) for e in (getattr(outcome, "errors", None) or [])]
    stored = store.stored_requests(run_id)
    return {
        "sent": outcome.sent,  # the runner's count, warm-up included
        "emitted": getattr(outcome, "emitted", sink.received),  # records the runner finished
        "received": sink.received,  # records the store's writer was handed
        "written": sink.writer.requests_written,
        "stored": stored,  # rows in the store now
        "missing": outcome.sent - stored,
        "writer_error": writer_error,
        # Rows the store refused one by one (the rest of their batch was kept): why `missing`.
        "rows_failed": sink.writer.rows_failed,
        "store_failures": list(sink.writer.failures),
        "error_count": len(errors),
        "errors": [e[-4000:] for e in errors[:_MAX_STORED_ERRORS]],
    }


def failures(books: dict[str, Any]) -> list[str]:
    """Why the run's books make it a failed run (one warning each); empty when they balance."""
    out = []
    if books["missing"]:
        out.append(
            f"THE BOOKS DO NOT BALANCE: the client sent {books['sent']} requests but the store "
            f"holds {books['stored']}; this run is failed"
        )
    if books["writer_error"]:
        out.append(f"store write failed: {books['writer_error']}")
    if books.get("rows_failed"):
        why = "; ".join(books.get("store_failures") or []) or "?"
        out.append(f"the store refused {books['rows_failed']} request row(s): {why}")
    if books["error_count"]:
        last = books["errors"][0].strip().splitlines()[-1] if books["errors"] else "?"
        out.append(
            f"{books['error_count']} unhandled error(s) inside the run's tasks (a benchbench "
            f"bug, please report it; tracebacks in the run's extra.books.errors): {last}"
        )
    return out


def end_early(
    store: Store,
    run_id: int,
    sink: RecordSink,
    exc: BaseException,
    interrupted: bool,
    ended_ns: Callable[[], int],
) -> None:
    """The run stopped on an exception: keep what was measured and give the run a final
    status, so no later command finds it "running". Never masks `exc`."""
    interrupted = interrupted or isinstance(exc, KeyboardInterrupt)
    reason = "interrupted" if interrupted else f"{type(exc).__name__}: {first_line(exc)}"
    with contextlib.suppress(BaseException):
        writer_error = sink.close()
        stored = store.stored_requests(run_id)
        warnings = [f"the run ended early ({reason}); the {stored} requests stored were kept"]
        if writer_error:
            warnings.append(f"store write failed: {writer_error}")
        store.update_run(
            run_id,
            status="interrupted" if interrupted and not writer_error else "failed",
            ended_ns=ended_ns(),
            extra={"books": {"stored": stored, "writer_error": writer_error}},
            warnings=warnings,
        )
        store.checkpoint()
