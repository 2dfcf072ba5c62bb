"""The built-in, dated GPU price table used when the user gives no price.

Indicative figures only: rounded, typical on-demand per-GPU-hour list prices seen across the
major and specialist clouds, compiled 2026-Q3 (not fetched from any provider, not quotes).
Prices differ by provider, region, commitment and spot market by 2-4x: pass --gpu-price or
--instance-price for figures you can act on. The source label every cost result carries says
when this table was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PRICE_TABLE", "PRICE_TABLE_DATE", "PRICE_TABLE_SOURCE", "GpuPrice", "match_gpu_price"]

PRICE_TABLE_DATE = "2026-Q3"
PRICE_TABLE_SOURCE = (
    "typical on-demand list prices seen on major clouds (rounded, indicative, not quotes)"
)


@dataclass(frozen=True, slots=True)
class GpuPrice:
    key: str  # "H100", "A100-80GB", ...
    usd_per_gpu_hour: float
    pattern: str  # regex matched case-insensitively against the detected GPU name


# Order matters: the first match wins (A100 80GB before the plain A100 that means 40GB).
# Model numbers are matched as whole tokens so "GH200" is not an H200 and "L40S" is not an L4.
PRICE_TABLE: tuple[GpuPrice, ...] = (
    GpuPrice("B200", 6.50, r"(?<![a-z0-9])B200(?![0-9])"),
    GpuPrice("H200", 4.50, r"(?<![a-z0-9])H200(?![0-9])"),
    GpuPrice("H100", 3.50, r"(?<![a-z0-9])H100(?![0-9])"),
    GpuPrice("A100-80GB", 2.50, r"(?<![a-z0-9])A100(?![0-9]).*80\s*GB"),
    GpuPrice("A100-40GB", 1.80, r"(?<![a-z0-9])A100(?![0-9])"),
    GpuPrice("L40S", 1.50, r"(?<![a-z0-9])L40S(?![a-z0-9])"),
    GpuPrice("L4", 0.75, r"(?<![a-z0-9])L4(?![a-z0-9])"),
)


def match_gpu_price(gpu_name: str) -> GpuPrice | None:
    """The table entry for a detected GPU name ("NVIDIA H100 80GB HBM3" -> H100), or None."""
    for entry in PRICE_TABLE:
        if re.search(entry.pattern, gpu_name, flags=re.IGNORECASE):
            return entry
    return None
