"""Line-by-line JSON reading with file:line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from loadgen.traces._io import open_text
from loadgen.traces.record import TraceFormatError


def jsonl_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; anything but a JSON object is an error."""
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise TraceFormatError(path, line_no, "expected one JSON object per line") from None
            if not isinstance(obj, dict):
                raise TraceFormatError(path, line_no, "expected a JSON object, got another value")
            yield line_no, obj


def field_count(obj: dict[str, Any], key: str, path: object, line: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TraceFormatError(path, line, f"expected {key!r} as a count >= 0, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise TraceFormatError(path, line, f"expected {key!r} as a whole number, got {value!r}")
    return int(value)


def field_seconds(obj: dict[str, Any], key: str, scale: float, path: object, line: int) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceFormatError(path, line, f"expected {key!r} as a number, got {value!r}")
    return float(value) * scale


def field_hash_ids(obj: dict[str, Any], path: object, line: int) -> tuple[int, ...]:
    value = obj.get("hash_ids", ())
    if not isinstance(value, list | tuple) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in value
    ):
        raise TraceFormatError(path, line, "expected 'hash_ids' as a list of integers")
    return tuple(value)
