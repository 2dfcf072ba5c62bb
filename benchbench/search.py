"""`bench search`: the highest open-loop rate that meets the SLOs, by bisection over short runs.

A probe passes when every SLO holds on its distributions (metrics.goodput's checks) and the
point is not over-saturated (benchbench.sweep.saturation): a run too short to show the SLO
breach can still show the queue growing. The rate is bisected geometrically between a passing
``low`` and a failing ``high`` until high / low <= 1 + precision, so the answer is within
``precision`` (relative) of the true knee, as far as the probes are repeatable. All probes are
stored as one group (group_kind 'search').
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchbench.config import RunConfig
from benchbench.errors import ConfigError
from benchbench.metrics import parse_slos
from benchbench.sweep import GroupResult, Point, new_group_id, run_points


@dataclass(frozen=True, slots=True)
class Probe:
    rate: float
    passed: bool
    why: str  # the failed SLO or saturation, or "met"
    point: Point


@dataclass
class SearchResult:
    best_rate: float | None  # highest passing rate probed; None if even `low` failed
    low: float
    high: float
    precision: float
    probes: list[Probe]
    note: str  # how the search ended
    group_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_rate": self.best_rate,
            "low": self.low,
            "high": self.high,
            "precision": self.precision,
            "note": self.note,
            "group_id": self.group_id,
            "probes": [
                {"rate": p.rate, "passed": p.passed, "why": p.why, **p.point.row()}
                for p in self.probes
            ],
        }


def judge(point: Point) -> tuple[bool, str]:
    """Did a probe meet its SLOs without over-saturating? And why not."""
    if point.saturated:
        return False, point.saturated
    good = point.summary.goodput or {}
    failed = [
        f"{key} {c['value']:.1f} > {c['limit']:g}" if c["value"] is not None else f"{key}: no data"
        for key, c in (good.get("checks") or {}).items()
        if not c["met"]
    ]
    if failed:
        return False, "; ".join(failed)
    if point.summary.ok == 0:
        return False, "no request succeeded"
    return True, "met"


def search_rate(
    cfg: RunConfig,
    *,
    low: float,
    high: float,
    precision: float = 0.1,
    max_probes: int = 20,
    on_probe: Callable[[Probe], None] | None = None,
) -> SearchResult:
    """Bisect the request rate between ``low`` and ``high`` (req/s); ``cfg.output.slo`` is
    required and ``cfg`` says how long each probe runs (--duration or --requests)."""
    if not cfg.output.slo:
        raise ConfigError("bench search needs --slo, e.g. --slo ttft_p99_ms=500,tpot_p99_ms=50")
    parse_slos(cfg.output.slo)
    if not (0 < low < high and math.isfinite(high)):
        raise ConfigError(f"--low must be > 0 and below --high, got {low:g} and {high:g}")
    if not precision > 0:
        raise ConfigError(f"--precision must be > 0 (relative, 0.1 = 10%), got {precision:g}")
    group = GroupResult(new_group_id("search"), "search")
    probes: list[Probe] = []

    def probe(rate: float) -> bool:
        run_points(cfg, [(rate, None)], "search", group=group)
        one = group.points[-1]
        passed, why = judge(one)
        p = Probe(rate, passed, why, one)
        probes.append(p)
        if on_probe is not None:
            on_probe(p)
        return passed

    result = SearchResult(None, low, high, precision, probes, "", group.group_id)
    if not probe(low):
        result.note = f"even --low {low:g} req/s misses the SLOs: lower --low"
        return result
    if probe(high):
        result.best_rate, result.note = high, f"--high {high:g} req/s meets the SLOs: raise --high"
        return result
    lo, hi = low, high
    while hi / lo > 1 + precision and len(probes) < max_probes:
        mid = math.sqrt(lo * hi)
        if probe(mid):
            lo = mid
        else:
            hi = mid
    result.best_rate = lo
    result.low, result.high = lo, hi
    result.note = (
        f"knee between {lo:.4g} and {hi:.4g} req/s (within {precision:.0%})"
        if hi / lo <= 1 + precision
        else f"stopped after {max_probes} probes: knee between {lo:.4g} and {hi:.4g} req/s"
    )
    return result
