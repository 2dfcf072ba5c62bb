"""The polling-thread base shared by the NVML, Prometheus and agent collectors.

A subclass implements `_read(clock, out)`: take one reading, append Samples to `out`, raise on
failure. This base runs it on its own daemon thread at a fixed cadence, buffers samples for
`drain()`, and turns failures into the `degraded` reason instead of raising into the load.
"""

from __future__ import annotations

import threading
import time

from collectors.base import Clock, Sample

__all__ = ["PollingCollector"]


class PollingCollector:
    """Runs `_read` every `interval_s` on a daemon thread; never raises out of the thread.

    Failure policy: the first failed reading sets `degraded` (sticky: the run has a gap even if
    the source recovers); after `max_failures` consecutive failures the thread stops. Samples
    taken before (and between) failures are kept.
    """

    name: str = "polling"

    def __init__(self, interval_s: float, max_failures: int = 3) -> None:
        if not interval_s > 0:
            raise ValueError(f"collector interval must be > 0 s, got {interval_s}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        self.interval_s = interval_s
        self.max_failures = max_failures
        self._clock: Clock = time.monotonic_ns
        self._buf: list[Sample] = []
        self._buf_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._degraded: str | None = None
        self._failures = 0
        self._stopped_by_failure = False
        self._cpu_s = 0.0
        self._polls = 0
        self._stop_read_done = False

    # -- subclass hooks ---------------------------------------------------------------------

    def _read(self, clock: Clock, out: list[Sample]) -> None:
        """Take one reading; append samples stamped with `clock()`; raise on failure."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release resources (called once, on the polling thread or by stop())."""

    # -- the Collector protocol -------------------------------------------------------------

    def attach(self, clock: Clock) -> None:
        """Use `clock` for sample stamps without starting the thread (for poll_once())."""
        self._clock = clock

    def start(self, clock: Clock) -> None:
        if self._thread is not None:
            raise RuntimeError(f"collector {self.name} already started")
        self.attach(clock)
        # One reading now, on the caller's thread, so the run's first edge is covered before
        # any load starts (a thread's first poll can land after the first requests).
        self.poll_once()
        self._thread = threading.Thread(
            target=self._run, name=f"collector-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A reading is bounded by its own timeout; wait a little longer than that.
            thread.join(timeout=max(5.0, 3 * self.interval_s))
        if thread is not None and not self._stop_read_done:
            # And one at the end, so the window's last edge is covered too.
            self._stop_read_done = True
            self.poll_once()
        self._close()

    def drain(self) -> list[Sample]:
        with self._buf_lock:
            out, self._buf = self._buf, []
        return out

    @property
    def degraded(self) -> str | None:
        return self._degraded

    # -- observability of the collector itself ----------------------------------------------

    @property
    def cpu_s(self) -> float:
        """CPU seconds the polling thread has used (time.thread_time inside the thread)."""
        return self._cpu_s

    @property
    def polls(self) -> int:
        """Readings attempted so far (successful or not)."""
        return self._polls

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll_once(self) -> bool:
        """Take one reading now on the caller's thread; True if it succeeded.

        The polling thread calls this; tests call it directly (after attach()) to drive a
        collector deterministically.
        """
        if self._stopped_by_failure:
            return False
        out: list[Sample] = []
        with self._read_lock:
            self._polls += 1
            try:
                self._read(self._clock, out)
                ok = True
                self._failures = 0
            except Exception as exc:  # noqa: BLE001 - any failure becomes data, never a crash
                ok = False
                self._failures += 1
                reason = _one_line(exc)
                if self._degraded is None:
                    self._degraded = reason
                if self._failures >= self.max_failures:
                    self._stopped_by_failure = True
                    self._degraded = (
                        f"stopped after {self._failures} consecutive failures: {reason}"
                    )
        if out:  # samples read before a failure in the same reading are valid
            with self._buf_lock:
                self._buf.extend(out)
        return ok

    def _run(self) -> None:
        t_cpu0 = time.thread_time()
        # start() took the first reading; the thread's first is one interval later.
        deadline = time.monotonic() + self.interval_s
        self._stop.wait(self.interval_s)
        try:
            while not self._stop.is_set():
                self.poll_once()
                self._cpu_s = time.thread_time() - t_cpu0
                if self._stopped_by_failure:
                    break
                # Fixed cadence without drift; if a reading overran, skip the missed ticks
                # rather than bursting to catch up.
                now = time.monotonic()
                deadline += self.interval_s
                if deadline < now:
                    deadline = now + self.interval_s
                self._stop.wait(deadline - now)
        finally:
            self._cpu_s = time.thread_time() - t_cpu0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
