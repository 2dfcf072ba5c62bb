"""BurstGPT CSV (v1 and the v3 layout with Session ID and Elapsed time).

``Timestamp`` is seconds; ``Response tokens`` = 0 marks a failed request: skipped unless
``keep_failed``, then kept with ``source_ok=False`` so a replay can count it as an error sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadgen.traces._io import CsvTable, to_count, to_seconds
from loadgen.traces.record import TraceRecord, records_from_rows

COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")


def _wanted(value: str | Sequence[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    return frozenset(n.strip().lower() for n in names)


def parse_burstgpt(
    path: str | Path,
    *,
    model: str | Sequence[str] | None = None,
    log_type: str | Sequence[str] | None = None,
    keep_failed: bool = False,
) -> list[TraceRecord]:
    """Rows filtered by Model (e.g. 'ChatGPT', 'GPT-4') and Log Type ('Conversation log',
    'API log'), both case-insensitive; a list of values keeps any of them."""
    models, log_types = _wanted(model), _wanted(log_type)
    table = CsvTable(path, COLUMNS, optional=("Session ID",))
    i_t, i_model = table.index["Timestamp"], table.index["Model"]
    i_in, i_out = table.index["Request tokens"], table.index["Response tokens"]
    i_log, i_session = table.index["Log Type"], table.index.get("Session ID")
    rows = []
    for line, row in table.rows():
        name = row[i_model].strip()
        if models is not None and name.lower() not in models:
            continue
        if log_types is not None and row[i_log].strip().lower() not in log_types:
            continue
        output_tokens = to_count(row[i_out], path, line, "Response tokens")
        if output_tokens == 0 and not keep_failed:
            continue
        session = row[i_session].strip() if i_session is not None else ""
        # Tuples in TraceRecord field order (see record.records_from_rows).
        rows.append(
            (
                to_seconds(row[i_t], path, line, "Timestamp"),
                to_count(row[i_in], path, line, "Request tokens"),
                output_tokens,
                session or None,
                None,
                0,
                None,
                (),
                0,
                name or None,
                output_tokens > 0,
            )
        )
    return records_from_rows(rows)
