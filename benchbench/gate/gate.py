"""`bench gate` as a library call: resolve both references, load and pool their runs,
check validity, compare."""

from __future__ import annotations

import contextlib
from pathlib import Path

from benchbench.gate.compare import GateResult, compare, needed_metrics
from benchbench.gate.data import SideData, describe_runs, group_run_ids, load_side
from benchbench.gate.rules import GateConfig, GateError
from benchbench.gate.transfer import import_runs, is_export_file
from benchbench.queries import resolve_run
from benchbench.store import Store, open_store


def run_gate(baseline: str, candidate: str, db: str, cfg: GateConfig) -> GateResult:
    """Compare two references (run id, 'latest', a baseline name, or an exported .parquet).
    Raises InvalidComparison when the runs cannot be compared, GateError for a bad reference."""
    with contextlib.ExitStack() as stack:
        base = _side(stack, baseline, db, cfg, "baseline")
        cand = _side(stack, candidate, db, cfg, "candidate")
        return compare(base, cand, cfg)


def _side(stack: contextlib.ExitStack, ref: str, db: str, cfg: GateConfig, role: str) -> SideData:
    dists, run_metrics = needed_metrics(cfg)
    if is_export_file(ref):
        # An exported file is read into a private in-memory store; the user's store is untouched.
        if not Path(ref).is_file():
            raise GateError(f"--{role} {ref}: no such file")
        store = open_store(":memory:")
        stack.callback(store.close)
        ids = import_runs(store, ref)
        label = f"{Path(ref).name} ({describe_runs(ids)} as imported)"
        return load_side(store.con, ids, label, dists, run_metrics, str(Path(ref).resolve()))
    store = _open(stack, db)
    run_id = resolve_run(store, ref)
    ids = group_run_ids(store.con, run_id)
    label = describe_runs(ids) if ref.isdigit() else f"{ref} = {describe_runs(ids)}"
    return load_side(store.con, ids, label, dists, run_metrics, str(Path(db).resolve()))


def _open(stack: contextlib.ExitStack, db: str) -> Store:
    # One read-only connection per side is fine for DuckDB; both close at the end.
    store = open_store(db, read_only=True)
    stack.callback(store.close)
    return store
