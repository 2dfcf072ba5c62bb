"""Batched writes during a run, on a thread of their own, so the event loop only appends to a
list and a crash or Ctrl-C loses at most one flush interval (and nothing at a clean stop).

No value can cost a batch: every integer column is checked against its SQL type (a value that
does not fit is stored as NULL), and a batch whose insert still fails is written again in
halves down to single rows, so only the rows that cannot be stored are lost, and those are
counted (`rows_failed`, `failures`) for the run's books instead of aborting it."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchbench.store.db import Store
from collectors.base import Sample
from loadgen.spec import RequestRecord

_STOP = object()

_INT16 = (pa.int16(), -(2**15), 2**15 - 1)
_INT32 = (pa.int32(), -(2**31), 2**31 - 1)
_COUNT = (pa.int32(), 0, 2**31 - 1)  # token and character counts: never negative
_INT64 = (pa.int64(), -(2**63), 2**63 - 1)
_MAX_FAILURES = 5  # distinct error texts kept for the run's warnings

# Writes one batch inside a transaction; returns (rows, token events) written.
_Write = Callable[[list[Any]], tuple[int, int]]


def _first_mask(total: int, first: np.ndarray) -> np.ndarray:
    mask = np.zeros(total, dtype=bool)
    mask[first] = True
    return mask


class BatchWriter:
    """Owns a cursor of the store; `add_*` are cheap and thread-safe, `flush` hands a batch over.

    `requests_written` counts request rows committed to the store, `rows_failed` those that
    could not be stored (with the first distinct errors in `failures`): at close, every
    record added is in exactly one of the two."""

    def __init__(self, store: Store, run_id: int, origin_ns: int, flush_every: int = 4096) -> None:
        self._con = store.con.cursor()
        self._run_id = run_id
        self._origin = origin_ns
        self._records: list[RequestRecord] = []
        self._samples: list[Sample] = []
        self._flush_every = flush_every
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.requests_written = 0
        self.events_written = 0
        self.samples_written = 0
        self.rows_failed = 0  # request rows lost: no single-row insert could store them
        self.samples_failed = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._work, name="bench-store", daemon=True)
        self._thread.start()

    def add_record(self, record: RequestRecord) -> None:
        self._records.append(record)
        if len(self._records) >= self._flush_every:
            self.flush()

    def add_samples(self, samples: Sequence[Sample]) -> None:
        if samples:
            with self._lock:
                self._samples.extend(samples)

    def flush(self) -> None:
        with self._lock:
            records, self._records = self._records, []
            samples, self._samples = self._samples, []
        if records or samples:
            self._queue.put((records, samples))

    def close(self) -> None:
        """Flush everything and wait until it is on disk."""
        self.flush()
        self._queue.put(_STOP)
        self._thread.join()
        self._con.close()
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            records, samples = item  # type: ignore[misc]
            try:
                if records:
                    rows, events, lost = self._store(self._write_records, records)
                    self.requests_written += rows
                    self.events_written += events
                    self.rows_failed += lost
                if samples:
                    rows, _, lost = self._store(self._write_samples, samples)
                    self.samples_written += rows
                    self.samples_failed += lost
            except BaseException as exc:  # a bug here: keep the load running, surface at close()
                self._error = exc

    def _store(self, write: _Write, batch: list[Any]) -> tuple[int, int, int]:
        """Write a batch in one transaction; if that fails, each half again, down to single
        rows (a commit costs milliseconds: one bad row in 4,096 costs ~24 of them, not
        4,096). Returns (rows stored, events stored, rows lost)."""
        try:
            return (*self._transaction(write, batch), 0)
        except Exception as exc:
            if len(batch) == 1:
                self._failed(exc)
                return 0, 0, 1
        half = len(batch) // 2
        rows_a, events_a, lost_a = self._store(write, batch[:half])
        rows_b, events_b, lost_b = self._store(write, batch[half:])
        return rows_a + rows_b, events_a + events_b, lost_a + lost_b

    def _transaction(self, write: _Write, batch: list[Any]) -> tuple[int, int]:
        # One transaction per batch: a request row is never stored without its events, and a
        # failed batch leaves nothing behind to be stored twice by the row-by-row retry.
        self._con.begin()
        try:
            counts = write(batch)
        except BaseException:
            self._con.rollback()
            raise
        self._con.commit()
        return counts

    def _failed(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if text not in self.failures and len(self.failures) < _MAX_FAILURES:
            self.failures.append(text)

    def _rel(self, values: list[Any]) -> pa.Array:
        o = self._origin
        return _ints([v - o if type(v) is int else None for v in values], _INT64)

    def _write_records(self, records: list[RequestRecord]) -> tuple[int, int]:
        _insert_by_name(self._con, self._request_table(records), "requests")
        return len(records), self._write_events(records)

    def _request_table(self, records: list[RequestRecord]) -> pa.Table:
        """One row per request."""
        run = pa.array(np.full(len(records), self._run_id, dtype=np.int32))
        return pa.table(
            {
                "run_id": run,
                "idx": _ints([r.index for r in records], _INT32),
                "intended_ns": self._rel([r.intended_ns for r in records]),
                "sent_ns": self._rel([r.sent_ns for r in records]),
                "first_token_ns": self._rel([r.first_token_ns for r in records]),
                "last_token_ns": self._rel([r.last_token_ns for r in records]),
                "closed_ns": self._rel([r.closed_ns for r in records]),
                "n_events": _ints([len(r.event_ns) for r in records], _COUNT),
                "input_tokens": _ints([r.input_tokens for r in records], _COUNT),
                "output_tokens": _ints([r.output_tokens for r in records], _COUNT),
                "input_tokens_expected": _ints([r.input_tokens_expected for r in records], _COUNT),
                "output_tokens_expected": _ints(
                    [r.output_tokens_expected for r in records], _COUNT
                ),
                "http_status": _ints([r.http_status for r in records], _INT16),
                "error_kind": _strings([r.error_kind for r in records]),
                "error_detail": _strings([r.error_detail for r in records]),
                "warmup": pa.array([bool(r.warmup) for r in records], type=pa.bool_()),
                "session_id": _strings([r.session_id for r in records]),
                "turn": _ints([r.turn for r in records], _INT32),
                "output_chars": _ints([r.output_text_chars for r in records], _COUNT),
                "server_timings": _strings([_timings_json(r.server_timings) for r in records]),
                # Inserted by column name: the table's column order is the migrations'.
                "output_tokens_source": _strings([r.output_tokens_source for r in records]),
                "notes": _strings(["; ".join(r.notes) if r.notes else None for r in records]),
                "cached_input_tokens": _ints([r.cached_input_tokens for r in records], _COUNT),
                "worker": _ints([r.worker for r in records], _INT16),
                "first_event_ns": self._rel([r.first_event_ns for r in records]),
                "reasoning_tokens": _ints([r.reasoning_tokens for r in records], _COUNT),
                "cached_input_tokens_expected": _ints(
                    [r.cached_input_tokens_expected for r in records], _COUNT
                ),
                "inputs": _ints([r.inputs for r in records], _COUNT),
            }
        )

    def _write_events(self, records: list[RequestRecord]) -> int:
        """One row per token event, with its gap to the request's previous one; the count."""
        n = len(records)
        counts = np.fromiter((len(r.event_ns) for r in records), dtype=np.int64, count=n)
        total = int(counts.sum())
        if total:
            t = np.fromiter(
                chain.from_iterable(r.event_ns for r in records), dtype=np.int64, count=total
            )
            t -= self._origin
            gaps = np.empty_like(t)
            gaps[1:] = t[1:] - t[:-1]
            first = np.cumsum(counts) - counts  # index of each request's first event
            first = first[counts > 0]
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            seq = np.arange(total, dtype=np.int64) - starts
            idx_rep = np.repeat(np.fromiter((r.index for r in records), np.int64, n), counts)
            tokens_known = any(tok is not None for r in records for tok in r.event_tokens[:1])
            tokens = (
                _ints(list(chain.from_iterable(_event_tokens(r) for r in records)), _COUNT)
                if tokens_known
                else pa.nulls(total, pa.int32())
            )
            kinds_known = any(r.event_kinds for r in records)
            kinds = (
                _strings(list(chain.from_iterable(_event_kinds(r) for r in records)))
                if kinds_known
                else pa.nulls(total, pa.string())
            )
            events = pa.table(
                {
                    "run_id": pa.array(np.full(total, self._run_id, dtype=np.int32)),
                    "idx": pa.array(idx_rep.astype(np.int32)),
                    "seq": pa.array(seq.astype(np.int32)),
                    "t_ns": pa.array(t),
                    "tokens": tokens,
                    "gap_ns": pa.array(gaps, mask=_first_mask(total, first)),
                    "kind": kinds,
                }
            )
            _insert_by_name(self._con, events, "token_events")
        return total

    def _write_samples(self, samples: list[Sample]) -> tuple[int, int]:
        n = len(samples)
        table = pa.table(
            {
                "run_id": pa.array(np.full(n, self._run_id, dtype=np.int32)),
                "collector": _strings([s.collector for s in samples]),
                "device": _strings([s.device for s in samples]),
                "t_ns": self._rel([s.t_ns for s in samples]),
                "metric": _strings([s.metric for s in samples]),
                "value": pa.array([s.value for s in samples], pa.float64()),
            }
        )
        self._con.from_arrow(table).insert_into("samples")
        return n, 0


