"""Prefix-cache truth against a real llama-server: a session workload sends each turn's whole
history, so llama-server's slot serves the previous turn's prompt from its cache and reports
the reused tokens as `timings.cache_n`. The served share comes close to what the workload
expects, and no reuse warning is raised; a workload of independent prompts expects nothing.

One session at a time (concurrency 1) keeps one slot warm: with more sessions than slots the
server would evict, and the served share would fall below the expectation (and warn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from benchbench.cache import expected_cache
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp

TURNS, SESSIONS = 4, 3
# The template's tokens around each message and a reply re-tokenised on its way back can
# shift the prefix by a few tokens per turn: close, not equal.
CLOSE = 0.8


def _run(server: LlamaServer, db: Path, *flags: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "benchbench.cli", "run", "--endpoint", server.base_url,
         "--model", server.model_name, "--concurrency", "1", "--input-len", "32",
         "--output-len", "8", "--seed", "3", "--no-nvml", "--db", str(db), "--json", *flags],
        capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["run_id"])


def test_a_session_workload_is_served_close_to_its_expected_cache(
    llama_tiny: LlamaServer, tmp_path: Path
) -> None:
    db = tmp_path / "truth.duckdb"
    run = _run(llama_tiny, db, "--session-turns", str(TURNS), "--requests",
               str(TURNS * SESSIONS))  # fmt: skip
    with duckdb.connect(str(db), read_only=True) as con:
        truth = expected_cache(con, run)
    assert truth.compared_requests == TURNS * SESSIONS  # every turn reported its cache_n
    assert truth.expected_share is not None and truth.expected_share > 0.3
    assert truth.served_share_same is not None
    assert truth.served_share_same >= CLOSE * truth.expected_share, truth
    assert truth.reuse_warning is None


def test_independent_prompts_claim_no_reuse(llama_tiny: LlamaServer, tmp_path: Path) -> None:
    db = tmp_path / "plain.duckdb"
    run = _run(llama_tiny, db, "--requests", "6")
    with duckdb.connect(str(db), read_only=True) as con:
        assert expected_cache(con, run).expected_share is None
