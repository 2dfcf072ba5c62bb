"""What a reader must know before trusting a run's figures, shown beside them: the server's
prompt cache (was the run served from a cache an earlier run left?) and the energy verdict
(may its J per token be compared?)."""

from __future__ import annotations

from typing import Any

import duckdb

from benchbench.cache import expected_cache, served_cache_of
from benchbench.results import Energy
from reports.model import PromptCache, Verdict

# A served share this far above what the workload implies is a warm cache, not the workload's
# own reuse (the gate refuses pairs whose shares differ by as much: --cache-tolerance).
WARM_CACHE_POINTS = 0.05

WARM_CACHE = "warm cache"
NOT_SALTED = "not salted"
ENERGY_INVALID = "energy invalid"
ENERGY_PARTIAL = "energy partial"


def prompt_cache(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    traffic: dict[str, Any],
    config: dict[str, Any],
) -> PromptCache:
    """The run's served prompt-cache share beside the workload's ideal prefix hit, whether its
    prompts were salted (the traffic description's `salted`, else the config's `salt`), and
    the notes a reader needs: a warm cache, an unsalted run."""
    served = served_cache_of(con, run_id)
    # The workload's own reuse: its ideal prefix hit, or the requests' expected cached share
    # where higher (a session's next turn reuses the server's real answer, which the ideal,
    # computed from the planned text, cannot know), so that reuse is never called warm.
    ideal = max(
        _share(traffic.get("ideal_prefix_hit")) or 0.0,
        expected_cache(con, run_id).expected_share or 0.0,
    )
    salted = traffic.get("salted", config.get("salt"))
    salted = salted if isinstance(salted, bool) else None
    # (1e-12: exactly five points, 0.55 - 0.5 in floats, is not more than five)
    warm = served.share is not None and served.share - ideal > WARM_CACHE_POINTS + 1e-12
    notes = []
    if warm:
        notes.append(
            f"served {served.share:.1%} of prompt tokens from the server's prompt cache; "
            f"the workload implies {ideal:.1%}"
        )
    if salted is False:
        notes.append(
            "prompts not salted (--no-salt): byte-identical to earlier runs of the same seed, "
            "so the server's prompt cache may serve them; compare only with runs alike"
        )
    return PromptCache(served.share, served.source, ideal, salted, warm, tuple(notes))


def energy_verdict(energy: Energy) -> Verdict | None:
    """The stored energy verdict; None when the run measured no energy. A run stored before
    verdicts existed reads as partial when its samples did not cover the window."""
    v = energy.verdict
    if isinstance(v, dict) and v.get("status") in ("ok", "partial", "invalid"):
        return Verdict(str(v["status"]), tuple(str(r) for r in v.get("reasons") or ()))
    if energy.unavailable or (energy.gross_j is None and energy.j_per_output_token is None):
        return None
    if energy.partial:
        return Verdict("partial", tuple(w for w in energy.warnings if "cover only" in w))
    return Verdict("ok")


def run_marks(cache: PromptCache, verdict: Verdict | None) -> tuple[str, ...]:
    """Short flags for the run's title and comparison row, worst news first."""
    marks = []
    if cache.warm:
        marks.append(WARM_CACHE)
    if cache.salted is False:
        marks.append(NOT_SALTED)
    if verdict is not None and verdict.status == "invalid":
        marks.append(ENERGY_INVALID)
    elif verdict is not None and verdict.status == "partial":
        marks.append(ENERGY_PARTIAL)
    return tuple(marks)


def _share(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
