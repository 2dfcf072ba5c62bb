"""Settings for the whole test run."""

from __future__ import annotations

import os

# Tests use loopback addresses only. Ray binds its nodes to this host's own IP unless it is
# told it is not clustering; with this (read when ray is imported, and inherited by its
# processes) a test's Ray cluster lives on 127.0.0.1. The product itself never sets it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