def _insert_by_name(con: Any, table: pa.Table, target: str) -> None:
    """Insert an Arrow table's columns into ``target`` by name, not position, so a column
    added by a later migration cannot shift the others."""
    con.register("_bench_rows", table)  # replaces the previous batch's
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _bench_rows")
    # Not in a `finally`: inside an aborted transaction unregister fails too and would hide
    # the insert's own error; a batch left registered is replaced by the next.
    con.unregister("_bench_rows")


def _ints(values: list[Any], spec: tuple[pa.DataType, int, int]) -> pa.Array:
    """An integer column of SQL type `spec`: a value that is not an integer in range (a bool,
    a float, an overflow) becomes NULL instead of failing the batch. One vectorised check
    for the common case; value by value only when it finds a bad one."""
    typ, lo, hi = spec
    try:
        arr = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        arr = None
    if arr is not None:
        if pa.types.is_null(arr.type):
            return pa.nulls(len(values), typ)
        if pa.types.is_integer(arr.type):
            bounds = pc.min_max(arr)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is None or (lo <= low and high <= hi):
                return arr.cast(typ)
    return pa.array([v if type(v) is int and lo <= v <= hi else None for v in values], type=typ)


def _strings(values: list[Any]) -> pa.Array:
    """A VARCHAR column; a value that is not valid text (a lone surrogate, a non-string) is
    stored as its repaired text rather than failing the batch."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if v is None else _text(v) for v in values], type=pa.string())


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def _timings_json(timings: Any) -> str | None:
    if timings is None:
        return None
    try:
        return json.dumps(timings, allow_nan=False)
    except (TypeError, ValueError):  # not JSON (a bug upstream): the timings, not the row
        return None


def _event_tokens(record: RequestRecord) -> list[int | None]:
    """Tokens per event, one per event time whatever the record says."""
    tokens = record.event_tokens
    return tokens if len(tokens) == len(record.event_ns) else [None] * len(record.event_ns)


def _event_kinds(record: RequestRecord) -> list[str | None]:
    """Kind per event (None: an answer), one per event time whatever the record says."""
    kinds = record.event_kinds
    n = len(record.event_ns)
    if not kinds or len(kinds) != n:
        return [None] * n
    return [None if k == "answer" else k for k in kinds]
