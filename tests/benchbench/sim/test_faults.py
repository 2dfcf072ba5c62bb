"""`bench run` against every fault of `bench sim --faults`: each request gets the outcome a
correct client records, the books balance (stored rows == sent == ok + errored + cancelled),
the run completes, and nothing hangs.

Each run happens in a child process, so a client that spins or waits forever fails its test
instead of hanging the suite; children fork from a forkserver that has already imported the
spine, so a run costs milliseconds of start-up rather than a fresh interpreter's 0.6 s. The
fault server runs here, in one background event loop. A new fault in the catalogue gets its
test through the parametrization, with no change here."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from benchbench.config import make_config
from benchbench.execute import run_benchmark
from benchbench.sim import SimConfig, SimConfigError, SimProcess
from benchbench.sim.fault_server import FaultServer, start_faults
from benchbench.sim.faults import FAULTS, OK, Fault, FaultSpecError, parse_faults
from loadgen import errors

REQUESTS = 6
CONCURRENCY = 3
SILENCE_S = 1.0  # --timeout
TOTAL_S = 2.5  # --request-timeout: above SILENCE_S, so a stall is a silence timeout
BOUND_S = 15.0  # a run that takes longer than this hangs
MODEL = "fault-llm"
# Requests that got a final answer or timed out are never resent: the server sees each once.
NEVER_RESENT = {errors.HTTP_SERVER, errors.RATE_LIMITED, errors.AUTH, "redirect", errors.TIMEOUT}

_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(["benchbench.execute", "benchbench.config", "duckdb"])


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What the store holds after one `bench run`, and how long the run took."""

    wall_s: float
    status: str
    outcome: dict[str, int]
    rows: list[dict[str, Any]]

    @property
    def kinds(self) -> Counter[str]:
        return Counter(row["error_kind"] or OK for row in self.rows)


# the fault server, in a background loop ---------------------------------------------------


@pytest.fixture(scope="module")
def server_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault-server", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@contextlib.contextmanager
def serving(loop: asyncio.AbstractEventLoop, spec: str) -> Iterator[FaultServer]:
    start = start_faults(spec, "127.0.0.1", 0, model=MODEL)
    server = asyncio.run_coroutine_threadsafe(start, loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)


# `bench run` in a child process -------------------------------------------------------------


def _run_in_child(kwargs: dict[str, Any], conn: Connection) -> None:
    t0 = time.monotonic()
    try:
        run_benchmark(make_config(**kwargs))
        failure = None
    except BaseException:  # reported to the parent as text: the test shows it
        failure = traceback.format_exc()
    conn.send({"wall_s": time.monotonic() - t0, "failure": failure})


