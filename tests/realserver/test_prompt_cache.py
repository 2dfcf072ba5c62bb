"""Cold by default: rerunning the same seeded workload against a real llama-server is not
served from the prompt cache the first run left, unless asked (`--no-salt`), and the gate
refuses to compare a cold run with a warm one.

llama-server keeps finished prompts (its slots and its host-memory prompt cache) and reuses
the longest matching prefix of a new prompt; per request it reports the reused tokens as
`timings.cache_n`, stored as requests.cached_input_tokens. Within one run the prompts share
only the chat template's first tokens and the run's 4-word salt, a few percent of 128.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from benchbench.cache import served_cache
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp

REQUESTS = 40  # above the gate's min_requests (30)
COLD_MAX_SHARE = 0.05  # "prefills >= 95% of its prompt tokens"
WARM_MIN_SHARE = 0.80


def _cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "COLUMNS": "200"},
    )


def _run(server: LlamaServer, db: Path, *flags: str) -> int:
    done = _cli(
        "run", "--endpoint", server.base_url, "--model", server.model_name,
        "--concurrency", "4", "--requests", str(REQUESTS), "--input-len", "128",
        "--output-len", "8", "--seed", "7", "--no-nvml", "--db", str(db), "--json", *flags,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] == REQUESTS
    return int(summary["run_id"])


def _share(db: Path, run_id: int) -> dict:
    with duckdb.connect(str(db), read_only=True) as con:
        cache = served_cache(con, run_id)
        row = con.execute(
            "SELECT count(*) FROM requests WHERE run_id = ? AND cached_input_tokens IS NOT NULL",
            [run_id],
        ).fetchone()
    assert row is not None and row[0] == REQUESTS  # every request reported its cache_n
    assert cache["source"] == "requests"
    return cache


def test_reruns_are_cold_unless_unsalted_and_the_gate_refuses_a_warm_one(
    llama_tiny: LlamaServer, tmp_path: Path
) -> None:
    db = tmp_path / "cache.duckdb"
    salted = [_run(llama_tiny, db) for _ in range(2)]
    shares = [_share(db, r) for r in salted]
    for cache in shares:
        assert cache["share"] <= COLD_MAX_SHARE, cache
    # Different salts, the same workload: the gate compares them (pass or regression, as the
    # noise of a shared machine has it), never refuses them.
    compared = _cli("gate", "--baseline", str(salted[0]), "--candidate", str(salted[1]),
                    "--db", str(db))  # fmt: skip
    assert compared.returncode in (0, 1), compared.stdout + compared.stderr

    cold, warm = _run(llama_tiny, db, "--no-salt"), _run(llama_tiny, db, "--no-salt")
    assert _share(db, cold)["share"] <= COLD_MAX_SHARE  # the salted runs left it nothing
    assert _share(db, warm)["share"] >= WARM_MIN_SHARE  # the same prompts again: from cache

    gate = _cli("gate", "--baseline", str(cold), "--candidate", str(warm), "--db", str(db))
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert "prompt cache" in gate.stderr
