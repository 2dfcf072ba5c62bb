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
        (["--api", "embedings"], "--api"),  # a typo: the known APIs are listed
        (["--header", "no-colon"], "--header must look like 'Name: value'"),
        # Malformed URLs: one line naming the flag, never a traceback from a client.
        (["--endpoint", "http://[::1"], "--endpoint must be an http(s) URL"),
        (["--endpoint", "127.0.0.1:8000/v1"], "--endpoint must be an http(s) URL"),
        (["--endpoint", "http:///v1"], "no host"),
        (["--endpoint", "http://127.0.0.1:99999/v1"], "--endpoint must be an http(s) URL"),
        (["--endpoint", "http://127.0.0.1:port/v1"], "--endpoint must be an http(s) URL"),
        (["--endpoint", "http://127.0.0.1:8000/v1\r\nX: y"], "control characters"),
        (["--scrape", "ftp://127.0.0.1/metrics"], "--scrape must be an http(s) URL"),
        (["--power-agent", "http://[::1"], "--power-agent must be an http(s) URL"),
        # A CR/LF would end the header line and smuggle in another header.
        (["--header", "X-A: b\r\nX-Evil: 1"], "CR, LF"),
        (["--header", "X-A: b\nX-Evil: 1"], "CR, LF"),
        (["--header", "X-A: b\r"], "CR, LF"),
        (["--header", "X A: b"], "not a valid header name"),
        (["--header", "X\r\nEvil: b"], "not a valid header name"),
        (["--request-timeout", "0"], "--request-timeout"),
        (["--timeout", "-1"], "--timeout"),
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


def test_a_password_in_a_malformed_endpoint_is_not_echoed(tmp_path: Path) -> None:
    for endpoint in ("http://user:PASSw0rd@[::1", "http://user:PASSw0rd@127.0.0.1:99999/v1"):
        proc = bench("run", "--db", str(tmp_path / "x.duckdb"), "--endpoint", endpoint)
        assert_one_line(proc, "--endpoint must be an http(s) URL")
        assert "PASSw0rd" not in proc.stderr and "REDACTED" in proc.stderr


def test_cannot_connect_names_the_endpoint_without_its_password(tmp_path: Path) -> None:
    proc = bench(
        "run", "--db", str(tmp_path / "x.duckdb"), "--endpoint", "http://u:PASSw0rd@127.0.0.1:9/v1"
    )
    assert_one_line(proc, "cannot connect to http://REDACTED@127.0.0.1:9/v1")
    assert "PASSw0rd" not in proc.stderr


def test_a_header_value_is_never_echoed_in_its_error(tmp_path: Path) -> None:
    proc = bench(
        "run",
        "--db",
        str(tmp_path / "x.duckdb"),
        "--header",
        "Authorization: Bearer TOKsecret\r\nX: y",
    )
    assert_one_line(proc, "--header Authorization")
    assert "TOKsecret" not in proc.stderr
