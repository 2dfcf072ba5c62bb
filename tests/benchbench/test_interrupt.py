"""Ctrl-C or SIGTERM during `bench run`: sending stops, in-flight requests are recorded as
cancelled with the tokens they had, everything measured is in the store, the books balance
(the runner's count of sent requests equals the rows stored), and the run is marked
interrupted. SIGTERM is what a service manager, a container runtime or `timeout` sends."""

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
def test_an_interrupted_run_keeps_every_measured_request(
    tmp_path: Path, sig: signal.Signals
) -> None:
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
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in out
    assert "LOST" not in out
    con = duckdb.connect(str(db), read_only=True)
    status, extra = con.execute("SELECT status, extra FROM runs").fetchone()
    n, ok, cancelled, cancelled_with_tokens = con.execute(
        """SELECT count(*), count(*) FILTER (WHERE error_kind IS NULL),
                  count(*) FILTER (WHERE error_kind = 'cancelled'),
                  count(*) FILTER (WHERE error_kind = 'cancelled' AND n_events > 0)
           FROM requests"""
    ).fetchone()
    events = con.execute("SELECT count(*) FROM token_events").fetchone()[0]
    books = json.loads(extra)["books"]
    assert status == "interrupted"
    # ~20 req/s for ~4 s, each taking ~3.5 s: many were still streaming at the signal.
    assert n == books["sent"] == books["stored"] and books["missing"] == 0 and n >= 40
    assert cancelled >= 10 and cancelled_with_tokens >= 10
    assert ok + cancelled == n
    assert events >= ok * 400