def bench_run(endpoint: str, db: Path, **overrides: Any) -> StoredRun:
    """`bench run` with small settings; fails the test if it does not end within BOUND_S."""
    kwargs: dict[str, Any] = dict(
        endpoint=endpoint,
        db=str(db),
        requests=REQUESTS,
        concurrency=CONCURRENCY,
        input_len="4",
        output_len="8",
        timeout_s=SILENCE_S,
        connect_timeout_s=2.0,
        exact_lengths="off",
        idle_seconds=0,
        nvml=False,
        # The total deadline per request: a trickling server must end within it.
        request_timeout_s=TOTAL_S,
    )
    kwargs.update(overrides)
    receive, send = _FORKSERVER.Pipe(duplex=False)
    child = _FORKSERVER.Process(target=_run_in_child, args=(kwargs, send), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(BOUND_S):
            pytest.fail(f"bench run did not finish within {BOUND_S:g} s: it hangs")
        report = receive.recv()
    finally:
        child.kill()
        child.join(5)
    assert report["failure"] is None, report["failure"]
    return _stored_run(db, report["wall_s"])


def _stored_run(db: Path, wall_s: float) -> StoredRun:
    con = duckdb.connect(str(db), read_only=True)
    try:
        status, extra = con.execute("SELECT status, extra FROM runs").fetchone()
        cols = {r[0] for r in con.execute("DESCRIBE requests").fetchall()}
        notes = "notes" if "notes" in cols else "NULL"
        cur = con.execute(
            f"SELECT idx, error_kind, error_detail, output_tokens, {notes} AS notes, n_events "
            "FROM requests ORDER BY idx"
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    outcome = orjson.loads(extra)["outcome"]
    return StoredRun(wall_s, status, outcome, rows)


# the assertions every fault shares ----------------------------------------------------------


def assert_books_balance(run: StoredRun) -> None:
    o = run.outcome
    assert run.status == "complete", run
    assert len(run.rows) == o["sent"] == REQUESTS, (len(run.rows), o)
    assert o["sent"] == o["ok"] + o["errored"] + o["cancelled"], o
    assert o["ok"] == run.kinds[OK], (o, run.kinds)
    assert o["cancelled"] == 0, o


def assert_fault_outcome(fault: Fault, run: StoredRun) -> None:
    """Every request holds one of the fault's outcomes, with the evidence it promises."""
    wrong = [r for r in run.rows if (r["error_kind"] or OK) not in fault.outcomes]
    assert not wrong, (
        f"{fault.name}: expected {'/'.join(fault.outcomes)} on every request, got "
        f"{dict(run.kinds)}; first wrong: {wrong[0]['error_kind']}: {wrong[0]['error_detail']}"
    )
    if fault.note is not None:
        for row in run.rows:
            assert row["output_tokens"] is None, row
            assert fault.note in (row["notes"] or ""), row
    if fault.detail_names:
        for row in run.rows:
            detail = row["error_detail"] or ""
            assert any(name in detail for name in fault.detail_names), row
    if fault.outcomes == (OK,):
        assert all(row["n_events"] > 0 for row in run.rows), run.rows
    assert run.wall_s < BOUND_S


# one test per fault and variant ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    fault: str
    api: str = "chat"
    stream: bool = True
    # "auto": /tokenize and the chat-template probe (one non-streamed request) come first,
    # and the probe meets the fault too: it must be bounded like every other wait.
    exact_lengths: str = "off"
    transport: str = "raw"

    @property
    def id(self) -> str:
        exact = "-exact" if self.exact_lengths != "off" else ""
        via = f"-{self.transport}" if self.transport != "raw" else ""
        return f"{self.fault}-{self.api}-{'stream' if self.stream else 'body'}{exact}{via}"


CASES = (
    [Case(name) for name in FAULTS]
    + [Case(f.name, stream=False) for f in FAULTS.values() if f.body_fault]
    + [
        Case(name, api="completions")
        for name in ("ok", "choices-ints", "delta-string", "content-number", "usage-negative")
    ]
    + [
        Case(name, exact_lengths="auto")
        for name in ("ok", "stall-after-headers", "trickle", "reset-before-response")
    ]
    + [
        Case(name, transport=transport)
        for transport in ("httpx", "aiohttp")
        for name in (
            "keepalive-lie",
            "continue-100",
            "redirect-302",
            "negative-chunk-size",
            "trickle",
            "garbage-status-line",
            "choices-ints",
        )
    ]
)
PARALLEL_RUNS = 3  # runs at once: most of a run is the spine's fixed cost, not the fault's wait


@dataclass(frozen=True, slots=True)
class CaseResult:
    run: StoredRun | None
    served: int  # generation requests the fault server answered
    failure: str | None


def run_case(loop: asyncio.AbstractEventLoop, case: Case, db: Path) -> CaseResult:
    with serving(loop, case.fault) as server:
        try:
            run = bench_run(
                server.base_url,
                db,
                api=case.api,
                stream=case.stream,
                exact_lengths=case.exact_lengths,
                transport=case.transport,
            )
        except (pytest.fail.Exception, AssertionError) as exc:
            return CaseResult(None, server.served[case.fault], str(exc))
    return CaseResult(run, server.served[case.fault], None)


@pytest.fixture(scope="module")
def case_results(
    request: pytest.FixtureRequest,
    server_loop: asyncio.AbstractEventLoop,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[Case, CaseResult]:
    """Every selected case, PARALLEL_RUNS at a time (so `-k trickle` runs only its own)."""
    selected = {
        item.callspec.params.get("case")
        for item in request.session.items
        if item.path == request.path and hasattr(item, "callspec")
    }
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        futures = {
            case: pool.submit(run_case, server_loop, case, tmp_path_factory.mktemp("f") / "f.db")
            for case in CASES
            if case in selected
        }
    return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_request_is_recorded_as_a_correct_client_would(
    case: Case, case_results: dict[Case, CaseResult]
) -> None:
    fault = FAULTS[case.fault]
    result = case_results[case]
    if result.failure is not None or result.run is None:
        pytest.fail(f"{case.id}: {result.failure}", pytrace=False)
    assert_books_balance(result.run)
    assert_fault_outcome(fault, result.run)
    if set(fault.outcomes) <= NEVER_RESENT and case.exact_lengths == "off":
        assert result.served == REQUESTS, "resent behind the user's back"


def test_bench_sim_faults_serves_a_round_robin_mix_in_its_own_process(tmp_path: Path) -> None:
    with SimProcess(SimConfig(faults="ok,stall-after-headers")) as sim:
        run = bench_run(sim.base_url, tmp_path / "mix.duckdb")
    assert_books_balance(run)
    assert run.kinds == {OK: REQUESTS // 2, errors.TIMEOUT: REQUESTS // 2}


# the catalogue and the spec ----------------------------------------------------------------------


def test_the_catalogue_has_at_least_twenty_faults_each_described_in_one_line() -> None:
    assert len(FAULTS) >= 20
    for name, fault in FAULTS.items():
        assert name == fault.name and name == name.lower() and " " not in name
        assert fault.description and "\n" not in fault.description
        assert fault.outcomes, name


def test_every_outcome_is_ok_or_a_stored_error_kind() -> None:
    known = set(errors.ALL) | {OK}
    for fault in FAULTS.values():
        assert set(fault.outcomes) <= known, (fault.name, fault.outcomes)


def test_a_plain_list_is_round_robin_in_the_order_given() -> None:
    pick = parse_faults("http-500, ok ,trickle").picker()
    assert [pick().name for _ in range(6)] == ["http-500", "ok", "trickle"] * 2


def test_weights_draw_a_seeded_mix_in_proportion() -> None:
    mix = parse_faults("ok:3,http-500:1")
    first, second = mix.picker(seed=7), mix.picker(seed=7)
    names = [first().name for _ in range(4000)]
    assert names == [second().name for _ in range(4000)]  # the seed decides
    assert set(names) == {"ok", "http-500"}
    assert names.count("ok") / 4000 == pytest.approx(0.75, abs=0.03)


def test_all_serves_every_fault() -> None:
    assert [f.name for f in parse_faults("all").faults] == list(FAULTS)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nope", "unknown fault 'nope'"),
        ("ok,", "unknown fault ''"),
        ("ok:0", "positive number"),
        ("ok:x", "positive number"),
        ("ok:-1", "positive number"),
    ],
)
def test_a_bad_spec_is_one_line_that_says_what_to_fix(spec: str, says: str) -> None:
    with pytest.raises(FaultSpecError, match=says) as exc:
        parse_faults(spec)
    assert "\n" not in str(exc.value)
    with pytest.raises(SimConfigError, match=says):
        SimConfig(faults=spec)
