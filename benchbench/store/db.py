"""Opening a store file, applying migrations, and run-level writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from benchbench.store.schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    """A store problem the user can act on (one line)."""


@dataclass
class Store:
    path: str
    con: duckdb.DuckDBPyConnection

    def close(self) -> None:
        self.con.close()

    def create_run(self, *, wall_anchor_s: float, **fields: Any) -> int:
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


_JSON_COLS = {"config", "versions", "host", "collectors", "warnings", "extra"}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def open_store(path: str | Path, *, read_only: bool = False) -> Store:
    """Open (creating if needed) a store file and bring its schema up to date."""
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
    else:
        _check_version(con, p)
    return Store(str(p), con)


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
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")


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
