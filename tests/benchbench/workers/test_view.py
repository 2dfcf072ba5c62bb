"""Per-worker client health in the summary and the report: shown only for multi-worker runs."""

from __future__ import annotations

from benchbench.results import WorkerHealth
from benchbench.workers.view import worker_facts, worker_lines


def _health(w: int, **kw: object) -> WorkerHealth:
    fields: dict[str, object] = dict(
        pid=100 + w, host="h", cpu_s=1.5, wall_s=10.0, cpu_util=0.15, loop_lag_p99_ms=0.8,
        schedule_lag_p99_ms=1.9, records=500, clock_offset_ns=-12_000, clock_uncertainty_ns=30_000,
    )  # fmt: skip
    fields.update(kw)
    return WorkerHealth(worker=w, **fields)  # type: ignore[arg-type]


def test_one_process_run_shows_no_worker_block() -> None:
    assert worker_lines([]) == [] and worker_lines([_health(0)]) == []
    assert worker_facts([_health(0)]) == {}


def test_each_worker_gets_its_cpu_lags_records_and_clock() -> None:
    lines = dict(worker_lines([_health(0), _health(1, schedule_lag_p99_ms=7.25)]))
    assert list(lines) == ["worker 0", "worker 1"]
    assert "pid 101" in lines["worker 1"] and "schedule lag p99 7.2 ms" in lines["worker 1"]
    assert "CPU 1.50 s (15% of a core)" in lines["worker 0"]
    assert "loop lag p99 0.8 ms" in lines["worker 0"] and "500 records" in lines["worker 0"]
    assert "clock offset -12 us ± 30 us" in lines["worker 0"]


def test_a_lost_worker_says_so_first() -> None:
    lines = dict(worker_lines([_health(0), _health(1, lost=True, lost_requests=7, unsent=40)]))
    assert lines["worker 1"].startswith("LOST mid-run: 7 in flight recorded as worker_lost")
    assert "40 planned not sent" in lines["worker 1"]


def test_a_ray_worker_shows_its_node_even_alone() -> None:
    lines = worker_lines([_health(0, node_id="abcdef0123456789")])
    assert "Ray node abcdef012345" in lines[0][1]
    facts = worker_facts([_health(0, node_id="n1"), _health(1, node_id="n2")])
    assert list(facts["client workers"]) == ["worker 0", "worker 1"]
