"""``load_trace``: pick the parser by name or by sniffing the file's first line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from loadgen.traces._io import first_line, header_key
from loadgen.traces.azure import parse_azure, parse_azure_lmm
from loadgen.traces.bailian import parse_bailian
from loadgen.traces.burstgpt import parse_burstgpt
from loadgen.traces.length_table import parse_length_table
from loadgen.traces.mooncake import parse_mooncake
from loadgen.traces.record import Trace, TraceFormatError, TraceRecord

PARSERS: dict[str, Callable[[Path], list[TraceRecord]]] = {
    "azure": parse_azure,
    "azure-lmm": parse_azure_lmm,
    "burstgpt": parse_burstgpt,
    "mooncake": parse_mooncake,
    "bailian": parse_bailian,
    "lengths": parse_length_table,
}
ALIASES = {"qwen-bailian": "bailian", "qwen": "bailian", "vidur": "lengths", "azure-llm": "azure"}
FORMATS = tuple(PARSERS)


def sniff_format(path: str | Path) -> str:
    """The format name from the first line: a CSV header or the keys of the first JSON object."""
    line = first_line(path)
    if not line:
        raise TraceFormatError(path, 1, "expected a trace, got an empty file")
    if line.startswith("{"):
        try:
            keys = set(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise TraceFormatError(path, 1, "expected one JSON object per line") from None
        if "chat_id" in keys:
            return "bailian"
        if {"timestamp", "input_length", "output_length"} <= keys:
            return "mooncake"
        raise TraceFormatError(
            path, 1, "expected Mooncake (timestamp,input_length,...) or Qwen-Bailian (chat_id,...)"
        )
    columns = {header_key(c) for c in line.split(",")}
    if "timestamp" in columns and "contexttokens" in columns:
        return "azure-lmm" if "numimages" in columns else "azure"
    if "request tokens" in columns and "response tokens" in columns:
        return "burstgpt"
    if "num_prefill_tokens" in columns:
        return "lengths"
    raise TraceFormatError(
        path,
        1,
        f"unknown trace header {line[:80]!r}; expected one of the formats {', '.join(FORMATS)}",
    )


def load_trace(
    path: str | Path,
    format: str | None = None,
    *,
    model: str | Sequence[str] | None = None,
    log_type: str | Sequence[str] | None = None,
    keep_failed: bool = False,
) -> Trace:
    """Parse a trace into records sorted by arrival, times relative to the first request.

    ``model``, ``log_type`` and ``keep_failed`` are BurstGPT's filters (the only format with
    those columns); other formats reject them rather than ignore them silently.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such trace file")
    name = sniff_format(path) if format is None else ALIASES.get(format, format)
    if name not in PARSERS:
        raise ValueError(f"unknown trace format {format!r}; expected one of {', '.join(FORMATS)}")
    if name == "burstgpt":
        records = parse_burstgpt(path, model=model, log_type=log_type, keep_failed=keep_failed)
    else:
        if model is not None or log_type is not None or keep_failed:
            raise ValueError(f"{path}: model/log_type/keep_failed filters apply to burstgpt only")
        records = PARSERS[name](path)
    return Trace(path=str(path), format=name, records=tuple(records))
