"""Secrets never reach a report: values under secret-looking keys are masked, and header
values always are, whatever their name (a stored config should already hold "***")."""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(
    r"(api_?key|_token$|^token$|secret|password|passwd|authorization|cookie|credential)", re.I
)
MASK = "***"


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with secrets replaced by "***"."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() == "headers" and isinstance(v, dict):
                out[key] = {str(h): MASK for h in v}
            elif _SECRET_KEY.search(key) and v not in (None, "", MASK):
                out[key] = MASK
            else:
                out[key] = mask_secrets(v)
        return out
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value
