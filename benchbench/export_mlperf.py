"""`bench export --format mlperf-endpoints`: a run, or a concurrency sweep, as the result files of
an MLPerf Endpoints v1.0 submission, filled from the store; what cannot be filled is said.

Followed (read 2026-12, not vendored):
- mlcommons/endpoints_policies endpoints_rules.md (v1.0 draft) §4.1 Primary Metrics:
  `system_tps` = total output tokens / elapsed seconds; `tps_per_user` = 1000 / `tpot_p90_ms`
  (P90 of per-response TPOT); `ttft_p90_ms` (P90, first non-empty fragment of any kind:
  answer, tool call or reasoning); `concurrency` (fixed target in-flight queries). §4.2: the
  Pareto chart is `system_tps` (y) against `tps_per_user` (x). §5.2: a step function, no
  interpolation.
- mlcommons/endpoints src/inference_endpoint/metrics/report.py (class Report): the fields of
  `performance/result_summary.json`; `ttft`, `tpot`, `latency` in ns and the sequence lengths as
  stat blocks {total, min, max, median, avg, std_dev, percentiles, histogram}, percentile keys
  decimal strings ("90.0"); `qps` = completed / duration, `tps` = output tokens / duration.
- mlcommons/endpoints-submission-docs docs/reference/package-layout.md: the run folder
  (`<run>/performance/result_summary.json`) and one Pareto point per concurrency `r<N>/`.

Not confirmed from the reference, and so said in every file written: the reference client's
exact per-response TPOT formula (benchbench's TPOT is (E2E - TTFT) / (output tokens - 1));
its HDR histogram buckets (not written: null); n_samples_dropped and finish_reason_counts
(benchbench does not record them). Official token counts come from the reference tokenizer
(rules §2.8); benchbench's come from the server's usage. The official window is a steady-state
window (rules §4.4); benchbench's is first measured send -> last completion. point.yaml,
system_desc.json and system_power.json are the submitter's disclosures and are not written."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from benchbench import __version__
from benchbench.errors import BenchError
from benchbench.metrics import RunSummary, summarize
from benchbench.request_metrics import request_rows

__all__ = ["MlperfExport", "Point", "export_mlperf", "pareto_steps", "resolve_runs"]

FORMAT = "mlperf-endpoints"
RULES = "MLPerf Endpoints v1.0 (endpoints_rules.md §4.1, §4.2, §5.2)"
PERCENTILE_KEYS = ("50.0", "90.0", "95.0", "99.0", "99.9")
ALWAYS_UNFILLED = (
    ("histogram", "the reference client's HDR histogram buckets are not reproduced"),
    ("n_samples_dropped", "benchbench does not record dropped samples (cancelled are counted)"),
    ("finish_reason_counts", "benchbench does not store finish reasons"),
    ("git_sha", "the reference client's commit: this result was not measured by it"),
    ("steady_state", "no steady-state window (rules §4.4): figures are over the whole window"),
    ("token_counts", "output/input tokens from the server's usage, not the reference "
                     "tokenizer (rules §2.8)"),
    ("tpot", "the reference client's per-response TPOT formula is not confirmed here; "
             "benchbench's TPOT = (E2E - TTFT) / (output tokens - 1)"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement point (one run) in MLPerf Endpoints terms."""

    run_id: int
    concurrency: int | None
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    tps_per_user: float | None
    system_tps: float | None
    n_samples_completed: int
    n_samples_failed: int
    reasons: tuple[str, ...] = ()  # why a field is null, or why the point is not official


@dataclass(frozen=True, slots=True)
class MlperfExport:
    out_dir: str
    files: tuple[str, ...]
    points: tuple[Point, ...]
    pareto: tuple[dict[str, Any], ...]
    unfilled: tuple[dict[str, str], ...] = field(default_factory=tuple)


