"""Reasoning-aware figures of a run, in SQL over the stored token events.

Definitions (the README glossary says the same):

- TTFT: send -> the first non-empty streamed fragment of any kind (answer, reasoning or tool
  call): the MLPerf Endpoints definition, and `requests.first_token_ns`.
- TTFA (time to first answer): send -> the first fragment that is not reasoning (answer text
  or a tool call): when the user (or the agent) gets something to act on. For a model that
  does not reason, TTFA = TTFT.
- Reasoning tokens: the server's count (usage.completion_tokens_details.reasoning_tokens);
  answer tokens = output tokens - reasoning tokens. Never guessed from chunk counts: where
  the server gives no reasoning count, only the event counts are reported.
- TPOT per phase: (last - first event of the phase) / (the phase's tokens - 1); the gap
  between the last reasoning and the first answer token belongs to neither phase.

Token events store kind NULL for an answer event (the common case costs nothing)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb

from benchbench.request_metrics import PERCENTILES, Distribution

__all__ = [
    "PHASE_METRICS",
    "ReasoningSummary",
    "phase_rows_sql",
    "reasoning_facts",
    "reasoning_lines",
    "reasoning_summary",
]

# name -> (SQL over phase_rows_sql, label)
PHASE_METRICS: dict[str, tuple[str, str]] = {
    "ttft_ms": ("(first_token_ns - sent_ns) / 1e6", "TTFT, first fragment of any kind"),
    "ttfa_ms": ("(answer_first_ns - sent_ns) / 1e6", "TTFA, first answer or tool-call fragment"),
    "tpot_reasoning_ms": (
        """CASE WHEN reasoning_tokens > 1
                THEN (reasoning_last_ns - reasoning_first_ns) / 1e6 / (reasoning_tokens - 1)
           END""",
        "TPOT of the reasoning phase",
    ),
    "tpot_answer_ms": (
        """CASE WHEN answer_tokens > 1
                THEN (answer_last_ns - answer_first_ns) / 1e6 / (answer_tokens - 1) END""",
        "TPOT of the answer phase",
    ),
}


@dataclass(frozen=True, slots=True)
class ReasoningSummary:
    """Token counts by phase (server counts; None = not reported) and the per-phase latency
    distributions of the ok, measured requests."""

    requests: int
    reasoning_tokens: int | None  # the server's count, summed over requests that report it
    answer_tokens: int | None  # output - reasoning over the same requests
    reporting: int  # requests whose server reported reasoning tokens
    reasoning_events: int
    answer_events: int
    tool_call_events: int
    distributions: dict[str, Distribution]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def phase_rows_sql(run_id: int) -> str:
    """One row per ok, measured request with its phase boundaries (ns) and token counts."""
    rid = int(run_id)
    return f"""
        WITH ev AS (
            SELECT idx,
                   min(t_ns) FILTER (WHERE kind = 'reasoning') AS reasoning_first_ns,
                   max(t_ns) FILTER (WHERE kind = 'reasoning') AS reasoning_last_ns,
                   min(t_ns) FILTER (WHERE kind IS DISTINCT FROM 'reasoning') AS answer_first_ns,
                   max(t_ns) FILTER (WHERE kind IS DISTINCT FROM 'reasoning') AS answer_last_ns,
                   count(*) FILTER (WHERE kind = 'reasoning') AS reasoning_events,
                   count(*) FILTER (WHERE kind IS NULL OR kind = 'answer') AS answer_events,
                   count(*) FILTER (WHERE kind = 'tool_call') AS tool_call_events,
                   min(t_ns) FILTER (WHERE seq = 1) AS second_token_ns
            FROM token_events WHERE run_id = {rid} GROUP BY idx)
        SELECT r.idx, r.sent_ns, r.first_token_ns, r.first_event_ns, r.last_token_ns,
               r.closed_ns, r.input_tokens, r.output_tokens, r.reasoning_tokens,
               r.output_tokens - r.reasoning_tokens AS answer_tokens, ev.* EXCLUDE (idx)
        FROM requests r JOIN ev ON ev.idx = r.idx
        WHERE r.run_id = {rid} AND r.error_kind IS NULL AND NOT r.warmup
    """


def reasoning_summary(con: duckdb.DuckDBPyConnection, run_id: int) -> ReasoningSummary | None:
    """The run's reasoning figures, or None when no request reasoned or called a tool (the
    plain case: TTFA = TTFT and every token is an answer token)."""
    if not _has_phases(con, run_id):
        return None
    rows = f"({phase_rows_sql(run_id)})"
    row = con.execute(
        f"""SELECT count(*), sum(reasoning_tokens),
                   sum(answer_tokens) FILTER (WHERE reasoning_tokens IS NOT NULL),
                   count(reasoning_tokens), sum(reasoning_events), sum(answer_events),
                   sum(tool_call_events)
            FROM {rows}"""
    ).fetchone()
    assert row is not None
    n, rtok, atok, reporting, rev, aev, tev = row
    dists = {name: _dist(con, expr, rows, label) for name, (expr, label) in PHASE_METRICS.items()}
    return ReasoningSummary(
        int(n), _int(rtok), _int(atok), int(reporting), int(rev or 0), int(aev or 0),
        int(tev or 0), dists,
    )  # fmt: skip


def _has_phases(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    row = con.execute(
        """SELECT EXISTS (SELECT 1 FROM requests WHERE run_id = ? AND reasoning_tokens > 0)
               OR EXISTS (SELECT 1 FROM token_events WHERE run_id = ? AND kind IS NOT NULL)""",
        [run_id, run_id],
    ).fetchone()
    return bool(row and row[0])


def _dist(con: duckdb.DuckDBPyConnection, expr: str, rows: str, label: str) -> Distribution:
    qs = ",".join(map(str, PERCENTILES))
    n, mean, q, mx = con.execute(
        f"SELECT count(x), avg(x), quantile_cont(x, [{qs}]), max(x) "
        f"FROM (SELECT {expr} AS x FROM {rows}) WHERE x IS NOT NULL"
    ).fetchone() or (0, None, None, None)
    q = q or [None] * len(PERCENTILES)
    return Distribution(int(n), mean, q[0], q[1], q[2], q[3], mx, f"ok requests; {label}")


def _int(v: object) -> int | None:
    return None if v is None else int(v)  # type: ignore[call-overload]


def reasoning_lines(r: ReasoningSummary) -> list[tuple[str, str]]:
    """The console's rows: token counts by phase, then TTFT/TTFA/TPOT per phase (p50/p90)."""
    if r.reasoning_tokens is not None:
        tokens = (
            f"reasoning {r.reasoning_tokens:,} + answer {r.answer_tokens or 0:,} tokens "
            f"(server counts, {r.reporting}/{r.requests} requests)"
        )
    else:
        tokens = "reasoning tokens not reported by the server"
    tokens += (
        f"; events: {r.reasoning_events:,} reasoning, {r.answer_events:,} answer, "
        f"{r.tool_call_events:,} tool call"
    )
    lines = [("reasoning", tokens)]
    for name, d in r.distributions.items():
        if d.n:
            lines.append((name.removesuffix("_ms"), f"p50 {d.p50:,.2f} ms, p90 {d.p90:,.2f} ms"))
    return lines


def reasoning_facts(r: ReasoningSummary) -> dict[str, object]:
    """The report's fact table: counts by phase, then p50/p90 of TTFT, TTFA and TPOT per phase."""
    out: dict[str, object] = {
        "requests": r.requests,
        "reasoning tokens (server)": r.reasoning_tokens,
        "answer tokens (output - reasoning)": r.answer_tokens,
        "requests reporting reasoning tokens": r.reporting,
        "reasoning / answer / tool-call events": (
            f"{r.reasoning_events} / {r.answer_events} / {r.tool_call_events}"
        ),
    }
    for name, d in r.distributions.items():
        out[f"{name} p50"] = d.p50
        out[f"{name} p90"] = d.p90
    return out
