"""One measured run, from plan to summary: `execute(plan)`. Read this function to learn the
whole flow; `bench run`, `--repeat`, sweeps and `bench search` all call it.

    plan traffic -> reach the target -> open the store -> start collectors -> drive load
    -> close (the books) -> summarise

Every exit leaves the run with a final status: SIGTERM is handled as SIGINT (sending stops,
what is in flight is recorded as cancelled, status "interrupted"); an exception after the run
was created marks it "interrupted" or "failed", with what was measured kept. Only a process
killed outright leaves it "running" (later seen as "abandoned")."""

from __future__ import annotations

import contextlib
import platform
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchbench import __version__, books
from benchbench.collect import build_collectors
from benchbench.config import RunConfig
from benchbench.errors import ConfigError
from benchbench.metrics import RunSummary, parse_slos, summarize
from benchbench.results import Books, Outcome, RunResults, write_results
from benchbench.runloop import Clock, Driven, LiveCallback, LoadDriver
from benchbench.settle import run_results, validate_prices
from benchbench.signals import Signals
from benchbench.store import BatchWriter, PeriodicCheckpoint, Store, open_store
from benchbench.target import TargetLink
from benchbench.traffic import Traffic, build_traffic
from benchbench.urls import redact_url
from benchbench.workers.coordinator import WorkersDriver
from benchbench.workers.plan import Recommend, plan_workers
from loadgen.load import RunOutcome

# A run's data reach the .duckdb file itself (not only its write-ahead log) at least this
# often, so copying that file alone keeps all but the last interval of a live run.
CHECKPOINT_EVERY_S = 10.0
# An open loop that fell further behind its schedule than this is said so at the end.
BEHIND_SCHEDULE_WARN_NS = 100_000_000


@dataclass(frozen=True, slots=True)
class RunGroup:
    """Runs measured together: the points of a sweep, the repeats of one configuration, or
    the probes of a search."""

    group_id: str
    kind: str  # "sweep" | "repeat" | "search"
    index: int


@dataclass(frozen=True)
class RunPlan:
    """What to measure, and the seams a caller may set (a test's clock or fake NVML)."""

    config: RunConfig
    group: RunGroup | None = None
    clock: Clock = time.monotonic_ns
    on_live: LiveCallback | None = None
    nvml: Any | None = None
    # What `--workers auto` resolves to (benchbench.calibrate.recommended_workers, given by
    # the command); without it, auto is the usable cores minus one.
    recommend_workers: Recommend | None = None


@dataclass
class RunResult:
    run_id: int
    summary: RunSummary
    outcome: RunOutcome
    header: dict[str, Any] = field(default_factory=dict)
    # complete | interrupted | failed (the books did not balance, a store write or a task of
    # the run failed): `bench run` exits 1 on failed, 130 on interrupted.
    status: str = "complete"


def execute(plan: RunPlan) -> RunResult:
    """One measured run, stored under a new run id."""
    cfg, clock = plan.config, plan.clock
    slos = parse_slos(cfg.output.slo) if cfg.output.slo else None
    with Signals() as signals, contextlib.ExitStack() as stack:
        # Plan first: a bad workload fails here, before anything starts or connects.
        link = TargetLink(cfg.target, cfg.target.endpoint) if cfg.target.endpoint else None
        traffic = build_traffic(cfg, link)
        workers = plan_workers(cfg.load, cfg.output.db, traffic.specs, plan.recommend_workers)
        validate_prices(cfg.prices)
        link, sim_metrics = stack.enter_context(_reach_target(cfg, link))
        store = stack.enter_context(_opened(cfg.output.db))
        origin = clock()
        run_id = _create_run(store, cfg, plan.group, link, traffic)
        sink = books.RecordSink(BatchWriter(store, run_id, origin))
        collectors = build_collectors(cfg.collect, cfg.target, sim_metrics, plan.nvml)
        if workers > 1 or cfg.load.ray:  # worker processes, or Ray actors (benchbench.workers)
            driver: LoadDriver | WorkersDriver = WorkersDriver(
                cfg.load, cfg.target, link, cfg.workload.tokenizer, collectors, sink, signals,
                clock, plan.on_live, workers,
            )  # fmt: skip
        else:
            driver = LoadDriver(
                cfg.load, cfg.target, link, _output_counter(cfg.workload.tokenizer),
                collectors, sink, signals, clock, plan.on_live,
            )  # fmt: skip
        try:
            with PeriodicCheckpoint(store, CHECKPOINT_EVERY_S):
                driven = driver.drive(traffic)
            status, parts = _close(store, run_id, cfg, traffic, sink, driven)
            results = run_results(store, run_id, cfg.prices, collectors, origin, parts)
            ended_ns = driven.outcome.end_ns - origin
            write_results(store, run_id, results, status=status, ended_ns=ended_ns)
            store.checkpoint()
        except BaseException as exc:
            interrupted = signals.count > 0
            books.end_early(store, run_id, sink, exc, interrupted, lambda: clock() - origin)
            raise
        summary = summarize(store.con, run_id, slos)
        return RunResult(run_id, summary, driven.outcome, _header(cfg, link, traffic), status)


