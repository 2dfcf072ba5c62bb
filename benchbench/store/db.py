"""Opening a store file, applying migrations, and run-level writes.

Who owns a "running" run. DuckDB lets one process at a time open a file for writing, and a
run's process keeps the store open from `create_run` until it writes the run's final status.
So when a process can open the store at all, no other process is writing into it: every run
still marked "running" by another process was left behind by one that died (`kill -9`, a
crash, power loss). Such a run is "abandoned". Each run records its owner (`host.pid`,
`host.process`, a token drawn once per process) so the runs of this very process (a sweep, a
test) are told apart. A read-write open marks abandoned runs in the file; a read-only one
cannot write, so it sees them through a view that does the same (see `_abandoned_view`)."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from benchbench.store.schema import DATA_MOVES, MIGRATIONS, SCHEMA_VERSION

ABANDONED = "abandoned"
_process_token = uuid.uuid4().hex


def _new_token() -> None:
    global _process_token
    _process_token = uuid.uuid4().hex


# A forked child is another process: it must never pass for its parent.
os.register_at_fork(after_in_child=_new_token)


def process_token() -> str:
    """This process's owner token, stored with each run it creates (runs.host.process)."""
    return _process_token


class StoreError(Exception):
    """A store problem the user can act on (one line)."""


@dataclass
class Store:
    path: str
    con: duckdb.DuckDBPyConnection
    read_only: bool = False

    def close(self) -> None:
        self.con.close()

    def create_run(self, *, wall_anchor_s: float, **fields: Any) -> int:
        """A new run, status "running", owned by this process (see the module docstring)."""
        fields["host"] = {
            **(fields.get("host") or {}),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "process": _process_token,
        }
        cols = ["status", "wall_anchor_s"]
        vals: list[Any] = ["running", wall_anchor_s]
        for key, value in fields.items():
            cols.append(key)
            vals.append(_json(value) if key in _JSON_COLS else value)
        marks = ",".join("?" for _ in cols)
        row = self.con.execute(
            f"INSERT INTO runs ({','.join(cols)}) VALUES ({marks}) RETURNING run_id", vals
        ).fetchone()
        assert row is not None
        return int(row[0])

    def update_run(self, run_id: int, **fields: Any) -> None:
        if not fields:
            return
        sets = ",".join(f"{k} = ?" for k in fields)
        vals = [_json(v) if k in _JSON_COLS else v for k, v in fields.items()]
        self.con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*vals, run_id])

    def run_exists(self, run_id: int) -> bool:
        row = self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def stored_requests(self, run_id: int) -> int:
        """Request rows stored for a run (warm-up included): the store's side of the books."""
        row = self.con.execute(
            "SELECT count(*) FROM requests WHERE run_id = ?", [run_id]
        ).fetchone()
        return int(row[0]) if row else 0

    def checkpoint(self) -> None:
        """Move everything committed from the write-ahead log into the database file, so a
        copy of the .duckdb file alone holds it. Safe while a BatchWriter inserts (DuckDB
        serialises the two); a no-op on a read-only store."""
        if not self.read_only:
            self.con.execute("CHECKPOINT")


class PeriodicCheckpoint:
    """Checkpoints a store every `every_s` seconds on a thread of its own while a run writes,
    so a copy of the .duckdb file alone (without its .wal) holds all but the last interval,
    and the event loop never waits for it. A failed checkpoint is retried at the next tick:
    the log still holds everything."""

    def __init__(self, store: Store, every_s: float) -> None:
        # A cursor of its own, made here: one DuckDB connection per thread.
        self._con = store.con.cursor()
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="bench-checkpoint", daemon=True)
        self.done = 0

    def __enter__(self) -> PeriodicCheckpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._con.close()

    def _work(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._con.execute("CHECKPOINT")
                self.done += 1
            except duckdb.Error:
                pass


_JSON_COLS = {"config", "versions", "host", "collectors", "warnings", "extra"}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def open_store(path: str | Path, *, read_only: bool = False) -> Store:
    """Open (creating if needed) a store file and bring its schema up to date. Runs another
    process left "running" are abandoned (module docstring): marked so, or seen so."""
    p = Path(path)
    if read_only and not p.exists():
        raise StoreError(f"no store at {p}: run `bench run --db {p}` first, or pass --db PATH")
    if p.parent and not p.parent.exists():
        raise StoreError(f"directory {p.parent} does not exist: create it or choose another --db")
    try:
        con = duckdb.connect(str(p), read_only=read_only)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"cannot open store {p}: {first}") from exc
    if not read_only:
        _migrate(con)
        mark_abandoned(con)
    else:
        _check_version(con, p)
        _abandoned_view(con)
    return Store(str(p), con, read_only)


