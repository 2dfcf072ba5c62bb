"""The DuckDB store: the only code that writes SQL. Reads go through benchbench.metrics."""

from benchbench.store.db import (
    ABANDONED,
    PeriodicCheckpoint,
    Store,
    StoreError,
    mark_abandoned,
    open_store,
    process_token,
)
from benchbench.store.writer import BatchWriter

__all__ = [
    "ABANDONED",
    "BatchWriter",
    "PeriodicCheckpoint",
    "Store",
    "StoreError",
    "mark_abandoned",
    "open_store",
    "process_token",
]
