"""Ctrl-C or SIGTERM on the coordinator of `bench run --workers 2`: every worker stops, what
was in flight is recorded as cancelled, the books balance, the run is interrupted (exit 130),
and no worker process is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_every_worker_and_keeps_every_request(
    tmp_path: Path, sig: signal.Signals
) -> None:
    db = tmp_path / "i.duckdb"
    args = ["run", "--db", str(db), "--workers", "2", "--rate", "20", "--duration", "60",
            "--output-len", "400", "--input-len", "50", "-q"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchbench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,  # its own group: the signal goes to the coordinator only
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not db.exists():
            time.sleep(0.1)
        time.sleep(5.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    with duckdb.connect(str(db), read_only=True) as con:
        status, extra = con.execute("SELECT status, extra FROM runs").fetchone()
        n, ok, cancelled, workers = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE error_kind IS NULL),
                      count(*) FILTER (WHERE error_kind = 'cancelled'),
                      count(DISTINCT worker)
               FROM requests"""
        ).fetchone()
    books = json.loads(extra)["books"]
    assert status == "interrupted"
    assert n == books["sent"] == books["stored"] and books["missing"] == 0 and n >= 30
    assert cancelled >= 10 and ok + cancelled == n
    assert workers == 2
    pids = [w["pid"] for w in json.loads(extra)["workers"]]
    assert all(not _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