def run_benchmark(cfg: RunConfig, **seams: Any) -> RunResult:
    """`execute` for a config alone (group, clock, on_live and nvml by keyword)."""
    return execute(RunPlan(cfg, **seams))


@contextlib.contextmanager
def _reach_target(
    cfg: RunConfig, link: TargetLink | None
) -> Iterator[tuple[TargetLink, str | None]]:
    """The endpoint, or the built-in simulator started in its own process when none is
    given; the model is known (asked of /models once) before the run is created."""
    if link is not None:
        link.model()
        yield link, None
        return
    from benchbench.sim import SimConfig, SimProcess

    sim_cfg = SimConfig(seed=cfg.workload.seed, fast=cfg.target.sim_fast)
    with SimProcess(sim_cfg) as sim:
        link = TargetLink(cfg.target, sim.base_url)
        link.model()
        yield link, sim.root_url + "/metrics"


@contextlib.contextmanager
def _opened(db: str) -> Iterator[Store]:
    store = open_store(db)
    try:
        yield store
    finally:
        store.close()


def _shown(cfg: RunConfig, link: TargetLink) -> str:
    return redact_url(link.base_url) if cfg.target.endpoint else "built-in simulator"


def _create_run(
    store: Store, cfg: RunConfig, group: RunGroup | None, link: TargetLink, traffic: Traffic
) -> int:
    return store.create_run(
        wall_anchor_s=time.time(),
        name=cfg.output.name,
        endpoint=_shown(cfg, link),
        api=cfg.target.api,
        model=link.model(),
        load_mode=traffic.mode,
        requested_rate=cfg.load.rate,
        concurrency=cfg.load.concurrency,
        seed=cfg.workload.seed,
        fingerprint=traffic.description.get("fingerprint"),
        config=cfg.public_dict(),
        versions=_versions(),
        host={"hostname": socket.gethostname(), "platform": platform.platform()},
        sweep_id=group.group_id if group else None,
        sweep_point=group.index if group else None,
        group_kind=group.kind if group else None,
    )


def _close(
    store: Store,
    run_id: int,
    cfg: RunConfig,
    traffic: Traffic,
    sink: books.RecordSink,
    driven: Driven,
) -> tuple[str, RunResults]:
    """The run's final status and its own results, once everything measured is stored. The
    books: the runner's count of sent requests must equal the rows stored for the run."""
    outcome = driven.outcome
    counted = books.balance(store, run_id, outcome, sink)
    failures = books.failures(counted)
    lost = [w.worker for w in driven.workers if w.lost]
    if lost:
        # The client broke, not the server: what the run measured is kept, but it is not a
        # measurement of the requested load, so it must not pass anyone's CI.
        failures.append(
            f"client worker{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} died: "
            "the run is failed (the load was not driven as planned; worker_lost rows are a "
            "client failure, not the server's)"
        )
    if failures:
        status = "failed"
    elif outcome.interrupted or driven.signalled:
        status = "interrupted"
    else:
        status = "complete"
    behind_ns = int(getattr(outcome, "behind_schedule_max_ns", 0) or 0)
    warnings = list(driven.warnings)
    if driven.retries:
        warnings.append(
            f"retried {driven.retries} request{'s' if driven.retries != 1 else ''} on a fresh "
            "connection (the server closed a reused connection before answering)"
        )
    if cfg.load.rate is not None and behind_ns > BEHIND_SCHEDULE_WARN_NS:
        warnings.append(
            f"the client could not keep up with the requested rate ({cfg.load.rate:g} req/s): "
            f"its sends fell up to {behind_ns / 1e9:.2f} s behind schedule (see schedule lag); "
            "lower --rate or run the client on a faster machine"
        )
    counts = Outcome(
        outcome.sent, outcome.ok, outcome.errored, outcome.cancelled, outcome.max_in_flight,
        driven.retries, behind_ns,
    )  # fmt: skip
    parts = RunResults(
        outcome=counts,
        books=Books(**{k: tuple(v) if isinstance(v, list) else v for k, v in counted.items()}),
        client=driven.client,
        traffic=traffic.description,
        warnings=tuple(warnings + failures),  # the books last: the line not to miss
        workers=tuple(driven.workers),
    )
    return status, parts


def _header(cfg: RunConfig, link: TargetLink, traffic: Traffic) -> dict[str, Any]:
    if cfg.load.rate is not None:
        load = f"open loop {cfg.load.rate:g} req/s ({cfg.load.arrival})"
    elif traffic.mode == "replay":
        load = "trace replay"
    else:
        load = f"closed loop, concurrency {cfg.load.concurrency or 1}"
    return {"endpoint": _shown(cfg, link), "model": link.model(), "api": cfg.target.api,
            "load": load}  # fmt: skip


def _output_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    """With --tokenizer, output tokens of responses that carry no usage are counted from
    their text (stored as such); without it they stay unknown, never guessed from chunks."""
    if not tokenizer:
        return None
    from benchbench.token_counters import HFTokenizerCounter

    try:
        counter = HFTokenizerCounter(tokenizer)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return lambda text: counter.count([text])[0]


def _versions() -> dict[str, str]:
    import duckdb
    import httpx

    return {
        "benchbench": __version__,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "httpx": httpx.__version__,
    }
