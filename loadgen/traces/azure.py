"""Azure public LLM traces: the LLM CSV (2023/2024) and the multimodal (LMM) CSV.

``TIMESTAMP,ContextTokens,GeneratedTokens`` and
``TIMESTAMP,NumImages,ContextTokens,GeneratedTokens``; timestamps in any of the forms
``parse_timestamp_ns`` reads; CRLF, no final newline and gzip are all fine.
"""

from __future__ import annotations

from pathlib import Path

from loadgen.traces._io import CsvTable, to_count, to_timestamp_ns
from loadgen.traces.record import TraceRecord, records_from_rows

LLM_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
LMM_COLUMNS = ("TIMESTAMP", "NumImages", "ContextTokens", "GeneratedTokens")


def parse_azure(path: str | Path, *, images: bool = False) -> list[TraceRecord]:
    """Azure LLM inference trace; NumImages is kept when present and required when ``images``."""
    table = CsvTable(path, LMM_COLUMNS if images else LLM_COLUMNS, optional=("NumImages",))
    i_t = table.index["TIMESTAMP"]
    i_in = table.index["ContextTokens"]
    i_out = table.index["GeneratedTokens"]
    i_img = table.index.get("NumImages")
    rows = []
    for line, row in table.rows():
        images = 0 if i_img is None else to_count(row[i_img], path, line, "NumImages")
        # Tuples in TraceRecord field order (see record.records_from_rows).
        rows.append(
            (
                to_timestamp_ns(row[i_t], path, line, "TIMESTAMP"),
                to_count(row[i_in], path, line, "ContextTokens"),
                to_count(row[i_out], path, line, "GeneratedTokens"),
                None,
                None,
                0,
                None,
                (),
                images,
            )
        )
    return records_from_rows(rows, units_per_s=1e9)


def parse_azure_lmm(path: str | Path) -> list[TraceRecord]:
    """Azure multimodal trace: like the LLM one, NumImages required."""
    return parse_azure(path, images=True)
