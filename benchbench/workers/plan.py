"""How one experiment is split among workers: how many, and each one's share.

Open loop (and trace replay): the one schedule is dealt round-robin by position, so worker w
sends requests w, w+N, w+2N, ... at their intended times: each share of a Poisson schedule is
itself Poisson-like, and together the shares are exactly the schedule. Closed loop: the
concurrency and the warm-up are split, and requests go to whichever worker asks next (as the
one-process runner's coroutines share one iterator). Sessions are dealt whole."""

from __future__ import annotations

import itertools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchbench.errors import ConfigError
from benchbench.sections import Load

# A worker asks for more work when it holds fewer than this many items, and gets this many.
FEED_CHUNK = 512


def split_count(total: int, workers: int, worker: int) -> int:
    """Worker `worker`'s part of `total` split as evenly as can be (the first get one more)."""
    return total // workers + (1 if worker < total % workers else 0)


def dealt_positions(total: int, workers: int, worker: int) -> range:
    """Positions of the schedule dealt to `worker` (round-robin)."""
    return range(worker, total, workers)


# `bench calibrate`'s answer to `--workers auto` (benchbench.calibrate.recommended_workers):
# (store path, rate, concurrency) -> workers, or None when nothing is calibrated. It is handed
# in by the face (RunPlan.recommend_workers): the run's flow never imports the calibration,
# which itself runs measured runs.
Recommend = Callable[[str, float | None, int | None], int | None]


def resolve_workers(
    load: Load, store_path: str, recommend: Recommend | None = None, log: Any = None
) -> int:
    """The number of workers `--workers` asks for; `auto` asks the calibration, else uses
    the usable cores minus one (one is the coordinator's)."""
    if load.workers != "auto":
        return int(load.workers)
    recommended = recommend(store_path, load.rate, load.concurrency) if recommend else None
    if recommended is not None:
        return max(1, int(recommended))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = max(1, (cores or 1) - 1)
    print(
        f"--workers auto: no calibration stored, using {n} worker(s) (usable cores minus one);"
        " run `bench calibrate` to measure this machine",
        file=log or sys.stderr,
    )
    return n


@dataclass(frozen=True, slots=True)
class Share:
    """One worker's part of the run, as the runner's LoadPlan takes it."""

    worker: int
    concurrency: int | None  # closed loop: this worker's requests in flight
    max_requests: int | None  # measured requests (an upper bound when dealt on demand)
    warmup: int
    in_flight_limit: int
    # Items it asks for at a time, and holds at least before asking again. Closed loop keeps
    # this near its concurrency, so a budget is shared among the workers as they free up.
    feed_chunk: int = FEED_CHUNK


def shares(
    workers: int, open_loop: bool, concurrency: int | None, budget: int | None, warmup: int,
    in_flight: int, sessions: bool,
) -> list[Share]:  # fmt: skip
    """Each worker's share. Closed loop with fewer users than workers starts only as many
    workers as there are users."""
    if not open_loop:
        workers = min(workers, concurrency or 1)
    out = []
    for w in range(workers):
        limit = max(1, split_count(in_flight, workers, w))
        if open_loop and not sessions:
            # Dealt by position: exactly its positions, the first ones of them the warm-up.
            total = None if budget is None else budget + warmup
            n_total = None if total is None else len(dealt_positions(total, workers, w))
            n_warm = len(dealt_positions(warmup, workers, w))
            n = None if n_total is None else n_total - n_warm
            out.append(Share(w, None, n, n_warm, limit, FEED_CHUNK))
            continue
        conc = None if open_loop else split_count(concurrency or 1, workers, w)
        n = None if budget is None else split_count(budget, workers, w)
        if not sessions and budget is not None:
            n = budget  # requests are handed out on demand: the dealer holds the budget
        chunk = FEED_CHUNK if conc is None else max(4, 2 * conc)
        out.append(Share(w, conc, n, split_count(warmup, workers, w), limit, chunk))
    return out


class Dealer:
    """Hands the planned work to workers as they ask: `(item, offset_ns | None)` pairs, where
    an item is a RequestSpec or a whole session. Open loop deals by position to the worker
    it belongs to; closed loop gives the next items to whoever asks."""

    def __init__(self, items: Iterator[tuple[Any, int | None]], workers: int, by_position: bool):
        self._items = items
        self._workers = workers
        self._by_position = by_position
        self._pending: list[deque[tuple[Any, int | None]]] = [deque() for _ in range(workers)]
        self._position = 0
        self.exhausted = False
        self.dealt = [0] * workers
        self.undealt = [0] * workers  # planned items of lost workers, never handed out
        self._dropped: set[int] = set()

    def take(self, worker: int, n: int) -> list[tuple[Any, int | None]]:
        """Up to n items for `worker`; fewer (maybe none) once the work has run out."""
        if not self._by_position:
            got = list(itertools.islice(self._items, n))
            self.exhausted = self.exhausted or len(got) < n
        else:
            mine = self._pending[worker]
            while len(mine) < n and not self.exhausted:
                item = next(self._items, None)
                if item is None:
                    self.exhausted = True
                    break
                owner = self._position % self._workers
                self._position += 1
                if owner in self._dropped:
                    self.undealt[owner] += 1
                else:
                    self._pending[owner].append(item)
            got = [mine.popleft() for _ in range(min(n, len(mine)))]
        self.dealt[worker] += len(got)
        return got

    def done_for(self, worker: int) -> bool:
        """Nothing more will come for `worker`."""
        return self.exhausted and not self._pending[worker]

    def drop(self, worker: int) -> None:
        """A lost worker's share from now on is never sent (counted in `undealt`)."""
        self.undealt[worker] += len(self._pending[worker])
        self._pending[worker].clear()
        self._dropped.add(worker)


def planned_items(
    work: Any, arrivals: Iterator[int] | None, total: int | None, duration_ns: int | None
) -> Iterator[tuple[Any, int | None]]:
    """What the dealer hands out, in order: specs (or sessions) with their intended offsets,
    ending at the run's budget or (open loop) where the schedule reaches the duration."""
    from loadgen.load import SessionSource

    if isinstance(work, SessionSource):
        units: Iterator[Any] = iter(work.new_session, None)
    else:
        units = work
    if arrivals is None:
        pairs: Iterator[tuple[Any, int | None]] = ((u, None) for u in units)
    else:
        pairs = zip(units, arrivals, strict=False)
        if duration_ns is not None:
            pairs = itertools.takewhile(lambda p: p[1] is not None and p[1] < duration_ns, pairs)
    if total is not None and not isinstance(work, SessionSource):
        pairs = itertools.islice(pairs, total)
    return pairs


def check_picklable(item: Any) -> None:
    """A unit of work must travel to another process; think-time users share one stream and
    cannot be split."""
    import pickle

    try:
        pickle.dumps(item)
    except Exception:
        raise ConfigError(
            "this workload cannot be split among workers (its users share one request "
            "stream, e.g. --think-time without --session-turns); run it with --workers 1"
        ) from None


def plan_workers(load: Load, store_path: str, work: Any, recommend: Recommend | None = None) -> int:
    """How many workers the run uses, checked before anything starts: Ray installed when
    asked for, and the work splittable when there is more than one worker."""
    if load.ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'benchbench[ray]'") from None
    n = resolve_workers(load, store_path, recommend)
    from loadgen.load import SessionSource

    if (n > 1 or load.ray) and isinstance(work, SessionSource):
        check_picklable(work)
    return n
