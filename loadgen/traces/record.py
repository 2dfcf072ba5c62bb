"""The one normalised trace record every parser produces, and the error they raise."""

from __future__ import annotations

from dataclasses import dataclass


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message is one line: file, line, what was expected."""

    def __init__(self, path: object, line: int, expected: str) -> None:
        super().__init__(f"{path}:{line}: {expected}")


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One request of a trace, whatever file it came from.

    ``t_arrival_s`` is seconds after the trace's first request, or None for length-only
    tables (the caller attaches an arrival process). ``hash_ids`` are prefix-chained block
    hashes of ``block_size`` tokens: equal ids at position i mean an equal prefix up to block i.
    ``source_ok`` is False for rows the source marks as failed (kept only on request).
    """

    t_arrival_s: float | None
    input_tokens: int
    output_tokens: int
    session_id: str | None = None
    parent_id: str | None = None
    turn: int = 0
    block_size: int | None = None
    hash_ids: tuple[int, ...] = ()
    num_images: int = 0
    model: str | None = None
    source_ok: bool = True


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed trace file: its records in arrival order and the format it was read as."""

    path: str
    format: str
    records: tuple[TraceRecord, ...]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def timed(self) -> bool:
        """True when every record has an arrival time (length-only tables have none)."""
        return all(r.t_arrival_s is not None for r in self.records)


def rezero(records: list[TraceRecord]) -> list[TraceRecord]:
    """Sort by arrival (stable, so ties keep file order) and make times relative to the first.

    Parsers that build records themselves use this; the hot CSV paths use ``records_from_rows``.
    """
    if not records or any(r.t_arrival_s is None for r in records):
        return records
    return records_from_rows([_fields(r) for r in records])


def records_from_rows(rows: list[tuple], units_per_s: float = 1.0) -> list[TraceRecord]:
    """Build records from tuples in TraceRecord field order, the first being the arrival time
    (any origin, ``units_per_s`` to the second: 1e9 for integer ns) or None in every row;
    sorted stably and re-zeroed at the first arrival when timed."""
    if not rows or rows[0][0] is None:
        return [TraceRecord(*row) for row in rows]
    rows.sort(key=_first)
    t0 = rows[0][0]
    # Subtract before scaling, so large absolute times lose no precision.
    return [TraceRecord((row[0] - t0) / units_per_s, *row[1:]) for row in rows]


def _first(row: tuple) -> float:
    return row[0]


def _fields(r: TraceRecord) -> tuple:
    return (
        r.t_arrival_s,
        r.input_tokens,
        r.output_tokens,
        r.session_id,
        r.parent_id,
        r.turn,
        r.block_size,
        r.hash_ids,
        r.num_images,
        r.model,
        r.source_ok,
    )
