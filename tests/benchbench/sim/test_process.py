"""SimProcess: the sim in its own process, started, found, and always stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from benchbench.sim import SimConfig, SimProcess, SimProcessError, config_args


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_starts_on_a_free_port_serves_and_stops_cleanly() -> None:
    config = SimConfig(fast=True, model="proc-model", api_key="k")
    with SimProcess(config) as sim:
        assert sim.port > 0 and sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
        headers = {"Authorization": "Bearer k"}
        models = httpx.get(f"{sim.base_url}/models", headers=headers).json()
        assert models["data"][0]["id"] == "proc-model"
        payload = {"prompt": "a b", "max_tokens": 4}
        r = httpx.post(f"{sim.base_url}/completions", json=payload, headers=headers)
        assert r.json()["usage"]["completion_tokens"] == 4
        pid = sim.pid
        assert pid is not None
    assert not _alive(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.root_url}/health")


def test_flags_round_trip_every_config_field() -> None:
    config = SimConfig(seed=5, fast=True, api_key="x", error_rate=0.5, error_status=429)
    args = config_args(config)
    assert args[args.index("--seed") + 1] == "5"
    assert "--fast" in args and "--api-key" in args
    assert args[args.index("--error-status") + 1] == "429"
    assert "--api-key" not in config_args(SimConfig())


def test_a_child_that_cannot_start_is_a_clear_error() -> None:
    with socket_in_use() as port:
        with pytest.raises(SimProcessError, match="exited during start"):
            SimProcess(SimConfig(fast=True), port=port, start_timeout_s=10).start()


def test_the_child_exits_when_its_parent_dies() -> None:
    # A parent that starts a sim and is then SIGKILLed, never running its cleanup.
    code = (
        "from benchbench.sim import SimProcess, SimConfig\n"
        "s = SimProcess(SimConfig(fast=True)).start()\n"
        "print(s.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child_pid)


class socket_in_use:
    """A port bound (and listening) by us, so the child's bind fails."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        return self._sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
