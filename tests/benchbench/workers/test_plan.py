"""Splitting one experiment among workers: the dealt shares are exactly the one schedule."""

from __future__ import annotations

import itertools

import pytest

from benchbench.errors import ConfigError
from benchbench.sections import Load
from benchbench.workers.plan import (
    Dealer,
    check_picklable,
    planned_items,
    resolve_workers,
    shares,
    split_count,
)


def _drain(dealer: Dealer, workers: int, chunk: int) -> list[list[tuple[object, int | None]]]:
    """Each worker asks for chunks in turn (in a shuffled but fixed order) until done."""
    got: list[list[tuple[object, int | None]]] = [[] for _ in range(workers)]
    order = itertools.cycle([2, 0, 1, 1, 0, 2][: 2 * workers] if workers == 3 else range(workers))
    for _ in range(10_000):
        if all(dealer.done_for(w) for w in range(workers)):
            break
        w = next(order) % workers
        got[w].extend(dealer.take(w, chunk))
    return got


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_open_loop_shares_reassemble_into_the_one_schedule(workers: int) -> None:
    offsets = [i * 1_000 + (i * 7919) % 500 for i in range(1_003)]
    items = planned_items(iter(range(1_003)), iter(offsets), None, None)
    got = _drain(Dealer(items, workers, by_position=True), workers, chunk=64)
    for w, share in enumerate(got):
        assert [unit for unit, _ in share] == list(range(w, 1_003, workers))
    merged = sorted(itertools.chain.from_iterable(got), key=lambda pair: pair[0])
    assert merged == list(zip(range(1_003), offsets, strict=True))


def test_the_schedule_ends_at_the_budget_or_the_duration() -> None:
    offsets = itertools.count(0, 10)  # one every 10 ns, without end
    by_budget = list(planned_items(itertools.count(), offsets, 25, None))
    assert [u for u, _ in by_budget] == list(range(25))
    by_time = list(planned_items(itertools.count(), itertools.count(0, 10), None, 100))
    assert [o for _, o in by_time] == list(range(0, 100, 10))


def test_closed_loop_gives_each_request_to_exactly_one_worker() -> None:
    items = planned_items(iter(range(100)), None, 90, None)
    got = _drain(Dealer(items, 3, by_position=False), 3, chunk=7)
    units = sorted(u for share in got for u, _ in share)
    assert units == list(range(90))


def test_a_lost_workers_later_share_is_never_dealt_and_is_counted() -> None:
    items = planned_items(iter(range(100)), iter(range(0, 1000, 10)), None, None)
    dealer = Dealer(items, 2, by_position=True)
    first = dealer.take(1, 10)
    dealer.drop(1)
    rest = dealer.take(0, 1_000)
    assert [u for u, _ in first] == list(range(1, 21, 2))
    assert [u for u, _ in rest] == list(range(0, 100, 2))
    assert dealer.dealt == [50, 10] and dealer.undealt == [0, 40]


def test_closed_loop_splits_concurrency_and_never_starts_idle_workers() -> None:
    parts = shares(4, False, 10, 100, 6, 10_000, sessions=False)
    assert [p.concurrency for p in parts] == [3, 3, 2, 2]
    assert sum(p.warmup for p in parts) == 6
    assert len(shares(4, False, 2, 100, 0, 10_000, sessions=False)) == 2


def test_open_loop_shares_are_the_dealt_positions() -> None:
    parts = shares(3, True, None, 10, 4, 10_000, sessions=False)
    # Positions 0..13; warm-up 0..3. Worker 0: 0,3,6,9,12 (warm-up 0,3).
    assert [(p.max_requests, p.warmup) for p in parts] == [(3, 2), (4, 1), (3, 1)]
    assert sum(split_count(10_000, 3, w) for w in range(3)) == 10_000


def test_workers_auto_without_a_calibration_uses_the_cores_and_says_so(tmp_path) -> None:
    import io

    log = io.StringIO()
    n = resolve_workers(Load(workers="auto"), str(tmp_path / "none.duckdb"), None, log)
    assert n >= 1
    assert "--workers auto" in log.getvalue()
    assert resolve_workers(Load(workers="3"), "x") == 3


def test_workers_auto_takes_the_calibrations_answer() -> None:
    asked: list[tuple[str, float | None, int | None]] = []

    def recommend(path: str, rate: float | None, concurrency: int | None) -> int | None:
        asked.append((path, rate, concurrency))
        return 5

    assert resolve_workers(Load(workers="auto", rate=900.0), "c.duckdb", recommend) == 5
    assert asked == [("c.duckdb", 900.0, None)]


def test_work_that_cannot_be_split_is_a_one_line_error() -> None:
    shared = (i for i in range(3))
    with pytest.raises(ConfigError, match="--workers 1"):
        check_picklable(shared)