# A run is abandoned when it is still "running" but its owner is not this process.
_NOT_OURS = "coalesce(json_extract_string(host, '$.process'), '') <> ?"


def mark_abandoned(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Mark every run another process left "running" as abandoned, saying so in its
    warnings, with its end at the last thing it stored. Returns their run ids."""
    rows = con.execute(
        f"SELECT run_id, host, warnings FROM runs WHERE status = 'running' AND {_NOT_OURS}",
        [_process_token],
    ).fetchall()
    for run_id, host_json, warnings_json in rows:
        host = _loads(host_json)
        warnings = _loads(warnings_json)
        if not isinstance(warnings, list):
            warnings = []
        owner = "the process that ran it"
        if isinstance(host, dict) and host.get("pid") is not None:
            owner = f"its process (pid {host['pid']} on {host.get('hostname', '?')})"
        warnings.append(
            f"abandoned: {owner} ended before finishing it (killed or crashed); "
            "requests it had not yet stored are lost, and its runner counts were never written"
        )
        end = con.execute(
            "SELECT max(coalesce(closed_ns, last_token_ns, sent_ns)) FROM requests "
            "WHERE run_id = ?",
            [run_id],
        ).fetchone()
        stored = con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id]).fetchone()
        # A running run has no results yet (written at the end): this is all there is, in
        # the shape of benchbench.results (version 2); the warnings have their own column.
        extra = {"version": 2, "books": {"sent": None, "stored": int(stored[0]) if stored else 0}}
        con.execute(
            "UPDATE runs SET status = ?, warnings = ?, extra = coalesce(extra, ?), "
            "ended_ns = coalesce(ended_ns, ?) WHERE run_id = ?",
            [ABANDONED, json.dumps(warnings), json.dumps(extra), end[0] if end else None, run_id],
        )
    return [int(r[0]) for r in rows]


def _abandoned_view(con: duckdb.DuckDBPyConnection) -> None:
    """Read-only: a temporary view named `runs` shadows the table for this connection, with
    the status every later command must show. Temporary objects live in memory, so this
    works on a read-only file, and every reader's plain `FROM runs` goes through it."""
    try:
        con.execute("SELECT status, host FROM runs LIMIT 0")
    except duckdb.Error:
        return  # not a benchbench store, or an old one: nothing to shadow
    row = con.execute("SELECT current_database()").fetchone()
    assert row is not None
    catalog = '"' + str(row[0]).replace('"', '""') + '"'
    # The token is hex, so it can be spelled inline (a view takes no parameters).
    con.execute(
        "CREATE TEMP VIEW runs AS SELECT * REPLACE ("
        f"CASE WHEN status = 'running' AND coalesce(json_extract_string(host, '$.process'), '') "
        f"<> '{_process_token}' THEN '{ABANDONED}' ELSE status END AS status) "
        f"FROM {catalog}.main.runs"
    )


def _loads(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ DEFAULT current_timestamp)"
    )
    done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
    for version, (name, sql) in enumerate(MIGRATIONS, start=1):
        if name in done:
            continue
        con.execute("BEGIN")
        if sql is not None:
            con.execute(sql)
        else:
            _data_move(con, name)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")


def _data_move(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Apply a registered data move. A store without runs has nothing to move (a new store:
    the store's own tests open those without the spine); one with runs needs the move."""
    move = DATA_MOVES.get(name)
    if move is not None:
        move(con)
        return
    row = con.execute("SELECT count(*) FROM runs").fetchone()
    if row and row[0]:
        con.execute("ROLLBACK")
        raise StoreError(
            f"store migration {name} moves existing runs and its code is not loaded: "
            "open the store through benchbench (benchbench.metrics registers it)"
        )


def _check_version(con: duckdb.DuckDBPyConnection, p: Path) -> None:
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except duckdb.Error as exc:
        raise StoreError(f"{p} is not a benchbench store (no schema version)") from exc
    version = int(row[0]) if row and row[0] is not None else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{p} has schema version {version}, newer than this benchbench "
            f"({SCHEMA_VERSION}): upgrade benchbench"
        )
