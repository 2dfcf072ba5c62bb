"""A run's summary, in SQL over the store: counts, rates over the one measurement window, the
request-metric distributions (benchbench.request_metrics), token truth and SLO goodput
(benchbench.slo). The console, `bench show`, reports and the gate all read these; the README
glossary documents the same formulas."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

# Registers store migration 006 (runs stored before typed results): every command that opens
# a store reads it through this module.
import benchbench.results_v1  # noqa: F401
from benchbench.cache import served_cache
from benchbench.energy_per_request import EnergyPerRequest, energy_per_request
from benchbench.pooling_summary import pooling_summary
from benchbench.reasoning import ReasoningSummary, reasoning_summary
from benchbench.request_metrics import (
    DISTRIBUTIONS,
    Distribution,
    chunk_gaps,
    distribution,
    json_safe,
    request_rows,
)
from benchbench.results import RunResults, load_results
from benchbench.slo import goodput, parse_slos
from benchbench.window import DEFINITION, load_window

__all__ = ["RunSummary", "parse_slos", "prompt_cache", "summarize", "token_truth"]


@dataclass(slots=True)
class RunSummary:
    """A run's figures. Every rate divides by the one measurement window (`window`,
    benchbench.window: its definition is named in `window_definition`)."""

    run_id: int
    status: str
    sent: int
    ok: int
    errored: int
    cancelled: int
    warmup: int
    errors_by_kind: dict[str, int]
    window_s: float
    window_definition: str
    drain_s: float | None  # last measured send -> last completion, inside the window
    output_tokens: int
    input_tokens: int
    output_tok_s: float | None
    total_tok_s: float | None
    requests_s: float | None
    achieved_rate: float | None  # measured sends per second
    requested_rate: float | None
    mean_concurrency: float | None
    distributions: dict[str, Distribution]
    token_truth: dict[str, Any]
    load_mode: str | None = None
    goodput: dict[str, Any] | None = None
    results: RunResults = field(default_factory=RunResults)
    # The served prompt cache (benchbench.cache.served_cache: share, source, cached_tokens,
    # prompt_tokens, requests, measured) beside the reuse the workload itself implies
    # (ideal_prefix_hit) and whether the run's prompts were salted (None: not recorded).
    prompt_cache: dict[str, Any] = field(default_factory=dict)
    # Reasoning / tool-call phases (benchbench.reasoning): TTFA, tokens and TPOT per phase;
    # None when no request reasoned or called a tool.
    reasoning: ReasoningSummary | None = None
    # Embeddings / rerank figures (benchbench.pooling_summary.PoolingFigures as a dict):
    # inputs/s, input tok/s, latency; None for a generation run.
    pooling: dict[str, Any] | None = None
    # The window's energy attributed to its requests (benchbench.energy_per_request);
    # None without energy samples.
    energy_per_request: EnergyPerRequest | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.results.warnings

    @property
    def open_loop(self) -> bool:
        """Planned send times exist (open loop, trace replay): the (intended) rows apply."""
        return self.distributions["schedule_lag_ms"].n > 0

    @property
    def extra(self) -> dict[str, Any]:
        """The stored results as plain data (read-only; for `--json` and older callers)."""
        return json.loads(json.dumps(self.results.to_dict(), default=str))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["distributions"] = json_safe(d["distributions"])  # +inf: null + "infinite"
        return d


def summarize(
    con: duckdb.DuckDBPyConnection, run_id: int, slos: dict[str, float] | None = None
) -> RunSummary:
    run = con.execute(
        "SELECT status, requested_rate, load_mode FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if run is None:
        raise KeyError(run_id)
    status, requested_rate, load_mode = run
    window = load_window(con, run_id)
    window_s = window.seconds if window else 0.0
    c = _counts(con, run_id)
    summary = RunSummary(
        run_id=run_id,
        status=status,
        sent=c["sent"],
        ok=c["ok"],
        errored=c["errored"],
        cancelled=c["cancelled"],
        warmup=c["warmup"],
        errors_by_kind=c["kinds"],
        window_s=window_s,
        window_definition=window.definition if window else DEFINITION,
        drain_s=window.drain_s if window else None,
        output_tokens=c["out_tok"],
        input_tokens=c["in_tok"],
        output_tok_s=c["out_tok"] / window_s if window_s else None,
        total_tok_s=(c["out_tok"] + c["in_tok"]) / window_s if window_s else None,
        requests_s=c["ok"] / window_s if window_s else None,
        achieved_rate=c["achieved"],
        requested_rate=requested_rate,
        mean_concurrency=(c["busy_ns"] / 1e9) / window_s if window_s and c["busy_ns"] else None,
        distributions=_distributions(con, run_id),
        token_truth=token_truth(con, run_id),
        load_mode=load_mode,
        results=load_results(con, run_id),
    )
    summary.prompt_cache = prompt_cache(con, run_id, summary.results)
    summary.reasoning = reasoning_summary(con, run_id)
    summary.pooling = pooling_summary(con, run_id, window_s)
    summary.energy_per_request = energy_per_request(con, run_id, _gross_j(summary.results))
    if slos:
        summary.goodput = goodput(con, run_id, slos, window_s)
    return summary


def _gross_j(results: RunResults) -> float | None:
    return results.energy.gross_j if results.energy is not None else None


def prompt_cache(
    con: duckdb.DuckDBPyConnection, run_id: int, results: RunResults
) -> dict[str, Any]:
    """The served prompt cache of the run, the workload's own reuse and its salting: the
    traffic description says both, else (salting) the stored config's `salt`."""
    traffic = results.traffic
    salted = traffic.get("salted")
    if salted is None:
        row = con.execute(
            "SELECT json_extract(config, '$.salt') FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        salted = json.loads(row[0]) if row and row[0] is not None else None
    return {
        **served_cache(con, run_id),
        "ideal_prefix_hit": traffic.get("ideal_prefix_hit"),
        "salted": salted if isinstance(salted, bool) else None,
    }


def _distributions(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Distribution]:
    dists = {name: distribution(con, run_id, name) for name in DISTRIBUTIONS}
    dists["chunk_gap_ms"] = chunk_gaps(con, run_id)
    return dists


def _counts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any]:
    """The books of the measured requests; tokens of the ok ones (all inside the window)."""
    rel = request_rows(con, run_id)
    row = con.execute(
        f"""SELECT count(*),
                   count(*) FILTER (WHERE ok AND NOT warmup),
                   count(*) FILTER (WHERE NOT ok AND error_kind <> 'cancelled' AND NOT warmup),
                   count(*) FILTER (WHERE error_kind = 'cancelled' AND NOT warmup),
                   count(*) FILTER (WHERE warmup),
                   min(sent_ns) FILTER (WHERE NOT warmup),
                   max(sent_ns) FILTER (WHERE NOT warmup),
                   coalesce(sum(output_tokens) FILTER (WHERE ok AND NOT warmup), 0),
                   coalesce(sum(input_tokens) FILTER (WHERE ok AND NOT warmup), 0),
                   sum(coalesce(closed_ns, last_token_ns, sent_ns) - sent_ns)
                       FILTER (WHERE NOT warmup)
            FROM {rel}"""
    ).fetchone()
    assert row is not None
    total, ok, errored, cancelled, warm, t0, last_sent, out_tok, in_tok, busy_ns = row
    measured = int(total) - int(warm)
    kinds = con.execute(
        f"""SELECT error_kind, count(*) FROM {rel}
            WHERE error_kind IS NOT NULL AND NOT warmup GROUP BY 1 ORDER BY 2 DESC"""
    ).fetchall()
    achieved = None
    if measured > 1 and last_sent is not None and last_sent > t0:
        achieved = (measured - 1) / ((last_sent - t0) / 1e9)
    return {
        "sent": measured, "ok": int(ok), "errored": int(errored), "cancelled": int(cancelled),
        "warmup": int(warm), "kinds": {str(k): int(v) for k, v in kinds},
        "out_tok": int(out_tok), "in_tok": int(in_tok), "busy_ns": busy_ns, "achieved": achieved,
    }  # fmt: skip


