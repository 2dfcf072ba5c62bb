"""Shared reading helpers: gzip-transparent opening, CSV headers, numbers and timestamps."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from loadgen.traces.record import TraceFormatError

_GZIP_MAGIC = b"\x1f\x8b"
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def open_text(path: str | Path) -> TextIO:
    """Open a text trace, gunzipping when the file starts with the gzip magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    # newline="" lets the csv module handle CRLF; utf-8-sig drops a BOM if a tool wrote one.
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def first_line(path: str | Path) -> str:
    """The first non-blank line of a (possibly gzipped) text file, stripped; '' when empty."""
    try:
        with open_text(path) as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise TraceFormatError(path, 1, f"expected a readable text file ({exc})") from None
    return ""


def header_key(name: str) -> str:
    """Column names compare without case or surrounding spaces: 'Log Type ' == 'log type'."""
    return name.strip().lower()


class CsvTable:
    """A CSV file with named columns; yields (line number, row) for non-blank rows."""

    def __init__(self, path: str | Path, required: Sequence[str], optional: Sequence[str] = ()):
        self.path = path
        self._file = open_text(path)
        self._reader = csv.reader(self._file)
        header = next(self._reader, None)
        if header is None:
            self._file.close()
            expected = f"expected a CSV header {','.join(required)}, got nothing"
            raise TraceFormatError(path, 1, expected)
        keys = [header_key(h) for h in header]
        missing = [name for name in required if header_key(name) not in keys]
        if missing:
            self._file.close()
            raise TraceFormatError(
                path, 1, f"expected CSV columns {','.join(required)}; missing {','.join(missing)}"
            )
        self.header = header
        self.index = {name: keys.index(header_key(name)) for name in required}
        for name in optional:
            if header_key(name) in keys:
                self.index[name] = keys.index(header_key(name))
        self.width = len(header)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        try:
            for row in self._reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) < self.width:
                    raise TraceFormatError(
                        self.path,
                        self._reader.line_num,
                        f"expected {self.width} columns ({','.join(self.header)}), got {len(row)}",
                    )
                yield self._reader.line_num, row
        except csv.Error as exc:
            raise TraceFormatError(self.path, self._reader.line_num, f"bad CSV: {exc}") from None
        finally:
            self._file.close()


def to_count(text: str, path: object, line: int, column: str) -> int:
    """A non-negative token count; accepts '12' and '12.0' (some tools write floats)."""
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            f = 0.5  # not a number: reported below as not a whole number
        if not f.is_integer():
            raise TraceFormatError(
                path, line, f"expected a whole number in {column}, got {text!r}"
            ) from None
        value = int(f)
    if value < 0:
        raise TraceFormatError(path, line, f"expected a count >= 0 in {column}, got {text!r}")
    return value


def to_seconds(text: str, path: object, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(path, line, f"expected seconds in {column}, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise TraceFormatError(path, line, f"expected finite seconds in {column}, got {text!r}")
    return value


_hour_cache: dict[str, int] = {}
_NS = 1_000_000_000


def parse_timestamp_ns(text: str) -> int:
    """Integer ns since 1970 for 'YYYY-MM-DD[ T]HH:MM:SS[.f...][Z|+HH:MM]'; naive means UTC.

    Integer ns because float seconds since 1970 only resolve ~0.2 us, coarser than the 100 ns
    steps of Azure's 7 fractional digits. Hand-rolled because datetime.fromisoformat rejects 7
    digits on Python 3.11 and is slower; the 'date hour' prefix is cached since a trace spans
    few hours. Raises ValueError on anything else.
    """
    s = text.strip()
    offset_s = 0
    if s[-1:] == "Z":
        s = s[:-1]
    elif len(s) > 19 and s[-6] in "+-" and s[-3] == ":":
        sign = 1 if s[-6] == "+" else -1
        offset_s = sign * (int(s[-5:-3]) * 3600 + int(s[-2:]) * 60)
        s = s[:-6]
    if len(s) < 19 or s[13] != ":" or s[16] != ":" or (len(s) > 19 and s[19] != "."):
        raise ValueError(text)
    prefix = s[:13]  # "2023-11-16 18"
    base_s = _hour_cache.get(prefix)
    if base_s is None:
        if s[10] not in " T":
            raise ValueError(text)
        days = dt.date.fromisoformat(s[:10]).toordinal() - _EPOCH_ORDINAL
        base_s = days * 86400 + int(s[11:13]) * 3600
        _hour_cache[prefix] = base_s
    minutes, seconds = int(s[14:16]), int(s[17:19])
    fraction = s[20:29]
    if minutes > 59 or seconds > 60 or not (fraction.isdigit() or not fraction):
        raise ValueError(text)
    fraction_ns = int(fraction.ljust(9, "0")) if fraction else 0
    return (base_s + minutes * 60 + seconds - offset_s) * _NS + fraction_ns


def to_timestamp_ns(text: str, path: object, line: int, column: str) -> int:
    try:
        return parse_timestamp_ns(text)
    except ValueError:
        raise TraceFormatError(
            path,
            line,
            f"expected {column} like 2023-11-16 18:17:03.9799600 or 2024-05-10T00:00:00Z, "
            f"got {text!r}",
        ) from None
