"""SIGTERM handled as SIGINT for the whole of a run, so `kill` and Ctrl-C end a run the same
way: sending stops, what is in flight is recorded as cancelled, the run is "interrupted"."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

_STOPPING = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """While requests are sent, SIGINT and SIGTERM stop the runner (benchbench.runloop counts
    them here). Outside that phase (the simulator starting, /tokenize and /models, the writes
    after the run) SIGTERM is passed on as SIGINT, so it takes the same path as Ctrl-C:
    KeyboardInterrupt, also out of a nested asyncio.run, and the run (if it exists yet) gets
    its final status. Only the main thread may install signal handlers; a run started from
    another thread keeps the process's handlers."""

    def __init__(self) -> None:
        self.count = 0  # signals received while requests were being sent
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> Signals:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, self._previous)

    def catch_on_loop(self, stop: Callable[[], None]) -> None:
        """While requests are sent (inside the running event loop): SIGINT and SIGTERM are
        counted and call `stop`, which stops sending and keeps every record."""

        def on_signal() -> None:
            self.count += 1
            stop()

        loop = asyncio.get_running_loop()
        for sig in _STOPPING:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)

    def release_loop(self) -> None:
        """Sending is over: the loop's handlers go, and SIGTERM is SIGINT again."""
        loop = asyncio.get_running_loop()
        for sig in _STOPPING:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        self.install()

    def install(self) -> None:
        """(Re)install the SIGTERM handler: closing an event loop resets it."""
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signal.SIGTERM)
        if not self._installed:
            self._previous, self._installed = current, True
        # A handler installed by someone else (an embedding application) is theirs.
        if current in (signal.SIG_DFL, self._as_sigint):
            signal.signal(signal.SIGTERM, self._as_sigint)

    @staticmethod
    def _as_sigint(signum: int, frame: object) -> None:
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
            raise KeyboardInterrupt  # SIGINT ignored (a background job): stop all the same
        signal.raise_signal(signal.SIGINT)
