"""What a stored calibration says about one run: the warning `bench run` prints before it
starts a load above this machine's calibrated client ceiling, and the client-headroom facts a
run's report shows next to its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from benchbench.calibrate import (
    HEADROOM,
    TOKENS_PER_S_PER_STREAM,
    Capacity,
    WorkerRow,
    capacity,
    read_capacity,
    recommended_workers,
)

if TYPE_CHECKING:
    from benchbench.config import RunConfig
    from benchbench.metrics import RunSummary


def worker_count(workers: str | int | None, cap: Capacity, store_path: str | None = None,
                 rate: float | None = None, concurrency: int | None = None) -> int:  # fmt: skip
    """A run's worker count: N as given, or what `--workers auto` resolves to."""
    text = str(workers or "1").strip().lower()
    if text == "auto":
        picked = recommended_workers(store_path, rate, concurrency) if store_path else None
        return picked or cap.rows[-1].workers
    return int(text) if text.isdigit() else 1


def load_warning(
    store_path: str,
    rate: float | None,
    concurrency: int | None,
    workers: str | int | None = "1",
) -> str | None:
    """One line when the requested load exceeds the calibrated capacity of this host with the
    run's worker count; None when it fits or no calibration is stored in `store_path`."""
    cap = capacity(store_path)
    if cap is None:
        return None
    n = worker_count(workers, cap, store_path, rate, concurrency)
    row = cap.row(n)
    if row is None:
        return None
    when = f"bench calibrate{' --quick' if cap.quick else ''}, {str(cap.created_at)[:16]}"
    more = _more_workers(cap, n, rate, concurrency)
    if rate is not None and row.max_rate and rate > row.max_rate:
        return (
            f"--rate {rate:g} req/s is above this machine's calibrated client ceiling with "
            f"{n} worker{'s' if n != 1 else ''} ({row.max_rate:,.0f} req/s at schedule lag p99 "
            f"<= 2 ms; {when}): expect schedule lag; {more}"
        )
    need = concurrency * TOKENS_PER_S_PER_STREAM if concurrency else None
    if rate is None and need and row.max_tokens_per_s and need > row.max_tokens_per_s:
        return (
            f"--concurrency {concurrency} streams at {TOKENS_PER_S_PER_STREAM:g} tokens/s each "
            f"would be {need:,.0f} tokens/s, above this machine's calibrated client ceiling "
            f"with {n} worker{'s' if n != 1 else ''} ({row.max_tokens_per_s:,.0f} tokens/s at "
            f"timestamp error p99 <= 1 ms; {when}): token timestamps may be late; {more}"
        )
    return None


def _more_workers(cap: Capacity, n: int, rate: float | None, concurrency: int | None) -> str:
    for row in cap.rows:
        if row.workers > n and _fits(row, rate, concurrency):
            return f"use --workers {row.workers} (calibrated to hold it)"
    return "lower the load, or spread the client over more cores or hosts (--workers, --ray)"


def _fits(row: WorkerRow, rate: float | None, concurrency: int | None) -> bool:
    if rate is not None:
        return bool(row.max_rate and rate <= row.max_rate)
    need = (concurrency or 0) * TOKENS_PER_S_PER_STREAM
    return bool(row.max_tokens_per_s and need <= row.max_tokens_per_s)


def client_headroom(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    host: dict[str, Any],
    config: dict[str, Any],
    summary: RunSummary,
) -> dict[str, dict[str, Any]]:
    """{"client headroom": facts} for a run's report (empty when the run's host has no
    calibration in this store): the share of the calibrated ceilings the run used. Streamed
    events/s, not tokens/s, are compared with the tokens/s ceiling: it was measured at one
    token per event, and the client's cost is per event however many tokens one carries."""
    hostname = host.get("hostname")
    cap = read_capacity(con, str(hostname)) if hostname else None
    if cap is None:
        return {}
    n = worker_count(config.get("workers"), cap)
    row = cap.row(n)
    if row is None:
        return {}
    events = con.execute("SELECT count(*) FROM token_events WHERE run_id = ?", [run_id]).fetchone()
    window_s = summary.window_s or 0.0
    events_per_s = events[0] / window_s if events and window_s > 0 else None
    facts: dict[str, Any] = {
        "calibrated": f"{str(cap.created_at)[:16]} ({'quick' if cap.quick else 'full'}, "
        f"{cap.cores} cores, benchbench {cap.version})",
        "workers": n,
        "calibrated max rate (req/s)": row.max_rate,
        "rate used (share of max)": _share(summary.achieved_rate, row.max_rate),
        "calibrated max tokens/s": row.max_tokens_per_s,
        "streamed events/s": events_per_s,
        "events/s used (share of max tokens/s)": _share(events_per_s, row.max_tokens_per_s),
        "client CPU-s per 1M tokens (calibrated)": row.cpu_s_per_1m_tokens,
    }
    shares = (facts["rate used (share of max)"], facts["events/s used (share of max tokens/s)"])
    used = [v for v in shares if v is not None]
    facts["reading"] = (
        None if not used
        else "client near its ceiling: figures may include client delay" if max(used) > HEADROOM
        else "client had headroom"
    )  # fmt: skip
    return {"client headroom": facts}


def _share(used: float | None, ceiling: float | None) -> float | None:
    return round(used / ceiling, 3) if used is not None and ceiling else None


def warn_before_run(
    cfg: RunConfig, rates: list[float] | None = None, concurrencies: list[int] | None = None
) -> str | None:
    """`bench run`'s check before it starts: the warning (printed to stderr, and returned)
    when the highest load it will ask for exceeds the calibrated capacity."""
    rate = max(rates) if rates else cfg.load.rate
    conc = max(concurrencies) if concurrencies else cfg.load.concurrency
    line = load_warning(cfg.output.db, rate, conc, cfg.load.workers)
    if line:
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[yellow]warning:[/] {line}")
    return line
