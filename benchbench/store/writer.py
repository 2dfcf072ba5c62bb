"""Batched writes during a run, on a thread of their own, so the event loop only appends to a
list and a crash or Ctrl-C loses at most one flush interval (and nothing at a clean stop)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa

from benchbench.store.db import Store
from collectors.base import Sample
from loadgen.spec import RequestRecord

_STOP = object()


def _first_mask(total: int, first: np.ndarray) -> np.ndarray:
    mask = np.zeros(total, dtype=bool)
    mask[first] = True
    return mask


class BatchWriter:
    """Owns a cursor of the store; `add_*` are cheap and thread-safe, `flush` hands a batch over."""

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
                    self._write_records(records)
                if samples:
                    self._write_samples(samples)
            except BaseException as exc:  # keep the load running; surface at close()
                self._error = exc

    def _rel(self, values: list[int | None]) -> pa.Array:
        o = self._origin
        return pa.array([None if v is None else v - o for v in values], type=pa.int64())

    def _write_records(self, records: list[RequestRecord]) -> None:
        n = len(records)
        run = pa.array(np.full(n, self._run_id, dtype=np.int32))
        idx = pa.array([r.index for r in records], type=pa.int32())
        table = pa.table(
            {
                "run_id": run,
                "idx": idx,
                "intended_ns": self._rel([r.intended_ns for r in records]),
                "sent_ns": self._rel([r.sent_ns for r in records]),
                "first_token_ns": self._rel([r.first_token_ns for r in records]),
                "last_token_ns": self._rel([r.last_token_ns for r in records]),
                "closed_ns": self._rel([r.closed_ns for r in records]),
                "n_events": pa.array([len(r.event_ns) for r in records], type=pa.int32()),
                "input_tokens": pa.array([r.input_tokens for r in records], type=pa.int32()),
                "output_tokens": pa.array([r.output_tokens for r in records], type=pa.int32()),
                "input_tokens_expected": pa.array(
                    [r.input_tokens_expected for r in records], type=pa.int32()
                ),
                "output_tokens_expected": pa.array(
                    [r.output_tokens_expected for r in records], type=pa.int32()
                ),
                "http_status": pa.array([r.http_status for r in records], type=pa.int16()),
                "error_kind": pa.array([r.error_kind for r in records], type=pa.string()),
                "error_detail": pa.array([r.error_detail for r in records], type=pa.string()),
                "warmup": pa.array([r.warmup for r in records], type=pa.bool_()),
                "session_id": pa.array([r.session_id for r in records], type=pa.string()),
                "turn": pa.array([r.turn for r in records], type=pa.int32()),
                "output_chars": pa.array([r.output_text_chars for r in records], type=pa.int32()),
                "server_timings": pa.array(
                    [
                        None if r.server_timings is None else json.dumps(r.server_timings)
                        for r in records
                    ],
                    type=pa.string(),
                ),
                # Columns added by later migrations come last, in migration order.
                "output_tokens_source": pa.array(
                    [r.output_tokens_source for r in records], type=pa.string()
                ),
            }
        )
        self._con.from_arrow(table).insert_into("requests")
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
                pa.array(list(chain.from_iterable(r.event_tokens for r in records)), pa.int32())
                if tokens_known
                else pa.nulls(total, pa.int32())
            )
            events = pa.table(
                {
                    "run_id": pa.array(np.full(total, self._run_id, dtype=np.int32)),
                    "idx": pa.array(idx_rep.astype(np.int32)),
                    "seq": pa.array(seq.astype(np.int32)),
                    "t_ns": pa.array(t),
                    "tokens": tokens,
                    "gap_ns": pa.array(gaps, mask=_first_mask(total, first)),
                }
            )
            self._con.from_arrow(events).insert_into("token_events")
        self.requests_written += n
        self.events_written += total

    def _write_samples(self, samples: list[Sample]) -> None:
        n = len(samples)
        table = pa.table(
            {
                "run_id": pa.array(np.full(n, self._run_id, dtype=np.int32)),
                "collector": pa.array([s.collector for s in samples], pa.string()),
                "device": pa.array([s.device for s in samples], pa.string()),
                "t_ns": self._rel([s.t_ns for s in samples]),
                "metric": pa.array([s.metric for s in samples], pa.string()),
                "value": pa.array([s.value for s in samples], pa.float64()),
            }
        )
        self._con.from_arrow(table).insert_into("samples")
        self.samples_written += n
