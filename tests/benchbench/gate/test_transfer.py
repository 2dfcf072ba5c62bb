"""Export to Parquet, import under new ids, gate against the file; named baselines."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from benchbench.cache import served_cache
from benchbench.gate import (
    DEFAULT_CONFIG,
    GateError,
    export_runs,
    import_runs,
    list_baselines,
    run_gate,
    set_baseline,
)
from benchbench.results import load_results
from benchbench.store import open_store
from tests.benchbench.gate.conftest import DECODE_METRICS, Runs
from tests.benchbench.runs import record, write_run

COUNTED = ("requests", "token_events", "samples")


def _counts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, int]:
    return {
        t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
        for t in COUNTED
    }


def test_export_import_round_trip_keeps_every_row_under_a_new_id(
    sim_runs: Runs, tmp_path: Path
) -> None:
    src = open_store(sim_runs.db, read_only=True)
    try:
        path, ids = export_runs(src, sim_runs.same[0], tmp_path / "base.parquet")
        want = _counts(src.con, sim_runs.same[0])
        want_run = src.con.execute(
            "SELECT model, fingerprint, extra FROM runs WHERE run_id = ?", [sim_runs.same[0]]
        ).fetchone()
    finally:
        src.close()
    assert ids == [sim_runs.same[0]] and path.is_file()
    dst = open_store(tmp_path / "other.duckdb")
    try:
        write_run(dst, ())  # run 1 is taken: the import must not reuse the exported id
        (new_id,) = import_runs(dst, path)
        assert new_id == 2  # the store's next id, not the exported one
        assert _counts(dst.con, new_id) == want
        got = dst.con.execute(
            "SELECT model, fingerprint, extra FROM runs WHERE run_id = ?", [new_id]
        ).fetchone()
        assert got == want_run
        assert want["requests"] == 50 and want["token_events"] == 50 * 20
    finally:
        dst.close()


def test_gate_reads_an_exported_baseline_without_touching_the_store(
    sim_runs: Runs, tmp_path: Path
) -> None:
    src = open_store(sim_runs.db, read_only=True)
    try:
        path, _ = export_runs(src, sim_runs.same[0], tmp_path)  # a directory: run-ID.parquet
    finally:
        src.close()
    assert path.name == f"run-{sim_runs.same[0]}.parquet"
    ok = run_gate(str(path), str(sim_runs.same[1]), str(sim_runs.db), DEFAULT_CONFIG)
    assert ok.passed
    bad = run_gate(str(path), str(sim_runs.slow_decode), str(sim_runs.db), DEFAULT_CONFIG)
    failed = {r.key for r in bad.failures}
    assert "tpot_ms.p50" in failed and all(k.startswith(DECODE_METRICS) for k in failed), failed


def test_a_repeat_group_travels_whole_and_pools_again(sim_runs: Runs, tmp_path: Path) -> None:
    src = open_store(sim_runs.db, read_only=True)
    try:
        path, ids = export_runs(src, sim_runs.repeat_group[0], tmp_path / "g.parquet")
    finally:
        src.close()
    assert tuple(ids) == sim_runs.repeat_group
    result = run_gate(str(path), str(sim_runs.same[0]), str(sim_runs.db), DEFAULT_CONFIG)
    assert len(result.baseline_runs) == 2 and result.passed


def test_named_baselines_resolve_and_list(sim_runs: Runs, tmp_path: Path) -> None:
    db = tmp_path / "named.duckdb"
    src = open_store(sim_runs.db, read_only=True)
    try:
        path, _ = export_runs(src, sim_runs.same[0], tmp_path / "b.parquet")
    finally:
        src.close()
    store = open_store(db)
    try:
        base = import_runs(store, path)[0]
        set_baseline(store, "main", base)
        set_baseline(store, "main", base)  # setting again replaces
        assert [(b["name"], b["run_id"]) for b in list_baselines(store)] == [("main", base)]
        with pytest.raises(GateError, match="must not be"):
            set_baseline(store, "12", base)
    finally:
        store.close()
    result = run_gate("main", str(path), str(db), DEFAULT_CONFIG)
    assert result.baseline == f"main = run {base}" and result.passed


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.parquet"
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{bogus}' (FORMAT parquet)")
    store = open_store(":memory:")
    try:
        with pytest.raises(GateError, match="not a benchbench export"):
            import_runs(store, bogus)
        with pytest.raises(GateError, match="no file"):
            import_runs(store, tmp_path / "missing.parquet")
    finally:
        store.close()


def _as_old_export(new: Path, old: Path, version: int, drop: str, extra: dict) -> None:
    """Rewrite an export as a benchbench at schema `version` wrote it: without the column
    `drop` (added later) and with runs.extra in that version's shape."""
    meta = f"{{format: 'benchbench-runs-v1', schema_version: '{version}'}}"
    duckdb.connect().execute(
        f"""COPY (SELECT * EXCLUDE ({drop}) REPLACE (
                CASE WHEN bench_table = 'runs' THEN ? END AS extra) FROM '{new}')
            TO '{old}' (FORMAT parquet, KV_METADATA {meta})""",
        [json.dumps(extra)],
    )


def test_an_export_older_than_a_column_and_typed_results_imports(tmp_path: Path) -> None:
    src = open_store(tmp_path / "src.duckdb")
    try:
        records = [record(i, i * 20_000_000, 10_000_000, input_tokens=100,
                          cached_input_tokens=50) for i in range(40)]  # fmt: skip
        run_id = write_run(src, records, model="m", api="chat")
        new, _ = export_runs(src, run_id, tmp_path / "new.parquet")
    finally:
        src.close()
    old = tmp_path / "old.parquet"
    before_typed_results = {  # runs.extra as schema 5 stored it: collectors and warnings inside
        "collectors": {"nvml": {"degraded": None}},
        "warnings": ["old warning"],
        "books": {"sent": 40, "stored": 40},
    }
    _as_old_export(new, old, 5, "cached_input_tokens", before_typed_results)

    store = open_store(":memory:")
    try:
        (new_id,) = import_runs(store, old)
        assert _counts(store.con, new_id)["requests"] == 40
        cached = store.con.execute(
            "SELECT count(cached_input_tokens), count(input_tokens) FROM requests WHERE run_id = ?",
            [new_id],
        ).fetchone()
        assert cached == (0, 40)  # the column the file lacks stays unknown, never 0
        assert served_cache(store.con, new_id)["share"] is None
        res = load_results(store.con, new_id)
        assert res.version == 2 and res.books.sent == 40
        assert res.warnings == ("old warning",) and "nvml" in res.collectors
    finally:
        store.close()