def token_truth(con: duckdb.DuckDBPyConnection, run_id: int, tolerance: float = 0.02) -> dict:
    """Compare requested, server-reported and client-seen output lengths. Chunks are never
    taken for tokens; a mismatch is flagged, not corrected."""
    row = con.execute(
        f"""SELECT count(*),
                   count(*) FILTER (WHERE output_tokens_source = 'usage'),
                   count(*) FILTER (WHERE output_tokens_source = 'client_tokenizer'),
                   count(*) FILTER (WHERE output_tokens_expected IS NOT NULL
                       AND abs(output_tokens - output_tokens_expected)
                           > greatest(1, {tolerance} * output_tokens_expected)),
                   count(*) FILTER (WHERE input_tokens_expected IS NOT NULL
                       AND abs(input_tokens - input_tokens_expected)
                           > greatest(1, {tolerance} * input_tokens_expected)),
                   count(*) FILTER (WHERE n_events > output_tokens)
            FROM {request_rows(con, run_id)} WHERE ok AND NOT warmup"""
    ).fetchone()
    assert row is not None
    n, with_usage, client, out_mismatch, in_mismatch, events_over = (int(v) for v in row)
    malformed = _malformed_usage(con, run_id)
    methods = [m for m, k in (("server_usage", with_usage), ("client_tokenizer", client)) if k]
    return {
        "method": "+".join(methods) or "none",
        "requests": n,
        "with_usage": with_usage,
        "client_tokenizer": client,
        "output_mismatch": out_mismatch,
        "input_mismatch": in_mismatch,
        "events_exceed_usage": events_over,
        # Server counts that were not a non-negative 32-bit integer: stored as unknown (NULL).
        "malformed_usage": malformed,
        "tolerance": tolerance,
    }


def _malformed_usage(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """Ok, measured requests whose usage held a count that is not one (see the `notes`
    column); 0 for a store opened read-only from before that column."""
    has_notes = con.execute(
        """SELECT count(*) FROM information_schema.columns
           WHERE table_name = 'requests' AND column_name = 'notes'"""
    ).fetchone()
    if not has_notes or not has_notes[0]:
        return 0
    row = con.execute(
        """SELECT count(*) FROM requests
           WHERE run_id = ? AND error_kind IS NULL AND NOT warmup
             AND notes LIKE '%malformed_usage:%'""",
        [run_id],
    ).fetchone()
    return int(row[0]) if row else 0
