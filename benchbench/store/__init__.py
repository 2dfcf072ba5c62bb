"""The DuckDB store: the only code that writes SQL. Reads go through benchbench.metrics."""

from benchbench.store.db import Store, StoreError, open_store
from benchbench.store.writer import BatchWriter

__all__ = ["BatchWriter", "Store", "StoreError", "open_store"]
