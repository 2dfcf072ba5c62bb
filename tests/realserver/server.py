"""Start and stop a real llama.cpp `llama-server` on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["LlamaServer", "LlamaServerError"]


class LlamaServerError(RuntimeError):
    """llama-server did not come up; the message carries the tail of its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """`with LlamaServer(binary, model) as server:` serves `model` at `server.base_url`.

    `-kvu` (one unified KV cache) lets any slot use the whole context instead of ctx/slots;
    `--metrics` enables the Prometheus endpoint at `root_url + "/metrics"`.
    """

    def __init__(
        self,
        binary: Path,
        model_path: Path,
        *,
        model_name: str = "benchbench-random",
        tokenizer_path: Path | None = None,
        slots: int = 4,
        threads: int = 2,
        context: int = 4096,
        extra_args: tuple[str, ...] = (),
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.binary = Path(binary)
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.tokenizer_path = tokenizer_path
        self.slots = slots
        self.threads = threads
        self.context = context
        self.extra_args = extra_args
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what `bench run --endpoint` takes)."""
        return f"{self.root_url}/v1"

    @property
    def command(self) -> list[str]:
        return [
            str(self.binary),
            "-m", str(self.model_path),
            "-a", self.model_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-c", str(self.context),
            "-np", str(self.slots),
            "-kvu",
            "-t", str(self.threads),
            "--metrics",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> LlamaServer:
        if not self.binary.is_file():
            raise LlamaServerError(f"no llama-server binary at {self.binary}")
        if not self.model_path.is_file():
            raise LlamaServerError(f"no model file at {self.model_path}")
        # The port is free now; llama-server binds it a moment later. A race with another
        # process is possible but rare on loopback, and shows up as a clear startup error.
        self.port = _free_port()
        # A file, not a pipe: a pipe nobody reads would fill and block the server's logging.
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    raise LlamaServerError(
                        f"llama-server exited with code {code} while starting; "
                        f"last lines of its log:\n{self.log_tail()}"
                    )
                try:
                    # 503 while the model loads, 200 once it can serve.
                    if client.get(f"{self.root_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                # Polling a local process: short waits bounded by the deadline above.
                time.sleep(0.05)
        raise LlamaServerError(
            f"llama-server not healthy after {self.startup_timeout_s:.0f} s; "
            f"last lines of its log:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        if self._log is None:
            return "(no log)"
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
