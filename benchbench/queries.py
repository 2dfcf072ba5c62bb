"""Read-side helpers for the CLI: listing runs and resolving a run reference."""

from __future__ import annotations

from typing import Any

from benchbench.errors import BenchError
from benchbench.metrics import RunSummary, parse_slos, summarize
from benchbench.store import Store, open_store


def resolve_run(store: Store, ref: str) -> int:
    """A run id, 'latest', or a named baseline -> run id."""
    con = store.con
    if ref == "latest":
        row = con.execute("SELECT max(run_id) FROM runs").fetchone()
        if not row or row[0] is None:
            raise BenchError(f"no runs in {store.path}: run `bench run --db {store.path}` first")
        return int(row[0])
    if ref.isdigit():
        if not store.run_exists(int(ref)):
            raise BenchError(
                f"no run {ref} in {store.path}: `bench runs --db {store.path}` lists them"
            )
        return int(ref)
    row = con.execute("SELECT run_id FROM baselines WHERE name = ?", [ref]).fetchone()
    if row:
        return int(row[0])
    raise BenchError(f"{ref!r} is not a run id, 'latest' or a baseline name in {store.path}")


def list_runs(db: str) -> list[dict[str, Any]]:
    store = open_store(db, read_only=True)
    try:
        rows = store.con.execute(
            """SELECT r.run_id, strftime(r.created_at, '%Y-%m-%d %H:%M:%S') AS created_at,
                      r.status, r.endpoint, r.model, r.load_mode,
                      r.requested_rate, r.concurrency, r.name,
                      count(q.idx) FILTER (WHERE NOT q.warmup) AS requests,
                      count(q.idx) FILTER (WHERE NOT q.warmup AND q.error_kind IS NULL) AS ok
               FROM runs r LEFT JOIN requests q USING (run_id)
               GROUP BY ALL ORDER BY r.run_id"""
        ).fetchall()
        cols = [d[0] for d in store.con.description]
    finally:
        store.close()
    out = []
    for row in rows:
        d = dict(zip(cols, row, strict=True))
        if d["load_mode"] == "open":
            d["load"] = f"open {d['requested_rate']:g}/s"
        elif d["load_mode"] == "closed":
            d["load"] = f"closed c={d['concurrency'] or 1}"
        else:
            d["load"] = d["load_mode"]
        out.append(d)
    return out


def run_summary(db: str, ref: str, slo: str | None = None) -> tuple[RunSummary, dict[str, Any]]:
    store = open_store(db, read_only=True)
    try:
        run_id = resolve_run(store, ref)
        summary = summarize(store.con, run_id, parse_slos(slo) if slo else None)
        row = store.con.execute(
            "SELECT endpoint, model, api, load_mode, requested_rate, concurrency FROM runs "
            "WHERE run_id = ?",
            [run_id],
        ).fetchone()
    finally:
        store.close()
    assert row is not None
    header = {"endpoint": row[0], "model": row[1], "api": row[2], "load": row[3]}
    return summary, header
