"""Workers as local processes (`bench run --workers N`): spawned (never forked: the
coordinator holds a DuckDB connection, threads and an event loop), each talking to the
coordinator over one pipe of pickled messages.

Pickle or Arrow: measured on the shared 2-core machine, 1,000 finished records of 128 token
events each pickle in ~8 ms and unpickle in ~11 ms (0.9 MB); building an Arrow IPC batch of
the same records takes ~7.5 ms and reading it back into records ~6 ms, for only part of
their fields (1.1 MB). About even, and the store's writer takes RequestRecords, so records
travel pickled. The coordinator's unpickling (~11 us per 128-event record) bounds what one
coordinator can take in: ~90k such records/s of one core."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchbench.workers.body import WorkerBody, WorkerSetup, node_info

Deliver = Callable[[tuple[Any, ...]], None]


def _serve(conn: Connection, body: WorkerBody, send: Callable[[tuple[Any, ...]], None]) -> None:
    """The worker's reader thread: the coordinator's messages, until bye or a closed pipe
    (the coordinator is gone: stop)."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            body.stop()
            return
        kind = msg[0]
        if kind == "feed":
            body.feed.put(msg[1], msg[2])
        elif kind == "go":
            body.go(msg[1])
        elif kind == "stop":
            body.stop()
        elif kind == "ping":
            send(("pong", body.w, msg[1], body.clock()))
        elif kind == "bye":
            body.stop()  # a worker still waiting for its go ends too
            return


def process_main(conn: Connection, setup: WorkerSetup) -> None:
    """A worker process's entry point."""
    # Ctrl-C reaches the whole process group: only the coordinator decides to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with lock, contextlib.suppress(OSError):
            conn.send(msg)

    body = WorkerBody(setup, send)
    reader = threading.Thread(target=_serve, args=(conn, body, send), daemon=True)
    reader.start()
    body.run(node_info())
    reader.join(timeout=30)  # the coordinator's closing pings, then bye


class ProcessLink:
    """The coordinator's end of one worker process."""

    remote = False

    def __init__(self, setup: WorkerSetup, context: str = "spawn") -> None:
        ctx = multiprocessing.get_context(context)
        self.w = setup.share.worker
        self._conn, child = ctx.Pipe()
        self._child = child
        self.process = ctx.Process(
            target=process_main, args=(child, setup), daemon=True, name=f"bench-worker-{self.w}"
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        self.process.start()
        self._child.close()

    def send(self, msg: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(msg)

    def attach(self, deliver: Deliver, lost: Callable[[int, str], None]) -> None:
        """Messages and the process's end, handled on the coordinator's event loop."""
        loop = self._loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                while self._conn.poll():
                    deliver(self._conn.recv())
            except (EOFError, OSError):
                loop.remove_reader(self._conn.fileno())

        def ended() -> None:
            loop.remove_reader(self.process.sentinel)
            readable()  # what it sent before it ended comes first
            # Its sentinel is ready, so it has ended: reap it, or exitcode may still be None.
            self.process.join(1.0)
            code = self.process.exitcode
            lost(self.w, f"process {self.pid} ended (exit code {code})")

        loop.add_reader(self._conn.fileno(), readable)
        loop.add_reader(self.process.sentinel, ended)

    def detach(self) -> None:
        """No more messages handled (on the coordinator's loop, before close)."""
        if self._loop is not None:
            for fd in (self._conn.fileno(), self.process.sentinel):
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(fd)

    def close(self, timeout_s: float = 10.0) -> None:
        """Bye, and wait for the process to end (on a thread: it may take a moment)."""
        if self.process.pid is None:  # never started (an earlier worker's start failed)
            self._conn.close()
            return
        self.send(("bye",))
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._conn.close()
