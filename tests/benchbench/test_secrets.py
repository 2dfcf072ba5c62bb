"""Credentials never leave the process. A password in --endpoint, a token in a --scrape or
--power-agent URL, --api-key, OPENAI_API_KEY, --header values and the agent token are used
to make requests, and appear nowhere a user or a colleague reads: the store (its bytes and
every table), the JSON, the console, `show`, `runs`, the Parquet export and the HTML report."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from benchbench.collect import build_collectors
from benchbench.config import make_config
from benchbench.sim import SimConfig, SimProcess

BENCH = [sys.executable, "-c", "from benchbench.cli import main; main()"]

# Distinctive strings, so a match can only be a leak (an HTML report embeds chart code in
# which a word like "PASS" occurs on its own).
PASSWORD = "PASSw0rd7x"
SCRAPE_TOKEN = "SECRETtok42"
AGENT_PASSWORD = "AGENTpw913"
AGENT_TOKEN = "AGENTtok555"
API_KEY = "sk-APIkey8812"
ENV_KEY = "sk-ENVkey3371"
HEADER_VALUE = "HDRvalue6604"
SECRETS = (PASSWORD, SCRAPE_TOKEN, AGENT_PASSWORD, AGENT_TOKEN, API_KEY, ENV_KEY, HEADER_VALUE)


def bench(*args: str, env_key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["COLUMNS"] = "200"
    if env_key:
        env["OPENAI_API_KEY"] = env_key
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=120, env=env)


@dataclass
class Outputs:
    db: Path
    texts: dict[str, str]  # what each command printed, stdout and stderr together
    files: dict[str, Path]  # exported and reported files


def _ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, f"{what}: {proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outputs]:
    tmp = tmp_path_factory.mktemp("secrets")
    db = tmp / "s.duckdb"
    with SimProcess(SimConfig(fast=True)) as sim:
        port = sim.base_url.rsplit(":", 1)[1].split("/")[0]
        endpoint = f"http://user:{PASSWORD}@127.0.0.1:{port}/v1"
        common = [
            "--endpoint", endpoint,
            "--scrape", f"http://127.0.0.1:{port}/metrics?token={SCRAPE_TOKEN}",
            # Not an agent: the collector degrades, and its error message must be clean too.
            "--power-agent", f"http://agent:{AGENT_PASSWORD}@127.0.0.1:{port}",
            "--power-agent-token", AGENT_TOKEN,
            "--header", f"X-Team-Secret: {HEADER_VALUE}",
            "--requests", "4", "--input-len", "20", "--output-len", "4",
            "--idle-seconds", "0", "--db", str(db),
        ]  # fmt: skip
        texts = {
            "run --json": _ok(bench("run", *common, "--api-key", API_KEY, "--json"), "run --json"),
            "run": _ok(
                bench("run", *common, "--report", str(tmp / "run.html"), env_key=ENV_KEY),
                "run",
            ),
        }
    files = {"run.html": tmp / "run.html", "e.parquet": tmp / "e.parquet", "r.html": tmp / "r.html"}
    for args in (
        ("show", "--db", str(db)),
        ("show", "--db", str(db), "--json"),
        ("show", "1", "--db", str(db), "--json"),
        ("runs", "--db", str(db)),
        ("runs", "--db", str(db), "--json"),
        ("export", "latest", "--db", str(db), "--output", str(files["e.parquet"])),
        ("report", "--db", str(db), "--output", str(files["r.html"])),
    ):
        texts[" ".join(args)] = _ok(bench(*args), " ".join(args))
    yield Outputs(db, texts, files)


def _table_texts(con: duckdb.DuckDBPyConnection, relations: list[str]) -> str:
    return "\n".join(repr(con.execute(f"SELECT * FROM {r}").fetchall()) for r in relations)


def test_the_runs_used_the_credentials_and_stored_their_redacted_form(outputs: Outputs) -> None:
    con = duckdb.connect(str(outputs.db), read_only=True)
    try:
        rows = con.execute("SELECT endpoint, status FROM runs ORDER BY run_id").fetchall()
        ok = con.execute("SELECT count(*) FROM requests WHERE error_kind IS NULL").fetchone()
    finally:
        con.close()
    assert [r[1] for r in rows] == ["complete", "complete"]
    assert all("REDACTED@127.0.0.1" in str(r[0]) for r in rows)
    assert ok == (8,)  # every request got through: the password was used, not dropped


def test_no_secret_in_the_store_bytes_or_any_table(outputs: Outputs) -> None:
    raw = outputs.db.read_bytes()
    con = duckdb.connect(str(outputs.db), read_only=True)
    try:
        sql = "SELECT table_name FROM information_schema.tables"
        tables = [t for (t,) in con.execute(sql).fetchall()]
        dumped = _table_texts(con, tables)
    finally:
        con.close()
    assert "REDACTED" in dumped
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
        assert secret not in dumped, secret


def test_no_secret_printed_by_any_command(outputs: Outputs) -> None:
    assert "REDACTED@127.0.0.1" in outputs.texts["run"]  # the console header shows the URL
    for command, text in outputs.texts.items():
        for secret in SECRETS:
            assert secret not in text, (command, secret)


def test_no_secret_in_the_parquet_export_or_the_html_reports(outputs: Outputs) -> None:
    for name, path in outputs.files.items():
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (name, secret)
    # Parquet pages may be compressed: read the values back too.
    con = duckdb.connect()
    try:
        dumped = _table_texts(con, [f"read_parquet('{outputs.files['e.parquet']}')"])
    finally:
        con.close()
    for secret in SECRETS:
        assert secret not in dumped, secret


def test_collectors_store_and_report_a_credential_free_url() -> None:
    cfg = make_config(
        scrape=(f"http://u:{PASSWORD}@127.0.0.1:9/metrics?token={SCRAPE_TOKEN}",),
        power_agent=f"http://a:{AGENT_PASSWORD}@127.0.0.1:9",
        power_agent_token=AGENT_TOKEN,
        nvml=False,
    )
    cs = build_collectors(cfg.collect, cfg.target)
    for c in cs.collectors:
        c.attach(lambda: 0)
        assert not c.poll_once()  # nothing listens on port 9
    info = repr(cs.info())
    assert "REDACTED" in info
    for secret in SECRETS:
        assert secret not in info, secret
    for c in cs.collectors:
        c.stop()


def test_the_stored_config_has_no_credentials() -> None:
    cfg = make_config(
        endpoint=f"http://user:{PASSWORD}@127.0.0.1:9/v1",
        scrape=(f"http://127.0.0.1:9/metrics?access_token={SCRAPE_TOKEN}",),
        power_agent=f"http://a:{AGENT_PASSWORD}@127.0.0.1:9",
        power_agent_token=AGENT_TOKEN,
        api_key=API_KEY,
        headers={"X-Team-Secret": HEADER_VALUE},
    )
    stored = repr(cfg.public_dict())
    for secret in SECRETS:
        assert secret not in stored, secret
    assert cfg.target.endpoint == f"http://user:{PASSWORD}@127.0.0.1:9/v1"  # still used to connect
