"""A real loopback HTTP server for collector tests, serving whatever page the test sets, and
dcgm-exporter pages that behave like real ones (collect interval, MIG rows)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from tests.collectors.fake_nvml import FakeGpu


class PageServer:
    """Serves `self.body` with `self.status` at any path on 127.0.0.1. While `hold` is set,
    requests wait (up to 5 s) for `release` first, to provoke client timeouts."""

    def __init__(self, body: str = "", status: int = 200) -> None:
        self.body = body
        self.status = status
        self.hits = 0
        self.hold = False
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits += 1
                if owner.hold:
                    owner.release.wait(5.0)
                data = owner.body.encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def dcgm_page(
    gpus: Sequence[FakeGpu],
    t_s: float,
    collect_interval_s: float = 30.0,
    mig_rows: int = 0,
    jitter_mj: int = 0,
) -> str:
    """A dcgm-exporter page as scraped at `t_s`, behaving like the real one: every value is
    as of the exporter's last collection (every `collect_interval_s`, its `-c` flag; 30 s by
    default), however often it is scraped; in MIG mode each GPU's device-level fields
    (energy, power) are repeated on each GPU-instance row (GPU_I_PROFILE, GPU_I_ID labels),
    here with +-`jitter_mj` of disagreement between rows."""
    tc = (t_s // collect_interval_s) * collect_interval_s
    lines = [
        "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).",
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge",
    ]
    energy = [
        "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).",
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
    ]
    for i, gpu in enumerate(gpus):
        base = (
            f'gpu="{i}",UUID="{gpu.uuid}",pci_bus_id="00000000:{24 + i:02X}:00.0",'
            f'device="nvidia{i}",modelName="{gpu.name}",Hostname="gpu-node-07"'
        )
        rows = [base] if mig_rows == 0 else [
            f'{base},GPU_I_PROFILE="1g.10gb",GPU_I_ID="{k}"' for k in range(1, mig_rows + 1)
        ]  # fmt: skip
        for k, labels in enumerate(rows):
            jitter = jitter_mj * (1 if (k + int(t_s)) % 2 else -1)
            lines.append(f"DCGM_FI_DEV_POWER_USAGE{{{labels}}} {gpu.power_w(tc):.3f}")
            energy.append(
                f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{labels}}} {gpu.counter_mj(tc) + jitter}"
            )
    return "\n".join(lines + energy) + "\n"
