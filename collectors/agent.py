"""Power from a GPU host the load generator is not on: a tiny read-only HTTP agent that serves
NVML counter snapshots, and a collector that polls it like a local one.

    GET /snapshot -> {"t_mono_ns": ..., "t_wall_s": ..., "driver_version": ...,
                      "gpus": [{"index", "uuid", "name", "energy_mj", "power_instant_w",
                                "power_avg_w", "power_limit_w"}, ...]}

The agent binds loopback unless told otherwise and can require a bearer token. Values a GPU
does not support are null.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from collectors.base import Clock, Sample
from collectors.nvml import NvmlReader
from collectors.prometheus import BoundedClient
from collectors.threaded import PollingCollector

__all__ = ["AGENT_METRICS", "AgentCollector", "AgentServer", "make_agent_server", "serve_agent"]

AGENT_METRICS = ("energy_mj", "power_instant_w", "power_avg_w", "power_limit_w")


class AgentServer(ThreadingHTTPServer):
    """The agent's HTTP server; `url` is where to poll it. Owns its NvmlReader."""

    daemon_threads = True

    def __init__(self, host: str, port: int, token: str | None, reader: NvmlReader) -> None:
        self.token = token
        self.reader = reader
        self.read_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    def snapshot(self) -> dict[str, object]:
        with self.read_lock:  # one NVML sweep at a time keeps readings per GPU consistent
            for g in self.reader.gpus:
                if g.pending:  # failed when probed at start: try again, do not lose it
                    self.reader.retry_pending(g)
            gpus = [self.reader.snapshot_gpu(g) for g in self.reader.gpus]
        return {
            # The agent's own monotonic clock at the reading: the poller maps it onto its run
            # clock through the offset of its fastest round trip (see AgentCollector._stamp).
            "t_mono_ns": time.monotonic_ns(),
            "t_wall_s": time.time(),
            "driver_version": self.reader.driver_version,
            "gpus": gpus,
        }

    def server_close(self) -> None:
        super().server_close()
        self.reader.close()


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "benchbench-agent"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        token = self.server.token
        if token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self._send(401, {"error": "missing or wrong bearer token"})
                return
        if self.path.split("?", 1)[0] != "/snapshot":
            self._send(404, {"error": "only GET /snapshot is served"})
            return
        try:
            body = self.server.snapshot()
        except Exception as exc:  # noqa: BLE001 - report NVML failure to the poller
            self._send(503, {"error": f"NVML read failed: {exc}"})
            return
        self._send(200, body)

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # polled at 10 Hz: per-request log lines would drown the terminal


def make_agent_server(
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    nvml: Any | None = None,
    gpus: Sequence[int | str] | None = None,
) -> AgentServer:
    """Build (bind, not yet serving) the agent. port=0 picks a free port (see .url).

    Raises NvmlUnavailable (one line) when NVML cannot be used on this host.
    """
    if token == "":
        raise ValueError("agent token must not be empty (omit it for no token)")
    reader = NvmlReader(gpus=gpus, nvml=nvml)
    try:
        return AgentServer(host, port, token, reader)
    except OSError as exc:
        reader.close()
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc


def serve_agent(
    host: str = "127.0.0.1",
    port: int = 9464,
    token: str | None = None,
    nvml: Any | None = None,
    gpus: Sequence[int | str] | None = None,
) -> None:
    """Serve GET /snapshot until interrupted (Ctrl-C)."""
    serve_until_interrupted(make_agent_server(host, port, token, nvml, gpus))


def serve_until_interrupted(server: AgentServer) -> None:
    """Serve a built agent until Ctrl-C, then release its port and NVML."""
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class AgentCollector(PollingCollector):
    """Polls an agent's /snapshot; samples (collector "agent", device = the remote GPU index)
    are stamped with the local run clock at the midpoint of the poll. Metrics: energy_mj,
    power_instant_w, power_avg_w, power_limit_w (those the remote GPU supports).

    A poll may be silent for `timeout_s` and take `total_timeout_s` in all (default: twice
    `timeout_s`, at least 2 s). `label` is the URL as shown and stored, credentials removed
    by the caller."""

    name = "agent"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        interval_s: float = 0.1,
        timeout_s: float = 1.0,
        max_failures: int = 3,
        total_timeout_s: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(interval_s=interval_s, max_failures=max_failures)
        shown = (label or url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"agent URL must start with http:// or https://, got {shown!r}")
        base = url.rstrip("/")
        self.url = base if base.endswith("/snapshot") else base + "/snapshot"
        self.label = shown if shown.endswith("/snapshot") else shown + "/snapshot"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        total = total_timeout_s or max(2.0, 2 * timeout_s)
        self._client = BoundedClient(timeout_s, total, headers)
        self._gpus: list[dict[str, object]] = []
        self._driver: object = None
        self._best_rtt_ns: int | None = None
        self._offset_ns = 0

    def _read(self, clock: Clock, out: list[Sample]) -> None:
        response, sent_ns, arrived_ns = self._client.get_timed(self.url, clock)
        if response.status_code == 401:
            raise RuntimeError(f"agent {self.label} refused the token (HTTP 401)")
        if response.status_code != 200:
            raise RuntimeError(f"agent {self.label} answered HTTP {response.status_code}")
        body = response.json()
        t_ns = self._stamp(body.get("t_mono_ns"), sent_ns, arrived_ns)
        gpus = body["gpus"]
        if not self._gpus:
            self._driver = body.get("driver_version")
            self._gpus = [{k: g.get(k) for k in ("index", "uuid", "name")} for g in gpus]
        for g in gpus:
            device = str(g["index"])
            for metric in AGENT_METRICS:
                value = g.get(metric)
                if value is not None:
                    out.append(Sample(self.name, device, t_ns, metric, float(value)))

    def _stamp(self, remote_ns: object, sent_ns: int, arrived_ns: int) -> int:
        """When the remote reading was taken, on the run clock. Stamping on arrival (or at the
        round trip's midpoint) is off by however long a busy agent or client took to answer,
        which moves the energy read at the window edges; the agent's own monotonic time is
        exact up to one constant, the clock offset, estimated from the fastest round trip
        seen (NTP's rule) and never placed outside this poll's round trip."""
        mid = (sent_ns + arrived_ns) // 2
        if type(remote_ns) is not int:  # an older agent: the midpoint is the best estimate
            return mid
        rtt = arrived_ns - sent_ns
        if self._best_rtt_ns is None or rtt < self._best_rtt_ns:
            self._best_rtt_ns, self._offset_ns = rtt, remote_ns - mid
        return min(max(remote_ns - self._offset_ns, sent_ns), arrived_ns)

    def info(self) -> dict[str, object]:
        """Agent URL; after the first good poll also the remote driver and GPUs, and the clock
        offset's uncertainty (half the fastest round trip)."""
        return {
            "clock_uncertainty_ms": (
                None if self._best_rtt_ns is None else self._best_rtt_ns / 2e6
            ),
            "url": self.label,
            "interval_s": self.interval_s,
            "driver_version": self._driver,
            "gpus": list(self._gpus),
        }

    def _close(self) -> None:
        self._client.close()
