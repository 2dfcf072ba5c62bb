"""SimProcess: the simulator in its own process, so it never shares the client's
CPU or event loop. The child is `python -m benchbench.sim --port 0 ...`; it prints
its port as one JSON line on stdout and exits when its stdin closes, so it dies
with its parent even when the parent is SIGKILLed."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import fields
from types import TracebackType

import httpx

from benchbench.sim.address import ServedAt
from benchbench.sim.config import SimConfig


class SimProcessError(RuntimeError):
    """The simulator process failed to start."""


def config_args(config: SimConfig) -> list[str]:
    """Command-line flags of `bench sim` / `python -m benchbench.sim` for `config`."""
    args: list[str] = []
    for field in fields(config):
        value = getattr(config, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            args += [flag, str(value)]
    return args


class SimProcess(ServedAt):
    """`with SimProcess(SimConfig(fast=True)) as sim: ... sim.base_url ...`"""

    def __init__(
        self,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.config = config if config is not None else SimConfig()
        self.host = host
        self.port = port
        self._requested_port = port
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> SimProcess:
        if self._proc is not None:
            raise SimProcessError("SimProcess already started")
        cmd = [sys.executable, "-m", "benchbench.sim", "--host", self.host]
        cmd += ["--port", str(self._requested_port), "--exit-on-stdin-eof"]
        cmd += config_args(self.config)
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, close_fds=True
        )
        self._proc = proc
        # Kills the child if this object is dropped or the interpreter exits un-stopped.
        self._finalizer = weakref.finalize(self, _terminate, proc, self.stop_timeout_s)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            self.port = self._read_port(proc, deadline)
            self._wait_healthy(deadline)
        except BaseException as exc:
            self.stop()
            stderr.seek(0)
            tail = stderr.read()[-2000:].decode(errors="replace").strip()
            if isinstance(exc, SimProcessError):
                raise SimProcessError(f"{exc}{': ' + tail if tail else ''}") from None
            raise
        finally:
            stderr.close()
        return self

    def stop(self) -> None:
        """Stop the child (stdin EOF + SIGTERM, SIGKILL after stop_timeout_s)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_port(self, proc: subprocess.Popen[bytes], deadline: float) -> int:
        assert proc.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SimProcessError(f"sim did not report its port within {self.start_timeout_s}s")
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            data = proc.stdout.read1(4096)
            if not data:
                raise SimProcessError(f"sim exited during start (code {proc.wait()})")
            line += data
        try:
            return int(json.loads(line.splitlines()[0])["port"])
        except (ValueError, KeyError) as exc:
            raise SimProcessError(f"sim printed an unexpected ready line {line!r}") from exc

    def _wait_healthy(self, deadline: float) -> None:
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    if client.get(f"{self.root_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SimProcessError("sim did not answer /health in time")
                time.sleep(0.02)


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    if proc.poll() is None:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()
