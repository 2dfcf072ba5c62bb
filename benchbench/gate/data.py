"""One side of a comparison: the runs a reference names (a whole `--repeat` group is pooled),
their per-request values (one SQL query per run) and their run-level figures (summarize())."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from benchbench.cache import served_cache
from benchbench.gate.rules import GateError
from benchbench.metrics import RunSummary, summarize
from benchbench.request_metrics import (
    DISTRIBUTIONS,
    ERROR_ADJUSTED,
    chunk_gap_sql,
    request_rows,
)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What validity needs to know about one run."""

    run_id: int
    status: str
    model: str | None
    api: str | None
    load_mode: str | None
    concurrency: int | None
    requested_rate: float | None
    fingerprint: str | None
    traffic: dict[str, Any]
    sent: int
    ok: int
    errored: int
    token_requests: int
    token_mismatch: int
    loop_lag_p99_ms: float | None  # how late the client's event loop ran (orchestrate)
    # Share of its prompt tokens the server took from its prompt cache (benchbench.cache);
    # None: the server did not say.
    served_cache_share: float | None = None
    # The stored energy verdict ("ok" | "partial" | "invalid") and its reasons; None when
    # the run measured no energy.
    energy_status: str | None = None
    energy_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SideData:
    """Pooled values of one side: per-request arrays by metric, run-level figures per run."""

    label: str  # how the user named it: "run 12", "baseline main (runs 3-5)", a file
    runs: tuple[RunInfo, ...]
    values: dict[str, np.ndarray]  # metric -> pooled per-request values (ms)
    run_values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one per run
    # metric -> number of independent units behind `values` (see gate.stats): fewer than the
    # values when requests overlap in time or a request contributes many chunk gaps.
    effective: dict[str, float] = field(default_factory=dict)
    source: str = ""  # the store (or exported file) the run ids belong to

    @property
    def run_ids(self) -> tuple[int, ...]:
        return tuple(r.run_id for r in self.runs)


def group_run_ids(con: duckdb.DuckDBPyConnection, run_id: int) -> list[int]:
    """The run and, when it is one of `bench run --repeat N`, every run of its group."""
    row = con.execute("SELECT sweep_id, group_kind FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise GateError(f"no run {run_id} in the store")
    sweep_id, kind = row
    if kind != "repeat" or sweep_id is None:
        return [run_id]
    rows = con.execute(
        "SELECT run_id FROM runs WHERE sweep_id = ? AND group_kind = 'repeat' ORDER BY run_id",
        [sweep_id],
    ).fetchall()
    return [int(r[0]) for r in rows]


def load_side(
    con: duckdb.DuckDBPyConnection,
    run_ids: list[int],
    label: str,
    metrics: set[str],
    run_metrics: set[str],
    source: str = "",
) -> SideData:
    """Pool `run_ids`: the per-request `metrics` and the run-level `run_metrics`."""
    parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    per_run: dict[str, list[float]] = {m: [] for m in run_metrics}
    effective: dict[str, float] = {m: 0.0 for m in metrics}
    infos = []
    for run_id in run_ids:
        summary = summarize(con, run_id)
        infos.append(_info(con, run_id, summary))
        overlap = max(1.0, summary.mean_concurrency or 1.0)
        for name, arr in request_values(con, run_id, metrics).items():
            parts[name].append(arr)
            units = summary.ok if name == "chunk_gap_ms" else len(arr)
            effective[name] += min(len(arr), units) / overlap
        for name in run_metrics:
            value = run_level(summary, name)
            if value is not None:
                per_run[name].append(value)
    values = {m: np.concatenate(v) if v else np.empty(0) for m, v in parts.items()}
    # A figure some runs lack (no energy collector there) is not compared at all.
    run_values = {m: v for m, v in per_run.items() if len(v) == len(run_ids)}
    return SideData(label, tuple(infos), values, run_values, effective, source)


def request_values(
    con: duckdb.DuckDBPyConnection, run_id: int, metrics: set[str]
) -> dict[str, np.ndarray]:
    """Per-request values of the distribution metrics, each over its own population as
    benchbench.metrics.DISTRIBUTIONS defines it: one query for all of them."""
    out: dict[str, np.ndarray] = {}
    names = sorted(m for m in metrics if m in DISTRIBUTIONS)
    if names:
        cols = ", ".join(
            f"CASE WHEN {DISTRIBUTIONS[m][1]} THEN {DISTRIBUTIONS[m][0]} END AS {m}" for m in names
        )
        data = con.execute(f"SELECT {cols} FROM {request_rows(con, run_id)}").fetchnumpy()
        for m in names:
            # Error-adjusted metrics keep their +inf (a failed request); NaN never counts.
            out[m] = _finite(data[m], keep_inf=m in ERROR_ADJUSTED)
    if "chunk_gap_ms" in metrics:
        sql = chunk_gap_sql(run_id, column="e.gap_ns / 1e6")
        out["chunk_gap_ms"] = _finite(con.execute(sql).fetchnumpy()["x"])
    return out


def _finite(col: Any, keep_inf: bool = False) -> np.ndarray:
    arr = np.ma.filled(np.ma.asarray(col).astype(np.float64), np.nan)
    return arr[~np.isnan(arr)] if keep_inf else arr[np.isfinite(arr)]


def run_level(summary: RunSummary, name: str) -> float | None:
    """A run-level figure from the run's summary (and its stored energy and cost results)."""
    if name == "error_rate":
        return summary.errored / summary.sent if summary.sent else None
    if name in ("output_tok_s", "total_tok_s", "requests_s"):
        return getattr(summary, name)
    if name in ("inputs_per_s", "input_tok_s"):  # embeddings, rerank
        return (summary.pooling or {}).get(name)
    if name == "j_per_output_token":
        return summary.results.energy.j_per_output_token if summary.results.energy else None
    if name == "usd_per_1m_output_tokens":
        cost = summary.results.cost
        return cost.usd_per_1m_output_tokens if cost else None
    raise KeyError(name)


def _info(con: duckdb.DuckDBPyConnection, run_id: int, s: RunSummary) -> RunInfo:
    row = con.execute(
        "SELECT model, api, load_mode, concurrency, requested_rate, fingerprint "
        "FROM runs WHERE run_id = ?",
        [run_id],
    ).fetchone()
    assert row is not None
    model, api, load_mode, concurrency, rate, fp = row
    traffic = s.results.traffic
    tt = s.token_truth
    client = s.results.client
    energy = s.results.energy
    verdict = (energy.verdict or {}) if energy is not None and not energy.unavailable else {}
    return RunInfo(
        run_id=run_id,
        status=s.status,
        model=model,
        api=api,
        load_mode=load_mode,
        concurrency=concurrency,
        requested_rate=rate,
        fingerprint=fp or traffic.get("fingerprint"),
        traffic=dict(traffic),
        sent=s.sent,
        ok=s.ok,
        errored=s.errored,
        token_requests=int(tt.get("requests", 0)),
        # Output lengths only: chat templates legitimately add prompt tokens on the server.
        token_mismatch=int(tt.get("output_mismatch", 0)),
        loop_lag_p99_ms=client.loop_lag_p99_ms if client else None,
        served_cache_share=served_cache(con, run_id)["share"],
        energy_status=verdict.get("status"),
        energy_reasons=tuple(str(r) for r in verdict.get("reasons") or ()),
    )


def describe_runs(run_ids: tuple[int, ...] | list[int]) -> str:
    ids = list(run_ids)
    return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(map(str, ids))}"