def resolve_runs(con: duckdb.DuckDBPyConnection, run_ids: list[int], ref: str) -> list[int]:
    """The run and, when it belongs to a sweep or repeat group, every run of the group; a
    group id (runs.sweep_id) names the group directly. `run_ids`: the run `ref` named, if any."""
    if run_ids:
        row = con.execute("SELECT sweep_id FROM runs WHERE run_id = ?", [run_ids[0]]).fetchone()
        group = row[0] if row else None
        if group is None:
            return run_ids
    else:
        group = ref
    rows = con.execute(
        "SELECT run_id FROM runs WHERE sweep_id = ? ORDER BY run_id", [group]
    ).fetchall()
    if not rows:
        raise BenchError(f"{ref!r} is neither a run nor a sweep group in this store")
    return [int(r[0]) for r in rows]


def point(con: duckdb.DuckDBPyConnection, s: RunSummary, concurrency: int | None) -> Point:
    """The §4.1 metrics of one run (ok, measured requests; the run's measurement window)."""
    reasons = []
    ttft, tpot = s.distributions["ttft_ms"].p90, s.distributions["tpot_ms"].p90
    if s.load_mode != "closed" or concurrency is None:
        reasons.append(
            f"concurrency: a {s.load_mode or 'unknown'}-load run has no fixed concurrency "
            "(rules §5.1): not a Pareto point"
        )
        concurrency = None
    if ttft is None:
        reasons.append("ttft_p90_ms: no ok request with a first token")
    if tpot is None:
        reasons.append("tpot_p90_ms: no ok request with more than one output token")
    tps_user = 1000.0 / tpot if tpot else None
    if tpot is not None and not tps_user:
        reasons.append("tps_per_user: tpot_p90_ms is 0")
    if s.output_tok_s is None:
        reasons.append("system_tps: no measurement window")
    if s.status != "complete":
        reasons.append(f"run status {s.status}: not a valid result")
    return Point(
        s.run_id, concurrency, ttft, tpot, tps_user, s.output_tok_s, s.ok, s.errored,
        tuple(reasons),
    )  # fmt: skip


def pareto_steps(points: list[Point]) -> list[dict[str, Any]]:
    """The official curve of rules §4.2/§5.2 as steps: `system_tps` (higher is better)
    against `tps_per_user` (higher is better) over the non-dominated points, no interpolation.
    Step i holds system_tps_i for tps_per_user in (tps_per_user of step i-1, tps_per_user_i]:
    the best throughput reachable at that interactivity or better."""
    usable = [p for p in points if p.concurrency is not None and p.tps_per_user and p.system_tps]
    frontier: list[Point] = []
    for p in sorted(usable, key=lambda p: (-p.tps_per_user, -p.system_tps)):  # type: ignore[operator]
        if not frontier or p.system_tps > frontier[-1].system_tps:  # type: ignore[operator]
            frontier.append(p)
    steps, low = [], 0.0
    for p in reversed(frontier):  # ascending tps_per_user, descending system_tps
        steps.append({
            "tps_per_user_from": low, "tps_per_user_to": p.tps_per_user,
            "system_tps": p.system_tps, "concurrency": p.concurrency, "run_id": p.run_id,
        })  # fmt: skip
        low = p.tps_per_user  # type: ignore[assignment]
    return steps


def _stat_block(con: duckdb.DuckDBPyConnection, run_id: int, expr: str, where: str) -> dict:
    """A reference stat block over ok, measured requests: {} when empty, as the reference."""
    qs = ", ".join(f"quantile_cont(x, {float(k) / 100})" for k in PERCENTILE_KEYS)
    row = con.execute(
        f"""SELECT count(x), sum(x), min(x), max(x), avg(x), stddev_samp(x), {qs}
            FROM (SELECT {expr} AS x FROM {request_rows(con, run_id)}
                  WHERE ok AND NOT warmup AND {where}) WHERE x IS NOT NULL"""
    ).fetchone()
    if row is None or not row[0]:
        return {}
    n, total, lo, hi, avg, sd, *pct = row
    percentiles = dict(zip(PERCENTILE_KEYS, (float(v) for v in pct), strict=True))
    return {
        "total": float(total), "min": float(lo), "max": float(hi), "median": percentiles["50.0"],
        "avg": float(avg), "std_dev": float(sd or 0.0), "percentiles": percentiles,
        "histogram": None,
    }  # fmt: skip


