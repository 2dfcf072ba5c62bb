"""The ceiling search of `bench calibrate`: the highest load a probe holds, found by ramping
(each step a factor up) until a probe fails, or down from a start that fails until one
passes, then bisecting between the last pass and the first fail. Bounded twice: at most
`max_steps` probes, and none started after the deadline. Pure (the probe and the clock are
injected), so it is tested without running anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

# What a probe reports besides pass/fail (its figures), kept for the best passing level.
F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Probe(Generic[F]):
    passed: bool
    figures: F
    # Failed because the load is beyond the client (it fell behind), not by a margin: no
    # higher level can pass. A failure that is not saturated (a latency spike of an idle,
    # shared machine) lets the ramp go on up, since busier loops often keep time better.
    saturated: bool = True


@dataclass
class SearchResult(Generic[F]):
    """The highest level that passed (None when even the first failed) and its figures."""

    best: float | None = None
    best_figures: F | None = None
    first_fail: float | None = None  # the lowest failing level above `best`
    last_figures: F | None = None  # the latest probe's, passed or not
    steps: list[tuple[float, bool]] = field(default_factory=list)
    # Why the search stopped early: "steps", "time", "ceiling" (the ramp's top passed),
    # "floor" (nothing down to the floor passed).
    cut: str | None = None


@dataclass(frozen=True, slots=True)
class SearchBounds:
    start: float
    ceiling: float  # the ramp never probes above this
    floor: float = 0.0  # when the start fails, levels down to this are tried (0: start / 64)
    factor: float = 2.0
    max_steps: int = 12
    budget_s: float = 120.0
    # Bisect until the bracket [pass, fail] is this tight (fail / pass - 1).
    resolution: float = 0.05


def search_max(
    probe: Callable[[float], Probe[F]],
    bounds: SearchBounds,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult[F]:
    """The highest level in [start, ceiling] that `probe` passes (see the module docstring)."""
    if not 0 < bounds.start <= bounds.ceiling or bounds.factor <= 1 or bounds.max_steps < 1:
        raise ValueError(f"bad search bounds {bounds}")
    if bounds.floor <= 0:
        bounds = replace(bounds, floor=bounds.start / 64)
    result: SearchResult[F] = SearchResult()
    deadline = clock() + bounds.budget_s

    def try_level(level: float) -> Probe[F] | None:
        if len(result.steps) >= bounds.max_steps:
            result.cut = "steps"
            return None
        if result.steps and clock() >= deadline:
            result.cut = "time"
            return None
        outcome = probe(level)
        result.steps.append((level, outcome.passed))
        result.last_figures = outcome.figures
        if outcome.passed and (result.best is None or level > result.best):
            result.best, result.best_figures = level, outcome.figures
        return outcome

    _ramp(try_level, bounds, result)
    if result.cut is not None:
        return _bracketed(result)
    if result.best is None:  # the start failed: step down to the floor
        level = bounds.start
        while result.best is None and result.cut is None:
            level /= bounds.factor
            if level < bounds.floor:
                result.cut = "floor"
                return _bracketed(result)
            try_level(level)
    _bracketed(result)
    while (  # bisect (geometric) between the best pass and the lowest fail above it
        result.best is not None
        and result.first_fail is not None
        and result.first_fail / result.best - 1 > bounds.resolution
        and result.cut is None
    ):
        try_level((result.best * result.first_fail) ** 0.5)
        _bracketed(result)
    return result


def _ramp(
    try_level: Callable[[float], Probe[F] | None], bounds: SearchBounds, result: SearchResult[F]
) -> None:
    """Up by `factor` from the start while probes pass, or fail unsaturated before any pass;
    bounded by the ceiling and by try_level's step and time limits."""
    level = bounds.start
    while True:
        outcome = try_level(level)
        if outcome is None:
            return
        if not outcome.passed and (outcome.saturated or result.best is not None):
            return
        if level >= bounds.ceiling:
            if outcome.passed:
                result.cut = "ceiling"
            return
        level = min(level * bounds.factor, bounds.ceiling)


def _bracketed(result: SearchResult[F]) -> SearchResult[F]:
    """first_fail: the lowest failing level above the best pass (any fail when none passed)."""
    fails = [lv for lv, ok in result.steps if not ok and (result.best is None or lv > result.best)]
    result.first_fail = min(fails) if fails else None
    return result
