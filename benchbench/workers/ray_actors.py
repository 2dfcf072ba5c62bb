"""Workers as Ray actors (`bench run --ray ADDRESS|auto --workers N`): the same worker body
as a local process, placed by Ray across the cluster's nodes (SPREAD, one CPU each). Ray does
the placement, the transport (the actor's messages come back as pickled lists, polled every
20 ms) and the failure detection (a dead actor or node raises on the next poll: the worker
is lost). Nothing here is a protocol of its own.

Order: the actor runs one call at a time (max_concurrency=1), and Ray runs one caller's calls
to an actor in the order they were made, so feeds arrive in schedule order. No call blocks:
the worker's event loop runs on a thread of its own inside the actor."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from benchbench.errors import ConfigError, RunError
from benchbench.workers.body import WorkerBody, WorkerSetup, node_info

POLL_S = 0.02
Deliver = Callable[[tuple[Any, ...]], None]


class WorkerActor:
    """The Ray actor's class (wrapped with ray.remote when used)."""

    def __init__(self, setup: WorkerSetup) -> None:
        self._lock = threading.Lock()
        self._outbox: list[tuple[Any, ...]] = []
        self._w = setup.share.worker
        self._body = WorkerBody(setup, self._send)
        self._thread: threading.Thread | None = None

    def _send(self, msg: tuple[Any, ...]) -> None:
        with self._lock:
            self._outbox.append(msg)

    def start(self) -> None:
        import ray

        info = {**node_info(), "node_id": ray.get_runtime_context().get_node_id()}
        self._thread = threading.Thread(target=self._body.run, args=(info,), daemon=True)
        self._thread.start()

    def feed(self, items: list[Any], exhausted: bool) -> None:
        self._body.feed.put(items, exhausted)

    def go(self, origin_ns: int) -> None:
        self._body.go(origin_ns)

    def stop(self) -> None:
        self._body.stop()

    def ping(self, t0: int) -> tuple[Any, ...]:
        return ("pong", self._w, t0, self._body.clock())

    def drain(self) -> list[tuple[Any, ...]]:
        with self._lock:
            out, self._outbox = self._outbox, []
        return out


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` (or `auto`: the one this machine is part of);
    returns whether this call connected (and so should disconnect)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'benchbench[ray]'") from None
    if ray.is_initialized():
        return False
    _reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RunError(f"--ray {address}: could not join the Ray cluster: {exc}") from None
    return True


def _reachable(address: str) -> None:
    """A head's host:port that nothing answers on fails at once (Ray itself waits minutes)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise RunError(
            f"--ray {address}: could not join the Ray cluster: nothing answers there ({exc}); "
            "start its head with `ray start --head`, or give --ray auto on a cluster node"
        ) from None


def ray_links(address: str, setups: list[WorkerSetup]) -> tuple[list[RayLink], bool]:
    """One actor per worker, and whether this run joined the cluster (and so leaves it)."""
    import ray

    owned = connect(address)
    actor_cls = ray.remote(WorkerActor)
    return [RayLink(actor_cls, setup) for setup in setups], owned


def disconnect() -> None:
    import ray

    ray.shutdown()


class RayLink:
    """The coordinator's end of one worker actor."""

    remote = True

    def __init__(self, actor_cls: Any, setup: WorkerSetup) -> None:
        self.w = setup.share.worker
        self.actor = actor_cls.options(
            scheduling_strategy="SPREAD", num_cpus=1, max_concurrency=1
        ).remote(setup)
        self.pid: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliver: Deliver | None = None

    def start(self) -> None:
        self.actor.start.remote()

    def send(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "feed":
            self.actor.feed.remote(msg[1], msg[2])
        elif kind == "go":
            self.actor.go.remote(msg[1])
        elif kind == "stop":
            self.actor.stop.remote()
        elif kind == "ping":
            self._spawn(self._ping(msg[1]))

    async def _ping(self, t0: int) -> None:
        with contextlib.suppress(Exception):
            pong = await self.actor.ping.remote(t0)
            if self._deliver is not None:
                self._deliver(pong)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def attach(self, deliver: Deliver, lost: Callable[[int, str], None]) -> None:
        self._deliver = deliver
        self._spawn(self._poll(deliver, lost))

    async def _poll(self, deliver: Deliver, lost: Callable[[int, str], None]) -> None:
        import ray

        while True:
            try:
                messages = await self.actor.drain.remote()
            except ray.exceptions.RayError as exc:
                lost(self.w, f"Ray actor failed: {type(exc).__name__}: {str(exc)[:200]}")
                return
            for msg in messages:
                deliver(msg)
            await asyncio.sleep(POLL_S)

    def detach(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def close(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self.actor)