def result_summary(con: duckdb.DuckDBPyConnection, s: RunSummary, p: Point) -> dict[str, Any]:
    """performance/result_summary.json in the reference Report's field names and units (ns)."""
    run_id = s.run_id
    duration_ns = round(s.window_s * 1e9) if s.window_s else None
    return {
        "version": f"benchbench {__version__}",
        "git_sha": None,
        "test_started_at": 0,  # as the reference writes it (its own TODO)
        "n_samples_issued": s.sent,
        "n_samples_completed": s.ok,
        "n_samples_failed": s.errored,
        "n_samples_succeeded": s.ok,
        "n_samples_dropped": None,
        "duration_ns": duration_ns,
        "state": "complete" if s.status == "complete" else "interrupted",
        "complete": s.status == "complete",
        "ttft": _stat_block(con, run_id, "ttft_ms * 1e6", "TRUE"),
        "tpot": _stat_block(con, run_id, "tpot_ms * 1e6", "output_tokens > 1"),
        "latency": _stat_block(con, run_id, "e2e_ms * 1e6", "TRUE"),
        "output_sequence_lengths": _stat_block(con, run_id, "output_tokens", "TRUE"),
        "input_sequence_lengths": _stat_block(con, run_id, "input_tokens", "TRUE"),
        "legacy_loadgen_window_duration_ns": None,
        "qps": s.requests_s,
        "tps": s.output_tok_s,
        "finish_reason_counts": None,
        "run_config": {
            "load_pattern": s.load_mode,
            "concurrency": p.concurrency,
            "benchbench_run_id": run_id,
        },  # fmt: skip
    }


def export_mlperf(
    con: duckdb.DuckDBPyConnection, run_ids: list[int], out_dir: str | Path
) -> MlperfExport:
    """Write `r<concurrency>/performance/result_summary.json` per run (r-run<id> without a
    fixed concurrency) and `mlperf_endpoints.json` (the points, the Pareto steps and every
    field that could not be filled, with its reason) under `out_dir`."""
    out = Path(out_dir)
    points, files, used = [], [], set()
    for run_id in run_ids:
        s = summarize(con, run_id)
        row = con.execute("SELECT concurrency FROM runs WHERE run_id = ?", [run_id]).fetchone()
        p = point(con, s, row[0] if row else None)
        points.append(p)
        name = f"r{p.concurrency}" if p.concurrency is not None else f"r-run{run_id}"
        if name in used:  # a repeat at the same concurrency keeps its own folder
            name = f"{name}-run{run_id}"
        used.add(name)
        summary_path = out / name / "performance" / "result_summary.json"
        files.append(_write(summary_path, result_summary(con, s, p)))
    unfilled = tuple({"field": f, "reason": r} for f, r in ALWAYS_UNFILLED)
    steps = pareto_steps(points)
    summary = {
        "format": FORMAT, "rules": RULES, "generator": f"benchbench {__version__}",
        "points": [asdict(p) for p in points], "pareto_steps": steps,
        "not_filled": list(unfilled),
        "not_written": ["point.yaml", "system_desc.json", "system_power.json",
                        "accuracy/accuracy_results.json (no accuracy run)"],
    }  # fmt: skip
    files.append(_write(out / "mlperf_endpoints.json", summary))
    return MlperfExport(str(out), tuple(files), tuple(points), tuple(steps), unfilled)


def _write(path: Path, data: dict[str, Any]) -> str:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return str(path)
