"""A run's per-request report figures: the error-adjusted latency rows and the energy per
request, as plain data for reports.per_request."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchbench.catalogue import METRICS
from benchbench.metrics import RunSummary
from benchbench.request_metrics import ERROR_ADJUSTED


def adjusted_rows(s: RunSummary) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(label, {n, failed, mean, p50, ..., max, unit}) per error-adjusted latency; none when
    no request failed (they equal the ok-only rows then)."""
    if not s.errored:
        return ()
    keys = ("n", "mean", "p50", "p90", "p95", "p99", "max")
    rows = []
    for name, base in ERROR_ADJUSTED.items():
        d = s.distributions.get(name)
        if d is None or d.n == 0:
            continue
        failed = d.n - s.distributions[base].n
        rows.append((METRICS[name].label, {**{k: d.get(k) for k in keys}, "failed": failed,
                                           "unit": "ms"}))  # fmt: skip
    return tuple(rows)


def energy_rows(s: RunSummary) -> dict[str, Any] | None:
    return asdict(s.energy_per_request) if s.energy_per_request is not None else None
