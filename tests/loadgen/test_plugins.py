"""Third-party adapters: the README's example adapter, built into a wheel and installed in a
temporary directory, is found through the `benchbench.adapters` entry points, listed by
`bench apis`, and runs against the simulator, by the library and by `bench run --api`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from loadgen import apis
from loadgen.apis import AdapterOptions, UnknownApi, check_name, known, make_endpoint
from loadgen.client import HttpSettings, make_client
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec

README = Path(__file__).parents[2] / "README.md"
NAME = "my-completions"


def readme_adapter() -> str:
    """The Python block of README's "Writing an adapter" section: the code users copy."""
    text = README.read_text()
    section = text[text.index("## Writing an adapter") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's 'Writing an adapter' section shows the adapter's code"
    return match.group(1)


def build_wheel(tmp: Path) -> Path:
    """A wheel (PEP 427: a zip with a .dist-info) of the README's adapter module."""
    files = {
        "my_adapter.py": readme_adapter().encode(),
        "my_adapter-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: my-adapter\n"
        b"Version: 1.0\n",
        "my_adapter-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        "my_adapter-1.0.dist-info/entry_points.txt": b"[benchbench.adapters]\n"
        + f"{NAME} = my_adapter:MyEndpoint\n".encode(),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("my_adapter-1.0.dist-info/RECORD,,")
    files["my_adapter-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = tmp / "my_adapter-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed with pip into its own directory (not the project's venv)."""
    tmp = tmp_path_factory.mktemp("plugin")
    wheel = build_wheel(tmp)
    target = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed))  # also invalidates the import caches
    return installed


def test_an_installed_adapter_is_found_by_its_entry_point(on_path: Path) -> None:
    assert check_name(NAME) == NAME
    info = apis.lookup(NAME)
    assert (info.plugin, info.shape, info.at_root) == (True, "completions", True)
    assert info.summary.startswith("example plugin")
    assert NAME in known() and list(known())[0] == "chat"  # built-ins first


def test_without_it_the_name_is_unknown_and_the_error_lists_the_known() -> None:
    with pytest.raises(UnknownApi, match=r"unknown API 'my-completions'; use one of: chat, "):
        check_name(NAME)


def test_the_plugin_runs_against_the_simulator(on_path: Path) -> None:
    from benchbench.sim import SimConfig, start_sim

    async def go() -> list[RequestRecord]:
        sim = await start_sim(SimConfig(decode_base_ms=0.5, prefill_base_ms=0.5))
        client = make_client(HttpSettings(base_url=sim.root_url), time.monotonic_ns)
        records: list[RequestRecord] = []
        endpoint = make_endpoint(NAME, AdapterOptions(model=SimConfig().model))
        runner = Runner(client, endpoint, time.monotonic_ns, records.append)
        specs = [RequestSpec(i, prompt="a b c d", max_tokens=6) for i in range(4)]
        try:
            await asyncio.wait_for(
                runner.run(iter(specs), LoadPlan(concurrency=2, max_requests=4)), 20
            )
        finally:
            await client.aclose()
            await sim.stop()
        return records

    records = asyncio.run(go())
    assert [(r.error_kind, r.output_tokens, r.input_tokens) for r in records] == [(None, 6, 4)] * 4
    assert all(len(r.event_ns) == 6 for r in records)


def _bench(installed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run(
        [sys.executable, "-m", "benchbench.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_bench_apis_lists_it(installed: Path) -> None:
    done = _bench(installed, "apis", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows[NAME]["source"] == "plugin my_adapter:MyEndpoint"
    assert {"responses", "messages", "llamacpp", "tgi", "ollama-chat"} <= set(rows)


def test_bench_run_finds_and_runs_it(installed: Path, tmp_path: Path) -> None:
    db = tmp_path / "plugin.duckdb"
    done = _bench(
        installed, "run", "--api", NAME, "--requests", "6", "--concurrency", "2",
        "--output-len", "8", "--db", str(db), "--sim-fast",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"sent 6 = ok 6 \+ errored 0", done.stdout), done.stdout[-2000:]


def test_a_broken_plugin_is_one_clear_line(tmp_path: Path) -> None:
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[benchbench.adapters]\nbroken = no_such_module:X\n")
    done = _bench(tmp_path, "run", "--api", "broken", "--requests", "1")
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines and "broken" in lines[-1] and "cannot load no_such_module:X" in lines[-1]
    assert "Traceback" not in done.stderr
