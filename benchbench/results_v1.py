"""Store migration 007: runs stored before typed results (runs.extra without a version) moved
into the v2 shape of benchbench.results.

What changes for such a run: its collectors' facts move to runs.collectors and its warnings
to runs.warnings (each stored once); the retired `replay_drift` is dropped (schedule lag is
the same distribution); and its window is recomputed with today's definition
(benchbench.window), with energy and cost recomputed over it from the run's stored samples
and the prices in its stored config, so its $ per 1M and J per token agree with its tokens/s
like a new run's. A run whose samples or prices cannot be read keeps its old figures.

The store names the migration and this module supplies its code (registered on import:
benchbench.metrics, which every command that opens a store reads through, imports it), so
the store imports nothing above itself."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import duckdb

from benchbench.results import Energy, RunResults, _loads
from benchbench.store.schema import register_data_move

_PRICE_DEFAULTS = {
    "gpu_price": None,
    "instance_price": None,
    "gpu_count": None,
    "input_price": None,
    "output_price": None,
    "kwh_price": None,
    "pue": 1.0,
}


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the migration to every unversioned run in the store (inside its transaction)."""
    rows = con.execute(
        "SELECT run_id, extra, collectors, warnings, config FROM runs WHERE extra IS NOT NULL"
    ).fetchall()
    for run_id, extra_j, collectors_j, warnings_j, config_j in rows:
        old = _loads(extra_j)
        if not isinstance(old, dict) or "version" in old:
            continue
        collectors = _loads(collectors_j) or old.get("collectors") or {}
        warnings = _loads(warnings_j) or old.get("warnings") or []
        results = RunResults.from_stored(old, collectors, warnings)
        results = _recomputed(con, int(run_id), results, old, _loads(config_j) or {})
        con.execute(
            "UPDATE runs SET extra = ?, collectors = ?, warnings = ? WHERE run_id = ?",
            [
                json.dumps(results.extra(), default=str),
                json.dumps(results.collectors) if results.collectors else None,
                json.dumps(list(results.warnings)),
                run_id,
            ],
        )


def _recomputed(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    results: RunResults,
    old: dict[str, Any],
    config: dict[str, Any],
) -> RunResults:
    from benchbench.settle import cost_inputs, window_cost, window_energy
    from benchbench.window import compute_window

    window = compute_window(con, run_id)
    if window is None:
        return results
    con.execute(
        "UPDATE runs SET window_start_ns = ?, window_end_ns = ? WHERE run_id = ?",
        [window.start_ns, window.end_ns, run_id],
    )
    energy = results.energy
    old_energy = old.get("energy") if isinstance(old.get("energy"), dict) else {}
    if energy is not None and energy.unavailable is None:
        idle = energy.idle_window_ns
        energy = window_energy(con, run_id, window, tuple(idle) if idle else None)
        if energy.unavailable:  # no samples to recompute from: keep what was stored
            energy = results.energy
    elif energy is None and old_energy:
        energy = Energy(unavailable=str(old_energy.get("unavailable") or "not measured"))
    cost = results.cost
    if cost is not None and cost.unavailable is None:
        prices = {**_PRICE_DEFAULTS, **{k: config.get(k) for k in _PRICE_DEFAULTS if k in config}}
        try:
            inputs: Any = cost_inputs(SimpleNamespace(**prices), _gpu_names(results.collectors))
        except ValueError as exc:
            inputs = f"cost not computed: {exc}"
        cost = window_cost(con, run_id, window, inputs, energy or Energy())
    return RunResults(
        outcome=results.outcome, books=results.books, client=results.client,
        traffic=results.traffic, energy=energy, cost=cost, server=results.server,
        collectors=results.collectors, warnings=results.warnings,
    )  # fmt: skip


def _gpu_names(collectors: dict[str, Any]) -> list[str]:
    gpus = (collectors.get("nvml") or {}).get("gpus") or []
    return [str(g.get("name")) for g in gpus if isinstance(g, dict)]


register_data_move("006_typed_results", upgrade)
