"""The figures of an embeddings or rerank run, in SQL over the store: what the console, the
JSON summary (RunSummary.pooling), the gate (inputs_per_s, input_tok_s, latency_ms) and the
report show for these APIs instead of TTFT and TPOT.

Population: ok, measured (not warm-up) requests that carried inputs (requests.inputs is set
only by the pooling adapters). Rates divide by the run's one measurement window. Input
tokens are the server's (usage.prompt_tokens, else usage.total_tokens); a request counted by
the client tokenizer instead carries the note `input_tokens_source: client_tokenizer` and is
counted apart; a request with neither is unknown and adds nothing (never guessed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from benchbench.request_metrics import distribution

__all__ = ["PoolingFigures", "pooling_figures", "pooling_lines", "pooling_summary"]

CLIENT_NOTE = "input_tokens_source: client_tokenizer"  # loadgen.api_embeddings.CLIENT_COUNT_NOTE


@dataclass(frozen=True, slots=True)
class PoolingFigures:
    requests: int  # ok, measured requests with inputs
    inputs: int  # inputs (embeddings) or documents (rerank) they carried
    inputs_per_request: float | None
    inputs_per_s: float | None
    requests_s: float | None
    input_tokens: int  # known counts only (server, then client tokenizer)
    input_tok_s: float | None
    tokens_from_server: int  # requests whose input tokens the server reported
    tokens_from_client: int  # ... that the client tokenizer counted
    tokens_unknown: int  # ... that nobody counted
    latency_ms: dict[str, Any]  # the latency_ms distribution (n, mean, p50 ... max)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pooling_figures(
    con: duckdb.DuckDBPyConnection, run_id: int, window_s: float
) -> PoolingFigures | None:
    """The run's pooling figures; None for a run that sent no inputs (a generation run)."""
    if not _has_inputs_column(con):  # a store opened read-only from before migration 008
        return None
    row = con.execute(
        f"""SELECT count(*), coalesce(sum(inputs), 0), coalesce(sum(input_tokens), 0),
                   count(input_tokens) FILTER (WHERE NOT {_CLIENT}),
                   count(input_tokens) FILTER (WHERE {_CLIENT}),
                   count(*) FILTER (WHERE input_tokens IS NULL)
            FROM requests
            WHERE run_id = ? AND inputs IS NOT NULL AND error_kind IS NULL AND NOT warmup""",
        [run_id],
    ).fetchone()
    any_inputs = con.execute(
        "SELECT count(*) FROM requests WHERE run_id = ? AND inputs IS NOT NULL", [run_id]
    ).fetchone()
    if row is None or not any_inputs or not any_inputs[0]:
        return None
    n, inputs, tokens, server, client, unknown = (int(v) for v in row)
    latency = distribution(con, run_id, "latency_ms")
    return PoolingFigures(
        requests=n,
        inputs=inputs,
        inputs_per_request=inputs / n if n else None,
        inputs_per_s=inputs / window_s if window_s else None,
        requests_s=n / window_s if window_s else None,
        input_tokens=tokens,
        input_tok_s=tokens / window_s if window_s and server + client else None,
        tokens_from_server=server,
        tokens_from_client=client,
        tokens_unknown=unknown,
        latency_ms=asdict(latency),
    )


def pooling_summary(
    con: duckdb.DuckDBPyConnection, run_id: int, window_s: float
) -> dict[str, Any] | None:
    """RunSummary.pooling: the figures as plain data (JSON), or None for a generation run."""
    figures = pooling_figures(con, run_id, window_s)
    return None if figures is None else figures.to_dict()


def _has_inputs_column(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        """SELECT count(*) FROM information_schema.columns
           WHERE table_name = 'requests' AND column_name = 'inputs'"""
    ).fetchone()
    return bool(row and row[0])


_CLIENT = f"coalesce(notes, '') LIKE '%{CLIENT_NOTE}%'"


def pooling_lines(p: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, line) rows for the console's head table, from RunSummary.pooling."""
    lat = p["latency_ms"]
    throughput = (
        f"{_fmt(p['inputs_per_s'])} inputs/s, {_fmt(p['input_tok_s'])} input tok/s, "
        f"{_fmt(p['requests_s'], 2)} req/s ({_fmt(p['inputs_per_request'])} inputs/request)"
    )
    latency = (
        f"p50 {_fmt(lat['p50'], 2)}  p90 {_fmt(lat['p90'], 2)}  p99 {_fmt(lat['p99'], 2)}  "
        f"max {_fmt(lat['max'], 2)} ms (send to close, {lat['n']} ok requests)"
    )
    truth = f"{p['tokens_from_server']}/{p['requests']} counted by the server"
    if p["tokens_from_client"]:
        truth += f", {p['tokens_from_client']} by the client tokenizer"
    if p["tokens_unknown"]:
        truth += f", {p['tokens_unknown']} unknown (no usage, no --tokenizer)"
    return [("pooling", throughput), ("latency", latency), ("input tokens", truth)]


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"
