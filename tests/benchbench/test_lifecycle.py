"""Every exit path of `bench run` leaves the store in a state later commands can trust:
a process killed outright (kill -9) leaves a run that every later command shows as
"abandoned" and the gate refuses; a signal before the run starts leaves no run at all; and
a run whose books do not balance is "failed" with a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ENV = {**os.environ, "COLUMNS": "200"}


def _bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchbench.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def _start_run(db: Path, *extra: str) -> subprocess.Popen[str]:
    # Its own process group, so the test can kill it together with its simulator.
    return subprocess.Popen(
        [sys.executable, "-m", "benchbench.cli", "run", "--db", str(db), "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.1)
    assert path.exists(), f"{path} was not created within {seconds} s"


def test_a_run_killed_outright_is_abandoned_in_every_later_command(tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    proc = _start_run(db, "--rate", "20", "--duration", "60", "--output-len", "50")
    try:
        _wait_for(db, 30)
        time.sleep(3.0)  # sending for a while: at least one flush reached the store
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its simulator, as a crash would
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    runs = _bench("runs", "--db", str(db), "--json")
    assert runs.returncode == 0, runs.stderr
    (run,) = json.loads(runs.stdout)
    assert run["status"] == "abandoned"
    assert run["requests"] > 0  # what was flushed before the kill is kept

    show = _bench("show", str(run["run_id"]), "--db", str(db))
    assert show.returncode == 0, show.stderr
    assert f"{run['run_id']} (abandoned)" in show.stdout
    assert "runner count never written" in show.stdout

    gate = _bench(
        "gate", "--baseline", str(run["run_id"]), "--candidate", str(run["run_id"]), "--db",
        str(db),
    )  # fmt: skip
    assert gate.returncode == 2
    assert f"run {run['run_id']} is abandoned" in gate.stdout + gate.stderr
    assert "Traceback" not in gate.stderr

    # The next process that opens the store for writing records the verdict in the file.
    second = _bench("run", "--db", str(db), "--requests", "5", "--sim-fast", "-q")
    assert second.returncode == 0, second.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        statuses = con.execute("SELECT status FROM runs ORDER BY run_id").fetchall()
        warnings = json.loads(
            con.execute("SELECT warnings FROM runs WHERE run_id = ?", [run["run_id"]]).fetchone()[0]
        )
    finally:
        con.close()
    assert statuses == [("abandoned",), ("complete",)]
    assert any("abandoned" in w and f"pid {proc.pid}" in w for w in warnings)


def test_a_signal_while_the_server_is_first_asked_leaves_no_run(tmp_path: Path) -> None:
    db = tmp_path / "d.duckdb"
    # A server that accepts connections and never answers (/tokenize, /models).
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    proc = _start_run(db, "--endpoint", url, "--requests", "5", "--timeout", "60")
    try:
        silent.settimeout(60)
        conn, _ = silent.accept()  # the command is now waiting for an answer
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        silent.close()
    conn.close()
    assert proc.returncode == 130, err
    assert took < 10
    assert "Traceback" not in err
    if db.exists():  # the store is opened only once the model is known
        con = duckdb.connect(str(db), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        finally:
            con.close()


_DROP_RECORDS = """
import sys
from benchbench.store import writer

_add = writer.BatchWriter.add_record

def add_record(self, record):
    if record.index % 4 != 3:  # a sink that loses every fourth record
        _add(self, record)

writer.BatchWriter.add_record = add_record
from benchbench.cli import main
sys.argv = ["bench", *sys.argv[1:]]
main()
"""


def test_a_run_whose_books_do_not_balance_fails_loudly(tmp_path: Path) -> None:
    db = tmp_path / "b.duckdb"
    proc = subprocess.run(
        [sys.executable, "-c", _DROP_RECORDS, "run", "--db", str(db), "--requests", "20",
         "--concurrency", "4", "--sim-fast", "-q"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed" in proc.stdout
    assert "LOST RECORDS: the client sent 20 requests, the store holds 15" in proc.stdout
    show = _bench("show", "--db", str(db))
    assert "LOST RECORDS" in show.stdout and "(failed)" in show.stdout
    con = duckdb.connect(str(db), read_only=True)
    try:
        status, extra = con.execute("SELECT status, extra FROM runs").fetchone()
    finally:
        con.close()
    books = json.loads(extra)["books"]
    assert status == "failed"
    assert (books["sent"], books["stored"], books["missing"]) == (20, 15, 5)
