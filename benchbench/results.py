"""A run's computed results as typed, versioned records: written once when the run settles,
read back through `load_results` only. No reader opens runs.extra itself.

Where each part lives: the sections below in runs.extra (with `version`), the collectors'
facts in runs.collectors, the run's warnings in runs.warnings (the one list a user reads:
section warnings are copied there once when the run settles, never stored a second time),
and the measurement window in runs.window_start_ns/_end_ns (benchbench.window)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from benchbench.store import Store

RESULTS_VERSION = 2


def _from(cls: Any, data: Any) -> Any:
    """A record from its stored dict: known fields only, lists back to tuples."""
    if not isinstance(data, dict):
        return None
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The runner's own counts (measured and warm-up requests alike)."""

    sent: int = 0
    ok: int = 0
    errored: int = 0
    cancelled: int = 0
    max_in_flight: int = 0
    retries: int = 0
    behind_schedule_max_ns: int = 0


@dataclass(frozen=True, slots=True)
class Books:
    """The runner's count of sent requests against the rows the store holds."""

    sent: int | None = None  # None: the runner's count was never written (abandoned)
    emitted: int | None = None
    received: int | None = None
    written: int | None = None
    stored: int = 0
    missing: int | None = None
    writer_error: str | None = None
    rows_failed: int = 0
    store_failures: tuple[str, ...] = ()
    error_count: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientOverhead:
    """What the client spent on the run: its own health figures."""

    cpu_s: float | None = None
    wall_s: float | None = None
    cpu_util: float | None = None
    loop_lag_p99_ms: float | None = None


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """One client worker of a multi-worker run (`bench run --workers N`, `--ray`): where it
    ran, its own health figures, and its clock's offset from the coordinator's (worker clock
    minus coordinator clock, measured by round trips; the uncertainty is half the best round
    trip). `lost`: it died mid-run; its open requests are rows with error kind worker_lost."""

    worker: int
    pid: int | None = None
    host: str | None = None
    node_id: str | None = None
    cpu_s: float | None = None
    wall_s: float | None = None
    cpu_util: float | None = None
    loop_lag_p99_ms: float | None = None
    schedule_lag_p99_ms: float | None = None
    records: int = 0
    lost: bool = False
    lost_requests: int = 0  # requests in flight when it died (worker_lost rows)
    unsent: int = 0  # planned requests dealt to it, or due to it, never sent
    clock_offset_ns: int | None = None
    clock_uncertainty_ns: int | None = None
    clock_offset_end_ns: int | None = None
    clock_uncertainty_end_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Energy:
    """GPU energy over the measurement window (benchbench.energy); `unavailable` says why
    when nothing was measured, and every figure is then None."""

    unavailable: str | None = None
    source: str | None = None
    window_s: float | None = None
    idle_window_ns: tuple[int, int] | None = None
    gross_j: float | None = None
    net_j: float | None = None
    idle_w: float | None = None
    avg_power_w: float | None = None
    avg_power_w_per_gpu: float | None = None
    gpus: tuple[str, ...] = ()
    output_tokens: int | None = None
    input_tokens: int | None = None
    j_per_output_token: float | None = None
    j_per_token: float | None = None
    net_j_per_output_token: float | None = None
    kwh_per_1m_output_tokens: float | None = None
    output_tokens_per_j: float | None = None
    tokens_per_j: float | None = None
    warnings: tuple[str, ...] = ()
    # energy.py's judgement: {"status": "ok" | "partial" | "invalid", "reasons": [...]}.
    verdict: dict[str, Any] | None = None
    # The idle baseline's own verdict (same shape); None without an idle phase.
    idle_verdict: dict[str, Any] | None = None
    # Facts, not faults: which rows and source were used, warm-up tokens counted.
    notes: tuple[str, ...] = ()
    # The energy source rule's outcome (benchbench.collect.CollectorSet.source_notes): which
    # GPUs were measured and why.
    source_notes: tuple[str, ...] = ()
    # How the idle baseline went: settled, waited_s, first_half_w, second_half_w.
    idle_settle: dict[str, Any] | None = None

    @property
    def partial(self) -> bool:
        """The samples do not cover the window: the figures are lower bounds."""
        if self.verdict is not None:
            return self.verdict.get("status") != "ok"
        return any("cover only" in w for w in self.warnings)

    @property
    def idle_w_per_gpu(self) -> float | None:
        if self.idle_w is None:
            return None
        return self.idle_w / max(1, len(self.gpus))

    @classmethod
    def from_result(cls, r: Any, idle_window_ns: tuple[int, int] | None) -> Energy:
        """From benchbench.energy.EnergyResult."""
        return cls(
            source=r.source, window_s=r.window_s, idle_window_ns=idle_window_ns,
            gross_j=r.gross_j, net_j=r.net_j, idle_w=r.idle_w, avg_power_w=r.avg_w_total,
            avg_power_w_per_gpu=r.avg_w_per_gpu, gpus=tuple(d.device for d in r.devices),
            output_tokens=r.output_tokens, input_tokens=r.input_tokens,
            j_per_output_token=r.j_per_output_token, j_per_token=r.j_per_token,
            net_j_per_output_token=r.net_j_per_output_token,
            kwh_per_1m_output_tokens=r.kwh_per_1m_output_tokens,
            output_tokens_per_j=r.output_tokens_per_j, tokens_per_j=r.tokens_per_j,
            warnings=tuple(r.warnings), verdict=_verdict(r.verdict),
            idle_verdict=_verdict(r.idle_verdict), notes=tuple(r.notes),
        )  # fmt: skip


