"""`bench calibrate`: the ceiling search, a quick calibration against the real simulator that is
stored and read back, the warning `bench run` prints above the calibration, the report's
client headroom, and one-line errors for bad flags."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from benchbench.calibrate import (
    CalibrateOptions,
    Capacity,
    WorkerRow,
    calibrate,
    capacity,
    recommended_workers,
    save,
)
from benchbench.calibrate_headroom import load_warning
from benchbench.calibrate_search import Probe, SearchBounds, search_max
from benchbench.errors import ConfigError

BENCH = [sys.executable, "-c", "from benchbench.cli import main; main()"]


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def threshold_probe(limit: float, calls: list[float]):  # noqa: ANN201 - a test's probe
    def probe(level: float) -> Probe[float]:
        calls.append(level)
        return Probe(level <= limit, level)

    return probe


# --- the search -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [130.0, 777.0, 5_000.0])
def test_search_brackets_the_highest_passing_level_within_its_resolution(limit: float) -> None:
    calls: list[float] = []
    bounds = SearchBounds(start=100, ceiling=1e6, max_steps=30, resolution=0.05)
    result = search_max(threshold_probe(limit, calls), bounds)
    assert result.best is not None and result.first_fail is not None
    assert result.best <= limit < result.first_fail
    assert result.first_fail / result.best - 1 <= 0.05
    assert result.best_figures == result.best
    assert len(calls) == len(result.steps) <= 30


def test_search_stops_after_max_steps_and_says_so() -> None:
    calls: list[float] = []
    result = search_max(threshold_probe(1e9, calls), SearchBounds(1, 1e12, max_steps=4))
    assert len(calls) == 4 and result.cut == "steps"
    assert result.best == 8  # 1, 2, 4, 8: all passed


def test_search_stops_at_the_ceiling_when_everything_passes() -> None:
    result = search_max(threshold_probe(1e9, []), SearchBounds(100, 300, max_steps=10))
    assert result.cut == "ceiling" and result.best == 300


def test_search_ramps_past_unsaturated_failures_to_the_ceiling_above_them() -> None:
    """Lag limits can fail at low load (an idle machine wakes late) and pass when busy."""

    def probe(level: float) -> Probe[float]:
        if level < 300:
            return Probe(False, level, saturated=False)
        return Probe(level <= 2500, level, saturated=level > 2500)

    result = search_max(probe, SearchBounds(100, 1e6, max_steps=30))
    assert result.best is not None and result.first_fail is not None
    assert result.best <= 2500 < result.first_fail and result.first_fail / result.best <= 1.05


def test_search_steps_down_when_the_start_fails() -> None:
    result = search_max(threshold_probe(10, []), SearchBounds(100, 1e6, max_steps=30))
    assert result.best is not None and result.first_fail is not None
    assert result.best <= 10 < result.first_fail and result.first_fail / result.best <= 1.05


def test_search_reports_nothing_held_when_nothing_down_to_the_floor_passes() -> None:
    calls: list[float] = []
    result = search_max(threshold_probe(0.5, calls), SearchBounds(100, 1e6, floor=10))
    assert result.best is None and result.best_figures is None and result.cut == "floor"
    assert min(calls) >= 10


def test_search_starts_no_probe_after_its_time_budget() -> None:
    now = [0.0]

    def slow_probe(level: float) -> Probe[float]:
        now[0] += 10.0  # each probe takes 10 s on the injected clock
        return Probe(True, level)

    result = search_max(slow_probe, SearchBounds(1, 1e6, budget_s=25), clock=lambda: now[0])
    assert len(result.steps) == 3 and result.cut == "time"


def test_search_refuses_bounds_that_cannot_end() -> None:
    with pytest.raises(ValueError):
        search_max(threshold_probe(1, []), SearchBounds(start=10, ceiling=5))
    with pytest.raises(ValueError):
        search_max(threshold_probe(1, []), SearchBounds(start=1, ceiling=5, factor=1.0))


# --- options ------------------------------------------------------------------------------


def test_worker_counts_double_up_to_the_cores_and_include_the_top() -> None:
    assert CalibrateOptions().worker_counts(1) == [1]
    assert CalibrateOptions().worker_counts(16) == [1, 2, 4, 8, 16]
    assert CalibrateOptions().worker_counts(6) == [1, 2, 4, 6]
    assert CalibrateOptions(max_workers=3).worker_counts(64) == [1, 2, 3]


@pytest.mark.parametrize("kwargs", [{"max_workers": 0}, {"budget_s": 0}, {"budget_s": -5.0}])
def test_bad_options_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        CalibrateOptions(**kwargs)  # type: ignore[arg-type]


# --- a quick calibration against the simulator --------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float, list[str]]:
    db = str(tmp_path_factory.mktemp("calibrate") / "c.duckdb")
    steps: list[str] = []
    t0 = time.monotonic()
    calibrate(CalibrateOptions(quick=True, max_workers=1, budget_s=6), db, on_step=steps.append)
    return db, time.monotonic() - t0, steps


def test_quick_calibration_finishes_in_bounded_time_and_stores_one_row(
    calibrated: tuple[str, float, list[str]],
) -> None:
    db, took_s, steps = calibrated
    # A 6 s budget: each of the two searches may overrun by one probe and its start-up.
    assert took_s < 90
    cap = capacity(db)
    assert cap is not None
    assert [r.workers for r in cap.rows] == [1]
    assert cap.host == socket.gethostname() and cap.quick and cap.cores >= 1
    assert len(steps) == 2 and steps[0].startswith("this machine took the CPU")
    assert steps[1].startswith("1 worker(s)")
    row = cap.rows[0]
    if row.max_rate is not None:  # held at the first level on any machine that can run CI
        assert row.max_rate > 0 and row.lag_p99_ms is not None and row.lag_p99_ms <= 2.0
    if row.max_tokens_per_s is not None:
        assert row.stamp_error_p99_ms is not None and row.stamp_error_p99_ms <= 1.0
        assert row.cpu_s_per_1m_tokens is not None and row.cpu_s_per_1m_tokens > 0


def test_recommended_workers_reads_the_stored_calibration(
    calibrated: tuple[str, float, list[str]],
) -> None:
    db, _, _ = calibrated
    assert recommended_workers(db, rate=1.0, concurrency=None) == 1
    assert recommended_workers(db, rate=None, concurrency=1) == 1


def test_no_calibration_means_no_recommendation_and_no_warning(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.duckdb")
    assert capacity(missing) is None
    assert recommended_workers(missing, rate=100.0, concurrency=None) is None
    assert load_warning(missing, 1e9, None, "1") is None
    assert not Path(missing).exists()  # reading never creates a store


# --- stored ceilings: recommendation, warning, report ------------------------------------


def stored(tmp_path: Path, rows: list[WorkerRow]) -> str:
    db = str(tmp_path / "cal.duckdb")
    save(db, Capacity(socket.gethostname(), 4, tuple(rows), None, True, "test"))
    return db


FOUR = [
    WorkerRow(1, 1000.0, 1.2, 10_000.0, 0.5, 2.0),
    WorkerRow(2, 1900.0, 1.4, 19_000.0, 0.6, 2.1),
    WorkerRow(4, 3600.0, 1.5, 36_000.0, 0.7, 2.2),
]


def test_recommended_workers_is_the_fewest_that_hold_the_load_with_headroom(
    tmp_path: Path,
) -> None:
    db = stored(tmp_path, FOUR)
    assert recommended_workers(db, rate=700.0, concurrency=None) == 1
    assert recommended_workers(db, rate=900.0, concurrency=None) == 2  # 90% of one: too close
    assert recommended_workers(db, rate=2500.0, concurrency=None) == 4
    assert recommended_workers(db, rate=1e6, concurrency=None) == 4  # none holds it: the most
    assert recommended_workers(db, rate=None, concurrency=150) == 2  # 15,000 tokens/s


def test_the_latest_calibration_of_this_host_wins(tmp_path: Path) -> None:
    db = stored(tmp_path, FOUR)
    save(db, Capacity(socket.gethostname(), 4, (FOUR[0],), None, True, "test"))
    save(db, Capacity("another-host", 64, tuple(FOUR), None, False, "test"))
    cap = capacity(db)
    assert cap is not None and [r.workers for r in cap.rows] == [1]


def test_warning_names_the_ceiling_and_the_workers_that_would_hold_it(tmp_path: Path) -> None:
    db = stored(tmp_path, FOUR)
    line = load_warning(db, 1500.0, None, "1")
    assert line is not None and "1,000 req/s" in line and "--workers 2" in line
    assert load_warning(db, 1500.0, None, "2") is None
    assert load_warning(db, 500.0, None, "1") is None
    beyond = load_warning(db, 10_000.0, None, "4")
    assert beyond is not None and "--workers" not in beyond.split("):")[-1].split(";")[0]
    streams = load_warning(db, None, 500, "1")  # 50,000 tokens/s
    assert streams is not None and "--concurrency 500" in streams


def test_bench_run_warns_before_a_load_above_the_calibration_and_the_report_shows_headroom(
    tmp_path: Path,
) -> None:
    db = stored(tmp_path, [WorkerRow(1, 50.0, 1.0, 5_000.0, 0.5, 2.0)])
    proc = bench("run", "--sim-fast", "--rate", "80", "--requests", "8", "--db", db, "-q",
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "50 req/s" in warning[0], proc.stderr
    quiet = bench("run", "--sim-fast", "--rate", "20", "--requests", "4", "--db", db, "-q",
                  cwd=tmp_path)  # fmt: skip
    assert quiet.returncode == 0 and "warning:" not in quiet.stderr

    from benchbench.report_data.run import gather_run
    from benchbench.store import open_store

    store = open_store(db, read_only=True)
    try:
        report = gather_run(store.con, 1)
    finally:
        store.close()
    facts = report.facts["client headroom"]
    assert facts["workers"] == 1 and facts["calibrated max rate (req/s)"] == 50.0
    assert facts["rate used (share of max)"] == pytest.approx(report.achieved_rate / 50.0, 1e-2)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-workers", "0"], "--max-workers must be at least 1"),
        (["--budget-s", "-1"], "--budget"),
        (["--max-workers", "many"], "--max-workers"),
        (["--quick", "--frobnicate"], "--frobnicate"),
    ],
)
def test_bad_calibrate_flags_are_one_line_errors(
    tmp_path: Path, args: list[str], says: str
) -> None:
    proc = bench("calibrate", *args, "--db", str(tmp_path / "x.duckdb"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert says in first
    assert not (tmp_path / "x.duckdb").exists()


def test_a_store_in_a_missing_directory_is_refused_before_measuring(tmp_path: Path) -> None:
    proc = bench("calibrate", "--quick", "--db", str(tmp_path / "no" / "x.duckdb"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: --db: directory {tmp_path / 'no'} "
                                                "does not exist"]  # fmt: skip


def test_bench_run_workers_auto_uses_the_workers_the_calibration_recommends(
    tmp_path: Path,
) -> None:
    # One worker holds 30 req/s, two hold 60: 40 req/s needs two (with headroom).
    db = stored(tmp_path, [WorkerRow(1, 30.0, 1.0, 5_000.0, 0.5, 2.0),
                           WorkerRow(2, 60.0, 1.0, 9_000.0, 0.5, 2.0)])  # fmt: skip
    proc = bench("run", "--sim-fast", "--rate", "40", "--requests", "12", "--workers", "auto",
                 "--db", db, "-q", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no calibration stored" not in proc.stderr
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        workers = con.execute("SELECT count(DISTINCT worker), count(*) FROM requests").fetchone()
    finally:
        con.close()
    assert workers == (2, 12)


def test_a_machine_that_stalls_is_named_as_the_bound_and_its_stalls_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shared VM that took 8% of the time in stalls, 3% of it more than 2 ms in: the ceilings
    # found there are the machine's, and the result says so instead of blaming the client.
    import benchbench.calibrate as cal
    from benchbench.calibrate_search import SearchResult
    from benchbench.stalls import Stalls

    noisy = Stalls(seconds=1.0, stalled_share=0.08, over_lag_bound_per_s=12.0,
                   longest_ms=9.5, beyond_lag_bound=0.03)  # fmt: skip
    monkeypatch.setattr(cal, "measure_stalls", lambda _s: noisy)
    monkeypatch.setattr(cal, "_rate_search", lambda *a: SearchResult())
    monkeypatch.setattr(cal, "_token_search", lambda *a: SearchResult())
    db = str(tmp_path / "c.duckdb")
    result = calibrate(CalibrateOptions(quick=True, max_workers=1, budget_s=5), db)
    assert "8.0% of 1 s" in result.notes[0] and "bounded by it" in result.notes[0]
    assert result.capacity.stalls == noisy
    con = duckdb.connect(db, read_only=True)
    try:
        stored = con.execute("SELECT stalled_share, beyond_lag_bound FROM calibrations").fetchall()
    finally:
        con.close()
    assert stored == [(0.08, 0.03)]
