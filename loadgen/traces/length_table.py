"""Length-only tables: ``num_prefill_tokens,num_decode_tokens[,num_total_tokens,pd_ratio]``.

The Vidur variant adds ``arrived_at`` (seconds); without it records have ``t_arrival_s=None``
and keep file order, and the caller attaches an arrival process.
"""

from __future__ import annotations

from pathlib import Path

from loadgen.traces._io import CsvTable, to_count, to_seconds
from loadgen.traces.record import TraceRecord, rezero

COLUMNS = ("num_prefill_tokens", "num_decode_tokens")


def parse_length_table(path: str | Path) -> list[TraceRecord]:
    table = CsvTable(path, COLUMNS, optional=("arrived_at",))
    i_in, i_out = table.index["num_prefill_tokens"], table.index["num_decode_tokens"]
    i_t = table.index.get("arrived_at")
    records = []
    for line, row in table.rows():
        t = None if i_t is None else to_seconds(row[i_t], path, line, "arrived_at")
        records.append(
            TraceRecord(
                t_arrival_s=t,
                input_tokens=to_count(row[i_in], path, line, "num_prefill_tokens"),
                output_tokens=to_count(row[i_out], path, line, "num_decode_tokens"),
            )
        )
    return rezero(records)
