"""Text for people: numbers with sensible precision and HTML that cannot carry markup.

Every string that reaches the page, the store's included (model names, error details, URLs,
config values), passes through `esc`; JSON that reaches a <script> passes through
`script_json`."""

from __future__ import annotations

import html
import json
import math
from typing import Any

NOT_MEASURED = "not measured"


def esc(value: Any) -> str:
    """Text -> HTML text (quotes escaped too, so it is also safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, digits: int = 1, missing: str = "–") -> str:
    """1234.5 -> '1,234.5'; small values keep significant digits; None -> missing."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return missing if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def usd(value: float | None, missing: str = NOT_MEASURED) -> str:
    if value is None:
        return missing
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:#.3g}"


def plain(value: Any) -> str:
    """Any stored value as table text: numbers formatted, lists and dicts as compact JSON."""
    if isinstance(value, float):
        return num(value, 3)
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, sort_keys=True)
    return "–" if value is None else str(value)


def script_json(value: Any) -> str:
    """JSON safe to embed in a <script> element: no '</script>', '<!--' or ']]>' can form,
    and line separators that old parsers choke on are escaped."""
    text = json.dumps(_compact(value), separators=(",", ":"), allow_nan=False, default=str)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _compact(value: Any) -> Any:
    """Floats to 6 significant digits (what a chart can show); NaN/inf to null."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compact(v) for v in value]
    return value
