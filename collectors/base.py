"""The collector seam: start(clock) / stop() / samples. Each collector runs beside the load
(own thread), never on the event loop, so it cannot perturb request timing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Clock = Callable[[], int]  # monotonic integer nanoseconds


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value. t_ns is on the run's clock (same origin as request times)."""

    collector: str  # "nvml", "prometheus", "agent", ...
    device: str  # GPU index/uuid, scrape URL, ...
    t_ns: int
    metric: str  # e.g. "energy_mj", "power_w", "power_instant_w", "vllm:num_requests_running"
    value: float


class Collector(Protocol):
    name: str

    def start(self, clock: Clock) -> None: ...

    def stop(self) -> None: ...

    def drain(self) -> list[Sample]:
        """Samples collected since the last drain (the store flushes them during the run)."""
        ...

    @property
    def degraded(self) -> str | None:
        """None while healthy; otherwise why it stopped collecting (kept samples stay valid)."""
        ...

    def info(self) -> dict[str, object]:
        """Static facts stored with the run (GPU names, UUIDs, driver, scrape URLs)."""
        ...
