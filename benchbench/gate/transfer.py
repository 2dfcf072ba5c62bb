"""Runs out of and into a store: one Parquet file per run (or per `--repeat` group) holding
its runs rows, requests, token events and samples, so a baseline can be committed or cached
in CI; and named baselines.

The file is one table: a `bench_table` column says which store table each row belongs to,
the union of the four tables' columns holds the values (NULL where a table lacks a column),
and the Parquet key-value metadata carries the format and schema version.

An export written before a schema change still imports: rows go in by column name (a column
the file lacks, such as requests.cached_input_tokens before schema 7, stays NULL), and the
data moves the file predates (store.schema's DATA_MOVES, e.g. typed results) are applied to
the runs it brings."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb

from benchbench.gate.data import group_run_ids
from benchbench.gate.rules import GateError
from benchbench.store import Store
from benchbench.store.schema import DATA_MOVES, MIGRATIONS, SCHEMA_VERSION

FORMAT = "benchbench-runs-v1"
TABLES = ("runs", "requests", "token_events", "samples")
_JSON_COLS = {"config", "versions", "host", "collectors", "warnings", "extra", "server_timings"}


def export_runs(store: Store, run_id: int, out: str | Path) -> tuple[Path, list[int]]:
    """Write the run (and the rest of its repeat group) to `out`: a .parquet file, or a
    directory that gets run-<id>.parquet. Returns the file and the exported run ids."""
    ids = group_run_ids(store.con, run_id)
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", "\\")):
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"run-{run_id}.parquet"
    elif not path.parent.exists():
        raise GateError(f"directory {path.parent} does not exist: create it or choose another -o")
    id_list = ",".join(str(i) for i in ids)
    selects = [
        f"SELECT '{t}' AS bench_table, {_columns(store.con, t)} FROM {t} "
        f"WHERE run_id IN ({id_list})"
        for t in TABLES
    ]
    sql = " UNION ALL BY NAME ".join(selects)
    target = str(path).replace("'", "''")
    store.con.execute(
        f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd, "
        f"KV_METADATA {{format: '{FORMAT}', schema_version: '{SCHEMA_VERSION}'}})"
    )
    return path, ids


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    # JSON travels as text: any Parquet reader can read it, and it casts back on import.
    cols = [r[1] for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()]
    return ", ".join(f"CAST({c} AS VARCHAR) AS {c}" if c in _JSON_COLS else c for c in cols)


def is_export_file(ref: str) -> bool:
    return ref.endswith(".parquet") or (Path(ref).is_file() and not ref.isdigit())


def import_runs(store: Store, file: str | Path) -> list[int]:
    """Load an exported file into `store` under new run ids (a group gets a new group id, so
    it never pools with the runs it was exported from). Returns the new run ids in order."""
    p = Path(file)
    if not p.is_file():
        raise GateError(f"no file {p}: export one with `bench export RUN -o {p.name}`")
    con = store.con
    src = str(p).replace("'", "''")
    try:
        meta = dict(
            con.execute(
                f"SELECT key::VARCHAR, value::VARCHAR FROM parquet_kv_metadata('{src}')"
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise GateError(f"{p} is not a Parquet file ({str(exc).splitlines()[0]})") from None
    if meta.get("format") != FORMAT:
        raise GateError(f"{p} is not a benchbench export (no '{FORMAT}' format marker)")
    try:
        file_version = int(meta.get("schema_version", "0"))
    except ValueError:
        raise GateError(f"{p}: unreadable schema version {meta['schema_version']!r}") from None
    if file_version > SCHEMA_VERSION:
        raise GateError(f"{p} was written by a newer benchbench: upgrade benchbench to read it")
    con.execute("BEGIN")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE bench_import AS SELECT * FROM '{src}'")
        file_cols = {r[1] for r in con.execute("PRAGMA table_info('bench_import')").fetchall()}
        old_ids = [
            int(r[0])
            for r in con.execute(
                "SELECT run_id FROM bench_import WHERE bench_table = 'runs' ORDER BY run_id"
            ).fetchall()
        ]
        if not old_ids:
            raise GateError(f"{p} holds no runs")
        groups: dict[str, str] = {}
        new_ids = [_import_run(con, old, file_cols, groups) for old in old_ids]
        con.execute("DROP TABLE bench_import")
        _data_moves_since(con, file_version)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return new_ids


def _import_run(
    con: duckdb.DuckDBPyConnection, old_id: int, file_cols: set[str], groups: dict[str, str]
) -> int:
    run_cols = [c for c in _table_cols(con, "runs") if c in file_cols and c != "run_id"]
    row = con.execute(
        f"INSERT INTO runs ({', '.join(run_cols)}) SELECT {', '.join(run_cols)} FROM bench_import "
        "WHERE bench_table = 'runs' AND run_id = ? RETURNING run_id, sweep_id",
        [old_id],
    ).fetchone()
    assert row is not None
    new_id, sweep_id = int(row[0]), row[1]
    if sweep_id is not None:
        fresh = groups.setdefault(sweep_id, f"imported-{uuid.uuid4().hex[:12]}")
        con.execute("UPDATE runs SET sweep_id = ? WHERE run_id = ?", [fresh, new_id])
    for table in TABLES[1:]:
        cols = [c for c in _table_cols(con, table) if c in file_cols and c != "run_id"]
        con.execute(
            f"INSERT INTO {table} (run_id, {', '.join(cols)}) "
            f"SELECT {new_id}, {', '.join(cols)} FROM bench_import "
            "WHERE bench_table = ? AND run_id = ?",
            [table, old_id],
        )
    return new_id


def _data_moves_since(con: duckdb.DuckDBPyConnection, file_version: int) -> None:
    """The data moves of the migrations after the file's schema version. Each moves only the
    runs still in the old shape, so the store's other runs are untouched."""
    for version, (name, sql) in enumerate(MIGRATIONS, start=1):
        if sql is None and version > file_version:
            DATA_MOVES[name](con)


def _table_cols(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info('{table}')").fetchall()]


def set_baseline(store: Store, name: str, run_id: int) -> None:
    if not name or name.isdigit() or name == "latest":
        raise GateError(f"baseline name {name!r} must not be empty, a number or 'latest'")
    store.con.execute(
        "INSERT OR REPLACE INTO baselines (name, run_id, set_at) VALUES (?, ?, current_timestamp)",
        [name, run_id],
    )


def list_baselines(store: Store) -> list[dict[str, object]]:
    rows = store.con.execute(
        """SELECT b.name, b.run_id, b.set_at::VARCHAR, r.created_at::VARCHAR, r.model, r.status
           FROM baselines b LEFT JOIN runs r USING (run_id) ORDER BY b.name"""
    ).fetchall()
    keys = ("name", "run_id", "set_at", "run_created_at", "model", "status")
    return [dict(zip(keys, r, strict=True)) for r in rows]
