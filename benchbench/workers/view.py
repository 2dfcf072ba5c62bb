"""Per-worker client health as the summary and the report show it: one line per worker,
only for runs that had more than one worker (or ran on Ray)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchbench.results import WorkerHealth


def _shown(workers: Sequence[WorkerHealth]) -> bool:
    return len(workers) > 1 or any(w.node_id for w in workers)


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} ms"


def worker_line(w: WorkerHealth) -> str:
    """One worker: where it ran, its CPU, loop and schedule lag, records, clock offset."""
    where = f"pid {w.pid} on {w.host or '?'}"
    if w.node_id:
        where += f" (Ray node {w.node_id[:12]})"
    cpu = "CPU ?" if w.cpu_s is None else f"CPU {w.cpu_s:.2f} s"
    if w.cpu_util is not None:
        cpu += f" ({w.cpu_util:.0%} of a core)"
    parts = [
        where,
        cpu,
        f"loop lag p99 {_ms(w.loop_lag_p99_ms)}",
        f"schedule lag p99 {_ms(w.schedule_lag_p99_ms)}",
        f"{w.records} records",
    ]
    if w.clock_offset_ns is not None:
        parts.append(
            f"clock offset {w.clock_offset_ns / 1e3:+.0f} us "
            f"± {(w.clock_uncertainty_ns or 0) / 1e3:.0f} us"
        )
    line = ", ".join(parts)
    if w.lost:
        line = (
            f"LOST mid-run: {w.lost_requests} in flight recorded as worker_lost, "
            f"{w.unsent} planned not sent; " + line
        )
    return line


def worker_lines(workers: Sequence[WorkerHealth]) -> list[tuple[str, str]]:
    """The summary's per-worker block: (label, line) rows; none for a one-process run."""
    if not _shown(workers):
        return []
    return [(f"worker {w.worker}", worker_line(w)) for w in workers]


def worker_facts(workers: Sequence[WorkerHealth]) -> dict[str, dict[str, Any]]:
    """The report's table of client workers (a fact table, one row per worker)."""
    if not _shown(workers):
        return {}
    return {"client workers": {f"worker {w.worker}": worker_line(w) for w in workers}}
