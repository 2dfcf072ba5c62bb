"""Bad input to the spine's commands: one line that says what to fix, exit 2, no traceback,
and no store file left behind for a run that never started."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchbench.sim import SimConfig, SimProcess

BENCH = [sys.executable, "-c", "from benchbench.cli import main; main()"]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    full_env.update(env or {})
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=60, env=full_env)


def assert_one_line(proc: subprocess.CompletedProcess[str], says: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert says in lines[0]


@pytest.fixture(scope="module")
def locked_sim() -> Iterator[SimProcess]:
    with SimProcess(SimConfig(fast=True, api_key="s3cret")) as sim:
        yield sim


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "4", "--rate", "2"], "not both"),
        (["--endpoint", "ftp://example"], "--endpoint must be an http(s) URL"),
        (["--endpoint", "http://127.0.0.1:9/v1"], "cannot connect to http://127.0.0.1:9/v1"),
        (["--input-len", "gaussian:7"], "--input-len"),
        (["--api", "embeddings"], "--api"),
        (["--header", "no-colon"], "--header must look like 'Name: value'"),
    ],
)
def test_bad_run_input_is_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    assert_one_line(bench("run", "--db", str(db), "--requests", "2", *args), says)
    assert not db.exists()


def test_a_missing_store_directory_is_one_line(tmp_path: Path) -> None:
    proc = bench("run", "--db", str(tmp_path / "nope" / "x.duckdb"), "--requests", "2")
    assert_one_line(proc, "does not exist")


def test_an_unauthorised_endpoint_says_how_to_pass_the_key(
    locked_sim: SimProcess, tmp_path: Path
) -> None:
    proc = bench("run", "--endpoint", locked_sim.base_url, "--db", str(tmp_path / "a.duckdb"))
    assert_one_line(proc, "pass --api-key or set OPENAI_API_KEY")


def test_the_key_from_the_environment_is_used_and_never_stored(
    locked_sim: SimProcess, tmp_path: Path
) -> None:
    db = tmp_path / "k.duckdb"
    proc = bench(
        "run", "--endpoint", locked_sim.base_url, "--db", str(db), "--requests", "4",
        "--output-len", "4", "-q", env={"OPENAI_API_KEY": "s3cret", "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sent 4 = ok 4" in proc.stdout
    assert b"s3cret" not in db.read_bytes()


def test_show_and_runs_on_a_missing_store_or_run_are_one_line(tmp_path: Path) -> None:
    assert_one_line(bench("runs", "--db", str(tmp_path / "none.duckdb")), "no store at")
    db = tmp_path / "one.duckdb"
    ok = bench("run", "--db", str(db), "--requests", "2", "--output-len", "2", "--sim-fast", "-q")
    assert ok.returncode == 0, ok.stderr
    assert_one_line(bench("show", "999", "--db", str(db)), "no run 999")
