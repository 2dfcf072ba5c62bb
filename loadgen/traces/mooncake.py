"""Mooncake (FAST'25) JSONL: ``{"timestamp": ms, "input_length", "output_length", "hash_ids"}``.

``hash_ids`` are prefix-chained hashes of 512-token blocks.
"""

from __future__ import annotations

from pathlib import Path

from loadgen.traces._jsonl import field_count, field_hash_ids, field_seconds, jsonl_objects
from loadgen.traces.record import TraceRecord, rezero

BLOCK_SIZE = 512


def parse_mooncake(path: str | Path) -> list[TraceRecord]:
    records = []
    for line, obj in jsonl_objects(path):
        records.append(
            TraceRecord(
                t_arrival_s=field_seconds(obj, "timestamp", 1e-3, path, line),
                input_tokens=field_count(obj, "input_length", path, line),
                output_tokens=field_count(obj, "output_length", path, line),
                block_size=BLOCK_SIZE,
                hash_ids=field_hash_ids(obj, path, line),
            )
        )
    return rezero(records)