def _verdict(v: Any) -> dict[str, Any] | None:
    """benchbench.energy.Verdict as stored: {"status": ..., "reasons": [...]}."""
    if v is None or isinstance(v, dict):
        return v
    return {"status": str(v.status), "reasons": list(v.reasons)}


@dataclass(frozen=True, slots=True)
class Cost:
    """Cost over the measurement window (benchbench.cost)."""

    unavailable: str | None = None
    price_source: str | None = None
    usd_per_hour: float | None = None
    usd_per_gpu_hour: float | None = None
    window_usd: float | None = None
    window_s: float | None = None
    usd_per_1m_output_tokens: float | None = None
    usd_per_1m_total_tokens: float | None = None
    usd_per_request: float | None = None
    energy_kwh: float | None = None
    energy_cost_usd: float | None = None
    energy_usd_per_1m_output_tokens: float | None = None
    kwh_price_usd: float | None = None
    pue: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerView:
    """The scraped servers' figures over the window (benchbench.server_view); one dict of
    figures per server (server_view.server_figures and the client's totals beside them)."""

    unavailable: str | None = None
    window_s: float | None = None
    ideal_prefix_hit: float | None = None
    servers: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunResults:
    """Everything computed about a run once it settled. Sections a run never reached (an
    abandoned or interrupted run) are None."""

    outcome: Outcome | None = None
    books: Books | None = None
    client: ClientOverhead | None = None
    traffic: dict[str, Any] = field(default_factory=dict)  # the plan's description
    energy: Energy | None = None
    cost: Cost | None = None
    server: ServerView | None = None
    collectors: dict[str, Any] = field(default_factory=dict)  # stored in runs.collectors
    warnings: tuple[str, ...] = ()  # stored in runs.warnings
    # One per client worker when the run had more than one (an added section: a run stored
    # before it reads back with none, so the results version is unchanged).
    workers: tuple[WorkerHealth, ...] = ()
    version: int = RESULTS_VERSION

    def extra(self) -> dict[str, Any]:
        """The runs.extra document: every section but collectors and warnings."""
        out = dataclasses.asdict(self)
        del out["collectors"], out["warnings"]
        return out

    def to_dict(self) -> dict[str, Any]:
        """All of it as plain data (`--json`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_stored(cls, extra: Any, collectors: Any = None, warnings: Any = None) -> RunResults:
        d = extra if isinstance(extra, dict) else {}
        return cls(
            outcome=_from(Outcome, d.get("outcome")),
            books=_from(Books, d.get("books")),
            client=_from(ClientOverhead, d.get("client")),
            traffic=d.get("traffic") if isinstance(d.get("traffic"), dict) else {},
            energy=_from(Energy, d.get("energy")),
            cost=_from(Cost, d.get("cost")),
            server=_from(ServerView, d.get("server")),
            collectors=collectors if isinstance(collectors, dict) else {},
            warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
            workers=tuple(w for w in (_from(WorkerHealth, x) for x in d.get("workers") or []) if w),
            version=int(d.get("version") or RESULTS_VERSION),
        )


def write_results(store: Store, run_id: int, results: RunResults, **run_fields: Any) -> None:
    """Store a settled run's results (with any other runs columns, e.g. status, ended_ns):
    once, at the end of the run."""
    store.update_run(
        run_id,
        extra=results.extra(),
        collectors=results.collectors or None,
        warnings=list(results.warnings),
        **run_fields,
    )


def load_results(con: duckdb.DuckDBPyConnection, run_id: int) -> RunResults:
    """The one loader of a run's stored results; empty sections for a run that has none."""
    row = con.execute(
        "SELECT extra, collectors, warnings FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise KeyError(run_id)
    return RunResults.from_stored(*(_loads(v) for v in row))


def _loads(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return None
