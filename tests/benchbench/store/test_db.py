"""The store's run lifecycle: who owns a "running" run, what a later process sees of a run
whose process died, and checkpoints that put finished data in the .duckdb file itself."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
import time
from pathlib import Path

import duckdb

from benchbench.store import BatchWriter, PeriodicCheckpoint, open_store, process_token
from loadgen.spec import RequestRecord

MS = 1_000_000


def _record(index: int, closed_ms: int) -> RequestRecord:
    return RequestRecord(
        index=index,
        intended_ns=None,
        sent_ns=0,
        first_token_ns=MS,
        last_token_ns=closed_ms * MS,
        closed_ns=closed_ms * MS,
        event_ns=[MS, closed_ms * MS],
        event_tokens=[None, None],
        output_tokens=2,
        http_status=200,
    )


def _orphan(db: Path, n_requests: int) -> int:
    """A run as a process killed mid-run leaves it: "running", owned by another process."""
    store = open_store(db)
    run_id = store.create_run(wall_anchor_s=0.0, endpoint="http://127.0.0.1:1")
    host = {"hostname": "gone-host", "pid": 4242, "process": "a-process-that-died"}
    store.con.execute("UPDATE runs SET host = ? WHERE run_id = ?", [json.dumps(host), run_id])
    writer = BatchWriter(store, run_id, origin_ns=0)
    for i in range(n_requests):
        writer.add_record(_record(i, 100 + i))
    writer.close()
    store.close()
    return run_id


def _raw_status(db: Path, run_id: int) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    finally:
        con.close()


def test_a_run_records_the_process_that_owns_it(tmp_path: Path) -> None:
    store = open_store(tmp_path / "o.duckdb")
    run_id = store.create_run(wall_anchor_s=0.0, host={"platform": "test"})
    host = json.loads(
        store.con.execute("SELECT host FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    )
    store.close()
    assert host["process"] == process_token()
    assert host["platform"] == "test" and isinstance(host["pid"], int) and host["hostname"]


def test_a_read_write_open_marks_runs_another_process_left_running_as_abandoned(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.duckdb"
    orphan = _orphan(db, n_requests=3)
    store = open_store(db)
    done = store.create_run(wall_anchor_s=0.0)
    store.update_run(done, status="complete")
    store.close()

    store = open_store(db)
    live = store.create_run(wall_anchor_s=0.0)  # this process's own run: really running
    rows = dict(store.con.execute("SELECT run_id, status FROM runs").fetchall())
    warnings, extra, ended = store.con.execute(
        "SELECT warnings, extra, ended_ns FROM runs WHERE run_id = ?", [orphan]
    ).fetchone()
    store.close()

    assert rows == {orphan: "abandoned", done: "complete", live: "running"}
    (warning,) = json.loads(warnings)
    assert "abandoned" in warning and "pid 4242 on gone-host" in warning
    assert json.loads(extra)["books"] == {"sent": None, "stored": 3}
    assert ended == 102 * MS  # the last thing it stored


def test_a_read_only_open_sees_abandoned_runs_without_writing(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    orphan = _orphan(db, n_requests=2)
    store = open_store(db, read_only=True)
    try:
        seen = store.con.execute("SELECT status FROM runs WHERE run_id = ?", [orphan]).fetchone()
        joined = store.con.execute(
            "SELECT r.status, count(q.idx) FROM runs r LEFT JOIN requests q USING (run_id) "
            "GROUP BY ALL"
        ).fetchall()
    finally:
        store.close()
    assert seen == ("abandoned",)
    assert joined == [("abandoned", 2)]
    assert _raw_status(db, orphan) == "running"  # the file is untouched


def test_runs_of_this_process_stay_running_for_its_own_readers(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    store = open_store(db)
    run_id = store.create_run(wall_anchor_s=0.0)
    store.close()
    ro = open_store(db, read_only=True)
    try:
        seen = ro.con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        assert seen == ("running",)
    finally:
        ro.close()


def _child_token(queue: multiprocessing.Queue) -> None:
    queue.put(process_token())


def test_a_forked_child_is_not_its_parent() -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_token, args=(queue,))
    child.start()
    token = queue.get(timeout=30)
    child.join(timeout=30)
    assert token != process_token()


def test_periodic_checkpoints_put_a_live_run_in_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    store = open_store(db)
    run_id = store.create_run(wall_anchor_s=0.0)
    writer = BatchWriter(store, run_id, origin_ns=0)
    for i in range(50):
        writer.add_record(_record(i, 10))
    writer.flush()
    with PeriodicCheckpoint(store, every_s=0.05) as checkpoints:
        deadline = time.monotonic() + 10
        while checkpoints.done < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert checkpoints.done >= 2
    # The store is still open (no checkpoint at close): copy the database file alone.
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(db, copy)
    writer.close()
    store.close()
    con = duckdb.connect(str(copy), read_only=True)
    try:
        assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (50,)
    finally:
        con.close()


def test_a_checkpoint_runs_beside_a_writer_that_inserts(tmp_path: Path) -> None:
    store = open_store(tmp_path / "w.duckdb")
    run_id = store.create_run(wall_anchor_s=0.0)
    writer = BatchWriter(store, run_id, origin_ns=0, flush_every=20)
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < 2_000:
            writer.add_record(_record(i, 10))
            i += 1
            if i % 20 == 0:
                time.sleep(0.005)  # batches keep coming while checkpoints run

    feeder = threading.Thread(target=feed)
    with PeriodicCheckpoint(store, every_s=0.02) as checkpoints:
        feeder.start()
        deadline = time.monotonic() + 10
        while checkpoints.done < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        feeder.join(timeout=10)
    writer.close()
    stored = store.con.execute("SELECT count(*) FROM requests").fetchone()[0]
    store.close()
    assert checkpoints.done >= 3
    assert stored == writer.requests_written > 0
