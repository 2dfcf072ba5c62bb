"""Ctrl-C during `bench run`: sending stops, in-flight requests are recorded as cancelled with
the tokens they had, everything measured is in the store, and the run is marked interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb


def test_an_interrupted_run_keeps_every_measured_request(tmp_path: Path) -> None:
    db = tmp_path / "i.duckdb"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchbench.cli",
            "run",
            "--db",
            str(db),
            "--rate",
            "20",
            "--duration",
            "60",
            "--output-len",
            "400",
            "--input-len",
            "50",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        # Wait (bounded) until the run has been sending for a while.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not db.exists():
            time.sleep(0.1)
        time.sleep(4.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in out
    con = duckdb.connect(str(db), read_only=True)
    status, extra_sent = con.execute(
        "SELECT status, CAST(extra->'$.outcome.sent' AS INTEGER) FROM runs"
    ).fetchone()
    n, ok, cancelled, cancelled_with_tokens = con.execute(
        """SELECT count(*), count(*) FILTER (WHERE error_kind IS NULL),
                  count(*) FILTER (WHERE error_kind = 'cancelled'),
                  count(*) FILTER (WHERE error_kind = 'cancelled' AND n_events > 0)
           FROM requests"""
    ).fetchone()
    events = con.execute("SELECT count(*) FROM token_events").fetchone()[0]
    assert status == "interrupted"
    # ~20 req/s for ~4 s, each taking ~3.5 s: many were still streaming at Ctrl-C.
    assert n == extra_sent and n >= 40
    assert cancelled >= 10 and cancelled_with_tokens >= 10
    assert ok + cancelled == n
    assert events >= ok * 400
